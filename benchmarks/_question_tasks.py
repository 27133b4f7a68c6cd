"""The items of benchmarks/question_survival.py's tasks (sampled from the installed datasets)."""

from __future__ import annotations

import json
import random
import sys


def single_items(n: int, seed: int = 0, min_words: int = 150, max_words: int = 400):
    from mooscomp.evaluation.tasks import EvalItem, long_context_json

    with open(long_context_json("squad.json"), encoding="utf-8") as f:
        articles = json.load(f)["data"]
    pool = []
    for art in articles:
        for par in art["paragraphs"]:
            if not min_words <= len(par["context"].split()) <= max_words:
                continue
            qas = [qa for qa in par["qas"] if not qa.get("is_impossible") and qa["answers"]]
            if qas:
                pool.append((par["context"], qas))
    rng = random.Random(f"mooscomp-qsurv:{seed}:single")
    out = []
    for ctx, qas in rng.sample(pool, min(n, len(pool))):
        qa = qas[rng.randrange(len(qas))]
        answers = tuple(dict.fromkeys(a["text"].strip() for a in qa["answers"]))
        out.append(EvalItem(task="squad", item_id=f"squad_single/{qa['id']}", contexts=(ctx,),
                            question=qa["question"], answers=answers, kind="qa"))
    return out


TASK_TEXT = {
    "squad": "sample_squad(seed=0): 8-10 paragraphs, gold at a random position",
    "hotpotqa": "sample_hotpotqa(seed=0): distractor setting, 10 paragraphs",
    "squad_single": "one SQuAD v2 dev paragraph (150-400 words) with one of its questions",
    "hotpotqa_long": "sample_hotpotqa_long(seed=0): a HotpotQA question's 10 paragraphs among paragraphs of "
                     "other questions, >= 20 documents and >= 8k cl100k tokens",
    "needle": "sample_needle(seed=0): a 7-digit number in held-out essays of 8k/16k/28k tokens, its question",
}


def sample_tasks(args) -> list:
    """The items of ``args.tasks`` (sizes: ``--items``, ``--single``, ``--long``, ``--needle``)."""
    from mooscomp.evaluation.tasks import (
        sample_hotpotqa,
        sample_hotpotqa_long,
        sample_needle,
        sample_squad,
    )

    make = {"squad": lambda: sample_squad(args.items, seed=0), "hotpotqa": lambda: sample_hotpotqa(args.items, seed=0),
            "squad_single": lambda: single_items(args.single),
            "hotpotqa_long": lambda: sample_hotpotqa_long(args.long, seed=0),
            "needle": lambda: sample_needle(args.needle, seed=0)}
    names = args.tasks.split(",")
    unknown = sorted(set(names) - set(make))
    if unknown:
        sys.exit(f"unknown tasks {unknown}; known: {sorted(make)}")
    return [it for name in names for it in make[name]()]
