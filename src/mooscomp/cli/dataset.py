"""``mooscomp compress-dataset IN OUT``: compress a JSONL/Parquet corpus (local pool or Ray)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

# Exit code of a job that ran to the end but failed on more rows than --max-error-rate allows.
EXIT_TOO_MANY_ERRORS = 3
DEFAULT_MAX_ERROR_RATE = 0.1


def add_parser(sub: Any) -> None:
    from mooscomp.batch import ENGINES, FORMATS

    p = sub.add_parser(
        "compress-dataset",
        help="compress the text column of a JSONL/Parquet file (resumable; local pool or Ray)",
        description="Compress every row of IN into OUT. Other columns are carried through; "
        "compressed_prompt, origin_tokens, compressed_tokens, rate, ratio and error are added. "
        "Bad rows (text missing, not a string, empty or too long; not a JSON object) are passed "
        "through with an error. The job always writes OUT; it exits with "
        f"{EXIT_TOO_MANY_ERRORS} when the share of error rows is above --max-error-rate. "
        "An interrupted run resumes from OUT.parts/ when rerun with the same arguments.",
    )
    p.add_argument("input", metavar="IN", help="input .jsonl/.ndjson/.json(.gz) or .parquet")
    p.add_argument("output", metavar="OUT", help="output .jsonl or .parquet (CSV is not supported)")
    p.add_argument("--text-column", default="text", help="column to compress (default: text)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rate", type=float, help="compressed/original token ratio in (0, 1]")
    g.add_argument("--target-tokens", type=int, help="wanted compressed tokens per row (> 0)")
    p.add_argument("--force-token", action="append", default=[], metavar="T", help="always keep T")
    p.add_argument(
        "--engine", choices=tuple(ENGINES), default="local",
        help="local process pool (default), Ray Data, this process only, or pipeline "
        "(one GPU in this process, CPU workers tokenise and select)",
    )
    p.add_argument("--workers", type=int, help="processes / Ray actors (default: one per CPU/GPU)")
    p.add_argument("--threads-per-worker", type=int, help="torch threads per worker")
    p.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS or a local one)")
    p.add_argument("--ray-num-cpus", type=int, help="CPUs of a local Ray cluster started here")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    p.add_argument("--format", choices=FORMATS, help="output format (default: OUT's suffix)")
    p.add_argument("--shard-rows", type=int, default=1024, help="rows per resumable shard")
    p.add_argument("--batch-rows", type=int, default=32, help="rows per compress_batch call")
    p.add_argument("--max-chars", type=int, default=1_000_000, help="longer rows are oversized")
    p.add_argument(
        "--max-error-rate", type=float, default=DEFAULT_MAX_ERROR_RATE, metavar="R",
        help=f"exit {EXIT_TOO_MANY_ERRORS} when more than this share of rows are error rows "
        f"(default {DEFAULT_MAX_ERROR_RATE}; 1 = never)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.add_argument("--report", action="store_true", help="print the run report as JSON on stdout")
    p.set_defaults(run=run)


def _config(args: argparse.Namespace) -> Any:
    from mooscomp.batch import DatasetJobConfig
    from mooscomp.cli import UserError

    if args.engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(
                "--engine ray needs Ray: install the extra from the checkout with "
                "pip install -e '.[ray]' (or bash scripts/setup.sh ray)"
            ) from None
    r = args.max_error_rate
    if not (isinstance(r, float) and math.isfinite(r) and 0.0 <= r <= 1.0):
        raise UserError(f"--max-error-rate must be in [0, 1], got {r}")
    try:
        return DatasetJobConfig(
            text_column=args.text_column,
            rate=args.rate,
            target_tokens=args.target_tokens,
            force_tokens=tuple(args.force_token),
            model=args.model,
            device=args.device,
            engine=args.engine,
            workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            shard_rows=args.shard_rows,
            batch_rows=args.batch_rows,
            max_chars=args.max_chars,
            output_format=args.format,
            ray_address=args.ray_address,
            ray_num_cpus=args.ray_num_cpus,
        )
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from mooscomp.batch import Progress, compress_dataset
    from mooscomp.cli import UserError

    cfg = _config(args)
    tty = sys.stderr.isatty()

    def show(p: Progress) -> None:
        rate = p.rows_done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        line = (
            f"shard {p.shards_done}/{p.shards_total}  rows {p.rows_done}/{p.rows_total}  "
            f"errors {p.error_rows}  {rate:.1f} rows/s"
        )
        sys.stderr.write(("\r" + line) if tty else line + "\n")
        sys.stderr.flush()

    try:
        report = compress_dataset(
            args.input, args.output, cfg, progress=None if args.quiet else show,
            overwrite=args.overwrite,
        )
    except (FileExistsError, ImportError) as e:
        raise UserError(str(e)) from None
    if tty and not args.quiet:
        sys.stderr.write("\n")
    if args.report:
        sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n")
    sys.stderr.write(
        f"{report.rows} rows -> {report.output} ({report.error_rows} errors"
        + (f": {report.errors}" if report.errors else "")
        + f"; {report.origin_tokens} -> {report.compressed_tokens} tokens; "
        f"{report.shards_skipped}/{report.shards} shards resumed; {report.elapsed_s:.1f} s)\n"
    )
    if report.error_rate > args.max_error_rate:
        top = max(report.errors.items(), key=lambda kv: kv[1])
        sys.stderr.write(
            f"mooscomp compress-dataset: error: {report.error_rows} of {report.rows} rows "
            f"({report.error_rate:.1%}) are error rows, above --max-error-rate "
            f"{args.max_error_rate:g} (most: {top[0]} x{top[1]}); see the error column of "
            f"{report.output}\n"
        )
        return EXIT_TOO_MANY_ERRORS
    return 0
