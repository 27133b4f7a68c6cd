"""Reference methods that need no model: the full context, the head, random words."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from mooscomp.evaluation.methods.base import BuildContext, cl100k, joined, select_words
from mooscomp.evaluation.tasks import EvalItem


class FullContext:
    """No compression (the reference row of every table)."""

    names = ("full",)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        return {"full": [[joined(it) for it in items] for _ in rates]}


class Truncate:
    """Keep the first ``rate`` share of cl100k tokens of the joined contexts."""

    names = ("truncate",)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        enc = cl100k()
        ids = enc.encode_ordinary_batch([joined(it) for it in items])
        out = [[enc.decode(t[: int(round(r * len(t)))]).strip() for t in ids] for r in rates]
        return {"truncate": out}


class RandomDrop:
    """Drop random words (seeded per item and rate) until ``rate`` of the tokens remain."""

    names = ("random",)

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = int(seed)

    def _values(self, item: EvalItem, words: list[str], rate: float) -> np.ndarray:
        key = zlib.crc32(f"{self.seed}|{item.item_id}|{rate:.4f}".encode())
        return np.random.default_rng(key).random(len(words))

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        return {"random": select_words(items, rates, self._values)}


def build_full(ctx: BuildContext) -> FullContext:
    return FullContext()


def build_truncate(ctx: BuildContext) -> Truncate:
    return Truncate()


def build_random(ctx: BuildContext) -> RandomDrop:
    return RandomDrop(seed=ctx.options.seed)
