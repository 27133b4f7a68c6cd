"""The result of one compression call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mooscomp.alignment import Words


@dataclass(frozen=True)
class ContextScores:
    """Per-word details of one context (arrays have shape (n_words,))."""

    words: Words
    kept: np.ndarray  # bool
    keep_prob: np.ndarray  # float32, classifier P(keep), averaged over sub-tokens
    outlier_z: np.ndarray  # float32, standardised outlier score
    score: np.ndarray  # float32, fused score used for selection
    forced: np.ndarray  # bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "words": self.words.tolist(),
            "kept": self.kept.tolist(),
            "keep_prob": np.round(self.keep_prob.astype(float), 4).tolist(),
            "outlier_z": np.round(self.outlier_z.astype(float), 4).tolist(),
            "score": np.round(self.score.astype(float), 4).tolist(),
        }


@dataclass(frozen=True)
class CompressionResult:
    """Compressed prompt and its accounting.

    Attributes:
        text: the compressed prompt (contexts joined by a blank line), in the input's own words and
            casing.
        contexts: compressed text of every input context ("" where the context filter dropped it).
        context_kept: whether each context survived the context-level filter.
        origin_tokens: token count of the input (sum over contexts) with the compressor's counter.
        compressed_tokens: token count of the compressed contexts (sum over kept contexts).
        rate: compressed_tokens / origin_tokens (1.0 for an empty input).
        ratio: origin_tokens / compressed_tokens (1.0 for an empty input).
        details: per-context word scores and masks. A structured format has one, over the whole
            input: its structure words forced and kept (``keep_prob``/``score`` 1), its prose
            words as scored and selected (:mod:`mooscomp.formats.details`).
        format: the path taken (``format=`` of :meth:`mooscomp.Compressor.compress`, ``auto``
            resolved): ``raw`` (word by word over the whole input), ``text``, ``markdown``,
            ``json`` or ``code``.
        target_missed: the output is more than 2% (and 1 token) away from the target; never set
            by ``raw``, which checks nothing (as before the option existed).
        warnings: why the target was missed, and notes on the input (an unterminated fence, ...).
    """

    text: str
    contexts: tuple[str, ...]
    context_kept: tuple[bool, ...]
    origin_tokens: int
    compressed_tokens: int
    rate: float
    ratio: float
    details: tuple[ContextScores, ...] = field(default=(), repr=False)
    format: str = "raw"
    target_missed: bool = False
    warnings: tuple[str, ...] = ()

    def to_dict(self, *, include_scores: bool = False) -> dict[str, Any]:
        """A JSON-ready dict with llmlingua's keys (numbers as numbers)."""
        d: dict[str, Any] = {
            "compressed_prompt": self.text,
            "compressed_prompt_list": [c for c, k in zip(self.contexts, self.context_kept, strict=True) if k],
            "origin_tokens": self.origin_tokens,
            "compressed_tokens": self.compressed_tokens,
            "rate": self.rate,
            "ratio": self.ratio,
            "contexts": list(self.contexts),
            "context_kept": list(self.context_kept),
        }
        if self.format != "raw" or self.target_missed or self.warnings:  # raw: keys as before
            d["format"] = self.format
            d["target_missed"] = self.target_missed
            d["warnings"] = list(self.warnings)
        if include_scores:
            d["details"] = [c.to_dict() for c in self.details]
        return d

    def to_row(self) -> dict[str, Any]:
        """The one output row of engines (batch, pipeline, service): llmlingua's names for the
        text and counts, plus ``error`` (None here; see :func:`error_row`)."""
        return {
            "compressed_prompt": self.text,
            "origin_tokens": int(self.origin_tokens),
            "compressed_tokens": int(self.compressed_tokens),
            "rate": float(self.rate),
            "ratio": float(self.ratio),
            "error": None,
        }

    def __str__(self) -> str:
        return self.text


class TargetMissedWarning(UserWarning):
    """A compression came out more than 2% (and 1 token) away from its target; the result's
    ``target_missed`` and ``warnings`` say so too."""


ROW_KEYS = ("compressed_prompt", "origin_tokens", "compressed_tokens", "rate", "ratio", "error")


def error_row(error: str | None) -> dict[str, Any]:
    """A row with the keys of :meth:`CompressionResult.to_row`: no result, and why."""
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row["error"] = error
    return row


def assemble(
    out: list[str],
    kept_ctx: list[bool],
    origin: int,
    compressed: int,
    details: tuple[ContextScores, ...],
) -> CompressionResult:
    """A result from per-context texts and counts (contexts joined by a blank line)."""
    text = "\n\n".join(t for t, k in zip(out, kept_ctx, strict=True) if k and t)
    rate = compressed / origin if origin else 1.0
    ratio = origin / compressed if compressed else (1.0 if origin == 0 else float("inf"))
    return CompressionResult(
        text=text,
        contexts=tuple(out),
        context_kept=tuple(kept_ctx),
        origin_tokens=int(origin),
        compressed_tokens=int(compressed),
        rate=float(rate),
        ratio=float(ratio),
        details=details,
    )
