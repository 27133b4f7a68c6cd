"""Downstream judgement of a trained model: dev answer survival at 4x without a question.

Token F1 measures agreement with the teacher; what a user needs is that the facts survive. The
dev items are SQuAD v2 / HotpotQA questions that the quality benchmark never reports: every
``sample_*(k, seed=0)`` id for k up to 2,000 is excluded, then items are drawn with another seed
(the same rule as ``benchmarks/outlier_ablation.py``). Survival = a normalised gold answer still
occurs in the compressed contexts (:func:`mooscomp.evaluation.metrics.answer_survival`); all of an
item's contexts share one budget, as the benchmark's ``mooscomp`` method compresses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

DEV_SEED = 7
RATE_4X = 0.25
_EXCLUDE_SIZES = (*range(50, 1001, 50), 1500, 2000)


def dev_qa_items(n: int, *, tasks: Sequence[str] = ("squad", "hotpotqa"), seed: int = DEV_SEED) -> list[Any]:
    """``n`` dev items per task, disjoint from every seed-0 evaluation sample up to 2,000 items."""
    from mooscomp.evaluation.tasks import sample_hotpotqa, sample_squad

    samplers: dict[str, Callable[..., list[Any]]] = {"squad": sample_squad, "hotpotqa": sample_hotpotqa}
    out: list[Any] = []
    for task in tasks:
        if task not in samplers:
            raise ValueError(f"dev tasks must be among {sorted(samplers)}, got {task!r}")
        sample = samplers[task]
        excluded: set[str] = set()
        for k in _EXCLUDE_SIZES:
            excluded |= {it.item_id for it in sample(k, seed=0)}
        pool = [it for it in sample(n + len(excluded), seed=seed) if it.item_id not in excluded]
        out += pool[:n]
    return out


def survival_at(
    compressor: Any, items: Sequence[Any], *, rate: float = RATE_4X, config: Any = None, workers: int = 1
) -> dict[str, float]:
    """Mean answer survival per task (and ``"mean"`` over tasks) at ``rate``, no question."""
    cfg = config if config is not None else compressor.config
    return survival_grid(compressor, items, {"c": cfg}, (rate,), workers=workers)["c"][str(rate)]


def survival_grid(
    compressor: Any, items: Sequence[Any], configs: Mapping[str, Any], rates: Sequence[float], *,
    workers: int = 1, timeout: float = 900.0,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{config name: {rate: {task: survival, "mean": ...}}}`` from one batched forward.

    ``compressor`` is a :class:`mooscomp.Compressor` (staged API); the selections (CPU work) run
    in ``workers`` forked processes when > 1 (POSIX only; the children never touch the model;
    ``timeout`` seconds bound a pool that hangs, raising ``multiprocessing.TimeoutError``).
    """
    first = next(iter(configs.values()))
    prepared = [[compressor.prepare(c, first) for c in it.contexts] for it in items]
    compressor.score([c for cl in prepared for c in cl], first)
    jobs = [(name, float(r), k) for name in configs for r in rates for k in range(len(items))]
    _STATE.update(comp=compressor, prepared=prepared, items=list(items), configs=dict(configs))
    try:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(workers) as pool:
                vals = pool.map_async(_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))).get(timeout)
        else:
            vals = [_one(j) for j in jobs]
    finally:
        _STATE.clear()
    acc: dict[str, dict[str, dict[str, list[float]]]] = {}
    for (name, r, k), v in zip(jobs, vals, strict=True):
        acc.setdefault(name, {}).setdefault(str(r), {}).setdefault(items[k].task, []).append(v)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, by_rate in acc.items():
        for rate_key, by_task in by_rate.items():
            res = {t: float(np.mean(v)) for t, v in sorted(by_task.items())}
            res["mean"] = float(np.mean(list(res.values())))
            out.setdefault(name, {})[rate_key] = res
    return out


_STATE: dict[str, Any] = {}


def _one(job: tuple[str, float, int]) -> float:
    from mooscomp.config import Request
    from mooscomp.evaluation.metrics import answer_survival

    name, rate, k = job
    comp, cfg = _STATE["comp"], _STATE["configs"][name]
    text = comp.select(_STATE["prepared"][k], cfg, Request(rate=rate)).text
    return answer_survival(text, _STATE["items"][k].answers)
