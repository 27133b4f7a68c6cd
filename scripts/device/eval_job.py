"""The GPU quality job: every method × rate × task with the reader LLM in large batches.

Run from the repository root on the device machine (see the README of ``benchmarks/``):

    python3 scripts/device/eval_job.py --reader .carry/reader/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
        --items .carry/eval/items.jsonl.gz --prepared .carry/eval/compressions.jsonl.gz

It writes to ``$OUT`` (or ``--out``): ``quality.json``, ``quality.png``, ``results.jsonl.gz`` and
``compressions_gpu.jsonl.gz`` (carry both back, as ``--results`` and as a second ``--prepared``
file, to resume a run cut by ``--time-budget``).
``--reader-parts DIR`` reassembles a reader split with ``shared/tools/split-parts`` (sha256-checked).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def reassemble(parts_dir: Path, dest: Path) -> Path:
    """cat parts_dir/part.* > dest, checked against parts_dir/MANIFEST (sha256  name)."""
    manifest = (parts_dir / "MANIFEST").read_text().split()
    want, name = manifest[0], manifest[1]
    target = dest / name
    if not target.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for part in sorted(parts_dir.glob("part.*")):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 24)
    from mooscomp._util import sha256_file

    got = sha256_file(target)
    if got != want:
        raise SystemExit(f"{target}: sha256 {got} != MANIFEST {want}")
    return target


def _save_new_compressions(path: Path, prepared: str, out: Path) -> None:
    """Write the compressions made here (not those carried in) to out/compressions_gpu.jsonl.gz,
    so a second call can resume without recomputing them (and $OUT stays small)."""
    if not path.is_file():
        return
    from mooscomp._util import iter_jsonl

    carried: set[str] = set()
    for src in (p for p in prepared.split(",") if p):
        carried.update(r["key"] for r in iter_jsonl(src, strict=True))
    with open(path, encoding="utf-8") as f, gzip.open(out / "compressions_gpu.jsonl.gz", "wt") as g:
        for line in f:
            if line.strip() and json.loads(line)["key"] not in carried:
                g.write(line)


def _bench_argv(a: argparse.Namespace, reader: str, out: Path) -> list[str]:
    """The ``mooscomp bench quality`` arguments of this job."""
    from mooscomp.evaluation.runner import METHODS

    argv = [
        "bench",
        "quality",
        "--items",
        a.items,
        "--work",
        a.work,
        "--reader",
        reader,
        "--device",
        a.device,
        "--batch-size",
        str(a.batch_size),
        "--max-batch-tokens",
        str(a.max_batch_tokens),
        "--methods",
        a.methods or ",".join(METHODS),
        "--report",
        str(out / "quality.json"),
        "--plot",
        str(out / "quality.png"),
        "--time-budget",
        str(a.time_budget),
        "--sc-batch",
        str(a.sc_batch),
    ]
    for flag, val in (
        ("--reader-tokenizer", a.reader_tokenizer),
        ("--prepared", a.prepared),
        ("--results", a.results),
        ("--tasks", a.tasks),
        ("--mooscomp-model", a.mooscomp_model),
        ("--llmlingua2-style-model", a.llmlingua2_style_model),
    ):
        if val:
            argv += [flag, val]
    if a.limit:
        argv += ["--limit", str(a.limit)]
    return argv


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reader", default="/root/qwen/qwen.gguf", help=".gguf file or HF folder")
    ap.add_argument("--reader-tokenizer", default="", help="tokenizer folder (e.g. .whl/qwen_tok)")
    ap.add_argument("--reader-parts", default="", help="folder of split-parts output")
    ap.add_argument("--items", default=".carry/eval/items.jsonl.gz")
    ap.add_argument("--prepared", default="", help="precomputed compressions (.jsonl[.gz])")
    ap.add_argument("--results", default="", help="results of an earlier call, to resume")
    ap.add_argument("--mooscomp-model", default="")
    ap.add_argument("--llmlingua2-style-model", default="")
    ap.add_argument("--methods", default="")
    ap.add_argument("--tasks", default="")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-batch-tokens", type=int, default=256_000)
    ap.add_argument("--time-budget", type=float, default=470.0, help="stop reading after N s")
    ap.add_argument("--sc-batch", type=int, default=4, help="Selective-Context windows per forward")
    ap.add_argument("--work", default="/tmp/mooscomp-evalrun")
    ap.add_argument("--out", default=os.environ.get("OUT", "reports/device"))
    a = ap.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reader = a.reader
    if a.reader_parts:
        reader = str(reassemble(Path(a.reader_parts), Path("/tmp/mooscomp-reader")))
        print(f"[job] reader reassembled in {time.perf_counter() - t0:.0f}s: {reader}", flush=True)
    from mooscomp.cli import bench

    argv = _bench_argv(a, reader, out)
    parser = argparse.ArgumentParser(prog="mooscomp")
    bench.add_parser(parser.add_subparsers(dest="command"))
    try:
        rc = bench.run(parser.parse_args(argv))
    finally:
        res = Path(a.work) / "results.jsonl"
        if res.is_file():
            with open(res, "rb") as f, gzip.open(out / "results.jsonl.gz", "wb") as g:
                shutil.copyfileobj(f, g)
        _save_new_compressions(Path(a.work) / "compressions.jsonl", a.prepared, out)
        print(f"[job] total {time.perf_counter() - t0:.0f}s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
