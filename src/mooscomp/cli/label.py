"""``mooscomp label``: word keep/drop labels for a corpus from a causal-LM surprisal teacher."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("label", help="label a JSONL corpus with a surprisal teacher")
    p.add_argument("corpus", help="JSONL(.gz) with doc_id and text per line (unit_spans optional)")
    p.add_argument("out_dir", help="output folder of append-only shards (resumable)")
    p.add_argument("--teacher-model", required=True, help="HF causal-LM folder, or the folder of a GGUF")
    p.add_argument("--gguf-file", help="GGUF file name inside --teacher-model (needs gguf)")
    p.add_argument("--keep-fraction", type=float, default=0.4, help="share of words kept per window")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--shard-size", type=int, default=500, help="documents per shard")
    p.add_argument("--batch-docs", type=int, default=16, help="documents per teacher call")
    p.add_argument("--max-docs", type=int, help="label at most N new documents")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mooscomp.cli import UserError
    from mooscomp.labeling import (
        JobConfig,
        SurprisalConfig,
        SurprisalTeacher,
        label_corpus,
        read_documents,
    )

    if not Path(args.corpus).is_file():
        raise UserError(f"no such corpus file: {args.corpus}")
    if not Path(args.teacher_model).exists():
        raise UserError(f"no such teacher model: {args.teacher_model}")
    try:
        teacher = SurprisalTeacher.from_pretrained(
            args.teacher_model,
            gguf_file=args.gguf_file,
            device=args.device,
            config=SurprisalConfig(keep_fraction=args.keep_fraction),
        )
    except ImportError as e:  # an optional dependency of the teacher (gguf): say what to install
        raise UserError(str(e)) from None

    def progress(stats: Any) -> None:
        sys.stderr.write(f"\rlabelled {stats.done} docs, {stats.words} words")
        sys.stderr.flush()

    stats = label_corpus(
        read_documents(args.corpus),
        teacher,
        args.out_dir,
        shard_size=args.shard_size,
        config=JobConfig(batch_docs=args.batch_docs),
        progress=progress,
        limit=args.max_docs,
    )
    d = stats.as_dict()
    sys.stderr.write(
        f"\ndone: {d['done']} labelled, {d['skipped_existing']} already done, "
        f"{sum(d['skipped'].values())} skipped, {d['errors']} failed; keep rate {d['keep_rate']:.3f}\n"
    )
    return 0
