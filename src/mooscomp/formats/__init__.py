"""Format-aware compression: Markdown, JSON, code and plain text keep their structure.

``compress_formatted(comp, text, format="auto", rate=...)`` splits the input into structure kept
verbatim and prose, compresses all prose under one global budget (the target minus what the kept
structure costs, counted with ``comp.count``) and reassembles it; see :mod:`mooscomp.formats._core`.

How ``format="auto"`` decides (:func:`detect_format`), first match wins:

1. ``json``: the stripped text starts with ``{`` or ``[``, ends with ``}`` or ``]`` and parses
   with ``json.loads``. Text that does not parse is never taken for JSON.
2. ``markdown``: a code fence, an ATX heading with text, a table header followed by its
   ``|---|`` separator row, two list items on consecutive lines (a blank line between allowed),
   or an inline link ``[text](target)``.
3. ``code``: at least 3 non-blank lines, half of them code-like, and brackets/operators at least
   1.5% of the characters.
4. ``text`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mooscomp.formats._core import (
    Doc,
    FormatOptions,
    FormattedResult,
    compress_doc,
    demote_short_blocks,
)
from mooscomp.formats._prose import prose_context
from mooscomp.formats.code import looks_code, parse_code
from mooscomp.formats.json_fmt import is_json, parse_json
from mooscomp.formats.json_items import cut_points, drop_low_value_items, object_lists
from mooscomp.formats.markdown import looks_markdown, parse_markdown
from mooscomp.formats.text import parse_text

FORMATS = ("auto", "text", "markdown", "json", "code")


def detect_format(text: str) -> str:
    """``json``, ``markdown``, ``code`` or ``text`` (rules in the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if is_json(text):
        return "json"
    if looks_markdown(text):
        return "markdown"
    if looks_code(text):
        return "code"
    return "text"


def parse(text: str, fmt: str, options: FormatOptions, *, cuts: Sequence[int] = ()) -> Doc:
    """The structure/prose pieces of ``text`` read as ``fmt`` (not ``auto``); JSON pieces start
    anew at the offsets ``cuts``."""
    if fmt == "json":
        doc = parse_json(text, options, cuts)
    elif fmt == "markdown":
        doc = parse_markdown(text, options)
    elif fmt == "code":
        doc = parse_code(text, options)
    elif fmt == "text":
        doc = parse_text(text)
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt != "json":  # JSON's parser sets the spans of its (re-encoded) prose itself, and
        _locate(doc, text)  # keeps labels verbatim (each string is its own block)
        demote_short_blocks(doc, options.min_words)
    return doc


def _locate(doc: Doc, text: str) -> None:
    """Set each piece's span: these parsers cut the input into consecutive verbatim pieces."""
    pos = 0
    for p in doc.pieces:
        end = pos + len(p.text)
        if p.prose and text[pos:end] != p.text:
            raise RuntimeError(f"format parser lost its place in the input at offset {pos}")
        p.span = (pos, end)
        pos = end
    if pos != len(text):
        raise RuntimeError(f"format parser covered {pos} of {len(text)} characters")


def _check_input(text: Any, format: Any) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")


@dataclass(frozen=True)
class Parsed:
    """A string read as its format: what :func:`compress_parsed` compresses.

    Attributes:
        text: the input.
        fmt: its format (``auto`` resolved).
        doc: its structure and prose pieces.
        lists: JSON lists whose low-value items may be dropped (``options.json_item_rate``).
        options: the format options it was read with.
    """

    text: str
    fmt: str
    doc: Doc
    lists: list[Any]
    options: FormatOptions

    def prose_context(self) -> str | None:
        """The one context all prose is compressed as (what the encoder reads), so that a caller
        can score it in a shared batch; None when dropping list items will change it first."""
        return None if self.lists else prose_context(self.doc.pieces)[0]


def parse_input(text: str, *, format: str = "auto", options: FormatOptions | None = None) -> Parsed:
    """Read ``text`` as ``format`` (``auto``: detected). Raises TypeError/ValueError on bad input."""
    _check_input(text, format)
    opts = options or FormatOptions()
    if not isinstance(opts, FormatOptions):
        raise TypeError(f"options must be a FormatOptions, got {type(opts).__name__}")
    fmt = detect_format(text) if format == "auto" else format
    lists = object_lists(text) if fmt == "json" and opts.json_item_rate is not None else []
    return Parsed(text, fmt, parse(text, fmt, opts, cuts=cut_points(lists)), lists, opts)


def compress_parsed(
    compressor: Any,
    parsed: Parsed,
    *,
    rate: float | None = None,
    target_tokens: int | None = None,
    force_tokens: Sequence[str] = (),
    question: str | None = None,
    config: Any = None,
    prepared: Any = None,
) -> FormattedResult:
    """Compress a :class:`Parsed` input (see :func:`compress_formatted`). ``prepared``: its
    prose context (:meth:`Parsed.prose_context`) already prepared and scored by the caller, e.g.
    in one forward batch with other prompts (:meth:`mooscomp.Compressor.compress_batch`)."""
    kwargs: dict[str, Any] = {"force_tokens": force_tokens, "question": question}
    if config is not None:
        kwargs["config"] = config
    if parsed.lists:
        drop_low_value_items(compressor, parsed.doc, parsed.text, parsed.lists, parsed.options, rate,
                             target_tokens, kwargs)
    return compress_doc(
        compressor,
        parsed.doc,
        source=parsed.text,
        fmt=parsed.fmt,
        rate=rate,
        target_tokens=target_tokens,
        compress_kwargs=kwargs,
        options=parsed.options,
        prepared=prepared,
    )


def compress_formatted(
    compressor: Any,
    text: str,
    *,
    format: str = "auto",
    rate: float | None = None,
    target_tokens: int | None = None,
    force_tokens: Sequence[str] = (),
    question: str | None = None,
    config: Any = None,
    options: FormatOptions | None = None,
) -> FormattedResult:
    """Compress ``text`` keeping its format's structure; see the module docstring.

    Args:
        compressor: a :class:`mooscomp.Compressor` (anything with ``compress`` and ``count``).
        format: ``auto``, ``text``, ``markdown``, ``json`` or ``code``.
        rate / target_tokens: exactly one; the budget covers the whole output, structure included.
        force_tokens, question, config: passed to ``compressor.compress`` for the prose.
        options: :class:`FormatOptions` (code blocks, comments, over-budget behaviour).

    Raises:
        ValueError: bad arguments; ``format="json"`` with malformed JSON; structure over the
            budget with ``options.over_budget="error"``.
    """
    _check_input(text, format)
    if (rate is None) == (target_tokens is None):
        raise ValueError("give exactly one of rate (in (0, 1]) or target_tokens (> 0)")
    if rate is not None and (isinstance(rate, bool) or not 0.0 < float(rate) <= 1.0):
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    if target_tokens is not None and (isinstance(target_tokens, bool) or int(target_tokens) <= 0):
        raise ValueError(f"target_tokens must be > 0, got {target_tokens!r}")
    return compress_parsed(
        compressor,
        parse_input(text, format=format, options=options),
        rate=rate,
        target_tokens=target_tokens,
        force_tokens=force_tokens,
        question=question,
        config=config,
    )


__all__ = [
    "FORMATS",
    "FormatOptions",
    "FormattedResult",
    "Parsed",
    "compress_formatted",
    "compress_parsed",
    "detect_format",
    "parse_input",
]
