"""``TrainConfig``: the hyper-parameters of one training run, validated on construction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mooscomp._util import check_float, check_int
from mooscomp.word_shape import FEATURES, check_features

_MAX = 2**31 - 1


def _check_below(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    """``check_float`` with the upper bound excluded: [low, high) or (low, high)."""
    check_float(name, value, low, high, low_open=low_open)
    if value >= high:
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}), got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (validated on construction).

    ``trainable_top_layers``: None trains everything; k trains only the top k encoder layers and
    the head (what delta storage ships, ~k * 3.5 MB in fp16 for MiniLM-L6).
    ``val_fraction`` = 0 trains on all documents without validation or early stopping.
    ``word_shape``: names from :data:`mooscomp.word_shape.FEATURES` fed to the head beside the
    encoder states (empty = none, the original architecture); their logit table learns at
    ``lr * shape_lr_scale`` (it starts at zero and must reach offsets of a few units).
    Every invalid field raises ValueError naming ``TrainConfig.<field>``.
    """

    encoder: str
    beta: float = 0.0
    lr: float = 5e-5
    epochs: int = 3
    batch_size: int = 16
    max_length: int = 512
    seed: int = 0
    val_fraction: float = 0.1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    trainable_top_layers: int | None = None
    patience: int | None = 2
    dropout: float = 0.1
    word_shape: tuple[str, ...] = ()
    shape_lr_scale: float = 100.0
    device: str = "auto"

    def __post_init__(self) -> None:
        try:
            self._validate()
        except TypeError as e:  # one error type for callers: a wrong type is a bad value too
            raise ValueError(str(e)) from None

    def _validate(self) -> None:
        n = "TrainConfig."
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"{n}encoder must be a non-empty path string, got {self.encoder!r}")
        check_float(n + "beta", self.beta, 0.0, 100.0)
        _check_below(n + "lr", self.lr, 0.0, 1.0, low_open=True)
        check_int(n + "epochs", self.epochs, 1, 1000)
        check_int(n + "batch_size", self.batch_size, 1, 4096)
        check_int(n + "max_length", self.max_length, 8, 8192)
        check_int(n + "seed", self.seed, 0, _MAX)
        check_float(n + "val_fraction", self.val_fraction, 0.0, 0.5)
        _check_below(n + "warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        check_float(n + "weight_decay", self.weight_decay, 0.0, 1.0)
        if self.grad_clip is not None:
            check_float(n + "grad_clip", self.grad_clip, 0.0, math.inf, low_open=True)
        if self.trainable_top_layers is not None:
            check_int(n + "trainable_top_layers", self.trainable_top_layers, 1, _MAX)
        if self.patience is not None:
            check_int(n + "patience", self.patience, 1, _MAX)
        _check_below(n + "dropout", self.dropout, 0.0, 1.0)
        if not isinstance(self.word_shape, tuple):
            raise ValueError(f"{n}word_shape must be a tuple of feature names, got {self.word_shape!r}")
        check_float(n + "shape_lr_scale", self.shape_lr_scale, 0.0, 1e6, low_open=True)
        try:
            ordered = check_features(self.word_shape)
        except ValueError as e:
            raise ValueError(f"{n}word_shape: {e}") from None
        if ordered != self.word_shape:
            raise ValueError(f"{n}word_shape must list features in the order {FEATURES}, got {self.word_shape!r}")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise ValueError(f"{n}device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        kw = dict(d)
        if isinstance(kw.get("word_shape"), list):  # JSON round trip
            kw["word_shape"] = tuple(kw["word_shape"])
        return cls(**kw)
