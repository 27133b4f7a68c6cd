"""Answer survival without a question on the TEST items, every CPU method side by side, with paired
bootstrap CIs and a breakdown by answer type → reports/survival_test.json (+ PNG).

Items: the quality benchmark's own SQuAD v2 / HotpotQA samples (``sample_*(n, seed=0)``), which no
model choice, beta, fusion setting or student ever saw (those used ``training.downstream``'s dev
items, disjoint by construction). Survival = a normalised gold answer is still a whole-token run of
the compressed text (the reader-free half of the reader benchmark; the reader half needs the GPU).
Methods: the shipped default model, optional extra models (``--model NAME=DIR``), caps_digits,
truncate, random. Per rate and task: survival with a 95% CI, and the paired difference of every
model row against caps_digits and truncate (bootstrap over items). Per answer type (number /
capitalised / lower-case, from the first gold answer) at 4x: how much of the gap is which kind.

    .venv/bin/python benchmarks/survival_test.py --n 200 \\
        --model student=benchmarks/models/student_l135
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RATES = {"2x": 0.5, "3x": 0.33, "4x": 0.25, "5x": 0.2}
BASELINES = ("caps_digits", "truncate")


def answer_kind(answer: str) -> str:
    if re.search(r"\d", answer):
        return "number"
    return "capitalised" if any(w[:1].isupper() for w in answer.split()) else "lower_case"


def paired_ci(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Mean of a - b and its 95% percentile-bootstrap interval (items resampled jointly)."""
    from mooscomp.evaluation.metrics import bootstrap_ci

    return [float((a - b).mean()), *bootstrap_ci(a - b, n_resamples=2000, seed=0)]


def build(models: dict[str, str]) -> list[Any]:
    from mooscomp import Compressor
    from mooscomp.evaluation.methods.caps_digits import CapsDigits
    from mooscomp.evaluation.methods.mooscomp import MooscompMethod
    from mooscomp.evaluation.methods.simple import RandomDrop, Truncate

    out: list[Any] = []
    for name, path in models.items():
        comp = Compressor.from_pretrained(None if path == "default" else path)
        out.append(MooscompMethod(comp, {name: comp.config}))
    return out + [CapsDigits(), Truncate(), RandomDrop(seed=0)]


def survival_table(items: list[Any], methods: list[Any]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """{method: (n_rates, n_items) survival} and seconds per method."""
    from mooscomp.evaluation.metrics import answer_survival

    rates = list(RATES.values())
    table: dict[str, np.ndarray] = {}
    secs: dict[str, float] = {}
    for m in methods:
        t0 = time.perf_counter()
        texts = m.compress_many(items, rates)
        for name, per_rate in texts.items():
            table[name] = np.array([[answer_survival(t, it.answers) for t, it in zip(row, items, strict=True)]
                                    for row in per_rate])
            secs[name] = round(time.perf_counter() - t0, 1)
    return table, secs


def summarize(items: list[Any], table: dict[str, np.ndarray], models: list[str]) -> dict[str, Any]:
    from mooscomp.evaluation.metrics import bootstrap_ci

    tasks = sorted({it.task for it in items})
    kinds = np.array([answer_kind(it.answers[0]) for it in items])
    summary: dict[str, Any] = {}
    for task in tasks:
        sel = np.array([it.task == task for it in items])
        per: dict[str, Any] = {}
        for ri, rate in enumerate(RATES):
            row: dict[str, Any] = {}
            for name, s in table.items():
                lo, hi = bootstrap_ci(s[ri, sel], n_resamples=2000, seed=0)
                row[name] = {"survival": float(s[ri, sel].mean()), "ci95": [float(lo), float(hi)]}
            for mname in models:
                for base in BASELINES:
                    row[mname][f"minus_{base}"] = paired_ci(table[mname][ri, sel], table[base][ri, sel])
            per[rate] = row
        ri4 = list(RATES).index("4x")
        per["by_answer_type_4x"] = {
            k: {"share": float((kinds[sel] == k).mean()),
                **{name: float(s[ri4, sel & (kinds == k)].mean()) for name, s in table.items()}}
            for k in ("number", "capitalised", "lower_case") if (sel & (kinds == k)).any()}
        summary[task] = per
    return summary


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(6 * len(summary), 4), squeeze=False)
    for ax, (task, per) in zip(axes[0], summary.items(), strict=True):
        for name in per["4x"]:
            ys = [per[r][name]["survival"] for r in RATES]
            ax.plot(list(RATES), ys, marker="o", label=name)
        ax.set_title(f"{task} (test items, no question)")
        ax.set_xlabel("compression")
        ax.set_ylabel("answer survival")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="items per task (the quality benchmark's seed-0 sample)")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                    help="extra model rows besides the shipped default ('mooscomp')")
    ap.add_argument("--out", default=str(ROOT / "reports" / "survival_test.json"))
    a = ap.parse_args(argv)
    from mooscomp.evaluation.tasks import sample_hotpotqa, sample_squad

    models = {"mooscomp": "default", **dict(m.split("=", 1) for m in a.model)}
    items = sample_squad(a.n, seed=0) + sample_hotpotqa(a.n, seed=0)
    t0 = time.perf_counter()
    table, secs = survival_table(items, build(models))
    summary = summarize(items, table, list(models))
    out = Path(a.out)
    report = {"benchmark": "survival_test", "what": __doc__.split("\n\n")[0], "rates": RATES,
              "items": {t: sum(it.task == t for it in items) for t in ("squad", "hotpotqa")},
              "models": models, "seconds": secs, "summary": summary,
              "eval_seconds": round(time.perf_counter() - t0, 1),
              "command": "python benchmarks/survival_test.py " + " ".join(argv or sys.argv[1:])}
    out.write_text(json.dumps(report, indent=1) + "\n")
    plot(summary, out.with_suffix(".png"))
    for task, per in summary.items():
        print(f"{task}: " + "  ".join(f"{n} " + "/".join(f"{per[r][n]['survival']:.3f}" for r in RATES)
                                      for n in per["4x"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
