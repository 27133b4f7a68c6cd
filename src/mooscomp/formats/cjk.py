"""Output text for scripts written without spaces (Chinese, Japanese).

The core joins kept words with a space wherever words were dropped, which writes "北京 大学" for
"北京的大学" minus "的": llmlingua users report exactly these stray spaces. Here a dropped stretch
next to a character of such scripts that had no whitespace leaves no space; a newline in the dropped stretch is kept
(line structure), and anywhere else one space stands for the dropped words, as in the core.
Segmentation into dictionary-word units is in :mod:`mooscomp.alignment` (``Words.breaks``).
"""

from __future__ import annotations

import numpy as np

from mooscomp.alignment import NOSPACE_CHAR_RE as NOSPACE_RE
from mooscomp.alignment import Words


def is_nospace(ch: str) -> bool:
    """A character of a script written without spaces between words."""
    return bool(ch) and NOSPACE_RE.match(ch) is not None


def join_kept_words(words: Words, kept: np.ndarray, lo: int, hi: int) -> str:
    """Kept words ``lo <= i < hi`` in order; an untouched gap is copied, a dropped stretch becomes
    a newline (if it held one), nothing (next to a no-space-script character, where the original
    had no whitespace either) or one space."""
    idx = lo + np.flatnonzero(kept[lo:hi])
    if idx.size == 0:
        return ""
    text = words.text
    starts, ends = words.starts[idx].tolist(), words.ends[idx].tolist()
    ids = idx.tolist()
    out = [text[starts[0] : ends[0]]]
    for j in range(1, len(ids)):
        pe, cs = ends[j - 1], starts[j]
        if ids[j] == ids[j - 1] + 1:
            out.append(text[pe:cs])
        else:
            out.append(_dropped_sep(text, pe, cs))
        out.append(text[cs : ends[j]])
    return "".join(out)


def _dropped_sep(text: str, pe: int, cs: int) -> str:
    """What stands for the dropped words in ``text[pe:cs]``."""
    gap = text[pe:cs]
    if "\n" in gap:
        return "\n"
    if (is_nospace(text[pe - 1]) or is_nospace(text[cs])) and not any(c.isspace() for c in gap):
        return ""  # the original had no space here either: none is invented
    return " "
