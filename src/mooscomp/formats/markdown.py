"""Markdown: markers, tables, link targets and code kept; prose in paragraphs, items and cells.

Kept verbatim: headings (marker and text), list / quote / task markers, thematic breaks, HTML
lines, code fences and their content (or dropped whole with ``code_blocks="drop"``; an unterminated
fence runs to the end, as in CommonMark, with a warning), a table's header and separator rows, each
body row's first cell and every pipe, inline code, link and image targets, autolinks and bare
URLs, and ``**`` / ``__`` / ``~~`` markers. The rest is prose under the one global budget.
"""

from __future__ import annotations

import re
from typing import Literal

from mooscomp.formats._core import Doc, FormatOptions, Piece

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_HRULE = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_HTML = re.compile(r"^ {0,3}</?[A-Za-z!][^>]*>?")
_TABLE_SEP = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_PREFIX = re.compile(
    r"^(?:[ \t]*>[ \t]?)*[ \t]*(?:(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)(?:\[[ xX]\][ \t]+)?)?"
)
_LIST_ITEM = re.compile(r"^(?:[ \t]*>[ \t]?)*[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_INLINE = re.compile(
    r"`+[^`\n]*`+"  # inline code
    r"|\]\([^)\n]*\)"  # link / image target: "](url "title")"
    r"|\]\[[^\]\n]*\]"  # reference link: "][ref]"
    r"|!?\["  # link / image opener
    r"|<[^>\n]+>"  # autolink, inline HTML
    r"|https?://[^\s)\]>|]+"  # bare URL
    r"|\*\*|__|~~"  # emphasis markers
)
_PIPE = re.compile(r"(?<!\\)\|")


def looks_markdown(text: str) -> bool:
    """A fence, an ATX heading, a table with its separator row, a link, or a list: two items on
    consecutive lines (a blank line between them allowed). Two lone lines of prose that happen to
    start with "2." or "4)" (a wrapped sentence, a formula cut at a line break) are no list."""
    lines = text.splitlines()
    last_item = -3
    for i, line in enumerate(lines):
        if _FENCE.match(line) or _HEADING.match(line) and line.strip("# \t"):
            return True
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if "|" in line and "|" in nxt and "-" in nxt and _TABLE_SEP.match(nxt):
            return True
        if _LIST_ITEM.match(line):
            if i - last_item == 1 or (i - last_item == 2 and not lines[i - 1].strip()):
                return True
            last_item = i
    return re.search(r"\[[^\]\n]+\]\([^)\s]+\)", text) is not None


class _Builder:
    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.block = 0

    def keep(self, s: str) -> None:
        if s:
            self.pieces.append(Piece(s))

    def sep(self, s: str, kind: Literal["eol", "blank", "drop"]) -> None:
        if s:
            self.pieces.append(Piece(s, sep=kind))

    def new_block(self) -> None:
        self.block += 1

    def prose(self, s: str) -> None:
        """Inline structure as verbatim pieces, the text between as prose of the current block."""
        pos = 0
        for m in _INLINE.finditer(s):
            self._prose_run(s[pos : m.start()])
            self.keep(m.group())
            pos = m.end()
        self._prose_run(s[pos:])

    def _prose_run(self, s: str) -> None:
        core = s.strip()
        if not core:
            self.keep(s)
            return
        a = len(s) - len(s.lstrip())
        self.keep(s[:a])
        self.pieces.append(Piece(core, prose=True, block=self.block))
        self.keep(s[a + len(core) :])


def parse_markdown(text: str, options: FormatOptions) -> Doc:
    b = _Builder()
    warnings: list[str] = []
    lines = text.splitlines(keepends=True)
    i, n = 0, len(lines)
    in_para = False
    while i < n:
        line = lines[i]
        body = line.rstrip("\r\n")
        eol = line[len(body) :]
        nxt = lines[i + 1].rstrip("\r\n") if i + 1 < n else ""
        fence = _FENCE.match(body)
        if fence:
            i = _code_block(b, lines, i, fence.group(1), options, warnings)
            in_para = False
            continue
        if "|" in body and "|" in nxt and "-" in nxt and _TABLE_SEP.match(nxt):
            i = _table(b, lines, i)
            in_para = False
            continue
        setext = (
            bool(body.strip())
            and in_para is False
            and bool(_SETEXT.match(nxt))
            and "-" not in body[:1]
        )
        if not body.strip():
            b.sep(line, "blank")  # a blank line goes with an emptied paragraph before it
            in_para = False
            i += 1
            continue
        if _HEADING.match(body) or _HRULE.match(body) or _HTML.match(body) or setext:
            b.keep(line)
            if setext:
                b.keep(lines[i + 1])
                i += 1
            in_para = False
            i += 1
            continue
        prefix = _PREFIX.match(body)
        p = prefix.group() if prefix else ""
        if p.strip() or not in_para:
            b.new_block()  # a list item, a quote line or a new paragraph starts a passage
        b.keep(p)
        b.prose(body[len(p) :])
        if p.strip():
            b.keep(eol)  # a list item or quote keeps its marker and its line
        else:
            b.sep(eol, "eol")  # a paragraph line whose prose is all dropped disappears
        in_para = True
        i += 1
    return Doc(b.pieces, warnings)


def _code_block(
    b: _Builder, lines: list[str], i: int, marker: str, options: FormatOptions, warnings: list[str]
) -> int:
    """Keep (or drop) a fenced block whole; returns the index after its closing fence."""
    close = re.compile(r"^ {0,3}" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}[ \t]*$")
    j = i + 1
    while j < len(lines) and not close.match(lines[j].rstrip("\r\n")):
        j += 1
    if j >= len(lines):
        warnings.append(
            f"unterminated code fence at line {i + 1}: the rest of the input is treated as code"
        )
    end = min(j + 1, len(lines))
    if options.code_blocks == "keep":
        b.keep("".join(lines[i:end]))
    else:
        b.sep("".join(lines[i:end]), "drop")
    return end


def _table(b: _Builder, lines: list[str], i: int) -> int:
    """Header and separator verbatim; per body row the first cell and the pipes verbatim, other
    cells prose (one passage each). Ragged rows are fine: cells are whatever the pipes delimit."""
    b.keep(lines[i] + lines[i + 1])
    j = i + 2
    while j < len(lines) and "|" in lines[j] and lines[j].strip():
        line = lines[j]
        body = line.rstrip("\r\n")
        cells = _PIPE.split(body)
        # the row label: the first cell with content (after a leading pipe's empty cell)
        label = 1 if len(cells) > 1 and not cells[0].strip() else 0
        for k, cell in enumerate(cells):
            if k:
                b.keep("|")
            if k <= label:
                b.keep(cell)
            else:
                b.new_block()
                b.prose(cell)
        b.keep(line[len(body) :])
        j += 1
    return j
