"""The fusion step of ``train_job.py``: outlier fusion (variant, alpha, g) of the chosen model on
the dev split, beside the previous default model and the ``caps_digits`` rule on the same items.
Selections run in forked worker processes (the device has 16 cores); no reader LLM."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

FUSION_RATES = (0.5, 0.33, 0.25, 0.2)


def old_model_compressor(old_dir: Path, encoder: str, work: Path) -> Any:
    """The previous default (a delta over the pip MiniLM) loaded over the training encoder copy."""
    from mooscomp import Compressor
    from mooscomp._util import sha256_file
    from mooscomp.compressor import _defaults_of
    from mooscomp.modeling import load_model

    dest = work / "old_model"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(old_dir, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["base"] = {"path": encoder, "sha256": sha256_file(Path(encoder) / "model.safetensors")}
    (dest / "config.json").write_text(json.dumps(cfg))
    model, tok, cfg, _ = load_model(dest, device="cuda" if _cuda() else "cpu")
    return Compressor(model, tok, config=_defaults_of(cfg))


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


_KEYS = ("outlier_variant", "outlier_alpha", "outlier_transform", "units", "unit_pool",
         "force_reserve_digit")


def _rows(comp: Any, dev_items: list, configs: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    from mooscomp.training.downstream import survival_grid

    grid = survival_grid(comp, dev_items, configs, FUSION_RATES, workers=workers)
    return [{**{k: (list(getattr(c, k)) if k == "units" else getattr(c, k)) for k in _KEYS},
             "survival": grid[n], "mean": statistics.fmean(v["mean"] for v in grid[n].values())}
            for n, c in configs.items()]


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest mean survival; ties: the smaller alpha, then the earlier (simpler) row."""
    return max(rows, key=lambda r: (round(r["mean"], 6), -r["outlier_alpha"]))


def _caps_digits(dev_items: list) -> dict[str, Any]:
    from mooscomp.evaluation.methods.caps_digits import CapsDigits
    from mooscomp.evaluation.metrics import answer_survival

    texts = CapsDigits().compress_many(dev_items, FUSION_RATES)["caps_digits"]
    caps: dict[str, Any] = {}
    for r, ts in zip(FUSION_RATES, texts, strict=True):
        by: dict[str, list[float]] = {}
        for t, it in zip(ts, dev_items, strict=True):
            by.setdefault(it.task, []).append(answer_survival(t, it.answers))
        caps[str(r)] = {k: statistics.fmean(v) for k, v in sorted(by.items())}
        caps[str(r)]["mean"] = statistics.fmean(caps[str(r)].values())
    return caps


def fusion_grid(comp: Any, dev_items: list, args: argparse.Namespace, *, encoder: str,
                log: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stage 1: outlier fusion (variant, alpha, g) with the library's unit rules; stage 2 at that
    fusion: unit rules, unit pooling and digit reservation (all recorded model defaults). The
    same items for the previous default model and caps_digits. Returns (chosen, report)."""
    from mooscomp.training.downstream import survival_grid

    t0 = time.perf_counter()
    base = comp.config
    stage1 = {"a0": base.replace(outlier_alpha=0.0)}
    for a in (0.05, 0.1, 0.2, 0.5):
        for g in ("relu", "identity", "sigmoid"):
            stage1[f"a{a:g}_{g}"] = base.replace(outlier_alpha=a, outlier_transform=g)
    rows1 = _rows(comp, dev_items, stage1, args.workers)
    b1 = _best(rows1)
    fused = base.replace(outlier_alpha=b1["outlier_alpha"], outlier_transform=b1["outlier_transform"])
    stage2 = {}
    for units in (base.units, ("attached", "capitalised"), ("attached",), ()):
        for pool in ("mean", "max"):
            for digit in (False, True):
                stage2[f"{'+'.join(units) or 'none'}_{pool}_{digit}"] = fused.replace(
                    units=units, unit_pool=pool, force_reserve_digit=digit)
    rows2 = _rows(comp, dev_items, stage2, args.workers)
    best = _best(rows2)
    chosen = {k: best[k] for k in _KEYS}
    compare: dict[str, Any] = {"model": best["survival"]}
    if args.old_model and Path(args.old_model).is_dir():
        old = old_model_compressor(Path(args.old_model), encoder, Path(args.work))
        compare["old_model"] = survival_grid(old, dev_items, {"d": old.config}, FUSION_RATES,
                                             workers=args.workers)["d"]
    compare["caps_digits"] = _caps_digits(dev_items)  # last: in this process, after every fork
    log(f"fusion chosen {chosen}; survival@4x " + ", ".join(
        f"{k} {v['0.25']['mean']:.3f}" for k, v in compare.items()) + f" ({time.perf_counter() - t0:.0f}s)")
    report = {"summary": {"chosen": chosen, "chosen_survival": best["survival"],
                          "alpha0_survival": rows1[0]["survival"],
                          "survival_4x": {k: v["0.25"] for k, v in compare.items()},
                          "compare_by_rate": compare,
                          "criterion": "mean answer survival over rates 0.5/0.33/0.25/0.2 and tasks, "
                                       "no question; stage 1 fusion, stage 2 units at that fusion",
                          "dev_set": f"{len(dev_items)} SQuAD v2 + HotpotQA dev items "
                                     "(mooscomp.training.downstream.dev_qa_items)",
                          "note": "measured in the GPU job: both models run over the job's encoder copy "
                                  "(word embeddings int8 per row, other base weights fp16)"},
              "rows": rows1 + rows2}
    return chosen, report
