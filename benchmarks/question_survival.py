"""Answer survival of question-aware compression (no reader: is the gold answer still there?).

Tasks: ``squad`` (8-10 paragraphs of the question's article, gold at a random position),
``hotpotqa`` (10 titled paragraphs, distractor setting) and ``squad_single`` (one SQuAD
paragraph of 150-400 words with its question: where sentence ranking alone fails). Items are
split into **dev** (allocator parameters are chosen there) and **test** (reported) by the sha256
of their id; the test items never influence a choice.

Methods, same items and rates (2x 3x 4x 5x 10x), the shipped model on its default CPU path:
  * ``no_question``      - token scores under a global budget (the task-agnostic path before the
    shipped model turned sentence focus on; `compress()` itself now differs: emulation_check);
  * ``question_today``   - the earlier ``question=``: + question_weight for words it mentions;
  * ``sentence_rank``    - sentences ranked by cosine to the question (the question path's int8
    all-MiniLM-L6-v2 graph, each sentence embedded on its own), kept whole until the budget is spent;
  * ``mooscomp_question``- :class:`mooscomp.question.QuestionCompressor` (coarse-to-fine): the
    real fine stage (token classifier over the candidate sentences) in the report, or emulated
    (the full forward's scores on the candidates: ``--emulated``, and the tuning grid).

The full forward and the sentence embeddings run once per item (cached under
data/cache/question_survival); the baselines and the emulated fine stage re-run only the
selection. ``no_question`` is checked against ``Compressor.compress`` on a few items.

Usage: .venv/bin/python benchmarks/question_survival.py [--items 150] [--single 200] [--workers 2]
       [--params '{}' (no tuning: these AllocationConfig fields)] [--dev-only] [--emulated]
Writes reports/question_survival.json and prints a table. The question path's speed is
``benchmarks/speed_cpu.py --question-only`` (reports/speed_cpu.json, ``question_overhead``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _question_tasks import TASK_TEXT, sample_tasks, single_items  # noqa: E402,F401

CACHE = ROOT / "data" / "cache" / "question_survival"
RATES = {"2x": 0.5, "3x": 1 / 3, "4x": 0.25, "5x": 0.2, "10x": 0.1}
DEV_SHARE = 40  # percent of items in the dev split
CACHE_VERSION = "v4"  # v4: question_sentences (no break after initials)
# fine_cover settings whose dev mean survival is this close to the best count as a tie (the
# narrower cover wins: ~5% less question-path time at 8k tokens, reports/speed_cpu.json)
COVER_TIE = 0.005


def is_dev(item_id: str) -> bool:
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % 100 < DEV_SHARE


def analyse_cached(qc, it):
    """Unscored :class:`~mooscomp.question.Analysis` of an item (sentence embeddings from the
    question path's encoder) with the full forward's token scores attached as ``full``
    (``(p_tok, z_tok)`` per context: the task-agnostic methods and the emulated fine stage)."""
    from mooscomp import stages

    comp = qc.comp
    text = "\x00".join(it.contexts)
    # the sentence encoder is part of the key: a cache written with another encoder must not be
    # read back (it once served the 6-layer base encoder's embeddings to a run of the 3-layer one)
    enc_tag = _STATE.get("encoder_tag", "")
    key = hashlib.sha256(f"{CACHE_VERSION}:{enc_tag}:{it.item_id}:{text}".encode()).hexdigest()[:20]
    path = CACHE / f"{key}.npz"  # full forward + the default encoder's sentence embeddings
    prepared = [comp.prepare(c) for c in it.contexts]
    if path.is_file():
        d = dict(np.load(path, allow_pickle=False))
    else:
        qc.score(prepared) if not _STATE.get("variant") else _STATE["default_qc"].score(prepared)
        full = [comp.prepare(c) for c in it.contexts]
        stages.score(full, comp._forward_backend, comp.config, tokenizer=comp.tokenizer)
        d = {"sent_emb": np.concatenate([c.states for c in prepared]).astype(np.float32),
             "n_sent": np.asarray([c.states.shape[0] for c in prepared]),
             "p_tok": np.concatenate([c.p_tok for c in full]).astype(np.float32),
             "z_tok": np.concatenate([c.z_tok for c in full]).astype(np.float32),
             "n_tok": np.asarray([c.n_tokens for c in full])}
        _save(path, d)
    if _STATE.get("variant"):  # another sentence encoder (fewer layers): its own embeddings
        vpath = CACHE / f"{key}-{_STATE['variant']}.npz"
        if vpath.is_file():
            d.update(np.load(vpath, allow_pickle=False))
        else:
            qc.score(prepared)
            d["sent_emb"] = np.concatenate([c.states for c in prepared]).astype(np.float32)
            _save(vpath, {"sent_emb": d["sent_emb"], "n_sent": d["n_sent"]})
    sb, tb = np.r_[0, np.cumsum(d["n_sent"])], np.r_[0, np.cumsum(d["n_tok"])]
    for i, c in enumerate(prepared):
        assert c.n_tokens == d["n_tok"][i], "cache does not match the text"
        c.states = d["sent_emb"][sb[i] : sb[i + 1]]
    a = qc.analyse_prepared(prepared, it.question)
    a.full = ([d["p_tok"][tb[i] : tb[i + 1]] for i in range(len(prepared))],
              [d["z_tok"][tb[i] : tb[i + 1]] for i in range(len(prepared))])
    return a


def question_boost(words, question: str) -> np.ndarray:
    from mooscomp.selection import mentions, question_terms

    return mentions(words, question_terms(question))


def _save(path: Path, d: dict) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **d)
    tmp.replace(path)


def full_scores(qc, a) -> list[np.ndarray]:
    """Per context (n_words,) fused word scores of the full (task-agnostic) forward."""
    cfg = qc.comp.config
    return [qc._word_scores(pr, p, z, cfg)[2] for pr, p, z in zip(a.prepared, *a.full, strict=True)]


def emulated(qc):
    """The question path with the fine stage's scores taken from the cached full forward."""
    from mooscomp.question import QuestionCompressor

    class Emulated(QuestionCompressor):
        def candidate_scores(self, a, cand, config):  # noqa: ARG002 - same tokens, full context
            return a.full

    em = copy.copy(qc)
    em.__class__ = Emulated
    return em


def run_method(method: str, a, target: float, qc, alloc) -> tuple[str, int]:
    """(compressed text, tokens) of one method."""
    from mooscomp.allocation import select_exact
    from mooscomp.question import build_result

    comp, count = qc.comp, qc.comp.count
    words = [c.words for c in a.contexts]
    cfg = comp.config
    if method == "sentence_rank":
        return sentence_rank(a, target, count)
    if method in ("no_question", "question_today"):
        scores = full_scores(qc, a)
        if method == "question_today":
            scores = [s + cfg.question_weight * question_boost(w, a.question) for s, w in zip(scores, words, strict=True)]
        keeps = select_exact(words, scores, a.forced, a.costs, target, count, units=cfg.units, unit_pool=cfg.unit_pool)
        res = build_result(a, keeps, scores, list(range(len(words))), count, keep_newlines=False)
        return res.text, res.compressed_tokens
    runner = qc if method == "mooscomp_question_real" else _STATE.get("emulated") or emulated(qc)
    res = runner.select(a, target, allocation=alloc)
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
        sel = [e for e in entries if (split == "dev") == e[2]]
        for rl, rate in RATES.items():
            for m in methods:
                surv, rates = [], []
                for it, a, _ in sel:
                    text, toks = run_method(m, a, rate * a.origin, qc, alloc)
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
    """``no_question`` / ``question_today`` as re-derived here vs ``Compressor.compress``."""
    comp = _STATE["qc"].comp
    same, total = 0, 0
    for it, a, _ in entries[:n]:
        for m, q in (("no_question", None), ("question_today", it.question)):
            if q is not None:  # the library's question path is coarse-to-fine: rebuild today's boost
                continue
            want = comp.compress(list(it.contexts), rate=0.25, question=q).text
            got, _ = run_method(m, a, 0.25 * a.origin, _STATE["qc"], None)
            same += int(got == want)
            total += 1
    return {"identical": same, "checked": total, "rate": 0.25, "method": "no_question"}


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


def grid_eval(kws: list, workers: int, log: list, method: str | None = None) -> list[float]:
    """Mean dev survival of each allocation in ``kws`` (appended to ``log``); ``method`` None =
    the emulated fine stage, ``"mooscomp_question_real"`` = the real one."""
    m = method or "mooscomp_question"
    res = _pmap([([m], kw, "dev") for kw in kws], workers)
    vals = [objective(r, m) for r in res]
    for kw, v, r in zip(kws, vals, res, strict=True):
        log.append({"params": kw, "dev_mean_survival": v,
                    "dev_4x": {t: r[t]["4x"][m]["survival"] for t in r},
                    "dev": {t: {rl: r[t][rl][m]["survival"] for rl in r[t]} for t in r}})
        print(f"  dev {kw} -> {v:.4f} {log[-1]['dev_4x']}", file=sys.stderr, flush=True)
    return vals


def tune_parallel(workers: int, start: dict) -> tuple[dict, list]:
    """Staged grid search on the dev split (mean survival over tasks and rates), emulated fine
    stage (the full forward's scores on the candidates)."""
    log: list = []

    def run(kws):
        return grid_eval(kws, workers, log)

    best = dict(start)
    stages = [
        lambda b: [{**b, "relevance_weight": rw, "spread": sp}
                   for rw, sp in itertools.product((1.4, 2.8, 5.6), (0.35, 0.5, 0.75, 1.0))],
        lambda b: [{**b, "token_blend": tb} for tb in (0.0, 0.25, 0.5)],
        lambda b: [{**b, "hop": h, "hop_top": k} for h, k in itertools.product((0.0, 0.8, 0.9, 1.0), (1, 2, 4))],
        lambda b: [{**b, "link": lk, "link_top": k} for lk, k in itertools.product((0.0, 0.25, 0.5, 1.0), (1, 3, 5))],
        # fine_cover above 1.25 costs more than the 1.3x question overhead allowed at 8k tokens;
        # a wider cover is a slower fine stage: a dev tie goes to the narrower one (COVER_TIE)
        lambda b: [{**b, "fine_cover": fc} for fc in (1.0, 1.25)],
    ]
    for i, stage in enumerate(stages):
        kws = [dict(k) for k in {tuple(sorted(k.items())): k for k in stage(best)}.values()]
        vals = run(kws)
        if i == len(stages) - 1:  # fine_cover: the cheapest setting within COVER_TIE of the best
            best = min((k for k, v in zip(kws, vals, strict=True) if v >= max(vals) - COVER_TIE),
                       key=lambda k: k["fine_cover"])
        else:
            best = kws[int(np.argmax(vals))]
    return best, log


def load_tasks(args, qc) -> dict:
    from mooscomp.evaluation.tasks import load_items

    items = load_items(args.items_file) if args.items_file else sample_tasks(args)
    raw: dict = {}
    for it in items:
        if args.dev_only and not is_dev(it.item_id):
            continue
        raw.setdefault(it.item_id.split("/")[0], []).append(it)
    pool: set = set()
    if args.dev_pool:  # more dev items: outside every seed-0 evaluation sample (all dev)
        from mooscomp.training.downstream import dev_qa_items

        for it in dev_qa_items(args.dev_pool, tasks=[t for t in ("squad", "hotpotqa") if t in raw]):
            raw[it.task].append(it)
            pool.add(it.item_id)
    t0 = time.perf_counter()
    tasks = {}
    for name, its in raw.items():
        tasks[name] = [(it, analyse_cached(qc, it), it.item_id in pool or is_dev(it.item_id)) for it in its]
        print(f"{name}: {len(its)} items analysed ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return tasks


def _report(args, comp, own_encoder: bool, tasks: dict, chosen_kw: dict, emulation, t_analyse: float,
            test: dict, dev: dict, log: list) -> dict:
    """The JSON report of one run (test and dev survival per task, rate and method)."""
    report = {
        "what": "answer survival (normalised gold answer is a whole-token substring of the compressed text)",
        "model": f"shipped default ({comp.backend} forward on the CPU); cl100k token counts",
        "relevance": "sentences embedded on their own (int8 onnxruntime graph, mean pooling) by "
                     + ("the model's own sentence encoder (relevance.safetensors, 3 layers distilled from all-MiniLM-L6-v2, fine-tuned on HotpotQA supporting facts: reports/relevance_finetune.json)"
                        if own_encoder else "all-MiniLM-L6-v2")
                     + (f", first {args.relevance_layers} layers" if args.relevance_layers else ""),
        "fine_stage": "emulated (full-forward token scores on the candidates)" if args.emulated else
                      "real (QuestionCompressor.select: token classifier over the candidate sentences only)",
        "split": {"rule": f"sha256(item_id)[:8] as int % 100 < {DEV_SHARE} -> dev, else test",
                  **{t: {"dev": sum(e[2] for e in v), "test": sum(not e[2] for e in v)} for t, v in tasks.items()},
                  "dev_ids": {t: [e[0].item_id for e in v if e[2]] for t, v in tasks.items()}},
        "tasks": {t: TASK_TEXT[t] for t in tasks},
        "rates": RATES,
        "chosen_allocation": chosen_kw,
        "selection_criterion": "mean dev survival over tasks x rates, staged grid (tuning_log), emulated fine stage",
        "emulation_check": emulation,
        "analyse_seconds": round(t_analyse, 1),
        "test": test,
        "dev": dev,
        "tuning_log": log,
    }
    return report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=150, help="items per multi-paragraph task")
    ap.add_argument("--single", type=int, default=200, help="single-paragraph SQuAD items")
    ap.add_argument("--tasks", default="squad,hotpotqa,squad_single",
                    help=f"comma-separated, of {sorted(TASK_TEXT)}; tuning needs squad")
    ap.add_argument("--long", type=int, default=100, help="hotpotqa_long items")
    ap.add_argument("--needle", type=int, default=8, help="needle items per haystack length")
    ap.add_argument("--items-file", default=None, help="read items (save_items format) instead of sampling")
    ap.add_argument("--export-items", default=None, help="write the sampled items here and exit")
    ap.add_argument("--workers", type=int, default=1, help="processes for the selection grid")
    ap.add_argument("--out", default=str(ROOT / "reports" / "question_survival.json"))
    ap.add_argument("--relevance-layers", type=int, default=None, help="sentence-encoder layers (None = all)")
    ap.add_argument("--relevance", choices=("own", "base"), default="own",
                    help="the model's own (distilled) sentence encoder, or the base all-MiniLM-L6-v2")
    ap.add_argument("--dev-only", action="store_true", help="analyse and tune on the dev items only; no report")
    ap.add_argument("--params", default=None, help="JSON AllocationConfig fields: skip tuning, use these")
    ap.add_argument("--dev-pool", type=int, default=0,
                    help="add this many dev items per multi-paragraph task (training.downstream.dev_qa_items)")
    ap.add_argument("--dev-grid", default=None,
                    help="JSON list of AllocationConfig field sets (over --params): dev survival of each, "
                         "written to --out; no test")
    ap.add_argument("--emulated", action="store_true",
                    help="report the emulated fine stage (full-forward scores) instead of the real one")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from mooscomp import Compressor
    from mooscomp.allocation import AllocationConfig
    from mooscomp.evaluation.tasks import save_items
    from mooscomp.question import QuestionCompressor, distilled_sentence_encoder
    from mooscomp.relevance import SentenceEncoder

    if args.export_items:
        save_items(sample_tasks(args), args.export_items)
        return
    t0 = time.perf_counter()
    comp = Compressor.from_pretrained()  # the shipped default and its default CPU backend
    # the shipped model's own (distilled) sentence encoder when it has one, else the base's
    own = distilled_sentence_encoder(comp) if args.relevance == "own" else None
    own_encoder = own is not None
    enc = (own or SentenceEncoder.from_base()).with_onnx(layers=args.relevance_layers)
    _STATE["encoder_tag"] = (f"own:{json.loads((comp.model_dir / 'config.json').read_text())['relevance']['sha256']}"
                             if own_encoder else "base")
    qc = QuestionCompressor(comp, sentence_encoder=enc)
    if args.relevance_layers:
        _STATE["variant"] = f"L{args.relevance_layers}"
        _STATE["default_qc"] = QuestionCompressor(comp, sentence_encoder=SentenceEncoder.from_base().with_onnx())
    tasks = load_tasks(args, qc)
    t_analyse = time.perf_counter() - t0
    _STATE.update(tasks=tasks, qc=qc, emulated=emulated(qc))
    emulation = check_emulation(tasks["squad"]) if "squad" in tasks else None
    if args.params:
        chosen_kw, log = {**asdict(AllocationConfig()), **json.loads(args.params)}, []
    else:
        chosen_kw, log = tune_parallel(args.workers, asdict(AllocationConfig()))
    print("chosen", chosen_kw, file=sys.stderr, flush=True)
    if args.dev_grid:
        kws = [{**chosen_kw, **kw} for kw in json.loads(args.dev_grid)]
        grid: list = []
        grid_eval(kws, args.workers, grid, method="mooscomp_question_real" if not args.emulated else None)
        Path(args.out).write_text(json.dumps({"dev_grid": grid, "split": {
            t: sum(e[2] for e in v) for t, v in tasks.items()}, "command": " ".join(sys.argv)}, indent=1) + "\n")
        return
    if args.dev_only:
        return
    AllocationConfig(**chosen_kw)  # validated
    ours = "mooscomp_question" if args.emulated else "mooscomp_question_real"
    methods = ["no_question", "question_today", "sentence_rank", ours]
    test, dev = _pmap([(methods, chosen_kw, "test"), (methods, chosen_kw, "dev")], min(args.workers, 2))
    for res in (test, dev):
        for by_rate in res.values():
            for row in by_rate.values():
                row["mooscomp_question"] = row.pop(ours)
    report = _report(args, comp, own_encoder, tasks, chosen_kw, emulation, t_analyse, test, dev, log)
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    for k in ("question_overhead", "question_overhead_dev_box"):
        if k in old:
            report[k] = old[k]
    out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(test)


def print_table(res: dict) -> None:
    methods = ["no_question", "question_today", "sentence_rank", "mooscomp_question"]
    print("test split: answer survival (achieved rate)")
    print(f"{'task':14s}{'rate':>5s} " + " ".join(f"{m[:22]:>23s}" for m in methods))
    for t, by_rate in res.items():
        for rl, row in by_rate.items():
            if row[methods[0]]["n"] == 0:
                continue
            cells = [f"{row[m]['survival']:.3f} ({row[m]['achieved_rate']:.3f})" for m in methods]
            print(f"{t:14s}{rl:>5s} " + " ".join(f"{c:>23s}" for c in cells))


if __name__ == "__main__":
    main()
