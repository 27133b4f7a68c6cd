"""The inference path as three public stages: ``prepare`` -> ``score`` -> ``select``.

    text --prepare--> Prepared (words, sub-token alignment, chunk spans)
         --score----> Prepared with per-token (p, z) from one batched forward over many texts
         --select---> CompressionResult (word scores, outlier fusion, units, budget, text)

:class:`mooscomp.Compressor` runs the three in a row; engines that split the work (the GPU
pipeline prepares and selects in worker processes and scores in the parent) and evaluations that
score once and select at many rates call them directly, through the compressor's bound methods
(:meth:`Compressor.prepare`, :meth:`Compressor.score`, :meth:`Compressor.select`) or the functions
here. Call options travel as one validated :class:`mooscomp.config.Request`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mooscomp import selection as sel
from mooscomp.alignment import Alignment, Words, align, chunk_spans, segment_words
from mooscomp.config import CompressionConfig, Request
from mooscomp.counting import TokenCounter, context_costs
from mooscomp.outliers import word_scores
from mooscomp.result import CompressionResult, ContextScores, assemble
from mooscomp.scoring import score_chunks as _score_chunks
from mooscomp.word_shape import ShapeTerm

__all__ = [
    "Prepared", "as_contexts", "prepare", "score", "score_chunks", "select", "set_token_scores",
    "special_ids",
]


@dataclass
class Prepared:
    """One context after ``prepare``; ``score`` fills ``p_tok``/``z_tok``.

    Attributes:
        words: the context's words.
        alignment: sub-tokens of the words (``input_ids``, ``token_word``).
        spans: (start, end) token ranges of the encoder chunks.
        p_tok: (n_tokens,) float32 keep-probabilities, None before scoring.
        z_tok: (n_tokens,) float32 hidden-deviation Z-scores, None before scoring.
        states: (n_tokens, dim) float32 base-encoder states for question relevance; filled only
            by the question path's shared forward (:func:`mooscomp.question.score_prepared`).
    """

    words: Words
    alignment: Alignment
    spans: list[tuple[int, int]]
    p_tok: np.ndarray | None = None
    z_tok: np.ndarray | None = None
    states: np.ndarray | None = None

    def chunks(self) -> list[np.ndarray]:
        """Token ids (no specials) of each chunk, in order."""
        return [self.alignment.input_ids[s:e] for s, e in self.spans]

    @property
    def n_tokens(self) -> int:
        return len(self.alignment)


_SURROGATE = re.compile("[\ud800-\udfff]")


def as_contexts(x: Any, max_chars: int) -> list[str]:
    """A prompt (a str or a list of str) as a list of contexts, size-checked.

    Lone surrogates cannot be encoded or tokenised: each becomes U+FFFD (not "?", which would
    invent a question mark that ends sentences and changes the text).
    """
    ctxs = [x] if isinstance(x, str) else x
    if not isinstance(ctxs, (list, tuple)):
        raise TypeError(f"a prompt must be a str or a list of str, got {type(x).__name__}")
    total = 0
    for c in ctxs:
        if not isinstance(c, str):
            raise TypeError(f"contexts must be strings, got {type(c).__name__}")
        total += len(c)
    if total > max_chars:
        raise ValueError(
            f"input has {total} characters, over max_input_chars={max_chars}; "
            "raise CompressionConfig.max_input_chars or split the input"
        )
    return [_SURROGATE.sub("\ufffd", c) if _SURROGATE.search(c) else c for c in ctxs]


def prepare(text: str, tokenizer: Any, cfg: CompressionConfig, *, max_len: int) -> Prepared:
    """Segment ``text`` into words, align the tokenizer's sub-tokens, cut encoder chunks.

    ``max_len`` is the encoder window including special tokens
    (:attr:`mooscomp.Compressor.max_len`).
    """
    words = segment_words(text)
    al = align(words, tokenizer, end_chars=cfg.chunk_end_chars)
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    spans = chunk_spans(al, max(1, max_len - n_special)) if len(al) else []
    return Prepared(words, al, spans)


def special_ids(tokenizer: Any) -> dict[str, Any]:
    """The ids framing a chunk: ``cls_id``/``sep_id`` (BOS/EOS for tokenizers without), ``pad_id``."""
    tok = tokenizer
    return {
        "cls_id": tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id,
        "sep_id": tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id,
        "pad_id": tok.pad_token_id if tok.pad_token_id is not None else 0,
    }


def score_chunks(
    scorer: Any, chunks: Sequence[np.ndarray], cfg: CompressionConfig, *, tokenizer: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(p, z) per chunk of token ids (no specials): ``scorer`` is a torch model or a
    :class:`mooscomp.scoring.Scorer`; batches follow ``cfg.batch_size``/``max_batch_tokens``."""
    return _score_chunks(
        scorer,
        chunks,
        **special_ids(tokenizer),
        batch_size=cfg.batch_size,
        max_batch_tokens=cfg.max_batch_tokens,
    )


def score(
    prepared: Sequence[Prepared], scorer: Any, cfg: CompressionConfig, *, tokenizer: Any
) -> None:
    """Score every chunk of every context in shared length-sorted batches; fills p_tok/z_tok."""
    scored = score_chunks(scorer, [ch for c in prepared for ch in c.chunks()], cfg, tokenizer=tokenizer)
    k = 0
    for c in prepared:
        part = scored[k : k + len(c.spans)]
        k += len(c.spans)
        c.p_tok = np.concatenate([p for p, _ in part]) if part else np.zeros(0, np.float32)
        c.z_tok = np.concatenate([z for _, z in part]) if part else np.zeros(0, np.float32)


def set_token_scores(prepared: Sequence[Prepared], p: np.ndarray, z: np.ndarray) -> None:
    """Hand out flat (sum of n_tokens,) scores, in context order, as each context's p_tok/z_tok."""
    k = 0
    for c in prepared:
        n = c.n_tokens
        c.p_tok, c.z_tok = p[k : k + n], z[k : k + n]
        k += n


def select(
    prepared: Sequence[Prepared],
    cfg: CompressionConfig,
    request: Request,
    *,
    count: TokenCounter,
    tokenizer: Any = None,
    log_freq: np.ndarray | None = None,
    shape_term: ShapeTerm | None = None,
) -> CompressionResult:
    """Compress one prompt (its scored contexts) under one budget.

    Args:
        prepared: the prompt's contexts, scored.
        count: the output token counter (budgets and reported counts).
        tokenizer: the encoder's tokenizer (the llmlingua2 budget costs its normalised words).
        log_freq: the model's unigram log-frequencies (``outlier_variant="rarity"``).
        shape_term: the model's word-shape logit term (models trained with word shapes).
    """
    origin_each, costs = [], []
    for c in prepared:
        n, cost = context_costs(c.words, count)
        origin_each.append(n)
        costs.append(cost)
    origin = int(sum(origin_each))
    if origin == 0:
        # no words at all: still one (empty) detail per context, as for any other input
        z, b = np.zeros(0, np.float32), np.zeros(0, dtype=bool)
        details = tuple(ContextScores(c.words, b, z, z, z, b) for c in prepared)
        return assemble(["" for _ in prepared], [True] * len(prepared), 0, 0, details)
    scored = [_word_scores(c, cfg, log_freq, shape_term) for c in prepared]
    words_l = [c.words for c in prepared]
    forced_tok, forced, scored = sel.mark(words_l, scored, request, cfg)
    if request.wants_all(origin):
        keeps = [np.ones(len(c.words), dtype=bool) for c in prepared]
        kept_ctx = [True] * len(prepared)
        keep_newlines = False
    else:
        keeps, kept_ctx = sel.keep_masks(
            prepared, scored, forced, forced_tok, origin_each, request, cfg,
            count=count, tokenizer=tokenizer, costs=costs,
        )
        keep_newlines = request.keep_newlines
    return _result(prepared, keeps, kept_ctx, scored, forced, origin, count, keep_newlines)


def _word_scores(
    c: Prepared, cfg: CompressionConfig, log_freq: np.ndarray | None, shape_term: ShapeTerm | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if c.p_tok is None or c.z_tok is None:
        raise ValueError("select() needs scored contexts: run score() first")
    al = c.alignment
    p = c.p_tok if shape_term is None else shape_term.apply(c.words, al.token_word, c.p_tok)
    return word_scores(p, c.z_tok, al.input_ids, al.token_word, len(c.words), cfg, log_freq)


def _result(
    prepared: Sequence[Prepared],
    keeps: list[np.ndarray],
    kept_ctx: list[bool],
    scored: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    forced: list[np.ndarray],
    origin: int,
    count: TokenCounter,
    keep_newlines: bool,
) -> CompressionResult:
    if all(k.all() for k in keeps) and all(kept_ctx):
        out = [c.words.text for c in prepared]  # nothing dropped: the input exactly
    else:
        out = [
            sel.join_kept(c.words, k, keep_newlines=keep_newlines) if kc else ""
            for c, k, kc in zip(prepared, keeps, kept_ctx, strict=True)
        ]
    compressed = sum(count(t) for t, kc in zip(out, kept_ctx, strict=True) if kc)
    details = tuple(
        ContextScores(c.words, k & kc, p, z, f, fo)
        for c, k, kc, (p, z, f), fo in zip(prepared, keeps, kept_ctx, scored, forced, strict=True)
    )
    return assemble(out, kept_ctx, origin, compressed, details)
