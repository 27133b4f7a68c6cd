"""Leakage filter of the modern corpus: normalised-sentence hashes of every evaluation and reserved set.

A training document is dropped when one of its sentences of 6+ words (lower-cased, punctuation
removed, whitespace collapsed) also occurs in an evaluation set, a reserved BIG-bench task, or a set
whose passages are evaluation passages (``disfl_qa``, ``question_selection``). Wikipedia entries are
also dropped by title when the title is a SQuAD v2 dev or HotpotQA dev article. Hashes, not
sentences, are kept in memory (8-byte blake2b) so the filter fits easily and can be recorded.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MIN_SENT_WORDS = 6
_SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
_NON_WORD = re.compile(r"[^\w\s]")

# Never used for anything (issue 15): the first three are reserved outright; the rest contain
# evaluation passages (SQuAD v2 dev) or are evaluation sets themselves.
RESERVED_BIGBENCH = (
    "contextual_parametric_knowledge_conflicts",
    "natural_instructions/subtask001_quoref_question_generation",
    "natural_instructions/subtask002_quoref_answer_generation",
)
NEVER_TRAIN_BIGBENCH = ("disfl_qa", "question_selection", "gem/xsum")
# BIG-bench tasks the evaluation reads (mooscomp.evaluation.tasks: xsum + BBH_TASKS); BBH task
# names may be sub-task paths, the filter reads every task.json under the top folder.
EVAL_BIGBENCH_TOP = (
    "gem/xsum", "date_understanding", "disambiguation_qa", "logical_deduction",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects",
)  # fmt: skip
# Non-BIG-bench evaluation sets: name -> what reads them.
EVAL_SETS = ("squad_v2_dev", "hotpotqa_dev_distractor", "pg_eval_essays")
# Every evaluation task of mooscomp.evaluation.tasks.TASKS and the filter entries that cover it.
TASK_COVERAGE = {
    "squad": ("squad_v2_dev",),
    "hotpotqa": ("hotpotqa_dev_distractor",),
    "xsum": ("bigbench/gem/xsum",),
    "bbh": tuple(f"bigbench/{t}" for t in EVAL_BIGBENCH_TOP if t != "gem/xsum"),
    "needle": ("pg_eval_essays",),
}


def normalise(sentence: str) -> str:
    return " ".join(_NON_WORD.sub(" ", sentence.lower()).split())


def sentences(text: str) -> Iterator[str]:
    """Normalised sentences of at least ``MIN_SENT_WORDS`` words."""
    for s in _SENT_SPLIT.split(text):
        n = normalise(s)
        if n.count(" ") >= MIN_SENT_WORDS - 1:
            yield n


def sent_hash(norm: str) -> bytes:
    return hashlib.blake2b(norm.encode(), digest_size=8).digest()


def text_hashes(text: str) -> set[bytes]:
    return {sent_hash(s) for s in sentences(text)}


def _strings(obj: Any) -> Iterator[str]:
    """Every string inside a JSON value (inputs, targets, options)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def bigbench_task_texts(tasks: dict[str, bytes]) -> Iterator[str]:
    """All strings of the examples of the given raw task.json files."""
    for raw in tasks.values():
        data = json.loads(raw)
        yield from _strings(data.get("examples", []))


def squad_texts(path: Path) -> tuple[list[str], set[str]]:
    """(contexts, article titles) of SQuAD v2 dev."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    ctx = [p["context"] for art in data for p in art["paragraphs"]]
    titles = {art["title"].replace("_", " ") for art in data}
    return ctx, titles


def hotpot_texts(path: Path) -> tuple[list[str], set[str]]:
    """(paragraphs, paragraph titles) of HotpotQA dev distractor."""
    out: list[str] = []
    titles: set[str] = set()
    for ex in json.loads(path.read_text(encoding="utf-8")):
        ctx = ex["context"]
        if isinstance(ctx, str):
            ctx = ast.literal_eval(ctx)
        for title, sents in ctx:
            titles.add(str(title))
            out.append(" ".join(sents))
    return out, titles


class OverlapFilter:
    """Sentence-hash and title blacklist; counts what each set contributed and what it dropped."""

    def __init__(self) -> None:
        self.hashes: set[bytes] = set()
        self.titles: set[str] = set()
        self.sets: dict[str, int] = {}
        self.dropped: dict[str, int] = {}

    def add(self, name: str, texts: Iterable[str]) -> None:
        before = len(self.hashes)
        for t in texts:
            self.hashes |= text_hashes(t)
        self.sets[name] = len(self.hashes) - before

    def add_titles(self, titles: Iterable[str]) -> None:
        self.titles |= {t.strip().lower() for t in titles}

    def hits(self, text: str) -> int:
        return sum(1 for h in text_hashes(text) if h in self.hashes)

    def blocked_title(self, title: str) -> bool:
        return title.strip().lower() in self.titles

    def keep(self, source: str, text: str, title: str | None = None) -> bool:
        """False (and counted per source) when the text shares a sentence or a blacklisted title."""
        if (title is not None and self.blocked_title(title)) or self.hits(text):
            self.dropped[source] = self.dropped.get(source, 0) + 1
            return False
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "rule": f"drop a document sharing one normalised sentence of >= {MIN_SENT_WORDS} words "
            "(blake2b-64 hash) with a set below; Wikipedia entries also dropped by title",
            "sets": dict(self.sets),
            "sentence_hashes": len(self.hashes),
            "titles_blacklisted": len(self.titles),
            "dropped_docs": dict(sorted(self.dropped.items())),
            "task_coverage": {k: list(v) for k, v in TASK_COVERAGE.items()},
            "reserved_never_used": list(RESERVED_BIGBENCH),
            "never_trained_on": list(NEVER_TRAIN_BIGBENCH),
        }
