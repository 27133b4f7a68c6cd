"""The ``format=`` option of :meth:`Compressor.compress`: which path one prompt takes.

``auto`` is the default of the library, the CLI, the service and the LangChain/LlamaIndex
adapters: it detects the format of a string (:func:`mooscomp.formats.detect_format`); plain prose
with no paragraph break and not written mainly without spaces takes the raw path, so it compresses
exactly as ``raw`` (only the target check is added); a list of contexts under ``auto`` is
compressed raw. ``raw`` is the task-agnostic algorithm on the whole input, word by word (what
every version before the option did): it equals what the staged API, the batch engines and the
llmlingua facade's default produce. The structured formats (:mod:`mooscomp.formats`) keep their
structure verbatim and compress the prose under one global budget; their results carry the same
fields, per-word ``details`` over the input included (:mod:`mooscomp.formats.details`).

Every path but an explicit ``raw`` checks the target: a result more than 2% (and 1 token) away from
it has ``target_missed`` set, says why in ``warnings``, and a :class:`TargetMissedWarning` is
issued (filter it with the :mod:`warnings` module).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from mooscomp.config import Request
from mooscomp.result import CompressionResult, TargetMissedWarning

FORMATS = ("auto", "raw", "text", "markdown", "json", "code")
RAW = "raw"
PLAIN = "plain"  # route: plain text through the raw path, with the target check

__all__ = ["FORMATS", "TargetMissedWarning", "check_format", "route"]


def check_format(format: Any) -> str:
    if not isinstance(format, str) or format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    return format


def route(x: Any, format: str) -> str:
    """``raw``, ``plain`` or the structured format (``text``/``markdown``/``json``/``code``) one
    prompt ``x`` (a str, or a list of contexts) is compressed with."""
    if format == RAW:
        return RAW
    if not isinstance(x, str):
        if format == "auto":
            return RAW  # several contexts: one budget over all of them, as before
        raise ValueError(
            f"format={format!r} applies to one text (a str); for a list of contexts "
            "use format='auto' or 'raw' (compressed raw under one budget), or "
            "compress each context on its own"
        )
    from mooscomp.formats import detect_format

    fmt = detect_format(x) if format == "auto" else format
    return PLAIN if fmt == "text" and _plain(x) else fmt


def _plain(text: str) -> bool:
    """No paragraph break, not mainly a script without spaces (or only whitespace): the text
    format would only add its label and budget rules to the raw path, so the raw path it is."""
    from mooscomp.alignment import _mostly_nospace
    from mooscomp.formats.text import _PARA_BREAK

    if not text.strip():
        return True
    return _PARA_BREAK.search(text) is None and not _mostly_nospace(text)


def parse_structured(text: str, fmt: str, options: Any) -> Any:
    """``text`` read as the structured format ``fmt`` (:func:`mooscomp.formats.parse_input`)."""
    from mooscomp.formats import parse_input

    return parse_input(text, format=fmt, options=options)


def compress_structured(
    comp: Any, parsed: Any, request: Request, config: Any, *, prepared: Any = None
) -> CompressionResult:
    """One parsed string (:func:`parse_structured`) through
    :func:`mooscomp.formats.compress_parsed`, as a CompressionResult; ``prepared``: its prose
    context already scored in the caller's shared forward batch."""
    from mooscomp.formats import compress_parsed

    fr = compress_parsed(
        comp,
        parsed,
        rate=request.rate,
        target_tokens=request.target_tokens,
        force_tokens=request.force_tokens,
        question=request.question,
        config=config,
        prepared=prepared,
    )
    return CompressionResult(
        text=fr.text,
        contexts=(fr.text,),
        context_kept=(True,),
        origin_tokens=int(fr.origin_tokens),
        compressed_tokens=int(fr.compressed_tokens),
        rate=float(fr.rate),
        ratio=float(fr.ratio),
        format=fr.format,
        details=tuple(fr.details),
        target_missed=bool(fr.target_missed),
        warnings=tuple(fr.warnings),
    )


def check_target(res: CompressionResult, request: Request, budget: str) -> CompressionResult:
    """``res`` of plain text (raw path) with ``format="text"`` and the target check."""
    origin, got = res.origin_tokens, res.compressed_tokens
    if request.rate is not None:
        target = float(request.rate) * origin
    else:
        target = float(request.target_tokens or 0)
    goal = min(target, float(origin))
    missed = origin > 0 and abs(got - goal) > max(0.02 * goal, 1.0)  # the formats' tolerance
    notes: tuple[str, ...] = ()
    if missed:
        why = (
            "budget='llmlingua2' selects per chunk, as LLMLingua-2 does, and is not exact"
            if budget == "llmlingua2"
            else "the closest the word units allow: forced words or multi-token units"
        )
        notes = (f"target missed: {got} tokens for a target of {target:.0f} ({why})",)
    return CompressionResult(
        text=res.text,
        contexts=res.contexts,
        context_kept=res.context_kept,
        origin_tokens=origin,
        compressed_tokens=got,
        rate=res.rate,
        ratio=res.ratio,
        details=res.details,
        format="text",
        target_missed=bool(missed),
        warnings=notes,
    )


def warn_missed(results: Sequence[CompressionResult]) -> None:
    """One :class:`TargetMissedWarning` per result that missed its target (attributed to the
    caller of ``compress_batch``)."""
    for r in results:
        if r.target_missed:
            msg = "; ".join(r.warnings) or "target missed"
            warnings.warn(f"mooscomp: {msg}", TargetMissedWarning, stacklevel=3)
