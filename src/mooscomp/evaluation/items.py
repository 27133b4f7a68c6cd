"""An evaluation item: the compressible contexts, the never-compressed question, the gold answers;
and the items file format (JSON lines, gzipped when the name ends in ``.gz``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mooscomp._util import iter_jsonl, open_text

TASKS = ("squad", "hotpotqa", "xsum", "bbh", "needle")  # the default tasks of ``bench prepare``
# Tasks built only when asked for (``bench prepare --tasks ...,hotpotqa_long``).
OPTIONAL_TASKS = ("hotpotqa_long",)
ALL_TASKS = TASKS + OPTIONAL_TASKS
# Scoring family of each task: "qa" (EM/F1 + answer survival), "rouge", "choice", "needle".
TASK_METRIC = {
    "squad": "qa",
    "hotpotqa": "qa",
    "hotpotqa_long": "qa",
    "xsum": "rouge",
    "bbh": "choice",
    "needle": "needle",
}


@dataclass(frozen=True)
class EvalItem:
    """One evaluation question.

    Attributes:
        task: task name (one of :data:`ALL_TASKS`).
        item_id: unique id ("task/source-id").
        contexts: the compressible part, compressed as a list of contexts under one budget.
        question: never compressed (question, or the test question of a few-shot prompt).
        answers: gold answers (QA/needle), reference summaries (xsum) or the gold letter (bbh).
        kind: prompt template key: "qa", "summary", "fewshot" or "needle".
        meta: free-form provenance (source ids, gold position, lengths).
    """

    task: str
    item_id: str
    contexts: tuple[str, ...]
    question: str
    answers: tuple[str, ...]
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in ALL_TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {ALL_TASKS}")
        if self.kind not in ("qa", "summary", "fewshot", "needle"):
            raise ValueError(f"unknown kind {self.kind!r}")
        if not self.contexts or not all(isinstance(c, str) for c in self.contexts):
            raise ValueError(f"{self.item_id}: contexts must be a non-empty tuple of str")
        if not self.answers:
            raise ValueError(f"{self.item_id}: answers must not be empty")
        object.__setattr__(self, "contexts", tuple(self.contexts))
        object.__setattr__(self, "answers", tuple(self.answers))

    @property
    def metric(self) -> str:
        return TASK_METRIC[self.task]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "item_id": self.item_id,
            "contexts": list(self.contexts),
            "question": self.question,
            "answers": list(self.answers),
            "kind": self.kind,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalItem:
        return cls(
            task=d["task"],
            item_id=d["item_id"],
            contexts=tuple(d["contexts"]),
            question=d["question"],
            answers=tuple(d["answers"]),
            kind=d["kind"],
            meta=dict(d.get("meta") or {}),
        )


def save_items(items: Sequence[EvalItem], path: str | Path) -> None:
    """Write items as (gzipped when the name ends in .gz) JSON lines."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open_text(p, "wt") as f:
        for it in items:
            f.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")


def load_items(path: str | Path) -> list[EvalItem]:
    """Items written by :func:`save_items` (a line that is not valid JSON is an error)."""
    return [EvalItem.from_dict(d) for d in iter_jsonl(path, strict=True)]
