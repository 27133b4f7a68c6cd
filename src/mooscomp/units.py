"""Units: groups of words that are kept or dropped together (the single inference definition).

A unit is a run of words joined by cheap rules (``CompressionConfig.units``): ``attached`` (no
space between: "3.5", "e-mail", "U.S."), ``capitalised`` (runs of capitalised words: names) and
``number`` (a number and the word after it: "5 km"). The global budget scores, costs and keeps
whole units. Labelling's ``rule_unit_spans`` implements its own rules for training labels.
"""

from __future__ import annotations

from collections.abc import Sequence

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
