"""The document a teacher labels and the protocol every teacher follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class Document:
    """One document to label. ``units``: optional precomputed unit ids (one per word)."""

    doc_id: str
    text: str
    source: str = ""
    units: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Teacher(Protocol):
    """Anything that turns documents into 0/1 (or -1 = unlabelled) labels per word."""

    def describe(self) -> dict[str, Any]: ...

    def label_batch(self, docs: Sequence[Document]) -> list[np.ndarray]: ...
