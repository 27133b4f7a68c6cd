"""The budget step of question-aware compression (:mod:`mooscomp.question`): its analysis,
the fine stage of coarse-to-fine, and the result.

The coarse ranking (sentence cosines to the question) decides which sentences the budget can
reach: the most relevant ones within ``AllocationConfig.fine_cover`` budgets. Only those go
through the token classifier: in each encoder chunk the candidate sentences' tokens are joined
into one shorter chunk, so the forward shrinks with the budget (at 3x, half the text at the
default cover). The other words get :data:`UNSCORED` and no sentence bonus.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mooscomp.allocation import (
    AllocationConfig,
    ContextRelevance,
    candidate_sentences,
    relevance,
)
from mooscomp.config import CompressionConfig
from mooscomp.relevance import token_sentences
from mooscomp.result import CompressionResult, ContextScores
from mooscomp.stages import Prepared

# score of the words the fine stage did not score: below any scored word, so never chosen first
UNSCORED = -1000.0


@dataclass
class Analysis:
    """Everything the budget step needs of one prompt (no budget-dependent state).

    Attributes:
        question: the question (validated, non-empty).
        q_emb: (dim,) unit embedding of the question.
        contexts: per context, words + token scores + sentence relevance.
        costs: per context, (n_words,) output tokens of each word.
        forced: per context, (n_words,) bool force-token words.
        keep_prob / outlier_z: per context, (n_words,) word-level classifier outputs.
        origin_each: token count of every context.
        prepared: the contexts' stage-1 data (the fine forward of ``relevance="sentences"``).
        scored: whether ``contexts[i].score`` holds token scores (False: filled per budget).
    """

    question: str
    q_emb: np.ndarray
    contexts: list[ContextRelevance]
    costs: list[np.ndarray]
    forced: list[np.ndarray]
    keep_prob: list[np.ndarray]
    outlier_z: list[np.ndarray]
    origin_each: list[int]
    prepared: list[Prepared] = field(default_factory=list)
    scored: bool = True

    @property
    def origin(self) -> int:
        return int(sum(self.origin_each))


def candidates(a: Any, target: float, cfg: AllocationConfig) -> np.ndarray:
    """(n_sent_total,) bool: the coarse stage's candidates for ``target`` tokens."""
    rel, _ = relevance(a.contexts, a.q_emb, cfg)
    sent_cost = [
        np.bincount(c.word_sent, weights=wc, minlength=c.n_sent)
        for c, wc in zip(a.contexts, a.costs, strict=True)
    ]
    cost = np.concatenate(sent_cost) if sent_cost else np.zeros(0)
    return candidate_sentences(rel, cost, cfg.fine_cover * target)


def candidate_scores(
    comp: Any, a: Any, cand: np.ndarray, config: CompressionConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per context (n_tokens,) p and z from the compressor's forward over the candidates only
    (0 for the other tokens)."""
    chunks, where = [], []
    bounds = np.cumsum([0] + [c.n_sent for c in a.contexts])
    for ci, (c, pr) in enumerate(zip(a.contexts, a.prepared, strict=True)):
        tok_keep = cand[bounds[ci] : bounds[ci + 1]][token_sentences(pr.alignment, c.word_sent)]
        for s, e in pr.spans:
            idx = s + np.flatnonzero(tok_keep[s:e])  # this chunk's candidate tokens
            if idx.size:
                chunks.append(pr.alignment.input_ids[idx])
                where.append((ci, idx))
    p_tok = [np.zeros(pr.n_tokens, np.float32) for pr in a.prepared]
    z_tok = [np.zeros(pr.n_tokens, np.float32) for pr in a.prepared]
    for (ci, idx), (p, z) in zip(where, comp.score_chunks(chunks, config), strict=True):
        p_tok[ci][idx], z_tok[ci][idx] = p, z
    return p_tok, z_tok


def fine_stage(
    qc: Any, a: Any, target: float, cfg: AllocationConfig, config: CompressionConfig
) -> tuple[Any, np.ndarray]:
    """``a`` with word scores for the candidates of ``target`` (the rest :data:`UNSCORED`) and
    the (n_sent_total,) candidate mask."""
    cand = candidates(a, target, cfg)
    p_tok, z_tok = qc.candidate_scores(a, cand, config)
    bounds = np.cumsum([0] + [c.n_sent for c in a.contexts])
    contexts, kp, oz = [], [], []
    for ci, (c, pr) in enumerate(zip(a.contexts, a.prepared, strict=True)):
        p, z, fused = qc._word_scores(pr, p_tok[ci], z_tok[ci], config)
        fused[~cand[bounds[ci] : bounds[ci + 1]][c.word_sent]] = UNSCORED
        contexts.append(dataclasses.replace(c, score=fused.astype(np.float64)))
        kp.append(p)
        oz.append(z)
    return dataclasses.replace(a, contexts=contexts, keep_prob=kp, outlier_z=oz, scored=True), cand


def build_result(
    a: Analysis,
    keeps: list[np.ndarray],
    scores: list[np.ndarray],
    order: list[int],
    count: Any,
    *,
    keep_newlines: bool,
) -> CompressionResult:
    """A :class:`CompressionResult` with the contexts in ``order``."""
    from mooscomp.selection import join_kept

    texts = [
        c.words.text if k.all() else join_kept(c.words, k, keep_newlines=keep_newlines)
        for c, k in zip(a.contexts, keeps, strict=True)
    ]
    texts = [texts[i] for i in order]
    compressed = sum(count(t) for t in texts)
    origin = a.origin
    details = tuple(
        ContextScores(
            a.contexts[i].words,
            keeps[i],
            a.keep_prob[i],
            a.outlier_z[i],
            scores[i].astype(np.float32),
            a.forced[i],
        )
        for i in order
    )
    return CompressionResult(
        text="\n\n".join(t for t in texts if t),
        contexts=tuple(texts),
        context_kept=tuple(True for _ in texts),
        origin_tokens=origin,
        compressed_tokens=int(compressed),
        rate=compressed / origin if origin else 1.0,
        ratio=origin / compressed if compressed else (1.0 if origin == 0 else float("inf")),
        details=details,
    )
