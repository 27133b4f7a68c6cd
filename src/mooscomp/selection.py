"""Pure selection functions: word scores + costs + budget -> keep mask, and the output text.

Everything here is numpy over whole prompts; the only Python loops run over chunks or over
budget-refinement steps, never over tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mooscomp.alignment import Words, _codepoints

_ASCII_ALNUM = np.zeros(128, dtype=bool)
for _c in "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _ASCII_ALNUM[ord(_c)] = True
_ASCII_UPPER = np.zeros(128, dtype=bool)
_ASCII_UPPER[ord("A") : ord("Z") + 1] = True
_ASCII_DIGIT = np.zeros(128, dtype=bool)
_ASCII_DIGIT[ord("0") : ord("9") + 1] = True
# Symbols that bind to an adjacent number ("$3", "5%").
_NUMBER_SYMBOLS = np.asarray([ord(c) for c in "$%€£¥"], dtype=np.uint32)
# Non-ASCII punctuation blocks: general punctuation, CJK symbols, full-width ASCII punctuation.
_PUNCT_RANGES = ((0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFF0F), (0xFE30, 0xFE4F), (0x00A0, 0x00BF))


def word_classes(words: Words) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_words,) bool arrays: alphanumeric, starts upper-case, starts with a digit."""
    n = len(words)
    if n == 0:
        z = np.zeros(0, dtype=bool)
        return z, z.copy(), z.copy()
    cps = _codepoints(words.text)[words.starts]
    multi = (words.ends - words.starts) > 1
    ascii_ = cps < 128
    a = np.minimum(cps, 127)
    non_ascii_alnum = ~ascii_
    for lo, hi in _PUNCT_RANGES:
        non_ascii_alnum &= ~((cps >= lo) & (cps <= hi))
    alnum = multi | np.where(ascii_, _ASCII_ALNUM[a], non_ascii_alnum)
    upper = np.where(ascii_, _ASCII_UPPER[a], False)
    if (~ascii_).any():  # rare: non-ASCII initials need Python's Unicode tables
        idx = np.flatnonzero(~ascii_)
        t = words.text
        upper[idx] = [t[s].isupper() for s in words.starts[idx].tolist()]
    digit = np.where(ascii_, _ASCII_DIGIT[a], False)
    return alnum, upper, digit


def unit_ids(words: Words, rules: Sequence[str]) -> np.ndarray:
    """(n_words,) non-decreasing unit ids; the words of one unit are kept or dropped together."""
    n = len(words)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    joins = np.zeros(n, dtype=bool)  # word i joins the unit of word i-1
    if rules:
        alnum, upper, digit = word_classes(words)
        sym = np.isin(_codepoints(words.text)[words.starts], _NUMBER_SYMBOLS) & (
            (words.ends - words.starts) == 1
        )
        space = words.space_before()
        newline = words.newline_before()
        if "attached" in rules:
            # Inside a run of words with no whitespace between them, join from the first to the
            # last alphanumeric word ("e-mail", "3.5", "U.S"), leaving outer punctuation free.
            core = alnum | sym
            run = np.cumsum(space) - 1  # run id per word
            idx = np.arange(n)
            first = np.full(run[-1] + 1, n, dtype=np.int64)
            last = np.full(run[-1] + 1, -1, dtype=np.int64)
            np.minimum.at(first, run[core], idx[core])
            np.maximum.at(last, run[core], idx[core])
            joins |= ~space & (idx > first[run]) & (idx <= last[run])
        if "capitalised" in rules:
            prev_up = np.concatenate([[False], upper[:-1]])
            joins |= upper & prev_up & space & ~newline
        if "number" in rules:
            prev_digit = np.concatenate([[False], digit[:-1]])
            joins |= prev_digit & ((alnum & ~digit) | sym) & ~newline
        joins[0] = False
    return np.cumsum(~joins) - 1


def pool_units(values: np.ndarray, units: np.ndarray, n_units: int, how: str) -> np.ndarray:
    """(n_units,) mean or max of per-word ``values`` within each unit."""
    if how == "max":
        out = np.full(n_units, -np.inf, dtype=np.float64)
        np.maximum.at(out, units, values)
        return out
    sums = np.bincount(units, weights=values, minlength=n_units)
    cnt = np.bincount(units, minlength=n_units)
    return sums / np.maximum(cnt, 1)


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
    # A separator is needed where the original had whitespace or where words were dropped.
    gap = np.zeros(idx.size, dtype=bool)
    gap[1:] = (st[1:] > ed[:-1]) | (np.diff(idx) > 1)
    seps = np.where(gap, " ", "").astype(object)
    if keep_newlines and idx.size > 1:
        nl = np.concatenate([[0], np.cumsum(_codepoints(text) == 10)])
        has_nl = np.zeros(idx.size, dtype=bool)
        has_nl[1:] = (nl[st[1:]] - nl[ed[:-1]]) > 0
        seps[has_nl] = "\n"
    seps[0] = ""
    return "".join(
        s + text[a:b] for s, a, b in zip(seps.tolist(), st.tolist(), ed.tolist(), strict=True)
    )
