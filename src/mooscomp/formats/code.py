"""Source code: kept verbatim by default (code is not prose); ``code="comments"`` compresses the
text of comments and docstrings only.

Comments found: ``# ...`` (followed by a space, so ``#include`` / ``#[attr]`` are code) and
``// ...`` at line level when the quotes before them on the line are balanced, ``/* ... */``
blocks, and triple-quoted strings that start a line (docstrings). Markers stay verbatim.
"""

from __future__ import annotations

import re

from mooscomp.formats._core import Doc, FormatOptions, Piece

_COMMENT = re.compile(
    r'(?m)^([ \t]*[rRbBuU]?)("""|\'\'\')(.*?)(\2)'  # docstring at a line start
    r"|(/\*+)(.*?)(\*/)"  # block comment
    r"|(?<![:\w])(#|//)(?=[ \t])([^\n]*)$",  # line comment
    re.S,
)
_KEYWORD = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |return\b|if\b.*:$|for\b.*:$|while\b|#include|"
    r"public |private |function\b|const |let |var |fn |package |func |@\w+)"
)


def looks_code(text: str) -> bool:
    """At least 3 non-blank lines, half of them code-like (keyword start or a line ending in
    ``{ } ;`` or ``)``), and bracket/operator characters at least 1.5% of the text."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 3:
        return False
    codey = sum(bool(_KEYWORD.match(ln)) or ln.rstrip()[-1] in "{};)" for ln in lines)
    sym = sum(text.count(c) for c in "{}()[];=<>")
    return codey >= 0.5 * len(lines) and sym >= 0.015 * len(text)


def parse_code(text: str, options: FormatOptions) -> Doc:
    if options.code == "verbatim":
        return Doc([Piece(text)] if text else [])
    pieces: list[Piece] = []
    pos, block = 0, 0
    for m in _COMMENT.finditer(text):
        if m.group(9) is not None and not _outside_string(text, m.start()):
            continue
        groups = _parts(m)
        if groups is None:
            continue
        head, body, tail = groups
        if m.start() > pos:
            pieces.append(Piece(text[pos : m.start()]))
        pieces.append(Piece(head))
        _add_body(pieces, body, block)
        block += 1
        if tail:
            pieces.append(Piece(tail))
        pos = m.end()
    if pos < len(text):
        pieces.append(Piece(text[pos:]))
    return Doc(pieces)


def _parts(m: re.Match[str]) -> tuple[str, str, str] | None:
    """(marker text before the comment body, the body, the closing marker)."""
    if m.group(2) is not None:
        return m.group(1) + m.group(2), m.group(3), m.group(4)
    if m.group(5) is not None:
        return m.group(5), m.group(6), m.group(7)
    return m.group(8), m.group(9), ""


def _outside_string(text: str, at: int) -> bool:
    line_start = text.rfind("\n", 0, at) + 1
    before = text[line_start:at]
    return before.count('"') % 2 == 0 and before.count("'") % 2 == 0


def _add_body(pieces: list[Piece], body: str, block: int) -> None:
    core = body.strip()
    if not core:
        if body:
            pieces.append(Piece(body))
        return
    a = len(body) - len(body.lstrip())
    if a:
        pieces.append(Piece(body[:a]))
    pieces.append(Piece(core, prose=True, block=block))
    tail = body[a + len(core) :]
    if tail:
        pieces.append(Piece(tail))
