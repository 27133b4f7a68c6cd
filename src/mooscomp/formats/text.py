"""Plain text: paragraphs are prose, the breaks between them are kept.

llmlingua users force "\\n" to keep layout; here a blank-line paragraph break is structure (its
tokens count in the budget) and a paragraph that comes out empty takes its break with it. Line
breaks inside a paragraph survive where the words around them are kept.
"""

from __future__ import annotations

import re

from mooscomp.formats._core import Doc, Piece

_PARA_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def parse_text(text: str) -> Doc:
    pieces: list[Piece] = []
    pos = 0
    for block, m in enumerate([*_PARA_BREAK.finditer(text), None]):
        end = m.start() if m is not None else len(text)
        _add_paragraph(pieces, text[pos:end], block)
        if m is not None:
            pieces.append(Piece(m.group(), sep="eol"))
            pos = m.end()
    return Doc(pieces)


def _add_paragraph(pieces: list[Piece], para: str, block: int) -> None:
    """Leading/trailing whitespace as structure, the stripped paragraph as prose."""
    core = para.strip()
    if not core:
        if para:
            pieces.append(Piece(para))
        return
    a = para.index(core[0])
    if a:
        pieces.append(Piece(para[:a]))
    pieces.append(Piece(core, prose=True, block=block))
    tail = para[a + len(core) :]
    if tail:
        pieces.append(Piece(tail))
