"""Downstream judgement of a trained model: dev answer survival at 4x without a question.

Token F1 measures agreement with the teacher; what a user needs is that the facts survive. The
dev items are SQuAD v2 / HotpotQA questions that the quality benchmark never reports: every
``sample_*(k, seed=0)`` id for k up to 2,000 is excluded, then items are drawn with another seed
(the same rule as ``benchmarks/outlier_ablation.py``). Survival = a normalised gold answer still
occurs in the compressed contexts (:func:`mooscomp.evaluation.metrics.answer_survival`); all of an
item's contexts share one budget, as the benchmark's ``mooscomp`` method compresses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    compressor: Any, items: Sequence[Any], *, rate: float = RATE_4X, config: Any = None
) -> dict[str, float]:
    """Mean answer survival per task (and ``"mean"`` over tasks) at ``rate``, no question.

    ``compressor`` is a :class:`mooscomp.Compressor` (staged API: one batched forward for all
    items, then one selection per item).
    """
    from mooscomp.config import Request
    from mooscomp.evaluation.metrics import answer_survival

    cfg = config if config is not None else compressor.config
    prepared = [[compressor.prepare(c, cfg) for c in it.contexts] for it in items]
    compressor.score([c for cl in prepared for c in cl], cfg)
    by_task: dict[str, list[float]] = {}
    for it, cl in zip(items, prepared, strict=True):
        text = compressor.select(cl, cfg, Request(rate=rate)).text
        by_task.setdefault(it.task, []).append(answer_survival(text, it.answers))
    res = {t: float(np.mean(v)) for t, v in sorted(by_task.items())}
    res["mean"] = float(np.mean(list(res.values()))) if res else 0.0
    return res
