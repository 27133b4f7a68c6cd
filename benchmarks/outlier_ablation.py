"""Choose a model's outlier fusion (variant, alpha, g) on a dev split, and compare it at 4x.

The MOOSComp paper does not publish its outlier formula or weight, so the defaults are chosen
here by measurement on **dev** SQuAD v2 / HotpotQA questions that the quality benchmark never
samples (:func:`mooscomp.training.downstream.dev_qa_items`: every seed-0 evaluation sample up to
2,000 items is excluded). Criterion: answer survival without a question (is a gold answer still
in the compressed contexts?), mean over rates 0.5 / 0.33 / 0.25 / 0.2 and both tasks; no reader
LLM, so it runs on the CPU. One forward per item; each configuration re-runs only the selection.
Also reported at 4x: the same items for a baseline model (``--baseline``, e.g. the previous
default) with its own recorded defaults, and the ``caps_digits`` rule.

Usage: .venv/bin/python benchmarks/outlier_ablation.py --model DIR [--baseline DIR]
       [--items .carry/h5/dev_items.jsonl.gz] [--n 200] [--write-defaults]
Writes reports/outlier_ablation.json; ``summary.chosen`` is what ``--write-defaults`` records in
the model's config.json ``defaults``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
RATES = (0.5, 0.33, 0.25, 0.2)
ALPHAS = (0.05, 0.1, 0.2, 0.35, 0.5)


def _survival(texts: list[str], items: list[Any]) -> dict[str, float]:
    from mooscomp.evaluation.metrics import answer_survival

    by: dict[str, list[float]] = {}
    for t, it in zip(texts, items, strict=True):
        by.setdefault(it.task, []).append(answer_survival(t, it.answers))
    out = {k: float(np.mean(v)) for k, v in sorted(by.items())}
    out["mean"] = float(np.mean(list(out.values())))
    return out


def scored(comp: Any, items: list[Any]) -> list[list[Any]]:
    """Each item's contexts prepared and scored once (one batched forward)."""
    prepared = [[comp.prepare(c) for c in it.contexts] for it in items]
    comp.score([c for cl in prepared for c in cl])
    return prepared


def grid_rows(comp: Any, prepared: list, items: list[Any]) -> list[dict[str, Any]]:
    """Survival per (variant, alpha, g) and rate; alpha 0 (model scores alone) first."""
    from mooscomp.config import Request

    specs = [{"outlier_variant": "hidden", "outlier_alpha": 0.0, "outlier_transform": "relu"}]
    variants = ("hidden", "rarity") if comp.log_freq is not None else ("hidden",)
    for v, a, g in itertools.product(variants, ALPHAS, ("relu", "identity")):
        specs.append({"outlier_variant": v, "outlier_alpha": a, "outlier_transform": g})
    rows = []
    for spec in specs:
        cfg = comp.config.replace(**spec)
        surv = {str(r): _survival([comp.select(cl, cfg, Request(rate=r)).text for cl in prepared], items)
                for r in RATES}
        row = {**spec, "survival": surv, "mean": float(np.mean([s["mean"] for s in surv.values()]))}
        rows.append(row)
        print(f"{spec['outlier_variant']:7} a={spec['outlier_alpha']:<5} g={spec['outlier_transform']:8} "
              + " ".join(f"{surv[str(r)]['mean']:.3f}" for r in RATES) + f"  mean {row['mean']:.3f}",
              flush=True)
    return rows


def at_rates(comp: Any, prepared: list, items: list[Any]) -> dict[str, dict[str, float]]:
    from mooscomp.config import Request

    return {str(r): _survival([comp.select(cl, comp.config, Request(rate=r)).text for cl in prepared], items)
            for r in RATES}


def caps_digits(items: list[Any]) -> dict[str, dict[str, float]]:
    from mooscomp.evaluation.methods.caps_digits import CapsDigits

    texts = CapsDigits().compress_many(items, RATES)["caps_digits"]
    return {str(r): _survival(t, items) for r, t in zip(RATES, texts, strict=True)}


def write_defaults(model_dir: Path, chosen: dict[str, Any]) -> None:
    """Record the chosen fusion in the model's config.json (weights untouched)."""
    p = model_dir / "config.json"
    cfg = json.loads(p.read_text())
    cfg["defaults"] = {**(cfg.get("defaults") or {}), **chosen}
    p.write_text(json.dumps(cfg, indent=2, sort_keys=True))


def plot(report: dict[str, Any], png: str | Path) -> None:
    """Survival vs alpha per g (stage 1) and the 4x..2x comparison with the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    units = report["summary"]["chosen"].get("units", report["summary"].get("units"))  # older reports: in chosen
    rows = [r for r in report["rows"] if r.get("units", units) == units
            and r.get("unit_pool", "mean") == "mean" and not r.get("force_reserve_digit")]
    for g in ("relu", "identity", "sigmoid"):
        pts = sorted({(r["outlier_alpha"], r["mean"]) for r in rows
                      if r["outlier_transform"] == g or r["outlier_alpha"] == 0.0})
        if len(pts) > 1:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"g = {g}")
    ax.set_xlabel("outlier alpha (variant hidden)")
    ax.set_ylabel("answer survival, mean over rates and tasks")
    ax.set_title("Outlier fusion on the dev split")
    ax.legend()
    comp = report["summary"]["compare_by_rate"]
    for name, by_rate in comp.items():
        rates = sorted(by_rate, key=float, reverse=True)
        bx.plot([1 / float(r) for r in rates], [by_rate[r]["mean"] for r in rates], marker="o", label=name)
    bx.set_xlabel("compression (x), no question")
    bx.set_ylabel("answer survival (SQuAD + HotpotQA dev)")
    bx.set_title("Chosen model vs previous default vs caps_digits")
    bx.legend()
    fig.tight_layout()
    fig.savefig(str(png), dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", metavar="JSON", help="only draw the PNG of an existing report")
    ap.add_argument("--model", default=None, help="model dir (default: shipped)")
    ap.add_argument("--baseline", default=None, help="a second model dir measured with its own defaults")
    ap.add_argument("--items", default=None, help="EvalItem JSONL (default: dev_qa_items(--n))")
    ap.add_argument("--n", type=int, default=200, help="items per task")
    ap.add_argument("--write-defaults", action="store_true", help="store summary.chosen in --model")
    ap.add_argument("--out", default=str(REPORTS / "outlier_ablation.json"))
    args = ap.parse_args(argv)
    if args.plot:
        plot(json.loads(Path(args.plot).read_text()), Path(args.plot).with_suffix(".png"))
        return 0
    torch.set_num_threads(2)
    from mooscomp import Compressor
    from mooscomp.evaluation.items import load_items
    from mooscomp.training.downstream import dev_qa_items

    items = load_items(args.items) if args.items else dev_qa_items(args.n)
    items = [it for t in ("squad", "hotpotqa") for it in items if it.task == t][: 2 * args.n]
    comp = Compressor.from_pretrained(args.model)
    t0 = time.perf_counter()
    prepared = scored(comp, items)
    t_score = time.perf_counter() - t0
    rows = grid_rows(comp, prepared, items)
    best = max(rows, key=lambda r: (round(r["mean"], 6), -r["outlier_alpha"]))
    chosen = {k: best[k] for k in ("outlier_variant", "outlier_alpha", "outlier_transform")}
    comp_chosen = Compressor(comp.model, comp.tokenizer, config=comp.config.replace(**chosen),
                             log_freq=comp.log_freq, model_config=comp.model_config, scorer=comp.scorer)
    compare = {"model": at_rates(comp_chosen, prepared, items), "caps_digits": caps_digits(items)}
    if args.baseline:
        base = Compressor.from_pretrained(args.baseline)
        compare["baseline"] = at_rates(base, scored(base, items), items)
    summary = {
        "chosen": chosen,
        "chosen_survival": best["survival"],
        "alpha0_survival": rows[0]["survival"],
        "survival_4x": {k: v["0.25"] for k, v in compare.items()},
        "compare_by_rate": compare,
        "dev_set": f"{sum(it.task == 'squad' for it in items)} SQuAD v2 + "
                   f"{sum(it.task == 'hotpotqa' for it in items)} HotpotQA dev items "
                   "(mooscomp.training.downstream.dev_qa_items: disjoint from every seed-0 evaluation sample)",
        "criterion": "mean answer survival over rates 0.5/0.33/0.25/0.2 and tasks, no question",
        "model": str(args.model or "shipped default"), "baseline": args.baseline,
        "units": list(comp.config.units), "scoring_seconds": round(t_score, 1),
        "command": "python benchmarks/outlier_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps({k: summary[k] for k in ("chosen", "survival_4x")}, indent=1))
    if args.write_defaults and args.model:
        write_defaults(Path(args.model), chosen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
