"""Structure/prose split, one global budget over the prose, reassembly.

A parser turns a document into :class:`Piece` s: verbatim structure (markdown markers, table
pipes, JSON keys and punctuation, code) and prose. Every prose piece of the document is compressed
together, as contexts of one :meth:`Compressor.compress` call, under the target minus what the kept
structure costs; the output is rebuilt from the per-word keep masks of that call (so no space is
put between characters of scripts written without spaces) and recounted whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mooscomp._util import check_choice, check_float, check_int
from mooscomp.alignment import _CJK_RE as CJK_RE
from mooscomp.alignment import _THAI_RE as THAI_RE
from mooscomp.alignment import segment_words

_ALL = 2**62  # a prose budget that keeps every word (scores only)
_ALNUM_RUN = re.compile(r"[^\W_]+")  # segment_words' letter/digit runs outside CJK and Thai
_SEGMENTED = re.compile(f"{CJK_RE.pattern}|{THAI_RE.pattern}")


@dataclass
class Piece:
    """One part of a document.

    Attributes:
        text: verbatim text (structure) or the prose to compress (for JSON: the decoded string).
        prose: compressible.
        block: prose pieces with the same block id are one passage (a paragraph, a cell).
        encode: how prose is written back: ``raw`` or as a JSON string literal (``json`` keeps
            non-ASCII characters, ``json_ascii`` escapes them as the input did).
        sep: ``eol``: a line or paragraph break left out when its line's prose was dropped
            whole; ``blank``: a blank line left out right after such a line; ``drop``: input
            left out of the output (a markdown code block dropped whole).
        span: where the piece is in the input, ``(start, end)``; for JSON prose the string
            literal with its quotes. Set by :func:`mooscomp.formats.parse`; it places the per-word
            ``details`` of the result on the input.
    """

    text: str
    prose: bool = False
    block: int = -1
    encode: Literal["raw", "json", "json_ascii"] = "raw"
    sep: Literal["", "eol", "blank", "drop"] = ""
    span: tuple[int, int] | None = None


@dataclass
class Doc:
    pieces: list[Piece]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FormatOptions:
    """How structured input is treated.

    Attributes:
        min_words: prose blocks (a table cell, a list item, a JSON string) with fewer words, or
            name-like ones (mostly capitalised, at most 12 words), are kept verbatim: identifiers,
            titles, labels and figures carry the structure's meaning.
        code_blocks: markdown code blocks are kept verbatim (``keep``) or dropped whole (``drop``);
            never cut inside.
        code: ``verbatim`` keeps code as is; ``comments`` compresses comments and docstrings only.
        over_budget: when the kept structure alone exceeds the target: ``warn`` returns the
            structure (``target_missed`` set, a warning), ``error`` raises ValueError.
        max_passes: most compression passes; a later pass corrects the prose budget by the
            miss of the reassembled text (counts are not additive across piece boundaries).
        json_layout: ``compact`` drops the whitespace between JSON tokens when compressing
            (insignificant in JSON, about half the structure's tokens of an indented document,
            budget the prose gets instead); ``keep`` keeps the layout byte for byte.
        json_item_rate: ``None`` keeps every item of JSON lists; a share in (0, 1] keeps that
            share (rounded up, at least one) of the items of each list of objects, dropping the
            lowest-value items whole (:mod:`mooscomp.formats.json_items`) when the budget does
            not cover the whole input.
    """

    min_words: int = 4
    code_blocks: Literal["keep", "drop"] = "keep"
    code: Literal["verbatim", "comments"] = "verbatim"
    over_budget: Literal["warn", "error"] = "warn"
    max_passes: int = 6
    json_layout: Literal["compact", "keep"] = "compact"
    json_item_rate: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        check_int("min_words", self.min_words, 1, 10_000)
        check_choice("code_blocks", self.code_blocks, ("keep", "drop"))
        check_choice("code", self.code, ("verbatim", "comments"))
        check_choice("over_budget", self.over_budget, ("warn", "error"))
        check_int("max_passes", self.max_passes, 1, 10)
        check_choice("json_layout", self.json_layout, ("compact", "keep"))
        if self.json_item_rate is not None:
            check_float("json_item_rate", self.json_item_rate, 0.0, 1.0, low_open=True)


@dataclass(frozen=True)
class FormattedResult:
    """Compressed structured text and its accounting.

    Attributes:
        text: the compressed document (same format as the input).
        format: the format used (``auto`` resolved).
        origin_tokens / compressed_tokens: counts of the input / output with the compressor's
            counter.
        target_tokens: the budget asked for (rate x origin, or target_tokens).
        structure_tokens: what the verbatim structure costs on its own.
        rate / ratio: compressed / origin and its inverse.
        target_missed: the output is more than 2% (at least 1 token) away from the target.
        warnings: why the target was missed, and other notes (unterminated fence, ...).
        details: one :class:`~mooscomp.result.ContextScores` over the input (structure words
            forced, prose words as scored and selected; :mod:`mooscomp.formats.details`), as
            every :class:`~mooscomp.result.CompressionResult` has.
    """

    text: str
    format: str
    origin_tokens: int
    compressed_tokens: int
    target_tokens: float
    structure_tokens: int
    rate: float
    ratio: float
    target_missed: bool
    warnings: tuple[str, ...] = ()
    details: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "compressed_prompt": self.text,
            "format": self.format,
            "origin_tokens": self.origin_tokens,
            "compressed_tokens": self.compressed_tokens,
            "target_tokens": self.target_tokens,
            "structure_tokens": self.structure_tokens,
            "rate": self.rate,
            "ratio": self.ratio,
            "target_missed": self.target_missed,
            "warnings": list(self.warnings),
        }

    def __str__(self) -> str:
        return self.text


def is_label(text: str, min_words: int) -> bool:
    """Short (< ``min_words`` words) or name-like (at most 12 words, 70% of them capitalised or
    numbers: "Basaveshvara Engineering College"): kept verbatim as a label, not prose."""
    if _SEGMENTED.search(text):  # CJK / Thai: the segmenter's words
        words = [w for w in segment_words(text).tolist() if w[:1].isalnum()]
    else:  # the segmenter's letter/digit runs, in one C call (big JSON has ~1M values)
        words = _ALNUM_RUN.findall(text)
    if len(words) < min_words:
        return True
    caps = sum(w[:1].isupper() or w[:1].isdigit() for w in words)
    return len(words) <= 12 and caps >= 0.7 * len(words)


def demote_short_blocks(doc: Doc, min_words: int) -> None:
    """Prose blocks that are labels (:func:`is_label`) become verbatim structure."""
    texts: dict[int, list[str]] = {}
    for p in doc.pieces:
        if p.prose:
            texts.setdefault(p.block, []).append(p.text)
    label = {b: is_label(" ".join(t), min_words) for b, t in texts.items()}
    for i, p in enumerate(doc.pieces):
        if p.prose and label[p.block]:
            doc.pieces[i] = Piece(_encode(p.text, p.encode), span=p.span)


def _encode(text: str, how: str) -> str:
    if how == "raw":
        return text
    return json.dumps(text, ensure_ascii=(how == "json_ascii"))


def assemble(pieces: Sequence[Piece], prose_out: Sequence[str]) -> str:
    """The document with every prose piece replaced by ``prose_out`` (in order).

    An ``eol`` break is left out when nothing visible was written on its line (the line's prose
    was dropped whole), and ``blank`` lines right after such a line go with it.
    """
    out: list[str] = []
    k = 0
    visible = False  # something visible written on the current line
    dropped = True  # the previous line was left out (or nothing was written yet)
    for p in pieces:
        if p.prose:
            s = prose_out[k]
            k += 1
            out.append(_encode(s, p.encode))
            visible = visible or bool(s) or p.encode != "raw"
        elif p.sep == "eol":
            if visible:
                out.append(p.text)
            dropped, visible = not visible, False
        elif p.sep == "blank":
            if not dropped:
                out.append(p.text)
        elif p.sep == "drop":
            continue
        else:
            out.append(p.text)
            visible = visible or bool(p.text.strip())
            if p.text.endswith("\n"):
                dropped, visible = False, False
    return "".join(out)


def compress_doc(
    comp: Any,
    doc: Doc,
    *,
    source: str,
    fmt: str,
    rate: float | None,
    target_tokens: int | None,
    compress_kwargs: dict[str, Any],
    options: FormatOptions,
    prepared: Any = None,
) -> FormattedResult:
    """Compress the prose of ``doc`` under (target - structure cost) and reassemble.
    ``prepared``: the prose context already prepared and scored (see ``_prose.selector``)."""
    from mooscomp.formats._prose import prose_context, rebuild, selector
    from mooscomp.formats.details import source_details

    count: Callable[[str], int] = comp.count
    origin = int(count(source)) if source.strip() else 0
    target = float(target_tokens) if target_tokens is not None else float(rate or 1.0) * origin
    warnings = list(doc.warnings)
    pieces = doc.pieces
    n_prose = sum(p.prose for p in pieces)
    skeleton = assemble(pieces, [""] * n_prose)
    structure = int(count(skeleton)) if skeleton.strip() else 0
    context, spans = prose_context(pieces)

    def details(res: Any, kept: np.ndarray | None = None) -> tuple[Any, ...]:
        prose = res.details[0] if res is not None else None
        return (source_details(source, pieces, spans, prose, prose_kept=kept),)

    if n_prose == 0 or origin == 0:
        if 0 < origin and target < origin:
            warnings.append(
                f"nothing compressible in this {fmt} input (all of it is kept "
                f"verbatim); the output is the input: {origin} tokens for a target of "
                f"{target:.0f}"
            )
        return _finish(source, fmt, origin, origin, target, structure, warnings, count,
                       explained=True, details=details(None))
    if structure >= target - 0.5 and target < origin:
        msg = (
            f"the {fmt} structure kept verbatim costs {structure} tokens, over the target of "
            f"{target:.0f}: all prose{' but the force tokens' if compress_kwargs.get('force_tokens') else ''}"
            " is dropped and the target is missed"
        )
        if options.over_budget == "error":
            raise ValueError(msg + "; raise the rate/target or pass over_budget='warn'")
        warnings.append(msg)
    kwargs = dict(compress_kwargs)
    cfg = kwargs.pop("config", None) or comp.config
    if getattr(cfg, "use_context_level_filter", False):
        cfg = cfg.replace(use_context_level_filter=False)
    run = selector(comp, context, cfg, kwargs, prepared=prepared)
    if target >= origin:  # everything fits: the input, with its words' scores
        return _finish(source, fmt, origin, origin, target, structure, warnings, count,
                       details=details(run(_ALL)))
    if structure >= target - 0.5:
        res = run(_ALL)
        if not np.asarray(res.details[0].forced).any():
            return _finish(skeleton, fmt, origin, None, target, structure, warnings, count,
                           explained=True,
                           details=details(res, np.zeros(len(res.details[0].words), bool)))
        res = run(1)  # force tokens are kept whatever the budget: the prose keeps only them
        return _finish(assemble(pieces, rebuild(res, spans)), fmt, origin, None, target, structure,
                       warnings, count, explained=True, details=details(res))
    text, res = _fit_prose(run, lambda r: assemble(pieces, rebuild(r, spans)), count, target,
                           target - structure, options.max_passes)
    return _finish(text, fmt, origin, None, target, structure, warnings, count, details=details(res))


def _fit_prose(
    run: Callable[[int], Any], render: Callable[[Any], str], count: Callable[[str], int],
    target: float, budget: float, max_passes: int,
) -> tuple[str, Any]:
    """(document text, prose result) whose count is closest to ``target``: the prose budget
    starts at ``budget`` (target - structure cost) and is corrected by each pass's miss."""
    best: tuple[float, str, Any] | None = None
    lo, hi = 0.0, float("inf")  # prose budgets known to give <= target / > target
    for _ in range(max_passes):
        b = max(1, int(round(budget)))
        res = run(b)
        text = render(res)
        got = int(count(text))
        if best is None or abs(got - target) < best[0]:
            best = (abs(got - target), text, res)
        if abs(got - target) <= _tolerance(target):
            break
        # counts are not additive at piece boundaries and rebuilt CJK has no spaces: correct the
        # prose budget by the miss, bisecting once the target is bracketed
        if got <= target:
            lo = max(lo, b)
        else:
            hi = min(hi, b)
        nxt = b + (target - got)
        if lo < nxt < hi:
            budget = nxt
        elif hi - lo > 1 and hi < float("inf"):
            budget = (lo + hi) / 2
        else:
            break
        if max(1, int(round(budget))) == b:
            break
    assert best is not None
    return best[1], best[2]


def _tolerance(target: float) -> float:
    return max(0.02 * target, 1.0)


def _finish(
    text: str,
    fmt: str,
    origin: int,
    compressed: int | None,
    target: float,
    structure: int,
    warnings: list[str],
    count: Callable[[str], int],
    *,
    explained: bool = False,
    details: tuple[Any, ...] = (),
) -> FormattedResult:
    got = compressed if compressed is not None else (int(count(text)) if text.strip() else 0)
    missed = origin > 0 and abs(got - min(target, origin)) > _tolerance(min(target, origin))
    if missed and not explained:
        warnings.append(
            f"target missed: {got} tokens for a target of {target:.0f} (the closest found; the "
            "smallest units here cost several tokens, or the counts did not converge)"
        )
    return FormattedResult(
        text=text,
        format=fmt,
        origin_tokens=origin,
        compressed_tokens=got,
        target_tokens=float(target),
        structure_tokens=structure,
        rate=got / origin if origin else 1.0,
        ratio=origin / got if got else (1.0 if origin == 0 else float("inf")),
        target_missed=bool(missed),
        warnings=tuple(warnings),
        details=details,
    )


__all__ = ["Doc", "FormatOptions", "FormattedResult", "Piece", "compress_doc"]
