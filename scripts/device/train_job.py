"""One command for the GPU machine: backbone setting + β judged by dev answer survival + the model.

    # here, once: pack the pip MiniLM (int8 word embeddings, fp16 rest: 34 MB) and the dev items
    .venv/bin/python scripts/device/train_job.py pack-encoder --dest .carry/h5/minilm
    # on the device (carry .carry/h5; labels and dev items inside it):
    PYTHONPATH=src PYTHONUNBUFFERED=1 python3 scripts/device/train_job.py run \\
        --encoder .carry/h5/minilm --data '.carry/h5/labels*.jsonl.gz' \\
        --dev-items .carry/h5/dev_items.jsonl.gz --out "$OUT"

Plan: (1) at β = 0, seed 0: word shapes on the top-k settings (default 6 = every layer with the
embeddings frozen, 2, and 0 = full fine-tune, never shipped) and the first setting without
shapes; the shippable setting with the best dev survival wins; (2) β × seeds on it; β is chosen
by mean dev answer survival at 4x (no question), not by token F1. Every run reports token F1, S^L
and survival. The chosen β's seed-0 run is exported (int8 rows delta over the pip base).
Writes to --out: training_ablation.json (summary.runs, summary.downstream rows {beta, seed,
val_f1, last_layer_cos, answer_survival_4x}), model_default.tar, train_job.log. Also runs on CPU
with tiny settings: ``run --synthetic 30 --epochs 1 --top-layers 1 --betas 0 --seeds 0``.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "src"))

_TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                    "special_tokens_map.json")


_INT8_KEYS = ("word_embeddings",)  # the frozen 30522 x 384 table: int8 rows keep the carry small


def pack_encoder(dest: str) -> int:
    """Compact copy of the pip-installed base (word embeddings int8 per row, the rest fp16) +
    base.json (its record and fp32 sha256): 34 MB instead of 90, so the tree + carry fit 64 MiB."""
    import torch
    from safetensors.torch import load_file, save_file

    from mooscomp._util import sha256_file
    from mooscomp.modeling import DEFAULT_BASE, WEIGHTS_NAME, resolve_base_dir, store_tensors

    src = resolve_base_dir(DEFAULT_BASE)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    w = load_file(str(src / WEIGHTS_NAME))
    packed = store_tensors({k: v for k, v in w.items() if any(x in k for x in _INT8_KEYS)}, torch.int8)
    packed.update(store_tensors({k: v for k, v in w.items() if not any(x in k for x in _INT8_KEYS)},
                                torch.float16))
    save_file(packed, str(out / WEIGHTS_NAME))
    for n in _TOKENIZER_FILES:
        if (src / n).is_file():
            shutil.copy2(src / n, out / n)
    rec = {**DEFAULT_BASE, "sha256": sha256_file(src / WEIGHTS_NAME)}
    (out / "base.json").write_text(json.dumps(rec, indent=1))
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"packed {src} -> {out} ({size:.1f} MiB)")
    return 0


def pack_labels(patterns: list[str], dest: str, max_words: int) -> int:
    """One gzip JSONL of labelled documents (doc_id, source, text, labels), at most ``max_words``
    words, taken in sha256(doc_id) order (so every source keeps its share): the carry is 64 MiB."""
    import glob
    import gzip

    from mooscomp._util import sha256_bytes
    from mooscomp.training import load_label_shards

    paths = sorted({p for pat in patterns for p in glob.glob(pat, recursive=True)})
    if not paths:
        raise SystemExit(f"no label shards match {patterns}")
    docs = sorted(load_label_shards(paths), key=lambda d: sha256_bytes(str(d.get("doc_id")).encode()))
    n_words = n_docs = 0
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(dest, "wt", encoding="utf-8") as f:
        for d in docs:
            if n_words >= max_words:
                break
            if not isinstance(d.get("labels"), list):
                continue
            f.write(json.dumps({k: d.get(k) for k in ("doc_id", "source", "genre", "text", "labels")}) + "\n")
            n_words += len(d["labels"])
            n_docs += 1
    print(f"{n_docs} of {len(docs)} docs, {n_words} words -> {dest} "
          f"({Path(dest).stat().st_size / 2**20:.1f} MiB)")
    return 0


def widen_encoder(packed: Path, dest: Path) -> tuple[str, dict[str, Any] | None]:
    """fp32 encoder folder for training, and the base record to write into delta models."""
    from safetensors.torch import load_file, save_file

    base_json = packed / "base.json"
    if not base_json.is_file():  # a plain fp32 HF folder: train from it, store full weights
        return str(packed), None
    from mooscomp.modeling import dequantize_rows

    dest.mkdir(parents=True, exist_ok=True)
    w = dequantize_rows(load_file(str(packed / "model.safetensors")))
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in w.items()},
              str(dest / "model.safetensors"))
    for n in _TOKENIZER_FILES:
        if (packed / n).is_file():
            shutil.copy2(packed / n, dest / n)
    return str(dest), json.loads(base_json.read_text())


def export_and_check(result: Any, dest: Path, *, encoder: str, base_rec: dict[str, Any] | None,
                     val_batch: list, metadata: dict[str, Any], dtype: Any = None,
                     defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a delta model dir (int8 rows by default), reload it through load_model, compare
    its logits (shape term included) with the trained model's."""
    import torch

    from mooscomp.modeling import DEFAULT_BASE, load_model
    from mooscomp.training import collate, export_model

    installed = base_rec is None
    base = DEFAULT_BASE if installed else {"path": encoder}
    if dest.exists():
        shutil.rmtree(dest)
    export_model(result, dest, base=base, dtype=dtype or torch.int8, metadata=metadata, defaults=defaults)
    model, tok, cfg, _ = load_model(dest, device="cpu")
    b = collate(val_batch, pad_id=tok.pad_token_id or 0)
    ref = result.model.to("cpu").float().eval()
    with torch.no_grad():
        a = ref(b["input_ids"], b["attention_mask"], shape_ids=b["shape_ids"]).logits
        c = model(b["input_ids"], b["attention_mask"], shape_ids=b["shape_ids"]).logits
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


def _setup_log(out: Path):
    log_f = open(out / "train_job.log", "a", encoding="utf-8")  # noqa: SIM115
    t0 = time.perf_counter()

    def log(s: str) -> None:
        line = f"[{time.perf_counter() - t0:7.1f}s] {s}"
        print(line, file=sys.stderr, flush=True)
        log_f.write(line + "\n")
        log_f.flush()

    return log, t0


def judged_run(encoded: list, dev_items: list, *, spec: dict[str, Any], args: argparse.Namespace,
               encoder: str, log: Any) -> tuple[dict[str, Any], Any]:
    """One training run (10 % validation) + its dev answer survival at 4x (no question)."""
    from train_ablation import common_settings, run_one

    from mooscomp import Compressor
    from mooscomp.training.downstream import survival_at

    row, res = run_one(encoded, encoder=encoder, beta=spec["beta"], seed=spec["seed"],
                       top_layers=spec["top"] or None, epochs=args.epochs, work=Path(args.work),
                       common=common_settings(args), log=log, word_shape=spec["shape"])
    comp = Compressor(res.model, res.tokenizer)
    t0 = time.perf_counter()
    row["answer_survival_4x_by_task"] = survival_at(comp, dev_items, workers=args.workers) if dev_items else {}
    row["answer_survival_4x"] = row["answer_survival_4x_by_task"].get("mean")
    row["survival_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"  survival@4x {row['answer_survival_4x_by_task']} ({row['survival_seconds']}s)")
    return row, res


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(vals) if vals else float("-inf")


def run_job(args: argparse.Namespace) -> int:
    import torch
    import transformers
    from train_ablation import prepare, summarize

    from mooscomp.evaluation.items import load_items
    from mooscomp.word_shape import FEATURES

    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out or os.environ.get("OUT") or "/tmp/mooscomp_train_job")
    out.mkdir(parents=True, exist_ok=True)
    log, t0 = _setup_log(out)
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
    encoded, info = prepare(args, encoder, FEATURES)
    dev_items = load_items(args.dev_items)[: args.dev_limit] if args.dev_items else []
    log(f"data: {info['n_docs']} docs, {info['n_chunks']} chunks, {info['n_tokens']} tokens; "
        f"{len(dev_items)} dev QA items")
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}

    def left() -> float:
        return args.budget - (time.perf_counter() - t0)

    def go(spec: dict[str, Any]) -> dict[str, Any] | None:
        est = statistics.fmean(r["seconds"] + r["survival_seconds"] for r in rows) if rows else 0.0
        if left() - 1.3 * est < args.reserve:
            log(f"skip {spec}: time budget ({left():.0f}s left)")
            return None
        row, res = judged_run(encoded, dev_items, spec=spec, args=args, encoder=encoder, log=log)
        rows.append(row)
        results[row["name"]] = res
        return row

    if args.setting is not None:  # the setting is already chosen (a seed sweep): skip step 1
        top, shape = args.setting, FEATURES
    else:  # 1) setting at beta 0, seed 0: shapes on the k top layers, full, no shapes
        arch = [{"top": k, "shape": FEATURES, "beta": 0.0, "seed": 0} for k in args.top_layers]
        arch.append({"top": args.top_layers[0], "shape": (), "beta": 0.0, "seed": 0})
        for spec in arch:
            go(spec)
        shippable = [r for r in rows if r["trainable"] != "full" and r["word_shape"]]
        best = max(shippable, key=lambda r: (r["answer_survival_4x"] or 0.0, r["val_f1"] or 0.0))
        top = int(best["trainable"].removeprefix("top"))
        shape = tuple(best["word_shape"])
    log(f"setting: top{top}, shapes {bool(shape)}")
    # 2) beta x seeds on that setting
    for seed in args.seeds:
        for beta in args.betas:
            if not any(r["beta"] == beta and r["seed"] == seed and r["trainable"] == f"top{top}"
                       and tuple(r["word_shape"]) == shape for r in rows):
                go({"top": top, "shape": shape, "beta": beta, "seed": seed})
    if args.rows_only:  # one process of a parallel sweep: rows for the merge, no export
        (out / "rows.json").write_text(json.dumps({"data": info, "rows": rows}, indent=1, default=float))
        log(f"rows written ({len(rows)} runs)")
        return 0
    finish(args, out=out, rows=rows, results=results, info=info, top=top, shape=shape,
           encoder=encoder, base_rec=base_rec, encoded=encoded, log=log, t0=t0, summarize=summarize,
           dev_items=dev_items)
    return 0


def finish(args: argparse.Namespace, *, out: Path, rows: list, results: dict, info: dict, top: int,
           shape: tuple, encoder: str, base_rec: Any, encoded: list, log: Any, t0: float,
           summarize: Any, dev_items: list) -> None:
    """Pick beta by dev survival (mean over seeds), export its seed-0 model, write the report."""
    import torch

    from mooscomp.training import split_by_document

    sweep = [r for r in rows if r["trainable"] == f"top{top}" and tuple(r["word_shape"]) == shape]
    betas = sorted({r["beta"] for r in sweep})
    by_beta = {b: [r for r in sweep if r["beta"] == b] for b in betas}
    beta = max(betas, key=lambda b: (_mean(by_beta[b], "answer_survival_4x"), -b))
    pick = next(r for r in by_beta[beta] if r["seed"] == min(x["seed"] for x in by_beta[beta]))
    log(f"beta chosen by dev survival: {beta:g} (run {pick['name']})")
    _, va = split_by_document([d.doc_id for d in encoded], 0.1)
    val_batch = [c for i in va for c in encoded[i].chunks][:16]
    meta = {"data": {k: v for k, v in info.items() if k != "shards"},
            "ablation_val": {"run": pick["name"], "beta": beta, "val_f1": pick["val_f1"],
                             "last_layer_cos": pick["last_layer_cos"],
                             "answer_survival_4x": pick["answer_survival_4x_by_task"]}}
    from train_fusion import fusion_grid

    from mooscomp import Compressor

    res = results[pick["name"]]
    defaults: dict[str, Any] | None = None
    if dev_items:
        defaults, fusion = fusion_grid(Compressor(res.model, res.tokenizer), dev_items, args,
                                       encoder=encoder, log=log)
        (out / "outlier_ablation.json").write_text(json.dumps(fusion, indent=1))
    dest = Path(args.work) / "export" / "model_default"
    check = export_and_check(res, dest, encoder=encoder, base_rec=base_rec, val_batch=val_batch,
                             metadata=meta, dtype=torch.int8, defaults=defaults)
    tar_dir(dest, out / "model_default.tar")
    log(f"model_default: {check['weights_bytes'] / 2**20:.2f} MiB weights, reload diff "
        f"{check['reload_max_abs_logit_diff']:.2e}, agreement {check['reload_argmax_agreement']:.4f}")
    summary = summarize(rows)
    summary["runs"] = [{k: r.get(k) for k in ("name", "beta", "seed", "trainable", "word_shape", "val_f1",
                                              "val_acc", "last_layer_cos", "layer_cos", "best_epoch",
                                              "epochs_run", "seconds", "answer_survival_4x",
                                              "answer_survival_4x_by_task")} for r in rows]
    summary["downstream"] = [{"beta": r["beta"], "seed": r["seed"], "val_f1": r["val_f1"],
                              "last_layer_cos": r["last_layer_cos"],
                              "answer_survival_4x": r["answer_survival_4x"],
                              "answer_survival_4x_by_task": r["answer_survival_4x_by_task"]}
                             for r in sweep]
    summary["downstream_by_beta"] = [
        {"beta": b, "n_seeds": len(by_beta[b]), "val_f1": _mean(by_beta[b], "val_f1"),
         "last_layer_cos": _mean(by_beta[b], "last_layer_cos"),
         "answer_survival_4x": _mean(by_beta[b], "answer_survival_4x")} for b in betas]
    summary["chosen"] = {"trainable": f"top{top}", "word_shape": list(shape), "beta": beta,
                         "shipped_run": pick["name"], "rule": "setting: best dev survival at beta 0 seed 0 "
                         "among shippable settings; beta: best mean dev survival over seeds (ties: smaller)"}
    report = {
        "what": "backbone setting (top-k layers, word shapes) and MOOS loss beta, judged by token F1 "
                "and by dev answer survival at 4x without a question",
        "metric_note": "token-level keep-class metrics on a document-level validation split (10%, by "
                       "sha256 of doc_id); S^L = last-layer inter-class cosine (gold labels); "
                       "answer_survival_4x = SQuAD/HotpotQA dev items disjoint from the quality "
                       "benchmark's seed-0 samples (mooscomp.training.downstream), rate 0.25, "
                       "library default CompressionConfig",
        "data": info, "encoder": encoder,
        "settings": {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                     "betas": args.betas, "seeds": args.seeds, "top_layers": args.top_layers},
        "summary": summary, "runs_detail": rows, "final": {"model_default": check, "beta": beta, "seed": pick["seed"],
                  "trainable": f"top{top}" + ("+shape" if shape else "")},
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "job_seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "training_ablation.json").write_text(json.dumps(report, indent=1, default=float))
    log(f"done in {report['job_seconds']}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mooscomp training job (GPU or tiny CPU runs)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack-encoder", help="fp16 copy of the pip base for the device carry")
    pk.add_argument("--dest", default=".carry/minilm16")
    pl = sub.add_parser("pack-labels", help="one subsampled label file for the device carry")
    pl.add_argument("--data", action="append", required=True, metavar="GLOB")
    pl.add_argument("--dest", default=".carry/h5/labels.jsonl.gz")
    pl.add_argument("--max-words", type=int, default=2_500_000)
    r = sub.add_parser("run", help="ablation + final models")
    r.add_argument("--encoder", help="packed (pack-encoder) or fp32 encoder folder; default pip")
    r.add_argument("--out", help="output folder (default $OUT)")
    r.add_argument("--work", default="/tmp/mooscomp_train_job_work")
    r.add_argument("--data", action="append", default=[], metavar="GLOB")
    r.add_argument("--synthetic", type=int, default=0)
    r.add_argument("--max-docs", type=int)
    r.add_argument("--dev-items", help="EvalItem JSONL (mooscomp.training.downstream.dev_qa_items)")
    r.add_argument("--dev-limit", type=int, default=None)
    r.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.1, 0.5])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--top-layers", type=int, nargs="+", default=[6, 2, 0],
                   help="settings compared at beta 0 (k layers + head; 0 = full fine-tune, never "
                        "shipped); the first also runs without word shapes")
    r.add_argument("--setting", type=int, default=None, metavar="TOP",
                   help="skip the setting comparison: top-k layers with word shapes (a seed sweep)")
    r.add_argument("--rows-only", action="store_true",
                   help="write rows.json (runs with their survival) instead of choosing and exporting")
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--reserve", type=float, default=130.0,
                   help="seconds kept for the fusion grid and the export")
    r.add_argument("--workers", type=int, default=max(1, min(16, (os.cpu_count() or 2) - 1)),
                   help="processes for the selections of the survival measurements")
    r.add_argument("--old-model", default=str(REPO / "benchmarks/models/minilm_top2_v1"),
                   help="previous default model, measured on the same dev items")
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--max-length", type=int, default=512)
    r.add_argument("--device", default="auto")
    r.add_argument("--budget", type=float, default=540.0,
                   help="seconds for the whole job; ablation runs that would not fit are skipped")
    args = ap.parse_args(argv)
    if args.cmd == "pack-encoder":
        return pack_encoder(args.dest)
    if args.cmd == "pack-labels":
        return pack_labels(args.data, args.dest, args.max_words)
    return run_job(args)


if __name__ == "__main__":
    raise SystemExit(main())
