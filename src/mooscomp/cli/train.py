"""``mooscomp train``: train a compressor on labelled JSONL shards with the MOOS loss."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a compressor on labelled documents (MOOS loss)")
    p.add_argument("--data", action="append", default=[], metavar="GLOB",
                   help="labelled JSONL(.gz) shards (repeatable; default data/labels/**/*.jsonl.gz)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, history.json")
    p.add_argument("--export", metavar="DIR", help="write the best model as a model directory")
    p.add_argument("--encoder", help="base encoder folder (default: the pip-installed MiniLM-L6)")
    p.add_argument("--beta", type=float, default=0.5, help="weight of the inter-class cosine loss")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0, help="0 = no clipping")
    p.add_argument("--top-layers", type=int, default=2,
                   help="train only the top N encoder layers + head (0 = full fine-tune)")
    p.add_argument("--patience", type=int, default=2, help="early-stopping epochs (0 = off)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--max-docs", type=int, help="use only the first N documents (smoke runs)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="storage dtype of --export")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _progress_bar() -> Any:
    """A tqdm bar per epoch on stderr (None when tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    state: dict[str, Any] = {"bar": None, "epoch": 0}

    def report(p: Any) -> None:
        if p.stage == "train":
            if state["epoch"] != p.epoch:
                if state["bar"] is not None:
                    state["bar"].close()
                state["bar"] = tqdm(total=p.steps_per_epoch, desc=f"epoch {p.epoch}/{p.epochs}",
                                    file=sys.stderr, leave=False)
                state["epoch"] = p.epoch
            bar = state["bar"]
            bar.update(p.step - bar.n)
            bar.set_postfix(loss=f"{p.loss:.4f}")
        elif p.stage in ("val", "done"):
            if state["bar"] is not None:
                state["bar"].close()
                state["bar"] = None
            m = p.metrics or {}
            if m:
                tag = "val" if p.stage == "val" else "best"
                sys.stderr.write(
                    f"{tag} epoch {p.epoch}: f1 {m['f1']:.4f} acc {m['accuracy']:.4f} "
                    f"S^L {m['last_layer_cos']:.4f}\n"
                )

    return report


def run(args: argparse.Namespace) -> int:
    from mooscomp._util import atomic_write_text
    from mooscomp.cli import UserError
    from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir
    from mooscomp.training import TrainConfig, export_model, load_label_shards, train

    patterns = args.data or ["data/labels/**/*.jsonl.gz"]
    paths = sorted({p for pat in patterns for p in glob.glob(pat, recursive=True)})
    if not paths:
        raise UserError(f"no labelled shards match {patterns}")
    docs = load_label_shards(paths)
    if args.max_docs is not None:
        docs = docs[: args.max_docs]
    if not docs:
        raise UserError(f"the shards {paths[:3]} hold no documents")
    base = None if args.encoder else DEFAULT_BASE
    encoder = args.encoder or str(resolve_base_dir(DEFAULT_BASE))
    config = TrainConfig(
        encoder=encoder, beta=args.beta, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
        max_length=args.max_length, seed=args.seed, val_fraction=args.val_fraction,
        warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
        grad_clip=args.grad_clip or None, trainable_top_layers=args.top_layers or None,
        patience=args.patience or None, device=args.device,
    )
    progress = None if args.no_progress else _progress_bar()
    result = train(config, docs, out_dir=args.out, progress=progress, resume=not args.no_resume)
    atomic_write_text(Path(args.out) / "history.json", json.dumps(
        {"config": config.to_dict(), "best_epoch": result.best_epoch,
         "best": result.best_metrics, "history": result.history}, indent=1))
    if args.export:
        import torch

        export_model(result, args.export, base=base if args.top_layers else None,
                     dtype=getattr(torch, args.dtype),
                     metadata={"data": {"shards": paths, "n_docs": len(docs)}})
        print(f"model written to {args.export}")
    m = result.best_metrics or {}
    print(json.dumps({"best_epoch": result.best_epoch, "val_f1": m.get("f1"),
                      "val_acc": m.get("accuracy"), "last_layer_cos": m.get("last_layer_cos"),
                      "train_seconds": round(result.train_seconds, 1)}))
    return 0
