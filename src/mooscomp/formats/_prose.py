"""The prose of a document as one context: built, selected under a budget, cut back into pieces.

Prose pieces of one block are joined by a space in the compressed context (the encoder reads them
as one passage); blocks by a newline (a sentence end for the chunker and the unit rules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mooscomp.formats.cjk import join_kept_words

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.formats._core import Piece

_BLOCK_SEP = "\n"
_PIECE_SEP = " "


def prose_context(pieces: Sequence[Piece]) -> tuple[str, list[tuple[int, int]]]:
    """One context string of all prose, and each prose piece's span in it."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos, prev_block = 0, None
    for p in pieces:
        if not p.prose:
            continue
        if parts:
            sep = _PIECE_SEP if p.block == prev_block else _BLOCK_SEP
            parts.append(sep)
            pos += len(sep)
        parts.append(p.text)
        spans.append((pos, pos + len(p.text)))
        pos += len(p.text)
        prev_block = p.block
    return "".join(parts), spans


def rebuild(res: Any, spans: list[tuple[int, int]]) -> list[str]:
    """Each prose piece's kept words, from the keep mask of the single compressed context."""
    d = res.details[0]
    words, kept = d.words, np.asarray(d.kept, dtype=bool)
    out = []
    for a, b in spans:
        lo = int(np.searchsorted(words.starts, a, side="left"))
        hi = int(np.searchsorted(words.starts, b, side="left"))
        out.append(join_kept_words(words, kept, lo, hi))
    return out


def selector(
    comp: Any, context: str, cfg: Any, kwargs: dict[str, Any], *, prepared: Any = None
) -> Callable[[int], Any]:
    """budget -> CompressionResult of the prose context. With the public stages
    (``prepare`` -> ``score`` -> ``select``) the encoder runs once and each correction pass only
    re-selects; otherwise every pass is a full ``compress`` call. ``prepared``: the context
    already prepared and scored by the caller with the same config and question (one forward
    batch shared with other prompts); used when it is this very context."""
    try:
        from mooscomp.config import Request
        from mooscomp.stages import as_contexts
    except ImportError:  # an older mooscomp without the staged API
        return lambda b: comp.compress([context], target_tokens=b, config=cfg, **kwargs)
    if not all(hasattr(comp, a) for a in ("prepare", "score", "select")):
        return lambda b: comp.compress([context], target_tokens=b, config=cfg, **kwargs)
    question = kwargs.get("question")
    if prepared is not None and prepared.p_tok is not None and prepared.words.text == context:
        ctxs = [prepared]
    else:
        ctxs = [comp.prepare(as_contexts([context], cfg.max_input_chars)[0], cfg)]
        # with a question: the question-aware forward (relevance states), see Compressor.score
        comp.score(ctxs, cfg, **({"question": question} if question else {}))
    force = tuple(kwargs.get("force_tokens") or ())
    return lambda b: comp.select(
        ctxs, cfg, Request(target_tokens=b, force_tokens=force, question=question)
    )
