"""The budget policy: word scores + marks + costs + budget -> keep masks, and the output text.

Everything a budget decision depends on lives here: forced words (force tokens, digits), the
question boost, word costs, LLMLingua-2's context filter, the ``global`` rule (best-scoring units
whose exact recount is closest to the target) and the ``llmlingua2`` rule (per-chunk token-weighted
percentile). Numpy over whole prompts; Python loops only over contexts, chunks or refinement steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from mooscomp.alignment import Alignment, Words, _codepoints, nospace_joins
from mooscomp.config import CompressionConfig, Request
from mooscomp.counting import TokenCounter, context_costs, unique_counts, word_costs  # noqa: F401
from mooscomp.focus import focus_scores, paragraph_starts, word_sentences
from mooscomp.terms import mentions, question_terms, term_ids  # noqa: F401 (old import path)
from mooscomp.units import pool_units, unit_ids, word_classes  # noqa: F401 (old import path)

Scored = tuple[np.ndarray, np.ndarray, np.ndarray]  # (n_words,) keep-prob, outlier z, fused score


class Budgeted(Protocol):
    """What the policy reads of a prepared context (:class:`mooscomp.stages.Prepared`)."""

    words: Words
    alignment: Alignment
    spans: list[tuple[int, int]]


# ---------------------------------------------------------------------- orchestration


def mark(
    words_l: Sequence[Words], scored: list[Scored], request: Request, cfg: CompressionConfig
) -> tuple[list[np.ndarray], list[np.ndarray], list[Scored]]:
    """Per context: (n_words,) force-token marks, forced marks (+ digits), and the scores with the
    question boost (``question_weight`` on words the question mentions) added to the fused score."""
    forced_tok = [forced_words(w, list(request.force_tokens)) for w in words_l]
    digits = [digit_words(w) if cfg.force_reserve_digit else False for w in words_l]
    forced = [ft | d for ft, d in zip(forced_tok, digits, strict=True)]
    if request.question:
        qset = question_terms(request.question)
        scored = [
            (p, z, f + cfg.question_weight * mentions(w, qset))
            for w, (p, z, f) in zip(words_l, scored, strict=True)
        ]
    return forced_tok, forced, scored


def keep_masks(
    ctxs: Sequence[Budgeted],
    scored: list[Scored],
    forced: list[np.ndarray],
    forced_tok: list[np.ndarray],
    origin_each: list[int],
    request: Request,
    cfg: CompressionConfig,
    *,
    count: TokenCounter,
    costs: Sequence[np.ndarray],
    tokenizer: Any = None,
) -> tuple[list[np.ndarray], list[bool]]:
    """(n_words,) keep mask per context and whether each context survived the context filter
    (``costs``: each context's per-word token costs, :func:`mooscomp.counting.context_costs`).

    The context filter (LLMLingua-2 semantics) first drops whole low-scoring contexts; with it the
    rate applies to the surviving contexts. Then ``cfg.budget`` picks words of the live contexts
    (with ``cfg.focus``, ``scored`` gets the focused scores in place).
    """
    origin = int(sum(origin_each))
    rate, target_tokens = request.rate, request.target_tokens
    kept_ctx = [True] * len(ctxs)
    if cfg.use_context_level_filter and len(ctxs) > 1:
        kept_ctx = context_filter([s[0] for s in scored], rate, target_tokens, origin, cfg)
    live = [i for i, k in enumerate(kept_ctx) if k]
    live_origin = sum(origin_each[i] for i in live)
    if target_tokens is not None:
        target = float(target_tokens)
    else:
        assert rate is not None
        base = live_origin if cfg.use_context_level_filter else origin
        target = float(rate) * base
    target = min(target, float(live_origin))

    keeps = [np.zeros(len(c.words), dtype=bool) for c in ctxs]
    if cfg.budget == "llmlingua2":
        eff_rate = min(target / max(live_origin, 1), 1.0)
        for i in live:
            c = ctxs[i]
            cost = unique_counts(normalised(c.words.tolist(), tokenizer), count)
            chunk = word_chunks(c.alignment, c.spans, len(c.words))
            keep = select_llmlingua2(np.where(forced[i], 1.0, scored[i][2]), cost, chunk,
                                     max(0.0, 1.0 - eff_rate))
            # Forced words score 1.0, but fused scores (p + alpha * g(z), question boost) can
            # exceed 1 and push the percentile above it: keep them explicitly, as LLMLingua-2 does.
            keeps[i] = keep | forced[i]
    else:
        fused = [scored[i][2] for i in live]
        if cfg.focus > 0 and request.question is None:
            fused = focus_scores([word_sentences(ctxs[i].words, ctxs[i].alignment) for i in live],
                                 fused, [costs[i] for i in live], target, weight=cfg.focus,
                                 spread=cfg.focus_spread, protect_share=cfg.focus_numbers,
                                 protect=[digit_words(ctxs[i].words) for i in live] if cfg.focus_numbers else None,
                                 per_paragraph=cfg.focus_per_paragraph, first_per_paragraph=cfg.focus_first,
                                 para_start=[paragraph_starts(ctxs[i].words) for i in live]
                                 if cfg.focus_per_paragraph or cfg.focus_first else None)
            for j, i in enumerate(live):  # the details report the score the selection used
                scored[i] = (scored[i][0], scored[i][1], fused[j].astype(np.float32))
        sub = select_contexts_global(
            [ctxs[i].words for i in live], fused, [forced[i] for i in live],
            [costs[i] for i in live], target, count=count, units=cfg.units,
            unit_pool=cfg.unit_pool, keep_newlines=request.keep_newlines,
        )
        for i, k in zip(live, sub, strict=True):
            keeps[i] = k
    if cfg.drop_consecutive:
        keeps = [
            drop_consecutive_forced(c.words, k, ft)
            for c, k, ft in zip(ctxs, keeps, forced_tok, strict=True)
        ]
    return keeps, kept_ctx


def select_contexts_global(
    words_l: Sequence[Words],
    fused: Sequence[np.ndarray],
    forced: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    target: float,
    *,
    count: TokenCounter,
    units: Sequence[str],
    unit_pool: str,
    keep_newlines: bool,
) -> list[np.ndarray]:
    """The ``global`` budget over several contexts: per context (n_words,) keep masks from units
    pooled over word scores (``costs``: per-word token costs), one target for all."""
    units_l, scores_l, costs_l, forced_l = [], [], [], []
    offset = 0
    for w, f, fo, cost in zip(words_l, fused, forced, costs, strict=True):
        u = unit_ids(w, tuple(units))
        nu = int(u[-1]) + 1 if u.size else 0
        units_l.append(u + offset)
        scores_l.append(pool_units(np.asarray(f, np.float64), u, nu, unit_pool))
        costs_l.append(np.bincount(u, weights=cost, minlength=nu))
        forced_l.append(np.bincount(u, weights=fo.astype(np.float64), minlength=nu) > 0)
        offset += nu
    unit_of = np.concatenate(units_l) if units_l else np.zeros(0, np.int64)  # (sum n_words,)
    bounds = np.cumsum([0] + [len(w) for w in words_l])

    def word_masks(unit_mask: np.ndarray) -> list[np.ndarray]:
        wm = unit_mask[unit_of]
        return [wm[bounds[i] : bounds[i + 1]] for i in range(len(words_l))]

    def measure(unit_mask: np.ndarray) -> int:
        return sum(
            count(join_kept(w, m, keep_newlines=keep_newlines))
            for w, m in zip(words_l, word_masks(unit_mask), strict=True)
        )

    unit_keep = select_global(
        np.concatenate(scores_l), np.concatenate(costs_l), np.concatenate(forced_l), target,
        measure=measure,
    )
    return word_masks(unit_keep)


# ---------------------------------------------------------------------- marks and costs


def forced_words(words: Words, force_tokens: list[str]) -> np.ndarray:
    """(n_words,) bool: words overlapping an occurrence of any force token."""
    n = len(words)
    mark_ = np.zeros(n + 1, dtype=np.int64)
    toks = [t for t in force_tokens if t.strip()]
    if not toks or n == 0:
        return np.zeros(n, dtype=bool)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(toks, key=len, reverse=True)))
    spans = np.asarray([m.span() for m in pattern.finditer(words.text)], dtype=np.int64)
    if spans.size == 0:
        return np.zeros(n, dtype=bool)
    first = np.searchsorted(words.ends, spans[:, 0], side="right")
    last = np.searchsorted(words.starts, spans[:, 1], side="left")  # exclusive
    ok = last > first
    np.add.at(mark_, first[ok], 1)
    np.add.at(mark_, last[ok], -1)
    return np.cumsum(mark_[:n]) > 0


def digit_words(words: Words) -> np.ndarray:
    """(n_words,) bool: words containing a digit."""
    if len(words) == 0:
        return np.zeros(0, dtype=bool)
    return np.fromiter((any(ch.isdigit() for ch in w) for w in words.tolist()), bool, len(words))


def normalised(words: list[str], tokenizer: Any) -> list[str]:
    """Words as the encoder's tokenizer normalises them (e.g. lower-cased when uncased).

    LLMLingua-2 weights each word's score by the GPT tokens of the word it rebuilt from the
    encoder's tokens, i.e. the normalised form; the llmlingua2 budget does the same for parity.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    norm = getattr(backend, "normalizer", None)
    if norm is None:
        return words
    cache = {w: norm.normalize_str(w) for w in dict.fromkeys(words)}
    return [cache[w] for w in words]


def word_chunks(alignment: Alignment, spans: list[tuple[int, int]], n_words: int) -> np.ndarray:
    """(n_words,) chunk of each word = chunk of its first token; token-less words follow their
    neighbour."""
    span_starts = np.asarray([s for s, _ in spans], dtype=np.int64)
    chunk_of_token = np.searchsorted(span_starts, np.arange(len(alignment)), side="right") - 1
    tw = alignment.token_word
    word_chunk = np.zeros(n_words, dtype=np.int64)
    ok = tw >= 0
    word_chunk[tw[ok][::-1]] = chunk_of_token[ok][::-1]
    return np.maximum.accumulate(word_chunk)


def context_filter(
    probs: list[np.ndarray],
    rate: float | None,
    target_tokens: int | None,
    origin: int,
    cfg: CompressionConfig,
) -> list[bool]:
    """LLMLingua-2's context filter: keep contexts whose mean keep-prob clears a percentile."""
    if cfg.context_level_rate is not None:
        level = cfg.context_level_rate
    elif target_tokens is not None:
        level = min(2.0 * target_tokens / max(origin, 1), 1.0)
    else:
        level = (float(rate or 1.0) + 1.0) / 2.0
    ctx_p = np.asarray([float(p.mean()) if p.size else 0.0 for p in probs])
    thr = np.percentile(ctx_p, int(100 * (1 - level)))
    return (ctx_p >= thr).tolist()


# ---------------------------------------------------------------------- budget rules
def select_global(
    score: np.ndarray,
    cost: np.ndarray,
    forced: np.ndarray,
    target: float,
    *,
    measure: Callable[[np.ndarray], int],
    max_refine: int = 64,
) -> np.ndarray:
    """Keep the best-scoring units whose exact total count is closest to ``target``.

    Units are taken in a fixed order (forced first, then by score), so the answer is a prefix
    ``k`` of that order. ``k`` is the one whose exact count is closest to the target (ties to the
    smaller), found by searching for the boundary ``f(k) <= target < f(k + 1)`` rather than
    stopping at the first "close enough" count: the result then depends on the target alone, not
    on the search path, so the kept set only grows when the target grows.

    Args:
        score: (n_units,) higher = keep first; ties go to the earlier unit.
        cost: (n_units,) estimated tokens of each unit in the output (guides the search).
        forced: (n_units,) units kept whatever the budget.
        target: token budget.
        measure: exact token count of the output for a unit keep-mask.
        max_refine: most calls of ``measure`` (the search needs about 2 + log2(n_units)).
    Returns:
        (n_units,) bool keep mask.
    """
    n = score.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    key = np.where(forced, np.inf, score)
    order = np.lexsort((np.arange(n), -key))  # by key desc, then position asc
    n_forced = int(forced.sum())
    cum = np.cumsum(cost[order])

    def mask_of(k: int) -> np.ndarray:
        m = np.zeros(n, dtype=bool)
        m[order[:k]] = True
        return m

    tried: dict[int, int] = {}
    # Bracket: f(a) <= target < f(b), with a = n_forced - 1 / b = n + 1 standing for "none yet".
    a, b = n_forced - 1, n + 1
    k = max(int(np.searchsorted(cum, target, side="right")), n_forced)
    for step in range(max_refine):
        k = min(max(k, a + 1), b - 1)
        actual = tried[k] = measure(mask_of(k))
        if actual <= target:
            a = k
        else:
            b = k
        if b - a <= 1:
            break
        if step < 4:  # the cost estimate is close: interpolate on it, then bisect
            scale = actual / max(float(cum[k - 1]) if k > 0 else 1.0, 1e-9)
            k = int(np.searchsorted(cum * scale, target, side="right"))
        else:
            k = (a + b) // 2
    if b - a > 1:  # max_refine exhausted (not reached for sane n): closest count seen
        return mask_of(min(tried, key=lambda j: (abs(tried[j] - target), j)))
    if a < n_forced:
        return mask_of(n_forced)  # even the forced units alone exceed the target
    if b > n:
        return mask_of(n)
    return mask_of(b if tried[b] - target < target - tried[a] else a)


def select_llmlingua2(
    score: np.ndarray,
    cost: np.ndarray,
    chunk: np.ndarray,
    reduce_rate: float,
) -> np.ndarray:
    """LLMLingua-2's rule: per chunk, a token-weighted percentile threshold on word scores.

    Args:
        score: (n_words,) word scores.
        cost: (n_words,) tokens of each word (the weight of its score in the percentile).
        chunk: (n_words,) chunk index of each word (non-decreasing).
        reduce_rate: 1 - rate.
    """
    keep = np.zeros(score.shape[0], dtype=bool)
    if score.shape[0] == 0:
        return keep
    q = int(100 * reduce_rate + 1)
    bounds = np.flatnonzero(np.diff(chunk)) + 1
    for st, ed in zip(np.r_[0, bounds], np.r_[bounds, score.shape[0]], strict=True):
        s = score[st:ed]
        expanded = np.repeat(s, np.maximum(cost[st:ed], 0).astype(np.int64))
        if expanded.size == 0:
            continue
        thr = np.percentile(expanded, q)
        keep[st:ed] = (s > thr) | ((thr == 1.0) & (s == 1.0))
    return keep


def drop_consecutive_forced(words: Words, keep: np.ndarray, forced_token: np.ndarray) -> np.ndarray:
    """Drop a kept force-token word equal to the previous kept word when both are force tokens."""
    idx = np.flatnonzero(keep)
    if idx.size < 2:
        return keep
    ft = forced_token[idx]
    texts = np.asarray([words.word(int(i)) for i in idx[ft]], dtype=object) if ft.any() else None
    if texts is None:
        return keep
    same = np.zeros(idx.size, dtype=bool)
    pos = np.flatnonzero(ft)
    # consecutive kept words that are both force tokens with equal text
    adjacent = np.diff(pos) == 1
    eq = texts[1:] == texts[:-1]
    same[pos[1:][adjacent & eq]] = True
    out = keep.copy()
    out[idx[same]] = False
    return out


def join_kept(words: Words, keep: np.ndarray, *, keep_newlines: bool) -> str:
    """The kept words in order, separated as in the original (space, newline or nothing)."""
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return ""
    text = words.text
    st, ed = words.starts[idx], words.ends[idx]
    # A separator where the original had whitespace or words were dropped (none inside CJK text).
    gap = np.zeros(idx.size, dtype=bool)
    gap[1:] = (st[1:] > ed[:-1]) | (np.diff(idx) > 1)
    seps = np.where(gap & ~nospace_joins(text, st, ed, gap), " ", "").astype(object)
    if keep_newlines and idx.size > 1:
        nl = np.concatenate([[0], np.cumsum(_codepoints(text) == 10)])
        has_nl = np.zeros(idx.size, dtype=bool)
        has_nl[1:] = (nl[st[1:]] - nl[ed[:-1]]) > 0
        seps[has_nl] = "\n"
    seps[0] = ""
    return "".join(
        s + text[a:b] for s, a, b in zip(seps.tolist(), st.tolist(), ed.tolist(), strict=True)
    )

