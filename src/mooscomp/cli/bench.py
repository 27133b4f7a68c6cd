"""``mooscomp bench``: build evaluation items, precompute compressions, run the quality benchmark.

Subcommands:
  prepare   sample the fixed task items (+ spaCy phrase units for Selective-Context) → items file
  compress  run the compression stage only (e.g. on a CPU machine, to carry to a GPU machine)
  quality   compress what is missing, read with a reader LLM, score → quality.json (+ PNG, table)

Each is parse -> one library call (:mod:`mooscomp.evaluation.quality`) -> print.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mooscomp.evaluation.methods import REGISTRY
from mooscomp.evaluation.report import RATES, TASK_RATES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="evaluation benchmarks (quality vs rate, baselines)")
    p.set_defaults(run=run)
    sub = p.add_subparsers(dest="bench_cmd", required=True)

    pr = sub.add_parser("prepare", help="sample the fixed evaluation items")
    pr.add_argument("--out", required=True, help="items file (.jsonl or .jsonl.gz)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--tasks", default="squad,hotpotqa,xsum,bbh,needle")
    pr.add_argument("--n-squad", type=int, default=200)
    pr.add_argument("--n-hotpotqa", type=int, default=200)
    pr.add_argument("--n-xsum", type=int, default=60)
    pr.add_argument("--n-bbh", type=int, default=20, help="items per BBH subtask (6 subtasks)")
    pr.add_argument("--n-needle", type=int, default=8, help="items per haystack length")
    pr.add_argument("--needle-lengths", default="8000,16000,28000")
    pr.add_argument(
        "--n-hotpotqa-long", type=int, default=40,
        help="items of the optional task hotpotqa_long (20+ documents, 8k+ tokens; add it to --tasks)",
    )
    pr.add_argument("--no-phrase-units", action="store_true", help="skip spaCy phrase units")

    for name, helptext in (("compress", "compression stage only"), ("quality", "full quality run")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--items", required=True, help="items file (bench prepare)")
        q.add_argument("--work", required=True, help="resumable run folder")
        q.add_argument("--methods", default=",".join(REGISTRY), help="comma list of methods")
        q.add_argument("--rates", default=",".join(str(r) for r in RATES.values()))
        q.add_argument(
            "--task-rates", action="append", default=None, metavar="TASK=R1,R2",
            help="a task's own rates, replacing --rates for it (repeatable; default "
            + " ".join(f"{t}={','.join(map(str, rs))}" for t, rs in TASK_RATES.items()) + ")",
        )
        q.add_argument("--tasks", default="", help="comma list to restrict tasks (default: all)")
        q.add_argument("--limit", type=int, default=0, help="at most N items per task (0 = all)")
        q.add_argument(
            "--mooscomp-model", default="", help="shipped model dir ('default' = packaged)"
        )
        q.add_argument("--llmlingua2-style-model", default="", help="beta=0 model dir")
        q.add_argument(
            "--longllmlingua-lm", default="",
            help="causal LM folder of longllmlingua_pkg (transformers 4.x only; else "
            "scripts/device/longllmlingua_job.py + --prepared)",
        )
        q.add_argument("--device", default="cpu")
        q.add_argument(
            "--compress-device", default="", help="device of the compressors (default --device)"
        )
        q.add_argument("--reader", default="", help="reader: .gguf file or model folder")
        q.add_argument("--reader-tokenizer", default="", help="tokenizer folder (else --reader)")
        q.add_argument(
            "--reader-dtype", default=None, choices=[None, "bfloat16", "float16", "float32"]
        )
        q.add_argument("--batch-size", type=int, default=128)
        q.add_argument("--max-batch-tokens", type=int, default=200_000)
        q.add_argument("--max-input-tokens", type=int, default=32_000)
        q.add_argument("--sc-lm", default="reader", help="Selective-Context LM: 'reader' or a path")
        q.add_argument("--sc-max-len", type=int, default=1024)
        q.add_argument("--sc-batch", type=int, default=16)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument(
            "--prepared", default="", help="compressions .jsonl[.gz] (comma list) to merge in"
        )
        q.add_argument("--results", default="", help="earlier results(.jsonl[.gz]) to resume from")
        q.add_argument(
            "--time-budget", type=float, default=0.0, help="stop reading after N s (0 = none)"
        )
        q.add_argument("--report", default="", help="quality.json (default: WORK/quality.json)")
        q.add_argument("--plot", default="", help="PNG (default: WORK/quality.png; 'none' = no plot)")
        q.add_argument("--quiet", action="store_true")
    return p


def _log(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _prepare(args: argparse.Namespace) -> int:
    from mooscomp.evaluation.methods.selective_context import add_phrase_units, load_spacy
    from mooscomp.evaluation.tasks import TaskSizes, build_items, save_items

    sizes = TaskSizes(
        squad=args.n_squad,
        hotpotqa=args.n_hotpotqa,
        xsum=args.n_xsum,
        bbh=args.n_bbh,
        needle=args.n_needle,
        needle_lengths=tuple(int(x) for x in args.needle_lengths.split(",") if x),
        hotpotqa_long=args.n_hotpotqa_long,
    )
    items = build_items(sizes, seed=args.seed, tasks=[t for t in args.tasks.split(",") if t])
    _log(args, f"{len(items)} items sampled")
    if not args.no_phrase_units:
        nlp = load_spacy()
        if nlp is None:
            _log(
                args, "spaCy English pipeline not installed: Selective-Context will use token units"
            )
        else:
            t0 = time.perf_counter()
            items = add_phrase_units(items, nlp)
            _log(args, f"phrase units in {time.perf_counter() - t0:.0f}s")
    save_items(items, args.out)
    print(json.dumps({"items": args.out, "n": len(items)}))
    return 0


def _csv(s: str) -> tuple[str, ...]:
    return tuple(x for x in s.split(",") if x)


def parse_task_rates(specs: list[str] | None) -> dict[str, tuple[float, ...]]:
    """``["hotpotqa_long=0.25,0.1", ...]`` -> ``{"hotpotqa_long": (0.25, 0.1)}`` (None: the
    default :data:`~mooscomp.evaluation.report.TASK_RATES`; ``TASK=`` alone: the task runs at
    ``--rates`` like the others)."""
    if specs is None:
        return dict(TASK_RATES)
    out: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        task, sep, rates = spec.partition("=")
        if not sep or not task:
            raise SystemExit(f"--task-rates wants TASK=R1,R2, got {spec!r}")
        if rates:
            out[task] = tuple(float(r) for r in _csv(rates))
    return out


def quality_config(args: argparse.Namespace) -> Any:
    """The :class:`~mooscomp.evaluation.quality.QualityConfig` of ``bench compress|quality``."""
    from mooscomp.evaluation.methods import MethodOptions
    from mooscomp.evaluation.quality import QualityConfig

    work = Path(args.work)
    options = MethodOptions(
        mooscomp_model=args.mooscomp_model,
        llmlingua2_style_model=args.llmlingua2_style_model,
        compress_device=args.compress_device or args.device,
        lm_device=args.device,
        lm_dtype=args.reader_dtype,
        work_dir=work,
        seed=args.seed,
        sc_lm=args.sc_lm,
        sc_max_len=args.sc_max_len,
        sc_batch=args.sc_batch,
        longllmlingua_lm=args.longllmlingua_lm,
    )
    return QualityConfig(
        items=Path(args.items),
        work=work,
        methods=_csv(args.methods),
        rates=tuple(float(r) for r in _csv(args.rates)),
        task_rates=parse_task_rates(args.task_rates),
        tasks=_csv(args.tasks),
        limit=args.limit,
        method_options=options,
        reader=args.reader,
        reader_tokenizer=args.reader_tokenizer,
        reader_device=args.device,
        reader_dtype=args.reader_dtype,
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        max_input_tokens=args.max_input_tokens,
        seed=args.seed,
        prepared=_csv(args.prepared),
        results=_csv(args.results),
        time_budget_s=args.time_budget,
        report=Path(args.report) if args.report else work / "quality.json",
        plot=None if args.plot == "none" else Path(args.plot) if args.plot else work / "quality.png",
    )


def _quality(args: argparse.Namespace, *, read: bool) -> int:
    from mooscomp.evaluation.quality import run_compression, run_quality
    from mooscomp.evaluation.report import format_table

    cfg = quality_config(args)
    say = None if args.quiet else (lambda s: _log(args, s))
    if not read:
        n_c = run_compression(cfg, progress=say)
        _log(args, f"compression stage: {n_c} new rows")
        print(json.dumps({"work": str(cfg.work), "new_compressions": n_c}))
        return 0
    if not cfg.reader:
        raise SystemExit("--reader is required for the quality run")
    report = run_quality(cfg, progress=say, runtime={"command": " ".join(sys.argv)})
    print(format_table(report))
    print(
        json.dumps(
            {"report": str(cfg.report), "failures": report["failures"],
             "complete": report["complete"]}
        )
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.bench_cmd == "prepare":
        return _prepare(args)
    if args.bench_cmd == "compress":
        return _quality(args, read=False)
    if args.bench_cmd == "quality":
        return _quality(args, read=True)
    raise SystemExit(f"unknown bench command {args.bench_cmd!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mooscomp")
    subs = parser.add_subparsers(dest="command", required=True)
    add_parser(subs)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
