"""JSON: only string values are compressed; keys, numbers, booleans, null and layout are kept.

The input is parsed first (malformed JSON is a ValueError, never a silent fallback); then string
tokens are found in the original text, so everything but the compressed values stays as written,
except the whitespace between tokens, which ``json_layout="compact"`` (the default) drops. Keys, and values without whitespace (identifiers, URLs, dates), with fewer than ``min_words``
words or name-like (titles such as "Tokyo Tower"), are kept; longer values are prose under the one
budget, so long values lose the most. The output parses with the same keys and nesting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Literal

from mooscomp.formats._core import Doc, FormatOptions, Piece, is_label

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_COLON = re.compile(r"[ \t\r\n]*:")
_WS = re.compile(r"[ \t\r\n]+")
_SPACE = re.compile(r"\s")


def check_json(text: str) -> None:
    """ValueError (with line and column) unless ``text`` is valid JSON."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"format='json' but the input is not valid JSON: {e.msg} at line {e.lineno} column "
            f"{e.colno}; use format='text' (or 'auto') to compress it as text"
        ) from None
    except RecursionError:
        raise ValueError(
            "format='json' but the input is not valid JSON here: it nests too deeply to parse"
        ) from None


def is_json(text: str) -> bool:
    """An object or array that parses (bare scalars are not taken for JSON by ``auto``)."""
    s = text.strip()
    if not (s[:1] in "{[" and s[-1:] in "}]"):
        return False
    try:
        json.loads(s)
    except (ValueError, RecursionError):
        return False
    return True


def parse_json(text: str, options: FormatOptions, cuts: Sequence[int] = ()) -> Doc:
    """Pieces of ``text``; every piece has its input span, and a new piece starts at each offset
    of ``cuts`` (sorted, outside string tokens: the items of :mod:`mooscomp.formats.json_items`)."""
    check_json(text)
    pieces: list[Piece] = []
    kept: list[str] = []  # verbatim text since ``at``: one piece (fewer objects)
    at, pos, block = 0, 0, 0
    layout = _layout(options)
    nxt = iter([*cuts, len(text) + 1])
    cut = next(nxt)

    def flush(upto: int) -> None:
        nonlocal kept, at
        if kept:
            pieces.append(Piece("".join(kept), span=(at, upto)))
        kept, at = [], upto

    def verbatim(x: int, y: int, how: Callable[[str], str]) -> None:
        nonlocal cut
        while cut < y:
            kept.append(how(text[x:cut]))
            flush(cut)
            x, cut = cut, next(nxt)
        kept.append(how(text[x:y]))

    for m in _STRING.finditer(text):
        a, e = m.span()
        if a > pos:
            verbatim(pos, a, layout)
        tok = m.group()
        pos = e
        if _COLON.match(text, e):  # a key
            verbatim(a, e, str)
            continue
        value = json.loads(tok) if "\\" in tok else tok[1:-1]
        if _SPACE.search(value) is None or is_label(value, options.min_words):
            verbatim(a, e, str)  # an identifier or a label
            continue
        flush(a)
        encode: Literal["json", "json_ascii"] = "json_ascii" if "\\u" in tok else "json"
        pieces.append(Piece(value, prose=True, block=block, encode=encode, span=(a, e)))
        at = e
        block += 1
    if pos < len(text):
        verbatim(pos, len(text), layout)
    flush(len(text))
    return Doc([p for p in pieces if p.text or p.prose])


def _layout(options: FormatOptions) -> Callable[[str], str]:
    """Text between string tokens as written (``keep``) or without whitespace (``compact``)."""
    if options.json_layout == "keep":
        return lambda s: s
    return lambda s: _WS.sub("", s)
