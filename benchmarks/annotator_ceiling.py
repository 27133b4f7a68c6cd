"""How far can a question-free compressor get on the survival target with the benchmark's OWN kind of
supervision? (issue 15: dev answer survival >= 0.75 at 4x without a question.)

Diagnostic only, dev items only; nothing here is trained into a shipped model. Two rows per task
beside the shipped model and ``caps_digits``, all with the same word selection as
``benchmarks/backbone_probe.py`` (every word of the item's contexts scored, the top share kept in
order, :func:`mooscomp.evaluation.metrics.answer_survival` against the gold answers):

* ``other_annotators`` (SQuAD): the item's paragraphs labelled with the answers of every OTHER
  answerable SQuAD question asked about them (leave-one-out; the crowd-workers of the same
  benchmark, on the same paragraphs); labels as trained (``worthiness_finetune.LABELS``).
* ``human_probe``: a class-balanced logistic probe on the shipped model's frozen word states,
  trained on human answers of UNSEEN articles: SQuAD annotations of the other folds' articles
  (5 folds by article over the dev items' articles; questions of every seed-0 evaluation sample
  and of the dev items left out), HotpotQA answers of the evaluation-disjoint pool
  (``relevance_data.training_pool``, title-disjoint). A perfect student of human annotation in
  the benchmark's own style, up to the frozen encoder.
* ``hotpot_pool_probe`` (SQuAD): the HotpotQA-pool probe applied to SQuAD: human labels that a
  shipped model may learn from (evaluation-disjoint), in another benchmark's style.

    .venv/bin/python benchmarks/annotator_ceiling.py [--dev 200] [--pool 600] [--out reports/annotator_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import backbone_probe as bp  # noqa: E402
from generated_ceiling import SHARES, paragraph_scores  # noqa: E402

from mooscomp.evaluation.methods.caps_digits import caps_digits_scores  # noqa: E402
from mooscomp.evaluation.metrics import answer_survival  # noqa: E402

FOLDS = 5
SCHEMES = ("answer", "support")


def squad_annotations(excluded: set[str]) -> tuple[dict[str, str], dict[str, list[tuple[str, str, str]]]]:
    """Paragraph -> article title, and paragraph -> (question id, question, first answer) of every
    answerable SQuAD-v2 dev question outside ``excluded``."""
    from mooscomp.evaluation.tasks import long_context_json

    arts = json.loads(long_context_json("squad.json").read_text(encoding="utf-8"))["data"]
    title: dict[str, str] = {}
    pairs: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for art in arts:
        for p in art["paragraphs"]:
            title[p["context"]] = art["title"]
            for qa in p["qas"]:
                if not qa.get("is_impossible") and qa["answers"] and f"squad/{qa['id']}" not in excluded:
                    pairs[p["context"]].append((f"squad/{qa['id']}", qa["question"], qa["answers"][0]["text"]))
    return title, pairs


def hotpot_pool(n: int) -> dict[str, list[tuple[str, str, str]]]:
    """Paragraph -> (id, question, answer) for the first ``n`` non-yes/no questions of the HotpotQA
    evaluation-disjoint pool (every one of their ten paragraphs; the answer labels whatever it hits)."""
    from mooscomp.evaluation.tasks import hotpotqa_paragraphs, long_context_json
    from mooscomp.training.relevance_data import reserved_ids, training_pool

    data = json.loads(long_context_json("hotpotqa.json").read_text(encoding="utf-8"))
    pool = [ex for ex in training_pool(data, reserved_ids()) if ex["answer"].strip().lower() not in ("yes", "no")]
    out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for ex in pool[:n]:
        for c in hotpotqa_paragraphs(ex):
            out[c].append((f"hotpotqa/{ex['_id']}", ex["question"], ex["answer"]))
    return out


def item_words(it: Any) -> list[str]:
    return [w for c in it.contexts for w in c.split()]


def main(argv: list[str] | None = None) -> int:
    import torch

    from mooscomp.evaluation.tasks import sample_hotpotqa, sample_squad
    from mooscomp.training.downstream import dev_qa_items

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=int, default=200, help="dev items per task")
    ap.add_argument("--pool", type=int, default=600, help="HotpotQA pool questions for the probe")
    ap.add_argument("--out", default=str(ROOT / "reports/annotator_ceiling.json"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    dev = dev_qa_items(a.dev)
    dev_ids = {it.item_id for it in dev_qa_items(max(a.dev, 400))}
    test_ids = {it.item_id for it in sample_squad(2000, seed=0)} | {it.item_id for it in sample_hotpotqa(2000, seed=0)}
    title, squad_pairs = squad_annotations(test_ids)
    hp_pairs = hotpot_pool(a.pool)
    squad_dev = [it for it in dev if it.task == "squad"]
    fold_of = {t: i % FOLDS for i, t in enumerate(sorted({it.meta["title"] for it in squad_dev}))}

    device = torch.device("cpu")
    bb = bp.backbone_default(device)
    texts = sorted({c for it in dev for c in it.contexts} | set(title) | set(hp_pairs))
    enc = bp.encode(bb, [bp.Text.of(c) for c in texts], device, 8192)
    last = bb.layers[-1]
    feats = {c: f[last] for c, f in zip(texts, enc.feats, strict=True)}
    probs = {c: p for c, p in zip(texts, enc.probs or [], strict=True)}

    def labels(c: str, pairs: list[tuple[str, str, str]], scheme: str, skip: set[str]) -> np.ndarray:
        return paragraph_scores(c, [[q, ans] for i, q, ans in pairs if i not in skip], scheme)

    def fit(paras: list[tuple[str, list[tuple[str, str, str]]]], scheme: str) -> Any:
        x = np.concatenate([feats[c] for c, _ in paras])
        y = (np.concatenate([labels(c, p, scheme, dev_ids) for c, p in paras]) > 0).astype(np.float32)
        return bp.fit_logistic(x, y, 1.0, device), int(y.sum()), int(y.size)

    scores: dict[str, dict[str, np.ndarray]] = defaultdict(dict)  # name -> item id -> (n_words,) scores
    train_info: dict[str, Any] = {}
    for scheme in SCHEMES:
        models = {}
        for k in range(FOLDS):
            paras = [(c, squad_pairs[c]) for c in title if fold_of.get(title[c], -1) != k and squad_pairs.get(c)]
            models[k], pos, n = fit(paras, scheme)
            train_info[f"squad_{scheme}_fold{k}"] = {"paragraphs": len(paras), "positive_words": pos, "words": n}
        hp_model, pos, n = fit([(c, p) for c, p in hp_pairs.items()], scheme)
        train_info[f"hotpotqa_{scheme}"] = {"paragraphs": len(hp_pairs), "positive_words": pos, "words": n}
        for it in dev:
            model = models[fold_of[it.meta["title"]]] if it.task == "squad" else hp_model
            scores[f"human_probe_{scheme}"][it.item_id] = np.concatenate(
                [bp.apply_logistic(model, feats[c]) for c in it.contexts])
            if it.task == "squad":
                scores[f"hotpot_pool_probe_{scheme}"][it.item_id] = np.concatenate(
                    [bp.apply_logistic(hp_model, feats[c]) for c in it.contexts])
                scores[f"other_annotators_{scheme}"][it.item_id] = np.concatenate(
                    [labels(c, squad_pairs.get(c, []), scheme, {it.item_id}) for c in it.contexts])
    words = {it.item_id: item_words(it) for it in dev}
    for it in dev:
        scores["shipped_keep_probs"][it.item_id] = np.concatenate([probs[c] for c in it.contexts])
        scores["caps_digits"][it.item_id] = caps_digits_scores(words[it.item_id])

    survival: dict[str, dict[str, dict[str, float]]] = {}
    per_item: dict[tuple[str, str], np.ndarray] = {}
    for name, by_item in scores.items():
        items = [it for it in dev if it.item_id in by_item]
        table, per = bp.survival_table(items, [words[it.item_id] for it in items],
                                       [by_item[it.item_id] for it in items], SHARES)
        survival[name] = {t: cell for t, cell in table.items() if any(it.task == t for it in items)}
        for task in survival[name]:
            per_item[(name, task)] = per[f"{task}@0.25"]
        if name.startswith("other_annotators"):  # every marked word kept, no budget
            cell = survival[name]["squad"]
            marked = [" ".join(w for w, x in zip(words[it.item_id], by_item[it.item_id], strict=True) if x > 0)
                      for it in items]
            cell["all_marked"] = round(float(np.mean([answer_survival(m, it.answers)
                                                      for m, it in zip(marked, items, strict=True)])), 4)
            cell["marked_share"] = round(float(np.mean([(by_item[it.item_id] > 0).mean() for it in items])), 4)
    paired = {f"{name} - shipped_keep_probs @0.25 ({task})": bp.paired_ci(v, per_item[("shipped_keep_probs", task)], 0)
              for (name, task), v in per_item.items() if name != "shipped_keep_probs"}
    report = {"what": __doc__.split("\n\n")[0], "method": __doc__.split("\n\n")[1:3],
              "dev_items_per_task": a.dev, "folds": FOLDS, "hotpotqa_pool_questions": a.pool,
              "backbone": bb.info, "training": train_info, "survival": survival,
              "paired_vs_shipped_at_0.25": paired, "seconds": round(time.perf_counter() - t0, 1),
              "command": f".venv/bin/python benchmarks/annotator_ceiling.py --dev {a.dev} --pool {a.pool}"}
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    for name, by_task in survival.items():
        print(f"{name:28s} " + "  ".join(f"{t} " + " ".join(f"{v:.3f}" for v in cell.values())
                                         for t, cell in by_task.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
