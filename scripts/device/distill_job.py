"""One command for the GPU machine: distil 2-3-layer students from the shipped default model.

    # here, once: the base embeddings the teacher's delta sits on (int8 rows, 12 MB; the teacher's
    # 6 layers + head come from the tree's src/mooscomp/models/default)
    .venv/bin/python scripts/device/distill_job.py pack-teacher --dest .carry/d16/emb
    # on the device (carry .carry/d16 and .carry/h5/labels.jsonl.gz, .carry/h5/dev_items.jsonl.gz):
    PYTHONPATH=src PYTHONUNBUFFERED=1 python3 scripts/device/distill_job.py run \\
        --embeddings .carry/d16/emb --data .carry/h5/labels.jsonl.gz \\
        --dev-items .carry/h5/dev_items.jsonl.gz --out "$OUT"

Plan: (1) every ``--layers`` set at the first temperature / hard weight / z weight; (2) the other
combinations on the layer set with the best dev survival; runs that would not fit ``--budget``
are skipped. Each student: val KL / token keep-F1 against the teacher, keep-F1 of the kept words
against the teacher's selection at rate 0.25 on validation texts, dev answer survival at
2x/3x/4x/5x (mooscomp.training.downstream) next to the teacher's, measured on the student as
written (int8-row delta of its layers over the teacher's base) and reloaded. Writes to --out:
distill.json, student_best.tar (best mean survival), student_<k>l.tar (best of each other
depth), distill_job.log. On CPU with a tiny teacher: ``run --teacher DIR --synthetic 20 ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "src"))

from train_job import tar_dir  # noqa: E402

RATES = (0.5, 1 / 3, 0.25, 0.2)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _setup_log(out: Path) -> tuple[Any, float]:
    log_f = open(out / "distill_job.log", "a", encoding="utf-8")  # noqa: SIM115
    t0 = time.perf_counter()

    def log(s: str) -> None:
        line = f"[{time.perf_counter() - t0:7.1f}s] {s}"
        print(line, file=sys.stderr, flush=True)
        log_f.write(line + "\n")
        log_f.flush()

    return log, t0


def pack_teacher(model_dir: str | None, dest: str) -> int:
    """The base embeddings under a delta teacher (int8 rows, vectors fp16) + its base record:
    the device lacks the pip base, and the teacher's layers travel with the tree."""
    import torch
    from safetensors.torch import save_file

    from mooscomp.compressor import DEFAULT_MODEL_DIR
    from mooscomp.modeling import load_model, store_tensors

    src = Path(model_dir or DEFAULT_MODEL_DIR)
    model, _, cfg, _ = load_model(src)
    n = int(model.encoder.config.num_hidden_layers)
    stored = set((cfg.get("storage") or {}).get("prefixes") or [])
    if cfg["storage"]["kind"] != "delta" or stored != {f"encoder.encoder.layer.{i}." for i in range(n)}:
        raise SystemExit(f"{src}: pack-teacher needs a delta storing every layer (got {cfg['storage']})")
    emb = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.embeddings.")}
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    save_file(store_tensors(emb, torch.int8), str(out / "embeddings.safetensors"))
    (out / "teacher.json").write_text(json.dumps({"teacher": str(src), "base": cfg["base"],
                                                  "weights_sha256": cfg["weights_sha256"]}, indent=1))
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"packed the embeddings under {src} -> {out} ({size:.1f} MiB)")
    return 0


def assemble_teacher(teacher: Path, packed: Path, work: Path) -> tuple[Path, Path]:
    """(teacher dir loadable here, base folder) from a delta teacher and pack-teacher's output:
    a base folder of the packed embeddings + the teacher's own layers, the teacher over it."""
    from safetensors.torch import load_file, save_file

    from mooscomp._util import sha256_file
    from mooscomp.modeling import dequantize_rows, read_config

    cfg = read_config(teacher)
    rec = json.loads((packed / "teacher.json").read_text())
    if rec["weights_sha256"] != cfg["weights_sha256"]:
        raise SystemExit(f"{packed} was packed for another teacher ({rec['teacher']})")
    w = dequantize_rows(load_file(str(teacher / "model.safetensors")))
    w.update(dequantize_rows(load_file(str(packed / "embeddings.safetensors"))))
    enc = {k.removeprefix("encoder."): v.float().contiguous() for k, v in w.items() if k.startswith("encoder.")}
    base = work / "teacher_base"
    base.mkdir(parents=True, exist_ok=True)
    save_file(enc, str(base / "model.safetensors"))
    (base / "config.json").write_text(json.dumps(cfg["encoder_config"]))
    for n in _TOKENIZER_FILES:
        if (teacher / n).is_file():
            shutil.copy2(teacher / n, base / n)
    dest = work / "teacher"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(teacher, dest)
    cfg["base"] = {"path": str(base), "sha256": sha256_file(base / "model.safetensors")}
    (dest / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return dest, base


def selection_masks(comp: Any, texts: list[str], rate: float) -> list[Any]:
    """Kept-word masks of each text at ``rate`` (one batched forward, no question)."""
    import numpy as np

    from mooscomp.config import Request

    prepared = [comp.prepare(t) for t in texts]
    comp.score(prepared)
    return [np.concatenate([d.kept for d in comp.select([p], comp.config, Request(rate=rate)).details])
            for p in prepared]


def keep_f1(a: list[Any], b: list[Any]) -> float:
    import numpy as np

    vals = [1.0 if (x.sum() + y.sum()) == 0 else 2.0 * float((x & y).sum()) / float(x.sum() + y.sum())
            for x, y in zip(a, b, strict=True)]
    return float(np.mean(vals)) if vals else float("nan")


def survival(comp: Any, dev_items: list, workers: int) -> dict[str, Any]:
    from mooscomp.training.downstream import survival_grid

    if not dev_items:
        return {}
    grid = survival_grid(comp, dev_items, {"d": comp.config}, RATES, workers=workers)["d"]
    return {**grid, "mean_2x_5x": statistics.fmean(v["mean"] for v in grid.values())}


def judged_student(spec: dict[str, Any], ctx: dict[str, Any], args: argparse.Namespace, log: Any) -> dict:
    """Distil one student, write it (int8 delta / full), reload it, measure it against the teacher."""
    import torch

    from mooscomp import Compressor
    from mooscomp.modeling import LOG_FREQ_KEY
    from mooscomp.training.distill import DistillConfig, distill, save_student

    cfg = DistillConfig(layers=spec["layers"], temperature=spec["t"], hard_weight=spec["hw"],
                        z_weight=spec["zw"], epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                        max_length=args.max_length, seed=args.seed, device=args.device)
    name = f"L{'-'.join(map(str, cfg.layers))}_t{cfg.temperature:g}_hw{cfg.hard_weight:g}_zw{cfg.z_weight:g}"
    log(f"student {name}")
    t0 = time.perf_counter()
    teacher = ctx["teacher"]
    res = distill(teacher.model, teacher.tokenizer, ctx["encoded"], cfg, log=log)
    dest = Path(args.work) / "students" / name
    if dest.exists():
        shutil.rmtree(dest)
    lf = teacher.log_freq
    save_student(res, teacher.tokenizer, dest, base=ctx["base"], defaults=teacher.config.to_dict(),
                 metadata={"teacher": ctx["teacher_rec"]},
                 extra_tensors=None if lf is None else {LOG_FREQ_KEY: torch.from_numpy(lf)})
    comp = Compressor.from_pretrained(dest, device=ctx["device"], backend="torch")
    masks = selection_masks(comp, ctx["val_texts"], 0.25)
    row = {"name": name, "layers": list(cfg.layers), "n_layers": len(cfg.layers), "config": cfg.to_dict(),
           "history": res.history, "best_epoch": res.best_epoch, "val": res.best_metrics,
           "train_seconds": round(res.train_seconds, 1), "teacher_target_seconds": round(res.teacher_seconds, 1),
           "keep_f1_vs_teacher_selection_4x": keep_f1(masks, ctx["teacher_masks"]),
           "dir_bytes": sum(p.stat().st_size for p in dest.iterdir()), "dir": str(dest)}
    t1 = time.perf_counter()
    row["survival"] = survival(comp, ctx["dev_items"], args.workers)
    row["survival_seconds"] = round(time.perf_counter() - t1, 1)
    ts = ctx["teacher_survival"]
    if ts:
        row["survival_delta_vs_teacher"] = {r: row["survival"][r]["mean"] - ts[r]["mean"] for r in ts
                                            if r != "mean_2x_5x"}
        row["survival_delta_vs_teacher"]["mean_2x_5x"] = row["survival"]["mean_2x_5x"] - ts["mean_2x_5x"]
    row["seconds"] = round(time.perf_counter() - t0, 1)
    log(f"  {name}: val KL {(res.best_metrics or {}).get('kl')}, keep-F1@4x vs teacher "
        f"{row['keep_f1_vs_teacher_selection_4x']:.4f}, survival {row['survival'].get('mean_2x_5x')} "
        f"(teacher {ts.get('mean_2x_5x')}), {row['dir_bytes'] / 2**20:.1f} MiB, {row['seconds']}s")
    return row


def load_teacher(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """The teacher compressor (torch, on the job's device), the base for delta students and the
    base record the shipped students must carry."""
    from mooscomp import Compressor
    from mooscomp.compressor import DEFAULT_MODEL_DIR
    from mooscomp.modeling import read_config, resolve_base_dir

    src = Path(args.teacher or DEFAULT_MODEL_DIR)
    cfg = read_config(src)
    if args.embeddings:
        tdir, base_dir = assemble_teacher(src, Path(args.embeddings), Path(args.work))
    else:
        tdir = src
        base_dir = resolve_base_dir(cfg["base"]) if cfg["storage"]["kind"] == "delta" else None
    comp = Compressor.from_pretrained(tdir, device=args.device_resolved, backend="torch")
    log(f"teacher {src}: {comp.model.encoder.config.num_hidden_layers} layers, storage "
        f"{cfg['storage']['kind']}, defaults {cfg.get('defaults')}")
    return {"teacher": comp, "base": None if base_dir is None else {"path": str(base_dir)},
            "shipped_base": cfg.get("base"), "teacher_rec": {"dir": str(src), "weights_sha256": cfg["weights_sha256"]}}


def run_job(args: argparse.Namespace) -> int:
    import torch
    import transformers
    from train_ablation import load_docs

    from mooscomp.evaluation.items import load_items
    from mooscomp.training import split_by_document
    from mooscomp.training.distill import DistillConfig, encode_for_distill

    transformers.logging.set_verbosity_error()
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out or os.environ.get("OUT") or "/tmp/mooscomp_distill_job")
    out.mkdir(parents=True, exist_ok=True)
    log, t0 = _setup_log(out)
    args.device_resolved = "cuda" if args.device == "auto" and torch.cuda.is_available() else (
        "cpu" if args.device == "auto" else args.device)
    log(f"device {args.device_resolved}, torch {torch.__version__}, transformers {transformers.__version__}")
    ctx = load_teacher(args, log)
    teacher = ctx["teacher"]
    docs, info = load_docs(args.data, max_docs=args.max_docs, synthetic=args.synthetic)
    enc_cfg = DistillConfig(max_length=args.max_length)
    ctx["encoded"] = encode_for_distill(docs, teacher.tokenizer, enc_cfg, word_shape=teacher.model.word_shape)
    _, va = split_by_document([d["doc_id"] for d in docs], 0.1)
    ctx["val_texts"] = [docs[i]["text"] for i in va][: args.val_texts]
    ctx["teacher_masks"] = selection_masks(teacher, ctx["val_texts"], 0.25)
    ctx["dev_items"] = load_items(args.dev_items)[: args.dev_limit] if args.dev_items else []
    ctx["device"] = args.device_resolved
    ctx["teacher_survival"] = survival(teacher, ctx["dev_items"], args.workers)
    log(f"data {info.get('n_docs')} docs, {sum(len(d.chunks) for d in ctx['encoded'])} chunks; "
        f"{len(ctx['val_texts'])} val texts; {len(ctx['dev_items'])} dev items; teacher survival "
        f"{ctx['teacher_survival'].get('mean_2x_5x')} ({time.perf_counter() - t0:.0f}s)")
    rows: list[dict[str, Any]] = []

    def go(spec: dict[str, Any]) -> None:
        est = statistics.fmean(r["seconds"] for r in rows) if rows else 0.0
        left = args.budget - (time.perf_counter() - t0)
        if left - 1.2 * est < args.reserve:
            log(f"skip {spec}: time budget ({left:.0f}s left)")
            return
        rows.append(judged_student(spec, ctx, args, log))

    layer_sets = [tuple(int(x) for x in s.split(",")) for s in args.layers]
    first = {"t": args.temperatures[0], "hw": args.hard_weights[0], "zw": args.z_weights[0]}
    for ls in layer_sets:
        go({"layers": ls, **first})
    if not rows:
        raise SystemExit("no student fitted in the time budget")
    best_layers = tuple(max(rows, key=_rank)["layers"])
    for t in args.temperatures:
        for hw in args.hard_weights:
            for zw in args.z_weights:
                if {"t": t, "hw": hw, "zw": zw} != first:
                    go({"layers": best_layers, "t": t, "hw": hw, "zw": zw})
    finish(args, out=out, rows=rows, ctx=ctx, info=info, log=log, t0=t0)
    return 0


def _rank(r: dict[str, Any]) -> tuple[float, float, float]:
    """Best mean dev survival 2x-5x; ties: fewer layers, then lower val KL."""
    surv = (r.get("survival") or {}).get("mean_2x_5x")
    return (round(surv, 6) if surv is not None else 0.0, -r["n_layers"], -((r.get("val") or {}).get("kl") or 0.0))


def finish(args: argparse.Namespace, *, out: Path, rows: list, ctx: dict, info: dict, log: Any,
           t0: float) -> None:
    """Tar the best student (and the best of each other depth) with the shipped base record."""
    import torch

    best = max(rows, key=_rank)
    tars = {"student_best": best}
    for k in sorted({r["n_layers"] for r in rows} - {best["n_layers"]}):
        tars[f"student_{k}l"] = max((r for r in rows if r["n_layers"] == k), key=_rank)
    for tname, r in tars.items():
        src = Path(r["dir"])
        if ctx["base"] is not None:  # ship over the teacher's recorded base, not the job's copy
            cfg = json.loads((src / "config.json").read_text())
            cfg["base"] = ctx["shipped_base"]
            (src / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
        tar_dir(src, out / f"{tname}.tar")
        r["tar"] = f"{tname}.tar"
    report = {
        "what": "students distilled from the teacher's keep-probabilities (T^2 KL + hard_weight CE + "
                "z_weight outlier-Z MSE), judged by dev answer survival at 2x-5x next to the teacher",
        "teacher": ctx["teacher_rec"], "data": {k: v for k, v in info.items() if k != "shards"},
        "teacher_survival": ctx["teacher_survival"], "rates": list(RATES),
        "n_val_texts": len(ctx["val_texts"]), "n_dev_items": len(ctx["dev_items"]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "rows": rows, "best": best["name"], "rule": "best mean dev survival over 2x-5x; ties: fewer "
        "layers, then lower val KL", "device": ctx["device"],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "job_seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "distill.json").write_text(json.dumps(report, indent=1, default=str))
    log(f"best {best['name']} ({best.get('survival', {}).get('mean_2x_5x')}); done in {report['job_seconds']}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mooscomp distillation job (GPU or tiny CPU runs)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack-teacher", help="the base embeddings under the teacher, for the carry")
    pk.add_argument("--model", help="teacher model dir (default: the shipped default)")
    pk.add_argument("--dest", default=".carry/d16/emb")
    r = sub.add_parser("run", help="distil, judge and export students")
    r.add_argument("--teacher", help="teacher model dir (default: the shipped default)")
    r.add_argument("--embeddings", help="pack-teacher output, when the pip base is not installed")
    r.add_argument("--out", help="output folder (default $OUT)")
    r.add_argument("--work", default="/tmp/mooscomp_distill_work")
    r.add_argument("--data", action="append", default=[], metavar="GLOB")
    r.add_argument("--synthetic", type=int, default=0)
    r.add_argument("--max-docs", type=int)
    r.add_argument("--dev-items", help="EvalItem JSONL (mooscomp.training.downstream.dev_qa_items)")
    r.add_argument("--dev-limit", type=int)
    r.add_argument("--val-texts", type=int, default=300, help="validation texts for keep-F1 at 4x")
    r.add_argument("--layers", nargs="+", default=["0,2,4", "0,1,2", "1,3,5", "0,3", "0,5"],
                   help="teacher layers of each student, comma separated")
    r.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    r.add_argument("--hard-weights", type=float, nargs="+", default=[0.0, 0.5])
    r.add_argument("--z-weights", type=float, nargs="+", default=[0.0, 0.1])
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--lr", type=float, default=2e-4)
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--max-length", type=int, default=512)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--workers", type=int, default=max(1, min(16, (os.cpu_count() or 2) - 1)))
    r.add_argument("--budget", type=float, default=540.0, help="seconds for the whole job")
    r.add_argument("--reserve", type=float, default=20.0, help="seconds kept for the export")
    args = ap.parse_args(argv)
    if args.cmd == "pack-teacher":
        return pack_teacher(args.model, args.dest)
    return run_job(args)


if __name__ == "__main__":
    raise SystemExit(main())
