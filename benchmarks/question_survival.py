"""Answer survival of question-aware compression (no reader: is the gold answer still there?).

Tasks: ``squad`` (8-10 paragraphs of the question's article, gold at a random position),
``hotpotqa`` (10 titled paragraphs, distractor setting) and ``squad_single`` (one SQuAD
paragraph of 150-400 words with its question: where sentence ranking alone fails). Items are
split into **dev** (allocator parameters are chosen there) and **test** (reported) by the sha256
of their id; the test items never influence a choice.

Methods, same items and rates (2x 3x 4x 5x 10x):
  * ``no_question``      - the task-agnostic path (global budget on token scores);
  * ``question_today``   - today's ``question=``: + question_weight for words the question mentions;
  * ``sentence_rank``    - sentences ranked by cosine to the question (all-MiniLM-L6-v2, each
    sentence embedded on its own, mean pooling), kept whole until the budget is spent;
  * ``mooscomp_question``- :mod:`mooscomp.allocation` with shared-layer relevance (one forward);
  * ``mooscomp_question_indep`` - the same allocator with independently embedded sentences.

The forward pass runs once per item (cached under data/cache/question_survival); every method and
parameter set re-runs only the selection. ``no_question`` / ``question_today`` are re-derived from
the same word scores and checked against ``Compressor.compress`` on a few items.

Usage: .venv/bin/python benchmarks/question_survival.py [--items 150] [--single 200]
Writes reports/question_survival.json and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data" / "cache" / "question_survival"
RATES = {"2x": 0.5, "3x": 1 / 3, "4x": 0.25, "5x": 0.2, "10x": 0.1}
DEV_SHARE = 40  # percent of items in the dev split
CACHE_VERSION = "v2"


def is_dev(item_id: str) -> bool:
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % 100 < DEV_SHARE


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


def analyse_cached(qc, it):
    """Analysis of an item (shared relevance) and the same with independently embedded sentences."""
    from mooscomp.alignment import segment_words
    from mooscomp.allocation import ContextRelevance
    from mooscomp.question import Analysis
    from mooscomp.relevance import sentence_texts

    layers = "" if qc is None or qc.shared.base_top is None else f":L{len(qc.shared.base_top)}"
    key = hashlib.sha256(f"{CACHE_VERSION}:{it.item_id}{layers if layers != ':L2' else ''}".encode()).hexdigest()[:20]
    path = CACHE / f"{key}.npz"
    if path.is_file():
        d = np.load(path, allow_pickle=False)
    else:
        a = qc.analyse(list(it.contexts), it.question)
        indep = [qc.encoder.embed(sentence_texts(c.words, c.word_sent)) for c in a.contexts]
        cat = lambda xs: np.concatenate([np.asarray(x) for x in xs])  # noqa: E731
        d = {
            "n_words": np.asarray([len(c.words) for c in a.contexts]),
            "n_sent": np.asarray([c.n_sent for c in a.contexts]),
            "score": cat(c.score for c in a.contexts),
            "word_sent": cat(c.word_sent for c in a.contexts),
            "mentions": cat(c.mentions for c in a.contexts),
            "sent_emb": cat(c.sent_emb for c in a.contexts).astype(np.float32),
            "sent_emb_indep": cat(indep).astype(np.float32),
            "ctx_emb": np.stack([c.ctx_emb for c in a.contexts]).astype(np.float32),
            "q_emb": a.q_emb.astype(np.float32),
            "costs": cat(a.costs),
            "keep_prob": cat(a.keep_prob),
            "outlier_z": cat(a.outlier_z),
            "origin_each": np.asarray(a.origin_each),
        }
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **d)
        tmp.replace(path)
    wb = np.r_[0, np.cumsum(d["n_words"])]
    sb = np.r_[0, np.cumsum(d["n_sent"])]
    ctxs, ctxs_i = [], []
    for i, text in enumerate(it.contexts):
        w, s = slice(wb[i], wb[i + 1]), slice(sb[i], sb[i + 1])
        words = segment_words(text)
        assert len(words) == d["n_words"][i], "cache does not match the text"
        common = (words, d["score"][w], d["word_sent"][w])
        ctxs.append(ContextRelevance(*common, d["sent_emb"][s], d["ctx_emb"][i], d["mentions"][w]))
        ctxs_i.append(ContextRelevance(*common, d["sent_emb_indep"][s], d["ctx_emb"][i], d["mentions"][w]))
    split = lambda k: [d[k][wb[i] : wb[i + 1]] for i in range(len(it.contexts))]  # noqa: E731
    forced = [np.zeros(n, dtype=bool) for n in d["n_words"]]
    mk = lambda cs: Analysis(it.question, d["q_emb"], cs, split("costs"), forced,  # noqa: E731
                             split("keep_prob"), split("outlier_z"), [int(x) for x in d["origin_each"]])
    return mk(ctxs), mk(ctxs_i)


def question_boost(words, question: str) -> np.ndarray:
    from mooscomp.selection import mentions, question_terms

    return mentions(words, question_terms(question))


def run_method(method: str, a, a_indep, target: float, qc, alloc) -> tuple[str, int]:
    """(compressed text, tokens) of one method."""
    from mooscomp.allocation import select_exact
    from mooscomp.question import build_result

    comp, count = qc.comp, qc.comp.count
    words = [c.words for c in a.contexts]
    cfg = comp.config
    if method == "sentence_rank":
        return sentence_rank(a_indep, target, count)
    if method in ("no_question", "question_today"):
        scores = [c.score for c in a.contexts]
        if method == "question_today":
            scores = [s + cfg.question_weight * question_boost(w, a.question) for s, w in zip(scores, words, strict=True)]
        keeps = select_exact(words, scores, a.forced, a.costs, target, count, units=cfg.units, unit_pool=cfg.unit_pool)
        res = build_result(a, keeps, scores, list(range(len(words))), count, keep_newlines=False)
        return res.text, res.compressed_tokens
    res = qc.select(a_indep if method.endswith("_indep") else a, target, allocation=alloc)
    return res.text, res.compressed_tokens


def sentence_rank(a, target: float, count) -> tuple[str, int]:
    """Whole sentences by cosine, best first, while they fit (the registry's ``sentence_rank``)."""
    from mooscomp.evaluation.methods.question import sentence_rank_text

    text = sentence_rank_text(a, [c.sent_emb for c in a.contexts], target, count)
    return text, sum(count(t) for t in text.split("\n\n") if t)


def evaluate(tasks, methods, qc, alloc, *, split: str) -> dict:
    from mooscomp.evaluation.metrics import answer_survival

    out: dict = {}
    for task, entries in tasks.items():
        sel = [e for e in entries if (split == "dev") == e[3]]
        for rl, rate in RATES.items():
            for m in methods:
                surv, rates = [], []
                for it, a, ai, _ in sel:
                    text, toks = run_method(m, a, ai, rate * a.origin, qc, alloc)
                    surv.append(answer_survival(text, it.answers))
                    rates.append(toks / max(a.origin, 1))
                out.setdefault(task, {}).setdefault(rl, {})[m] = {
                    "survival": float(np.mean(surv)) if surv else None,
                    "achieved_rate": float(np.mean(rates)) if rates else None,
                    "max_rate_error": float(np.max(np.abs(np.asarray(rates) / rate - 1))) if rates else None,
                    "n": len(sel),
                }
    return out


def objective(res: dict, method: str = "mooscomp_question") -> float:
    vals = [res[t][r][method]["survival"] for t in res for r in res[t]]
    return float(np.mean([v for v in vals if v is not None]))


def check_emulation(entries, n: int = 4) -> dict:
    """``no_question`` / ``question_today`` as re-derived here vs ``Compressor.compress`` (CPU)."""
    from mooscomp import Compressor

    cpu = Compressor.from_pretrained(backend="torch")
    same, total = 0, 0
    for it, a, ai, _ in entries[:n]:
        for m, q in (("no_question", None), ("question_today", it.question)):
            want = cpu.compress(list(it.contexts), rate=0.25, question=q).text
            got, _ = run_method(m, a, ai, 0.25 * a.origin, _STATE["qc"], None)
            same += int(got == want)
            total += 1
    return {"identical": same, "checked": total, "rate": 0.25, "task": "squad"}


_STATE: dict = {}


def _pool_eval(job):
    methods, kw, split = job
    from mooscomp.allocation import AllocationConfig

    return evaluate(_STATE["tasks"], methods, _STATE["qc"], AllocationConfig(**kw), split=split)


def _pmap(jobs, workers: int):
    if workers <= 1:
        return [_pool_eval(j) for j in jobs]
    import multiprocessing as mp

    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(_pool_eval, jobs, chunksize=1)


def tune_parallel(workers: int) -> tuple[dict, list]:
    """Staged grid search on the dev split (mean survival over tasks and rates)."""
    log: list = []

    def run(kws):
        res = _pmap([(["mooscomp_question"], kw, "dev") for kw in kws], workers)
        vals = [objective(r) for r in res]
        for kw, v in zip(kws, vals, strict=True):
            log.append({"params": kw, "dev_mean_survival": v})
            print(f"  dev {kw} -> {v:.4f}", file=sys.stderr, flush=True)
        return vals

    best = {"token_blend": 0.25, "context_weight": 0.25, "feedback": 0.0, "term_weight": 0.0}
    kws = [{**best, "relevance_weight": rw, "spread": sp}
           for rw, sp in itertools.product((0.25, 0.5, 1.0, 2.0, 4.0), (0.5, 1.0, 2.0, 4.0))]
    vals = run(kws)
    best = kws[int(np.argmax(vals))]
    kws = [{**best, "token_blend": tb, "context_weight": cw}
           for tb, cw in itertools.product((0.0, 0.25, 0.5, 0.75), (0.0, 0.25, 0.5))]
    vals = run(kws)
    best = kws[int(np.argmax(vals))]
    kws = [{**best, "feedback": fb, "term_weight": tw}
           for fb, tw in itertools.product((0.0, 0.25, 0.5, 1.0), (0.0, 0.25, 0.5))]
    vals = run(kws)
    best = kws[int(np.argmax(vals))]
    kws = [{**best, "relevance_weight": best["relevance_weight"] * f, "spread": best["spread"] * g}
           for f, g in itertools.product((0.7, 1.0, 1.4), (0.75, 1.0, 1.33))]
    vals = run(kws)
    return kws[int(np.argmax(vals))], log


def load_tasks(args, qc) -> dict:
    from mooscomp.evaluation.tasks import load_items, sample_hotpotqa, sample_squad

    if args.items_file:
        items = load_items(args.items_file)
    else:
        items = sample_squad(args.items, seed=0) + sample_hotpotqa(args.items, seed=0) + single_items(args.single)
    raw: dict = {}
    for it in items:
        raw.setdefault(it.item_id.split("/")[0], []).append(it)
    t0 = time.perf_counter()
    tasks = {}
    for name, its in raw.items():
        tasks[name] = [(it, *analyse_cached(qc, it), is_dev(it.item_id)) for it in its]
        print(f"{name}: {len(its)} items analysed ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return tasks


def measure_overhead(reps: int = 5, tokens: int = 8000, items_file: str | None = None) -> dict:
    """Question-aware vs task-agnostic path on one ~8k-token prompt, 2 threads, interleaved reps.

    The task-agnostic path is the default ``Compressor.from_pretrained()`` (onnxruntime on a CPU)
    and the torch backend; the question path is :class:`QuestionCompressor` (one shared forward).
    """
    from mooscomp import Compressor
    from mooscomp.evaluation.tasks import sample_squad
    from mooscomp.question import QuestionCompressor

    if items_file:
        from mooscomp.evaluation.tasks import load_items

        items = [it for it in load_items(items_file) if it.item_id.startswith("squad/")][-12:]
    else:
        items = sample_squad(12, seed=3)
    ctxs: list[str] = []
    comp = Compressor.from_pretrained()
    torch_comp = Compressor.from_pretrained(backend="torch")
    qc = QuestionCompressor(torch_comp)  # onnxruntime shared forward on a CPU
    qc_torch = QuestionCompressor(torch_comp, backend="torch", sentence_encoder=qc.encoder)
    for it in items:
        ctxs += list(it.contexts)
        if sum(comp.count(c) for c in ctxs) >= tokens:
            break
    q = items[0].question
    runs = {"task_agnostic_default": lambda: comp.compress(ctxs, rate=0.25),
            "task_agnostic_torch": lambda: torch_comp.compress(ctxs, rate=0.25),
            "question_aware": lambda: qc.compress(ctxs, rate=0.25, question=q),
            "question_aware_torch": lambda: qc_torch.compress(ctxs, rate=0.25, question=q),
            "today_question_default": lambda: comp.compress(ctxs, rate=0.25, question=q)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(reps):
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratios = [qa / ta for qa, ta in zip(times["question_aware"], times["task_agnostic_default"], strict=True)]
    return {
        "origin_tokens": int(sum(comp.count(c) for c in ctxs)), "contexts": len(ctxs), "rate": 0.25,
        "threads": torch.get_num_threads(), "backend_default": comp.backend, "reps": reps,
        "seconds": times, "median_seconds": med,
        "question_overhead": float(np.median(ratios)),
        "question_overhead_torch_vs_torch": med["question_aware_torch"] / med["task_agnostic_torch"],
        "backend_question": type(qc.forward).__name__,
        "note": "question_overhead = median over interleaved reps of question_aware / task_agnostic_default",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=150, help="items per multi-paragraph task")
    ap.add_argument("--single", type=int, default=200, help="single-paragraph SQuAD items")
    ap.add_argument("--items-file", default=None, help="read items (save_items format) instead of sampling")
    ap.add_argument("--export-items", default=None, help="write the sampled items here and exit")
    ap.add_argument("--device", default="cpu", help="forward pass device (selection is on the CPU)")
    ap.add_argument("--workers", type=int, default=1, help="processes for the selection grid")
    ap.add_argument("--out", default=str(ROOT / "reports" / "question_survival.json"))
    ap.add_argument("--relevance-layers", type=int, default=None, help="base layers above the shared ones")
    ap.add_argument("--speed", action="store_true", help="only measure question_overhead, add it to --out")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.speed:
        out = Path(args.out)
        report = json.loads(out.read_text()) if out.is_file() else {}
        report["question_overhead"] = measure_overhead(items_file=args.items_file)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report["question_overhead"]["median_seconds"]), report["question_overhead"]["question_overhead"])
        return
    from mooscomp import Compressor
    from mooscomp.allocation import AllocationConfig
    from mooscomp.evaluation.tasks import sample_hotpotqa, sample_squad, save_items
    from mooscomp.question import QuestionCompressor

    if args.export_items:
        save_items(sample_squad(args.items, seed=0) + sample_hotpotqa(args.items, seed=0)
                   + single_items(args.single), args.export_items)
        return
    t0 = time.perf_counter()
    qc = QuestionCompressor(Compressor.from_pretrained(device=args.device, backend="torch"),
                            relevance_layers=args.relevance_layers)
    tasks = load_tasks(args, qc)
    t_analyse = time.perf_counter() - t0
    _STATE.update(tasks=tasks, qc=qc)
    emulation = check_emulation(tasks["squad"])
    chosen_kw, log = tune_parallel(args.workers)
    chosen = AllocationConfig(**chosen_kw)
    methods = ["no_question", "question_today", "sentence_rank", "mooscomp_question", "mooscomp_question_indep"]
    test, dev = _pmap([(methods, chosen_kw, "test"), (methods, chosen_kw, "dev")], min(args.workers, 2))
    report = {
        "what": "answer survival (normalised gold answer is a whole-token substring of the compressed text)",
        "model": f"shipped default, torch fp32 forward on {args.device}; cl100k token counts",
        "relevance_layers": len(qc.shared.base_top),
        "split": {"rule": f"sha256(item_id)[:8] as int % 100 < {DEV_SHARE} -> dev, else test",
                  **{t: {"dev": sum(e[3] for e in v), "test": sum(not e[3] for e in v)} for t, v in tasks.items()},
                  "dev_ids": {t: [e[0].item_id for e in v if e[3]] for t, v in tasks.items()}},
        "tasks": {"squad": "sample_squad(seed=0): 8-10 paragraphs, gold at a random position",
                  "hotpotqa": "sample_hotpotqa(seed=0): distractor setting, 10 paragraphs",
                  "squad_single": "one SQuAD v2 dev paragraph (150-400 words) with one of its questions"},
        "rates": RATES,
        "chosen_allocation": {k: getattr(chosen, k) for k in ("relevance_weight", "spread", "token_blend",
                                                               "context_weight", "feedback", "term_weight",
                                                               "min_contexts", "order")},
        "selection_criterion": "mean dev survival over tasks x rates, staged grid (tuning_log)",
        "emulation_check": emulation,
        "analyse_seconds": round(t_analyse, 1),
        "test": test,
        "dev": dev,
        "tuning_log": log,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print_table(test)


def print_table(res: dict) -> None:
    methods = ["no_question", "question_today", "sentence_rank", "mooscomp_question", "mooscomp_question_indep"]
    print("test split: answer survival (achieved rate)")
    print(f"{'task':14s}{'rate':>5s} " + " ".join(f"{m[:22]:>23s}" for m in methods))
    for t, by_rate in res.items():
        for rl, row in by_rate.items():
            cells = [f"{row[m]['survival']:.3f} ({row[m]['achieved_rate']:.3f})" for m in methods]
            print(f"{t:14s}{rl:>5s} " + " ".join(f"{c:>23s}" for c in cells))


if __name__ == "__main__":
    main()
