"""Per-word ``details`` of a structured compression, placed on the input.

A structured result is rebuilt from pieces, but a caller reads it like any other result: one
:class:`~mooscomp.result.ContextScores` over the whole input, in input order. Its words are the
words of the kept structure (forced: kept, ``keep_prob`` and ``score`` 1, ``outlier_z`` 0; left
out with ``keep_prob``/``score`` 0 where an option drops them, as a dropped code block) and the
prose words with their scores and keep decisions from the one compression of all prose, moved from
the prose context to their place in the input (through JSON string escapes where there are some).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mooscomp.alignment import Words, segment_words
from mooscomp.formats._core import Piece
from mooscomp.result import ContextScores

_F32 = np.float32


def source_details(
    source: str,
    pieces: Sequence[Piece],
    ctx_spans: Sequence[tuple[int, int]],
    prose: ContextScores | None,
    *,
    prose_kept: np.ndarray | None = None,
) -> ContextScores:
    """Details over ``source``.

    Args:
        pieces: the document's pieces, every prose piece (and every dropped one) with its span.
        ctx_spans: each prose piece's span in the prose context (``_prose.prose_context``).
        prose: the details of the compressed prose context; None when nothing was scored.
        prose_kept: overrides ``prose.kept`` (all prose dropped when the structure is over the
            budget).
    """
    regions = np.asarray([_inner(p) for p in pieces if p.prose], dtype=np.int64).reshape(-1, 2)
    dropped = np.asarray(
        [p.span for p in pieces if p.sep == "drop" and p.span], dtype=np.int64
    ).reshape(-1, 2)
    src_words = segment_words(source)
    st, en, brk = _outside(src_words, regions)
    kept_s = ~_inside_any(st, dropped)
    one = kept_s.astype(_F32)  # (n_structure,)
    parts = [(st, en, brk, kept_s, one, np.zeros_like(one), one, kept_s)]
    if prose is not None and len(prose.words):
        kept = np.asarray(prose.kept if prose_kept is None else prose_kept, dtype=bool)
        ps, pe = _to_source(source, pieces, ctx_spans, prose.words)
        pb = prose.words.breaks if prose.words.breaks is not None else np.zeros(len(ps), bool)
        parts.append(
            (ps, pe, pb, kept, prose.keep_prob, prose.outlier_z, prose.score, prose.forced)
        )
    cols = [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(8)]
    order = np.argsort(cols[0], kind="stable")
    s, e, b, k, kp, oz, sc, fo = (c[order] for c in cols)
    words = Words(
        source, s.astype(np.int64), e.astype(np.int64), b.astype(bool) if b.any() else None
    )
    return ContextScores(
        words, k.astype(bool), kp.astype(_F32), oz.astype(_F32), sc.astype(_F32), fo.astype(bool)
    )


def _inner(p: Piece) -> tuple[int, int]:
    """The input span of a prose piece's text (a JSON literal without its quotes)."""
    assert p.span is not None, "prose piece without a span"
    a, b = p.span
    return (a + 1, b - 1) if p.encode != "raw" else (a, b)


def _inside_any(starts: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(n,) bool: ``starts`` inside one of the sorted, disjoint ``regions``."""
    if not len(regions) or not len(starts):
        return np.zeros(len(starts), dtype=bool)
    j = np.searchsorted(regions[:, 1], starts, side="right")  # first region ending after start
    jj = np.minimum(j, len(regions) - 1)
    return (j < len(regions)) & (regions[jj, 0] <= starts)


def _outside(words: Words, regions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, breaks) of the input's words outside the prose regions; a word that runs
    into a region (rare: a letter run cut by a piece boundary) keeps its parts outside."""
    s, e = words.starts, words.ends
    brk = words.breaks if words.breaks is not None else np.zeros(len(s), dtype=bool)
    if not len(regions):
        return s, e, brk
    j = np.searchsorted(regions[:, 1], s, side="right")
    jj = np.minimum(j, len(regions) - 1)
    overlap = (j < len(regions)) & (regions[jj, 0] < e)
    inside = overlap & (regions[jj, 0] <= s) & (e <= regions[jj, 1])
    keep = ~overlap
    extra_s, extra_e = [], []
    for i in np.flatnonzero(overlap & ~inside).tolist():  # straddlers: clip to the outside parts
        pos, end, k = int(s[i]), int(e[i]), int(j[i])
        while pos < end:
            if k < len(regions) and regions[k, 0] < end:
                if regions[k, 0] > pos:
                    extra_s.append(pos)
                    extra_e.append(int(regions[k, 0]))
                pos = max(pos, int(regions[k, 1]))
                k += 1
            else:
                extra_s.append(pos)
                extra_e.append(end)
                break
    xs = np.asarray(extra_s, dtype=np.int64)
    return (
        np.concatenate([s[keep], xs]),
        np.concatenate([e[keep], np.asarray(extra_e, np.int64)]),
        np.concatenate([brk[keep], np.zeros(len(xs), dtype=bool)]),
    )


def _to_source(
    source: str, pieces: Sequence[Piece], ctx_spans: Sequence[tuple[int, int]], words: Words
) -> tuple[np.ndarray, np.ndarray]:
    """Prose-context word offsets -> input offsets."""
    prose = [p for p in pieces if p.prose]
    ca = np.asarray([a for a, _ in ctx_spans], dtype=np.int64)  # (n_prose,)
    sa = np.asarray([_inner(p)[0] for p in prose], dtype=np.int64)
    k = np.maximum(np.searchsorted(ca, words.starts, side="right") - 1, 0)  # piece of each word
    shift = sa - ca
    s, e = words.starts + shift[k], words.ends + shift[k]
    for i, p in enumerate(prose):
        a, b = _inner(p)
        if p.encode == "raw" or b - a == len(p.text):
            continue  # no escapes: the literal is the text
        sel = np.flatnonzero(k == i)
        if sel.size:
            offs = _literal_offsets(source[a:b], len(p.text))  # (len(text) + 1,)
            s[sel] = a + offs[words.starts[sel] - ca[i]]
            e[sel] = a + offs[words.ends[sel] - ca[i]]
    return s, e


def _literal_offsets(lit: str, n: int) -> np.ndarray:
    """(n + 1,) offset in a JSON string literal's body ``lit`` of each decoded character (and
    of the end): an escape is one character, a surrogate pair escape one (astral) character."""
    out = np.empty(n + 1, dtype=np.int64)
    i = k = 0
    while i < len(lit) and k < n:
        out[k] = i
        if lit[i] != "\\":
            i += 1
        elif lit[i + 1] != "u":
            i += 2
        else:
            hi = int(lit[i + 2 : i + 6], 16)
            pair = (
                0xD800 <= hi < 0xDC00
                and lit[i + 6 : i + 8] == "\\u"
                and 0xDC00 <= int(lit[i + 8 : i + 12], 16) < 0xE000
            )
            i += 12 if pair else 6
        k += 1
    out[k:] = i
    return out
