"""``caps_digits``: a lexical baseline with no model (issue 15). A word scores 2 when it starts
upper-case or holds a digit, plus len(word) / 20; the highest-scoring words are kept until
``rate`` of the cl100k tokens are used. It shows how much of a learned compressor's gain names,
numbers and long words alone explain."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mooscomp.evaluation.methods.base import BuildContext, select_words
from mooscomp.evaluation.tasks import EvalItem


def caps_digits_scores(words: Sequence[str]) -> np.ndarray:
    """(n_words,) float64: 2 for a capitalised word or one with a digit, plus len(word) / 20."""
    return np.fromiter(
        (
            (2.0 if (w[:1].isupper() or any(ch.isdigit() for ch in w)) else 0.0) + len(w) / 20.0
            for w in words
        ),
        dtype=np.float64,
        count=len(words),
    )


class CapsDigits:
    names = ("caps_digits",)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        return {"caps_digits": select_words(items, rates, lambda _it, w, _r: caps_digits_scores(w))}


def build(ctx: BuildContext) -> CapsDigits:
    return CapsDigits()
