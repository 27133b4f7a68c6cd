"""Unit rules without a question: the default rules against the opt-in ``phrase`` rule, on dev.

A multi-word answer survives only if all its words are kept, so a unit rule that keeps phrase-like
runs of content words whole ("steam engine indicator", "shipping toxic waste") may raise answer
survival at the same budget. Measured on **dev** SQuAD v2 / HotpotQA items that no evaluation
reports (:func:`mooscomp.training.downstream.dev_qa_items`), the shipped default model, one forward
per item, each rule set re-running only the selection: the defaults against the defaults +
``phrase`` (the rule never joins a number or crosses a line break).

    .venv/bin/python benchmarks/unit_ablation.py [--n 400] [--workers 2]

Writes reports/unit_ablation.json + PNG and prints a table. No reader: the default is changed only
together with a reader-F1 run (reports/quality.json), which this benchmark does not replace.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RATES = (0.5, 0.33, 0.25, 0.2)


def plot(report: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, task in zip(axes, ("squad", "hotpotqa"), strict=True):
        for name, by_rate in report["survival"].items():
            xs = [1 / float(r) for r in by_rate]
            ax.plot(xs, [by_rate[r][task] for r in by_rate], marker="o", label=name)
        ax.set_title(f"{task} (dev, no question)")
        ax.set_xlabel("compression (x)")
    axes[0].set_ylabel("answer survival")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(png), dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="dev items per task")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "reports" / "unit_ablation.json"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    from mooscomp import Compressor
    from mooscomp.config import UNIT_RULES
    from mooscomp.training.downstream import dev_qa_items, survival_grid

    t0 = time.perf_counter()
    comp = Compressor.from_pretrained()
    cfg = comp.config
    configs = {"default units": cfg, "+ phrase": cfg.replace(units=(*UNIT_RULES, "phrase"))}
    items = dev_qa_items(a.n)
    res = survival_grid(comp, items, configs, RATES, workers=a.workers)
    report = {
        "what": __doc__.split("\n\n")[0],
        "model": "the shipped default (src/mooscomp/models/default)",
        "items": {"squad": a.n, "hotpotqa": a.n, "split": "dev (training.downstream.dev_qa_items)"},
        "rates": list(RATES),
        "survival": res,
        "delta_phrase": {r: {t: res["+ phrase"][r][t] - res["default units"][r][t] for t in res["+ phrase"][r]}
                         for r in res["+ phrase"]},
        "seconds": round(time.perf_counter() - t0, 1),
        "command": f"python benchmarks/unit_ablation.py --n {a.n} --workers {a.workers}",
    }
    out = Path(a.out)
    out.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, out.with_suffix(".png"))
    print(f"{'units':16s} " + " ".join(f"{t[:6]}@{1 / r:.0f}x" for r in RATES for t in ("squad", "hotpotqa")))
    for name, by_rate in res.items():
        print(f"{name:16s} " + " ".join(f"{by_rate[str(r)][t]:9.3f}" for r in RATES for t in ("squad", "hotpotqa")))
    print("mean delta (phrase - default):", round(float(np.mean([v for d in report["delta_phrase"].values()
                                                                   for k, v in d.items() if k != "mean"])), 4))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
