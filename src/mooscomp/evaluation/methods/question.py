"""Question-aware methods from one analysis pass per item (:mod:`mooscomp.question`).

Names: ``mooscomp_question`` (coarse-to-fine: sentence relevance from the shared-layer forward
blended with token scores, exact global budget; :mod:`mooscomp.allocation`),
``mooscomp_question_relevance`` (the same selection, contexts ordered best first:
``AllocationConfig(order="relevance")``) and
``sentence_rank`` (the ablation: sentences embedded on their own with all-MiniLM-L6-v2, mean
pooling, ranked by cosine to the question and kept whole while they fit; no token pruning).
An item without a question falls back to the task-agnostic compressor (``mooscomp_question``)
or to keeping sentences in their original order (``sentence_rank``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from mooscomp.evaluation.methods.base import BuildContext
from mooscomp.evaluation.tasks import EvalItem


def sentence_rank_text(analysis: Any, sent_emb: Sequence[np.ndarray], target: float, count: Any) -> str:
    """Whole sentences by cosine to the question (best first) while they fit in ``target``
    tokens; output in the original order, contexts joined by a blank line.

    ``sent_emb``: per context (n_sent, dim) unit sentence embeddings.
    """
    from mooscomp.selection import join_kept

    rows = []  # (relevance, context, sentence, cost)
    for ci, (c, cost, emb) in enumerate(zip(analysis.contexts, analysis.costs, sent_emb, strict=True)):
        sc = np.bincount(c.word_sent, weights=cost, minlength=c.n_sent)
        rel = emb @ analysis.q_emb if emb.size else np.zeros(c.n_sent)
        rows += [(float(rel[j]), ci, j, float(sc[j])) for j in range(c.n_sent)]
    rows.sort(key=lambda r: -r[0])
    used, keep = 0.0, set()
    for _, ci, j, cost in rows:
        if used + cost <= target:
            keep.add((ci, j))
            used += cost
    texts = []
    for ci, c in enumerate(analysis.contexts):
        m = np.fromiter(((ci, int(s)) in keep for s in c.word_sent), bool, len(c.words))
        t = join_kept(c.words, m, keep_newlines=False)
        if t:
            texts.append(t)
    return "\n\n".join(texts)


NAMES = ("mooscomp_question", "mooscomp_question_relevance", "sentence_rank")


class QuestionMethod:
    """``mooscomp_question`` (+ ``_relevance``) and/or ``sentence_rank`` over a :class:`QuestionCompressor`.

    ``allocations``: name -> :class:`mooscomp.allocation.AllocationConfig` of the coarse-to-fine
    variants (default: the registered names over the compressor's allocation); every variant
    selects from the same analysis (one forward and relevance pass per item).
    """

    def __init__(self, qc: Any, names: Sequence[str], *, allocations: Mapping[str, Any] | None = None) -> None:
        allocs = dict(allocations) if allocations is not None else {
            "mooscomp_question": qc.allocation,
            "mooscomp_question_relevance": replace(qc.allocation, order="relevance")}
        known = (*allocs, "sentence_rank")
        bad = set(names) - set(known)
        if bad or not names:
            raise ValueError(f"names must be from {' / '.join(known)}, got {list(names)}")
        self.qc = qc
        self.names = tuple(names)
        self.allocations = {n: allocs[n] for n in self.names if n in allocs}

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        from mooscomp.relevance import sentence_texts

        out: dict[str, list[list[str]]] = {n: [[] for _ in rates] for n in self.names}
        count = self.qc.comp.count
        for it in items:
            if not (it.question or "").strip():
                for ri, r in enumerate(rates):
                    text = self.qc.comp.compress(list(it.contexts), rate=float(r)).text
                    for n in self.names:
                        out[n][ri].append(text)
                continue
            a = self.qc.analyse(list(it.contexts), it.question)
            emb = ([self.qc.encoder.embed(sentence_texts(c.words, c.word_sent)) for c in a.contexts]
                   if "sentence_rank" in self.names else [])
            for ri, r in enumerate(rates):
                target = float(r) * a.origin
                for n, alloc in self.allocations.items():
                    out[n][ri].append(self.qc.select(a, target, allocation=alloc).text)
                if "sentence_rank" in self.names:
                    out["sentence_rank"][ri].append(sentence_rank_text(a, emb, target, count))
        return out


def build(ctx: BuildContext) -> QuestionMethod | None:
    """Both names from ``MethodOptions.mooscomp_model`` (the shipped model's allocator defaults)."""
    path = ctx.options.mooscomp_model
    if not path:
        return None
    from mooscomp import Compressor
    from mooscomp.question import QuestionCompressor

    key = f"compressor:{path}"
    if key not in ctx.cache:
        ctx.cache[key] = Compressor.from_pretrained(
            None if path == "default" else path, device=ctx.options.compress_device
        )
    qc = QuestionCompressor(ctx.cache[key])
    names = [n for n in NAMES if n in ctx.wanted]
    ctx.notes["mooscomp_question"] = {"model": path, "allocation": asdict(qc.allocation),
                                      "relevance": qc.relevance, "forward": type(qc.forward).__name__}
    return QuestionMethod(qc, names or ["mooscomp_question"])
