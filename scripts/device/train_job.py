"""One command for the GPU machine: β ablation + storage comparison + the shipped models.

    # here, once: pack the pip-installed MiniLM as fp16 (45 MB, fits the 64 MiB carry limit)
    .venv/bin/python scripts/device/train_job.py pack-encoder --dest .carry/minilm16
    # on the device (carry .carry/minilm16):
    PYTHONPATH=src PYTHONUNBUFFERED=1 python3 scripts/device/train_job.py run \\
        --encoder .carry/minilm16 --out "$OUT" --budget 480

Writes to --out (≤ 8 files, each well under 16 MiB):
  training_ablation.json   report: summary.runs [{beta, seed, val_f1, val_acc, last_layer_cos}],
                           storage cost (full vs top-k F1), chosen β, final-model checks
  training_ablation.png    S^l per layer per β and F1 vs β (if matplotlib is there)
  model_default.tar        best configuration, top-k layers + head, fp16 delta over the base
  model_beta0.tar          same storage, β = 0 (the "llmlingua2_style" baseline)
  train_job.log            the log
The packed fp16 encoder is widened to fp32 for training; delta models record the pip base's
sha256 (from base.json), so they load over the pip-installed fp32 MiniLM. Also runs on CPU with
tiny settings: ``run --synthetic 30 --epochs 1 --out /tmp/job`` or ``--max-docs 20``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

_TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                    "special_tokens_map.json")


def pack_encoder(dest: str) -> int:
    """fp16 copy of the pip-installed base + base.json (its record and fp32 sha256)."""
    from safetensors.torch import load_file, save_file

    from mooscomp._util import sha256_file
    from mooscomp.modeling import DEFAULT_BASE, WEIGHTS_NAME, resolve_base_dir

    src = resolve_base_dir(DEFAULT_BASE)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    w = load_file(str(src / WEIGHTS_NAME))
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in w.items()},
              str(out / WEIGHTS_NAME))
    for n in _TOKENIZER_FILES:
        if (src / n).is_file():
            shutil.copy2(src / n, out / n)
    rec = {**DEFAULT_BASE, "sha256": sha256_file(src / WEIGHTS_NAME)}
    (out / "base.json").write_text(json.dumps(rec, indent=1))
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"packed {src} -> {out} ({size:.1f} MiB)")
    return 0


def widen_encoder(packed: Path, dest: Path) -> tuple[str, dict[str, Any] | None]:
    """fp32 encoder folder for training, and the base record to write into delta models."""
    from safetensors.torch import load_file, save_file

    base_json = packed / "base.json"
    if not base_json.is_file():  # a plain fp32 HF folder: train from it, store full weights
        return str(packed), None
    dest.mkdir(parents=True, exist_ok=True)
    w = load_file(str(packed / "model.safetensors"))
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in w.items()},
              str(dest / "model.safetensors"))
    for n in _TOKENIZER_FILES:
        if (packed / n).is_file():
            shutil.copy2(packed / n, dest / n)
    return str(dest), json.loads(base_json.read_text())


def export_and_check(result: Any, dest: Path, *, encoder: str, base_rec: dict[str, Any] | None,
                     val_batch: list, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write a delta fp16 model dir, reload it through load_model, compare its logits."""
    import torch

    from mooscomp.modeling import DEFAULT_BASE, load_model
    from mooscomp.training import collate, export_model

    installed = base_rec is None
    base = DEFAULT_BASE if installed else {"path": encoder}
    if dest.exists():
        shutil.rmtree(dest)
    export_model(result, dest, base=base, dtype=torch.float16, metadata=metadata)
    model, tok, cfg, _ = load_model(dest, device="cpu")
    b = collate(val_batch, pad_id=tok.pad_token_id or 0)
    ref = result.model.to("cpu").float().eval()
    with torch.no_grad():
        a = ref(b["input_ids"], b["attention_mask"]).logits
        c = model(b["input_ids"], b["attention_mask"]).logits
    m = b["labels"] != -100
    diff = float((a - c).abs()[m].max()) if bool(m.any()) else 0.0
    agree = float(((a.argmax(-1) == c.argmax(-1)) & m).sum() / m.sum().clamp_min(1))
    if not installed:  # record the pip base (and its sha256) instead of the training copy
        cfg_path = dest / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base"] = base_rec
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    size = sum(p.stat().st_size for p in dest.iterdir())
    return {"dir_bytes": size, "weights_bytes": (dest / "model.safetensors").stat().st_size,
            "storage": cfg["storage"], "reload_max_abs_logit_diff": diff,
            "reload_argmax_agreement": agree}


def tar_dir(folder: Path, tar_path: Path) -> None:
    with tarfile.open(tar_path, "w") as tf:
        tf.add(folder, arcname=folder.name)


def run_job(args: argparse.Namespace) -> int:
    import torch
    import transformers
    from train_ablation import best_beta, common_settings, plot, prepare, run_ablation, run_one

    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out or os.environ.get("OUT") or "/tmp/mooscomp_train_job")
    out.mkdir(parents=True, exist_ok=True)
    log_f = open(out / "train_job.log", "a", encoding="utf-8")  # noqa: SIM115
    t0 = time.perf_counter()

    def log(s: str) -> None:
        line = f"[{time.perf_counter() - t0:7.1f}s] {s}"
        print(line, file=sys.stderr, flush=True)
        log_f.write(line + "\n")
        log_f.flush()

    work = Path(args.work)
    if args.encoder:
        encoder, base_rec = widen_encoder(Path(args.encoder), work / "encoder_fp32")
    else:
        from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir

        encoder, base_rec = str(resolve_base_dir(DEFAULT_BASE)), None
    args.encoder = encoder
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"device {dev} ({torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu'}), "
        f"torch {torch.__version__}, transformers {transformers.__version__}, encoder {encoder}")
    encoded, info = prepare(args, encoder)
    report = run_ablation(args, log=log, budget_s=args.budget - (time.perf_counter() - t0),
                          reserve_runs=3.0, encoded=encoded, data_info=info)
    rows = report["runs_detail"]
    shipped = f"top{args.top_layers[0]}" if args.top_layers[0] else "full"
    beta = best_beta(rows, shipped)
    chosen = [r for r in rows if r["trainable"] == shipped and r["beta"] == beta]
    final_epochs = max(1, round(statistics.fmean(r["best_epoch"] for r in chosen)))
    log(f"chosen beta {beta:g} ({shipped}); final training on all docs for {final_epochs} epochs")
    from mooscomp.training import split_by_document

    _, va = split_by_document([d.doc_id for d in encoded], 0.1)
    val_batch = [c for i in va for c in encoded[i].chunks][:16]
    finals: dict[str, Any] = {"beta": beta, "trainable": shipped, "epochs": final_epochs}
    common = common_settings(args)
    for tag, b in (("model_default", beta), ("model_beta0", 0.0)):
        if tag == "model_beta0" and beta == 0.0 and "model_default" in finals:
            shutil.copy2(out / "model_default.tar", out / "model_beta0.tar")
            finals[tag] = {**finals["model_default"], "same_as": "model_default"}
            continue
        row, res = run_one(encoded, encoder=encoder, beta=b, seed=0,
                           top_layers=args.top_layers[0] or None, epochs=final_epochs, work=work,
                           common=common, val_fraction=0.0, log=log)
        ab = [r for r in rows if r["trainable"] == shipped and r["beta"] == b]
        meta = {"data": {k: v for k, v in info.items() if k != "shards"},
                "ablation_val": {"trainable": shipped, "beta": b,
                                 "val_f1_mean": statistics.fmean(r["val_f1"] for r in ab) if ab else None,
                                 "val_acc_mean": statistics.fmean(r["val_acc"] for r in ab) if ab else None,
                                 "last_layer_cos_mean":
                                     statistics.fmean(r["last_layer_cos"] for r in ab) if ab else None}}
        dest = work / "export" / tag
        check = export_and_check(res, dest, encoder=encoder, base_rec=base_rec,
                                 val_batch=val_batch, metadata=meta)
        tar_dir(dest, out / f"{tag}.tar")
        finals[tag] = {"beta": b, "seconds": row["seconds"], **check, "ablation_val": meta["ablation_val"]}
        log(f"{tag}: {check['weights_bytes'] / 2**20:.2f} MiB weights, reload diff "
            f"{check['reload_max_abs_logit_diff']:.2e}, agreement {check['reload_argmax_agreement']:.4f}")
    report["final"] = finals
    report["device"] = dev
    report["job_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "training_ablation.json").write_text(json.dumps(report, indent=1))
    drawn = plot(report, out / "training_ablation.png")
    log(f"done in {report['job_seconds']}s; png {'written' if drawn else 'skipped (no matplotlib)'}")
    log_f.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mooscomp training job (GPU or tiny CPU runs)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack-encoder", help="fp16 copy of the pip base for the device carry")
    pk.add_argument("--dest", default=".carry/minilm16")
    r = sub.add_parser("run", help="ablation + final models")
    r.add_argument("--encoder", help="packed (pack-encoder) or fp32 encoder folder; default pip")
    r.add_argument("--out", help="output folder (default $OUT)")
    r.add_argument("--work", default="/tmp/mooscomp_train_job_work")
    r.add_argument("--data", action="append", default=[], metavar="GLOB")
    r.add_argument("--synthetic", type=int, default=0)
    r.add_argument("--max-docs", type=int)
    r.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.1, 0.5, 1.0])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    r.add_argument("--top-layers", type=int, nargs="+", default=[2, 0],
                   help="first = the shipped setting (k layers + head); 0 = full fine-tune")
    r.add_argument("--epochs", type=int, default=5)
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--max-length", type=int, default=512)
    r.add_argument("--device", default="auto")
    r.add_argument("--budget", type=float, default=480.0,
                   help="seconds for the whole job; ablation runs that would not fit are skipped")
    args = ap.parse_args(argv)
    if args.cmd == "pack-encoder":
        return pack_encoder(args.dest)
    return run_job(args)


if __name__ == "__main__":
    raise SystemExit(main())
