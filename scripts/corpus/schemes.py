"""Labelling schemes over precomputed teacher surprisal: which words a teacher keeps, per scheme.

All schemes share the teacher's selection rule (``mooscomp.labeling.select_units``: the best units
of every ~512-LM-token window until ``keep_fraction`` of its words are kept); they differ in the
units and in the unit score:

- ``surprisal_units`` (the current teacher): spaCy noun chunks + entities + number/unit pairs,
  unit score = summed word surprisal.
- ``surprisal_words``: plain word-level surprisal (reference).
- ``entity_prior``: units = spaCy entities kept whole, capitalised names with their connectors
  ("Queen Saleha of Brunei"), numbers with their unit word, attached tokens; unit score = mean
  z-scored surprisal + bonuses for entity / number / capitalised units − a stop-word penalty.
- ``rule_prior``: ``entity_prior`` without spaCy (capitalised runs / numbers only): what the
  compressor's own unit rules can reproduce at inference.
- ``caps_digits``: the issue's no-LM rule (2 for a capitalised or digit-bearing word + length/20).

Per-document inputs (``DocFeatures``) come from one spaCy pass (``spacy_features``) and the
teacher's per-token surprisal mapped onto ``segment_words`` words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mooscomp.alignment import Words
from mooscomp.labeling import (
    rule_unit_spans_attached,
    select_units,
    spacy_unit_spans,
    units_from_spans,
)

NUM_ENTS = {"DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"}
CONNECTORS = {"of", "the", "de", "du", "des", "la", "le", "von", "van", "der", "den", "bin", "bint",
              "al", "el", "da", "di", "y", "and", "&"}  # fmt: skip
UNIT_WORDS = {
    "%", "percent", "km", "m", "cm", "mm", "kg", "g", "mg", "lb", "lbs", "mph", "ft", "mi", "miles",
    "meters", "metres", "feet", "years", "year", "days", "day", "hours", "minutes", "seconds",
    "dollars", "euros", "pounds", "million", "billion", "thousand", "hundred", "am", "pm", "st",
    "nd", "rd", "th", "gb", "mb", "kb", "ghz", "mhz", "kw",
}  # fmt: skip
STOP = {
    "the", "a", "an", "of", "and", "or", "to", "in", "on", "at", "for", "by", "with", "as", "is",
    "was", "are", "were", "be", "been", "it", "its", "that", "this", "which", "from", "but", "not",
    "he", "she", "they", "his", "her", "their", "has", "had", "have", "also", "into", "than",
}  # fmt: skip
_PUNCT = re.compile(r"^[^\w]+$")


@dataclass
class DocFeatures:
    """What the schemes need for one document (all arrays are per word)."""

    words: Words
    surprisal: np.ndarray  # (n_words,) float64, summed over the word's LM tokens
    window: np.ndarray  # (n_words,) int64 selection window (~512 LM tokens each)
    spacy_spans: list[tuple[int, int]]  # word spans of the current teacher's spaCy units
    ents: list[tuple[int, int, str]]  # word spans of spaCy entities with their label


def spacy_features(words: Words, doc: Any) -> tuple[list[tuple[int, int]], list[tuple[int, int, str]]]:
    """(current-teacher unit spans, entity spans with labels) of one spaCy Doc of ``words.text``."""
    ents = []
    for e in doc.ents:
        a = int(np.searchsorted(words.ends, e.start_char, side="right"))
        b = int(np.searchsorted(words.starts, e.end_char, side="left"))
        if b > a:
            ents.append((a, b, e.label_))
    return [tuple(s) for s in spacy_unit_spans(words, doc)], ents


def entity_unit_spans(words: Words, ents: Sequence[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """Entities whole, capitalised runs joined through connectors, numbers + unit word, attached tokens.

    A number never pools with a following ordinary word (only with a unit word or a digit group).
    """
    toks = words.tolist()
    spaced = words.space_before()
    n = len(toks)
    spans: list[tuple[int, int]] = [(a, b) for a, b, _ in ents]
    i = 0
    while i < n:
        if toks[i][:1].isupper() and toks[i].isalpha():
            j = i + 1
            while j < n:
                name = toks[j][:1].isupper() and toks[j].isalpha()
                joint = toks[j].lower() in CONNECTORS and j + 1 < n and toks[j + 1][:1].isupper()
                if not (name or joint):
                    break
                j += 1
            while j > i + 1 and toks[j - 1].lower() in CONNECTORS:
                j -= 1
            if j < n and toks[j].isdigit() and spaced[j]:  # "Route 9", "April 11", "April 11, 1962"
                j += 1
                if j + 1 < n and toks[j] == "," and len(toks[j + 1]) == 4 and toks[j + 1].isdigit():
                    j += 2
            if j - i >= 2:
                spans.append((i, j))
            i = max(j, i + 1)
            continue
        if toks[i][:1].isdigit():
            j = i + 1
            while j < n and not spaced[j] and (toks[j][:1].isdigit() or toks[j] in {",", ".", ":"}):
                j += 1
            while j < n and toks[j].lower() in UNIT_WORDS and j - i < 6:  # "4.2 million dollars"
                j += 1
            if j - i >= 2:
                spans.append((i, j))
            i = j
            continue
        i += 1
    return spans + rule_unit_spans_attached(words)


@dataclass(frozen=True)
class Prior:
    """Bonuses (in standard deviations of surprisal) of ``entity_prior``."""

    entity: float = 1.0
    number: float = 1.0
    capital: float = 0.5
    stop: float = 0.5


def _unit_stats(units: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_u = int(units.max()) + 1
    ln = np.bincount(units, minlength=n_u).astype(np.float64)
    return np.bincount(units, weights=values, minlength=n_u) / np.maximum(ln, 1), ln


def prior_components(f: DocFeatures, scheme: str) -> dict[str, np.ndarray]:
    """Units and per-unit features of ``entity_prior`` / ``rule_prior`` (independent of the prior)."""
    n = len(f.words)
    toks = f.words.tolist()
    ents = f.ents if scheme == "entity_prior" else []  # rule_prior: no NER, the inference-time rules
    units = units_from_spans(n, entity_unit_spans(f.words, ents))
    z = (f.surprisal - f.surprisal.mean()) / (f.surprisal.std() + 1e-6)
    ent = np.zeros(n)
    num = np.zeros(n)
    for a, b, lab in ents:
        (num if lab in NUM_ENTS else ent)[a:b] = 1.0
    digit = np.array([any(c.isdigit() for c in t) for t in toks], dtype=np.float64)
    cap = np.array([t[:1].isupper() for t in toks], dtype=np.float64)
    stop = np.array([t.lower() in STOP or bool(_PUNCT.match(t)) for t in toks], dtype=np.float64)
    mean_z, ln = _unit_stats(units, z)
    return {
        "units": units, "len": ln, "z": mean_z,
        "ent": (_unit_stats(units, ent)[0] > 0).astype(np.float64),
        "num": ((_unit_stats(units, num)[0] > 0) | (_unit_stats(units, digit)[0] > 0)).astype(np.float64),
        "cap": (_unit_stats(units, cap)[0] > 0).astype(np.float64),
        "stop": (_unit_stats(units, stop)[0] >= 1.0).astype(np.float64),
    }  # fmt: skip


def prior_word_scores(c: dict[str, np.ndarray], p: Prior) -> np.ndarray:
    """Word scores whose per-unit sum is the unit's prior score (select_units sums word scores)."""
    u = c["z"] + p.entity * c["ent"] + p.number * c["num"] + p.capital * c["cap"] - p.stop * c["stop"]
    return (u / c["len"])[c["units"]]


def scheme_scores(f: DocFeatures, scheme: str, prior: Prior | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(word scores, unit ids) such that select_units ranks units as ``scheme`` says."""
    n = len(f.words)
    if scheme == "surprisal_units":
        return f.surprisal, units_from_spans(n, f.spacy_spans)
    if scheme == "surprisal_words":
        return f.surprisal, np.arange(n, dtype=np.int64)
    if scheme == "caps_digits":
        toks = f.words.tolist()
        s = np.array([(2.0 if (t[:1].isupper() or any(c.isdigit() for c in t)) else 0.0) + len(t) / 20 for t in toks])
        return s, np.arange(n, dtype=np.int64)
    if scheme not in ("entity_prior", "rule_prior"):
        raise ValueError(f"unknown scheme {scheme!r}")
    c = prior_components(f, scheme)
    return prior_word_scores(c, prior or Prior()), c["units"]


def label(f: DocFeatures, scheme: str, keep_fraction: float, prior: Prior | None = None) -> np.ndarray:
    """(n_words,) int8 keep labels of one document under ``scheme``."""
    if len(f.words) == 0:
        return np.zeros(0, dtype=np.int8)
    s, units = scheme_scores(f, scheme, prior)
    return select_units(np.asarray(s, dtype=np.float64), units, f.window, keep_fraction)


def compressed_text(words: Words, keep: np.ndarray) -> str:
    """Kept words in order; words that touched in the original stay touching ("4.2", "U.S.")."""
    out: list[str] = []
    prev = -2
    for i in np.flatnonzero(keep):
        w = words.word(int(i))
        glue = out and prev == i - 1 and words.starts[i] == words.ends[i - 1]
        out.append(w if glue or not out else " " + w)
        prev = int(i)
    return "".join(out)
