"""Does the reader use a surviving answer? Reader F1 split by answer survival, per method and rate.

Reads the reader benchmark's raw rows (``reports/raw/quality_results.jsonl.gz``, made by
``scripts/device/eval_job.py``; no new reading) and, for SQuAD and HotpotQA, splits every method's
F1 by whether a gold answer survived compression. A method can keep more answers than truncation
and still score lower if the reader cannot find them in what is left around them: F1 given
survival is that "usability" of the kept text, survival x F1-given-survival is most of the F1.

    .venv/bin/python benchmarks/reader_use.py

Writes reports/reader_use.json + PNG and prints a table.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
TASKS = ("squad", "hotpotqa")


def split_by_survival(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{task: {method: {rate: {n, survival, f1, f1_if_kept, f1_if_lost}}}} (full prompt: rate 1)."""
    by: dict[tuple[str, str, float], list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        if r.get("task") in TASKS and r.get("failure") is None:
            by[(r["task"], r["method"], round(float(r["rate"]), 2))].append(r)
    out: dict[str, Any] = {}
    for (task, method, rate), rs in sorted(by.items()):
        s = np.asarray([r["survival"] for r in rs], dtype=float)
        f = np.asarray([r["f1"] for r in rs], dtype=float)
        kept, lost = s > 0, s == 0
        out.setdefault(task, {}).setdefault(method, {})[str(rate)] = {
            "n": int(s.size),
            "survival": float(s.mean()),
            "f1": float(f.mean()),
            "f1_if_kept": float(f[kept].mean()) if kept.any() else None,
            "f1_if_lost": float(f[lost].mean()) if lost.any() else None,
        }
    return out


def plot(res: dict[str, Any], png: Path, methods: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, task in zip(axes, TASKS, strict=True):
        for m in methods:
            pts = [(1 / float(r), v["f1_if_kept"]) for r, v in res[task].get(m, {}).items()
                   if float(r) < 1 and v["f1_if_kept"] is not None]
            if pts:
                xs, ys = zip(*sorted(pts), strict=True)
                ax.plot(xs, ys, marker="o", label=m)
        full = res[task].get("full", {}).get("1.0")
        if full:
            ax.axhline(full["f1_if_kept"], color="grey", ls="--", lw=1, label="full prompt")
        ax.set_title(f"{task}: reader F1 when the answer survived")
        ax.set_xlabel("compression (x)")
    axes[0].set_ylabel("F1 | answer kept")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(png), dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(ROOT / "reports" / "raw" / "quality_results.jsonl.gz"))
    ap.add_argument("--out", default=str(ROOT / "reports" / "reader_use.json"))
    a = ap.parse_args()
    from mooscomp._util import read_jsonl

    res = split_by_survival(read_jsonl(a.results, strict=True))
    methods = ["mooscomp", "truncate", "caps_digits", "llmlingua2_style", "random"]
    report = {"what": __doc__.split("\n\n")[0], "source": Path(a.results).relative_to(ROOT).as_posix()
              if Path(a.results).resolve().is_relative_to(ROOT) else a.results,
              "by_task": res, "command": "python benchmarks/reader_use.py"}
    out = Path(a.out)
    out.write_text(json.dumps(report, indent=1) + "\n")
    plot(res, out.with_suffix(".png"), methods)
    print(f"{'task':9s} {'method':18s} {'rate':>5s} {'surv':>6s} {'F1|kept':>8s} {'F1|lost':>8s} {'F1':>6s}")
    for task in TASKS:
        for m in ["full", *methods]:
            for rate, v in res[task].get(m, {}).items():
                if float(rate) in (0.5, 0.25, 1.0):
                    fk = "-" if v["f1_if_kept"] is None else f"{v['f1_if_kept']:.3f}"
                    fl = "-" if v["f1_if_lost"] is None else f"{v['f1_if_lost']:.3f}"
                    print(f"{task:9s} {m:18s} {float(rate):5.2f} {v['survival']:6.3f} {fk:>8s} {fl:>8s} {v['f1']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
