"""``mooscomp bench``: build evaluation items, precompute compressions, run the quality benchmark.

Subcommands:
  prepare   sample the fixed task items (+ spaCy phrase units for Selective-Context) → items file
  compress  run the compression stage only (e.g. on a CPU machine, to carry to a GPU machine)
  quality   compress what is missing, read with a reader LLM, score → quality.json (+ PNG, table)
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from mooscomp.evaluation.runner import METHODS, RATES

DEFAULT_ITEMS = "data/cache/eval/items.jsonl.gz"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="evaluation benchmarks (quality vs rate, baselines)")
    sub = p.add_subparsers(dest="bench_cmd", required=True)

    pr = sub.add_parser("prepare", help="sample the fixed evaluation items")
    pr.add_argument("--out", default=DEFAULT_ITEMS, help="items file (.jsonl or .jsonl.gz)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--tasks", default="squad,hotpotqa,xsum,bbh,needle")
    pr.add_argument("--n-squad", type=int, default=200)
    pr.add_argument("--n-hotpotqa", type=int, default=200)
    pr.add_argument("--n-xsum", type=int, default=60)
    pr.add_argument("--n-bbh", type=int, default=20, help="items per BBH subtask (6 subtasks)")
    pr.add_argument("--n-needle", type=int, default=8, help="items per haystack length")
    pr.add_argument("--needle-lengths", default="8000,16000,28000")
    pr.add_argument("--no-phrase-units", action="store_true", help="skip spaCy phrase units")

    for name, helptext in (("compress", "compression stage only"), ("quality", "full quality run")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--items", default=DEFAULT_ITEMS)
        q.add_argument("--work", default="data/cache/eval/run", help="resumable run folder")
        q.add_argument("--methods", default=",".join(METHODS))
        q.add_argument("--rates", default=",".join(str(r) for r in RATES.values()))
        q.add_argument("--tasks", default="", help="comma list to restrict tasks (default: all)")
        q.add_argument("--limit", type=int, default=0, help="at most N items per task (0 = all)")
        q.add_argument(
            "--mooscomp-model", default="", help="shipped model dir ('default' = packaged)"
        )
        q.add_argument("--llmlingua2-style-model", default="", help="beta=0 model dir")
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
        q.add_argument("--report", default="reports/quality.json")
        q.add_argument("--plot", default="reports/quality.png")
        q.add_argument("--quiet", action="store_true")
    return p


def _log(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _prepare(args: argparse.Namespace) -> int:
    from mooscomp.evaluation.baselines import add_phrase_units, load_spacy
    from mooscomp.evaluation.tasks import TaskSizes, build_items, save_items

    sizes = TaskSizes(
        squad=args.n_squad,
        hotpotqa=args.n_hotpotqa,
        xsum=args.n_xsum,
        bbh=args.n_bbh,
        needle=args.n_needle,
        needle_lengths=tuple(int(x) for x in args.needle_lengths.split(",") if x),
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


def _copy_jsonl(srcs: str, dst: Path) -> None:
    """Append (gzipped) JSON-lines files (comma-separated) into ``dst``; the runner skips keys
    it has already seen, so merging the same file twice is harmless."""
    for src in (s for s in srcs.split(",") if s):
        opener: Any = gzip.open if src.endswith(".gz") else open
        dst.parent.mkdir(parents=True, exist_ok=True)
        with opener(src, "rt", encoding="utf-8") as f, open(dst, "a", encoding="utf-8") as g:
            shutil.copyfileobj(f, g)
            g.write("\n")


def load_reader(args: argparse.Namespace) -> Any:
    from mooscomp.evaluation.reader import TransformersReader

    return TransformersReader.load(
        args.reader,
        device=args.device,
        dtype=args.reader_dtype,
        tokenizer_path=args.reader_tokenizer or None,
        max_batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        max_input_tokens=args.max_input_tokens,
    )


def build_methods(
    args: argparse.Namespace, wanted: set[str], reader: Any | None
) -> tuple[list[Any], dict[str, Any]]:
    """The methods named in ``wanted`` that can be built from the arguments, and notes on them."""
    from mooscomp.evaluation import baselines as B

    notes: dict[str, Any] = {}
    cdev = args.compress_device or args.device
    moos = ll2 = llpkg = sc = None
    if wanted & {"mooscomp", "mooscomp_no_outlier"} and args.mooscomp_model:
        from mooscomp import Compressor

        path = None if args.mooscomp_model == "default" else args.mooscomp_model
        moos = Compressor.from_pretrained(path, device=cdev)
        notes["mooscomp"] = {"model": args.mooscomp_model, "config": moos.config.to_dict()}
    if wanted & {"llmlingua2_style", "llmlingua_pkg"} and args.llmlingua2_style_model:
        from mooscomp import Compressor

        if "llmlingua2_style" in wanted:
            ll2 = Compressor.from_pretrained(args.llmlingua2_style_model, device=cdev)
            notes["llmlingua2_style"] = {
                "model": args.llmlingua2_style_model,
                "outlier_alpha": 0.0,
                "budget": "llmlingua2",
                "units": [],
            }
        if "llmlingua_pkg" in wanted:
            exported = B.export_for_llmlingua(
                args.llmlingua2_style_model, Path(args.work) / "llmlingua_model"
            )
            llpkg = B.LLMLinguaPackage(exported, device=cdev)
            notes["llmlingua_pkg"] = {"model": str(exported), "llmlingua": _version("llmlingua")}
    if "selective_context" in wanted:
        lm = tok = None
        if args.sc_lm == "reader" and reader is not None:
            lm, tok, lm_name = reader.model, reader.tokenizer, f"reader:{reader.name}"
        elif args.sc_lm not in ("", "reader"):
            from mooscomp.evaluation.reader import TransformersReader

            r2 = TransformersReader.load(args.sc_lm, device=args.device, dtype=args.reader_dtype)
            lm, tok, lm_name = r2.model, r2.tokenizer, args.sc_lm
        if lm is not None:
            sc = B.SelectiveContext(
                B.CausalLMScorer(lm, tok, max_len=args.sc_max_len, batch_size=args.sc_batch),
                unit="phrase",
                nlp=B.load_spacy(),
            )
            notes["selective_context"] = {"lm": lm_name, "unit": "phrase", "percentile": "token"}
    methods = B.make_methods(
        mooscomp=moos,
        llmlingua2_style=ll2,
        llmlingua_pkg=llpkg,
        selective_context=sc,
        seed=args.seed,
    )
    return methods, notes


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def _select_items(args: argparse.Namespace) -> list[Any]:
    from mooscomp.evaluation.tasks import load_items

    items = load_items(args.items)
    if args.tasks:
        keep = set(args.tasks.split(","))
        items = [it for it in items if it.task in keep]
    if args.limit:
        count: dict[str, int] = {}
        out = []
        for it in items:
            count[it.task] = count.get(it.task, 0) + 1
            if count[it.task] <= args.limit:
                out.append(it)
        items = out
    return items


def _quality(args: argparse.Namespace, *, read: bool) -> int:
    from mooscomp.evaluation.runner import RunConfig, Runner, format_table, plot_report

    t_start = time.perf_counter()
    items = _select_items(args)
    wanted = {m for m in args.methods.split(",") if m}
    work = Path(args.work)
    _copy_jsonl(args.prepared, work / "compressions.jsonl")
    _copy_jsonl(args.results, work / "results.jsonl")
    reader = None
    if args.reader and (read or ("selective_context" in wanted and args.sc_lm == "reader")):
        t0 = time.perf_counter()
        reader = load_reader(args)
        _log(args, f"reader {reader.name} loaded in {time.perf_counter() - t0:.0f}s")
    methods, notes = build_methods(args, wanted, reader)
    names = [n for m in methods for n in m.names]
    missing = sorted(wanted - set(names))
    if missing:
        _log(
            args, f"methods not available with these arguments (only prepared rows used): {missing}"
        )
    cfg = RunConfig(
        rates=tuple(float(r) for r in args.rates.split(",") if r),
        methods=tuple(m for m in METHODS if m in wanted),
        seed=args.seed,
    )
    runner = Runner(
        items, methods, work, config=cfg, progress=None if args.quiet else (lambda s: _log(args, s))
    )
    n_c = runner.compress()
    _log(args, f"compression stage: {n_c} new rows")
    if not read:
        print(json.dumps({"work": str(work), "new_compressions": n_c}))
        return 0
    if reader is None:
        raise SystemExit("--reader is required for the quality run")
    budget = args.time_budget - (time.perf_counter() - t_start) if args.time_budget else 0.0
    n_r = _read_with_budget(runner, reader, budget)
    runtime = {
        "reader": reader.info(),
        "methods": notes,
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "command": " ".join(sys.argv),
        "packages": {
            p: _version(p)
            for p in ("mooscomp", "torch", "transformers", "llmlingua", "spacy", "gguf")
        },
    }
    report = runner.summarize(runtime=runtime)
    report["complete"] = n_r >= 0
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_report(report, args.plot)
    print(format_table(report))
    print(
        json.dumps(
            {"report": args.report, "failures": report["failures"], "complete": report["complete"]}
        )
    )
    return 0


def _read_with_budget(runner: Any, reader: Any, budget: float) -> int:
    """Read everything, or stop between reader groups once ``budget`` seconds are spent
    (returns -1 then; the results so far stay in ``results.jsonl`` for a later resume)."""
    if budget <= 0:
        return int(runner.read(reader))
    deadline = time.perf_counter() + budget

    class _OutOfTime(Exception):
        pass

    orig = runner._generate_safely

    def guarded(rdr: Any, prompts: list[str], max_new: int) -> list[Any]:
        if time.perf_counter() > deadline:
            raise _OutOfTime
        return list(orig(rdr, prompts, max_new))

    runner._generate_safely = guarded
    try:
        return int(runner.read(reader))
    except _OutOfTime:
        return -1
    finally:
        runner._generate_safely = orig


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
