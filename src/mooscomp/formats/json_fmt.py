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
from collections.abc import Callable

from mooscomp.formats._core import Doc, FormatOptions, Piece, is_label

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_COLON = re.compile(r"[ \t\r\n]*:")
_WS = re.compile(r"[ \t\r\n]+")


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


def parse_json(text: str, options: FormatOptions) -> Doc:
    check_json(text)
    pieces: list[Piece] = []
    pos, block = 0, 0
    layout = _layout(options)
    for m in _STRING.finditer(text):
        a, e = m.span()
        if a > pos:
            pieces.append(Piece(layout(text[pos:a])))
        tok = m.group()
        pos = e
        if _COLON.match(text, e):  # a key
            pieces.append(Piece(tok))
            continue
        value = json.loads(tok)
        if not any(c.isspace() for c in value) or is_label(value, options.min_words):
            pieces.append(Piece(tok))
            continue
        ascii_ = "\\u" in tok  # the input escaped non-ASCII: so does the output
        pieces.append(
            Piece(
                value,
                prose=True,
                block=block,
                encode="json_ascii" if ascii_ else "json",
                span=(a, e),
            )
        )
        block += 1
    if pos < len(text):
        pieces.append(Piece(layout(text[pos:])))
    return Doc([p for p in pieces if p.text or p.prose])


def _layout(options: FormatOptions) -> Callable[[str], str]:
    """Text between string tokens as written (``keep``) or without whitespace (``compact``)."""
    if options.json_layout == "keep":
        return lambda s: s
    return lambda s: _WS.sub("", s)
