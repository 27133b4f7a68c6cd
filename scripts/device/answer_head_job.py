"""One command for the GPU machine: fine-tune the encoder with a class-balanced answer head (issue 15).

A probe over the frozen states (scripts/fold_worthiness.py) and a boosted self-distillation
(scripts/worthiness_finetune.py) both left dev 4x survival near 0.43-0.47 / 0.64-0.67. This lets the
encoder learn question-worthiness directly: every layer trains on ``T^2 KL(teacher keep logit ||
student keep logit)`` over all documents (the anchor: the keep head keeps what it kept) plus ``lambda``
times a class-balanced BCE of a separate linear answer head on the words of the reader LLM's answers
over training-corpus passages (scripts/device/question_gen_job.py). The answer head is then folded into
the keep head at ``gamma`` (keep-minus-drop logit + gamma x answer logit: same architecture, no extra
cost) and every fold is judged by dev answer survival (``dev_qa_items``, no question) at the shipped
focus and at focus 0.5. A ``freeze`` run (encoder frozen, head only) is the probe over the same data.

    # here: teacher embeddings (the device lacks the pip base), training documents, dev items
    .venv/bin/python scripts/device/answer_head_job.py prepare --dest .carry/ah
    # on the device (carry .carry/ah):
    PYTHONPATH=src python3 scripts/device/answer_head_job.py run --data .carry/ah --out "$OUT"

Writes answer_head.json (every run x gamma x focus, the teacher's survival beside them) and
model_<name>.tar for the best folds at each focus.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (REPO / "src", REPO / "benchmarks", REPO / "scripts", HERE):
    sys.path.insert(0, str(p))

RATES = (0.5, 1 / 3, 0.25, 0.2)
FOCI = (1.0, 0.5)


def prepare(a: argparse.Namespace) -> int:
    from distill_job import pack_teacher
    from worthiness_finetune import documents

    from mooscomp.evaluation.items import save_items
    from mooscomp.training.downstream import dev_qa_items

    dest = Path(a.dest)
    pack_teacher(a.model, str(dest / "emb"))
    docs = documents(Path(a.qa), Path(a.passages), a.gen_limit, a.other, a.max_words, labels=a.labels)
    with gzip.open(dest / "docs.jsonl.gz", "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    gen = [d["labels"] for d in docs if d["doc_id"].startswith("gen/")]
    (dest / "prepare.json").write_text(json.dumps({"labels": a.labels, "generated_docs": len(gen),
                                                    "positive_share": sum(map(sum, gen)) / sum(map(len, gen))}))
    save_items(dev_qa_items(a.dev), dest / "dev_items.jsonl.gz")
    print(f"{len(docs)} documents, {2 * a.dev} dev items -> {dest}")
    return 0


def _examples(ctx: dict[str, Any], docs: list[dict[str, Any]], ids: list[int]) -> tuple[list, list[bool]]:
    """Teacher-targeted chunks of ``docs[ids]`` and whether each comes from an answered passage."""
    from mooscomp.training.distill import teacher_targets

    chunks, flags = [], []
    for i in ids:
        for c in ctx["encoded"][i].chunks:
            chunks.append(c)
            flags.append(docs[i]["doc_id"].startswith("gen/"))
    return teacher_targets(ctx["teacher"].model, chunks, **ctx["kw"]), flags


def _step_loss(student: Any, head: Any, b: dict, has: Any, spec: dict, ctx: dict) -> tuple[Any, Any, Any]:
    """(total, kl, bce) of one batch; ``has`` (B,) bool marks chunks whose labels are answers."""
    from torch import nn

    from mooscomp.losses import IGNORE_INDEX
    from mooscomp.training.distill import _kl
    from mooscomp.training.params import autocast

    with autocast(b["input_ids"].device):
        o = student(b["input_ids"], b["attention_mask"], shape_ids=b["shape_ids"])
        ans = head(student.dropout(o.last_hidden)).squeeze(-1)  # (B, L)
    keep = (o.logits[..., 1] - o.logits[..., 0]).float()  # (B, L)
    m = b["labels"] != IGNORE_INDEX  # (B, L) word tokens
    kl = _kl(keep[m], b["t_logit"][m], 1.0).mean()
    am = m & has[:, None]
    bce = nn.functional.binary_cross_entropy_with_logits(
        ans.float()[am], (b["labels"][am] == 1).float(), pos_weight=ctx["pos_weight"]) if am.any() else kl * 0
    total = (0 if spec["freeze"] else 1) * kl + spec["lam"] * bce
    return total, kl.detach(), torch.as_tensor(bce).detach()


def _auc(scores: Any, y: Any) -> float:
    """Rank AUC of ``scores`` for binary ``y`` (numpy)."""
    import numpy as np

    pos = y.astype(bool)
    if pos.all() or not pos.any():
        return float("nan")
    r = np.empty(len(scores))
    r[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)  # ranks (continuous scores)
    return float((r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def train_one(spec: dict[str, Any], ctx: dict[str, Any], args: argparse.Namespace, log: Any) -> tuple[Any, Any, dict]:
    import math

    import numpy as np
    from torch import nn

    from mooscomp.training.data import make_batches
    from mooscomp.training.distill import _batch, build_student
    from mooscomp.training.params import epoch_seed, lr_factor, param_groups, select_trainable

    dev = ctx["dev"]
    teacher = ctx["teacher"].model
    n = int(teacher.encoder.config.num_hidden_layers)
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(args.seed)
        student = build_student(teacher, tuple(range(n))).to(dev)
        head = nn.Linear(int(teacher.encoder.config.hidden_size), 1).to(dev)
        nn.init.normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        select_trainable(student, n)
        if spec["freeze"]:
            for p in student.parameters():
                p.requires_grad_(False)
        groups = [] if spec["freeze"] else param_groups(student, 0.01, lr=spec["lr"])
        groups.append({"params": list(head.parameters()), "lr": args.head_lr, "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=spec["lr"] or args.head_lr)  # groups without an lr: the encoder's
        ex, has = ctx["train_ex"], ctx["train_has"]
        steps = math.ceil(len(ex) / args.batch_size) * spec["epochs"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, int(0.06 * steps)))
        params = [p for g in groups for p in g["params"]]
        hist = []
        for epoch in range(1, spec["epochs"] + 1):
            gen = torch.Generator().manual_seed(epoch_seed(args.seed, epoch))
            student.train()
            sums = np.zeros(3)
            batches = make_batches([len(x[0]) for x in ex], args.batch_size, generator=gen)
            for idx in batches:
                b = _batch(ex, idx, ctx["pad_id"], dev)
                total, kl, bce = _step_loss(student, head, b, torch.tensor([has[j] for j in idx], device=dev),
                                            spec, ctx)
                opt.zero_grad(set_to_none=True)
                if not total.requires_grad:  # a frozen encoder and no answered chunk in the batch
                    continue
                total.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                sums += [float(total.detach()), float(kl), float(bce)]
            hist.append({"epoch": epoch, **dict(zip(("loss", "kl", "bce"), (sums / len(batches)).round(5).tolist()))})
    student.eval()
    head.eval()
    val = validate(student, head, ctx)
    log(f"  {spec['name']}: {hist[-1]} val {val}")
    return student, head, {"history": hist, "val": val}


@torch.no_grad()
def validate(student: Any, head: Any, ctx: dict[str, Any]) -> dict[str, float]:
    """Val KL to the teacher (all chunks) and the answer head's word-token AUC (answered chunks)."""
    import numpy as np

    from mooscomp.losses import IGNORE_INDEX
    from mooscomp.training.data import make_batches
    from mooscomp.training.distill import _batch, _kl

    ex, has = ctx["val_ex"], ctx["val_has"]
    kls, sc, ys = [], [], []
    for idx in make_batches([len(x[0]) for x in ex], 64, generator=None):
        b = _batch(ex, idx, ctx["pad_id"], ctx["dev"])
        o = student(b["input_ids"], b["attention_mask"], shape_ids=b["shape_ids"])
        keep = (o.logits[..., 1] - o.logits[..., 0]).float()
        m = b["labels"] != IGNORE_INDEX
        kls.append(_kl(keep[m], b["t_logit"][m], 1.0).cpu().numpy())
        am = m & torch.tensor([has[j] for j in idx], device=m.device)[:, None]
        sc.append(head(o.last_hidden).squeeze(-1).float()[am].cpu().numpy())
        ys.append((b["labels"][am] == 1).cpu().numpy())
    return {"kl": round(float(np.concatenate(kls).mean()), 5),
            "answer_auc": round(_auc(np.concatenate(sc), np.concatenate(ys)), 4)}


def judge(spec: dict, student: Any, head: Any, rec: dict, ctx: dict, args: argparse.Namespace, log: Any) -> list[dict]:
    """Write the student, fold its answer head at every gamma, measure dev survival of each fold."""
    from fold_worthiness import fold
    from worthiness_finetune import carry_relevance

    from mooscomp import Compressor
    from mooscomp.modeling import LOG_FREQ_KEY, save_model
    from mooscomp.training.downstream import survival_grid
    from mooscomp.training.params import encoder_layer_prefixes

    t = ctx["teacher"]
    labels = ctx["prep"]["labels"]
    base = Path(args.work) / spec["name"]
    lf = t.log_freq
    save_model(student, t.tokenizer, base, base=ctx["base"],
               delta_prefixes=encoder_layer_prefixes(student), dtype=torch.int8, defaults=t.config.to_dict(),
               metadata={"answer_head_finetune": {"spec": spec, **rec, "teacher": ctx["teacher_rec"],
                                                  "labels": labels, "job": "scripts/device/answer_head_job.py"}},
               extra_tensors=None if lf is None else {LOG_FREQ_KEY: torch.from_numpy(lf)})
    carry_relevance(ctx["teacher_dir"], base)
    w = head.weight.detach().double().cpu().numpy()[0]
    b = float(head.bias.detach().double().cpu())
    rows = []
    for g in args.gammas:
        d = base if g == 0 else Path(args.work) / f"{spec['name']}_g{g:g}"
        if g:
            fold(base, d, w, b, g, {
                "what": f"gamma x the fine-tuned answer head (answer_head_job, {labels} labels) added to the keep logit",
                "answers_from": f"generated, {labels} labels", "trained_with_encoder": not spec["freeze"]})
        comp = Compressor.from_pretrained(d, device=ctx["device"], backend="torch")
        configs = {f"focus {f:g}": comp.config.replace(focus=f) for f in FOCI}
        grid = survival_grid(comp, ctx["dev_items"], configs, RATES, workers=args.workers)
        row = {"run": spec["name"], "gamma": g, "dir": str(d), "survival": grid, **rec}
        rows.append(row)
        s = {k: grid[k][str(0.25)] for k in grid}
        log(f"    gamma {g:g}: 4x " + "; ".join(f"{k} {v['squad']:.3f}/{v['hotpotqa']:.3f}" for k, v in s.items()))
    rows[0]["answer_head"] = {"weight": w.round(6).tolist(), "bias": b}  # to fold at another gamma later
    if args.tar_runs:  # every run's unfolded model (base + its answer head in the report)
        _ship(base, ctx["shipped_base"], Path(args.out_dir) / f"run_{spec['name']}.tar")
    return rows


def _ship(model_dir: Path, base: dict[str, Any], tar_path: Path) -> None:
    """Tar a model written here over the teacher's recorded base (not the job's assembled copy)."""
    from train_job import tar_dir

    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["base"] = base
    (model_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    tar_dir(model_dir, tar_path)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import transformers
    from _job import job_start
    from distill_job import load_teacher

    from mooscomp.evaluation.items import load_items
    from mooscomp.training.data import split_by_document
    from mooscomp.training.distill import DistillConfig, encode_for_distill
    from mooscomp.training.downstream import survival_grid
    from mooscomp.training.loop import resolve_device

    transformers.logging.set_verbosity_error()
    out, log = job_start(args.out or os.environ.get("OUT") or "/tmp/answer_head_job")
    args.out_dir = str(out)
    t0 = time.perf_counter()
    data = Path(args.data)
    args.teacher, args.embeddings = args.teacher, str(data / "emb")
    dev = resolve_device(args.device)
    args.device_resolved = dev.type
    ctx = load_teacher(args, log)
    teacher = ctx["teacher"]
    ctx["teacher_dir"] = Path(args.teacher or REPO / "src/mooscomp/models/default")
    ctx["dev"], ctx["device"] = dev, dev.type
    prep = data / "prepare.json"
    ctx["prep"] = json.loads(prep.read_text()) if prep.exists() else {"labels": "answer"}
    with gzip.open(data / "docs.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(x) for x in f]
    ctx["encoded"] = encode_for_distill(docs, teacher.tokenizer, DistillConfig(label_boost=1.0),
                                        word_shape=teacher.model.word_shape)
    tok = teacher.tokenizer
    ctx["pad_id"] = tok.pad_token_id or 0
    specials = [i for i in (tok.cls_token_id, tok.sep_token_id, ctx["pad_id"]) if i is not None]
    ctx["kw"] = {"batch_size": 128, "pad_id": ctx["pad_id"], "specials": specials, "device": dev}
    tr, va = split_by_document([d["doc_id"] for d in docs], 0.05)
    ctx["train_ex"], ctx["train_has"] = _examples(ctx, docs, tr)
    ctx["val_ex"], ctx["val_has"] = _examples(ctx, docs, va)
    y = np.concatenate([x[1][x[1] >= 0] for x, h in zip(ctx["train_ex"], ctx["train_has"], strict=True) if h])
    ctx["pos_weight"] = torch.tensor(float((y == 0).sum() / max(1, (y == 1).sum())), device=dev)
    ctx["dev_items"] = load_items(data / "dev_items.jsonl.gz")
    tcfg = {f"focus {f:g}": teacher.config.replace(focus=f) for f in FOCI}
    teacher_surv = survival_grid(teacher, ctx["dev_items"], tcfg, RATES, workers=args.workers)
    log(f"{len(tr)}/{len(va)} train/val docs, {len(ctx['train_ex'])} chunks, pos_weight "
        f"{float(ctx['pos_weight']):.2f}; teacher 4x " + "; ".join(
            f"{k} {v[str(0.25)]['squad']:.3f}/{v[str(0.25)]['hotpotqa']:.3f}" for k, v in teacher_surv.items()))
    rows: list[dict[str, Any]] = []
    for s in args.runs:
        name, lam, lr, ep = s.split(":")
        spec = {"name": name, "lam": float(lam), "lr": float(lr), "epochs": int(ep), "freeze": name.startswith("freeze")}
        if time.perf_counter() - t0 > args.budget:
            log(f"skip {name}: time budget")
            continue
        student, head, rec = train_one(spec, ctx, args, log)
        rows += judge(spec, student, head, rec, ctx, args, log)
        (out / "answer_head.json").write_text(json.dumps({"teacher_survival": teacher_surv, "rows": rows}, indent=1))
    best = {}
    for f in FOCI:
        k = f"focus {f:g}"
        r = max(rows, key=lambda r: r["survival"][k][str(0.25)]["mean"])
        best[k] = {"run": r["run"], "gamma": r["gamma"], "survival_4x": r["survival"][k][str(0.25)]}
        _ship(Path(r["dir"]), ctx["shipped_base"], out / f"model_{Path(r['dir']).name}.tar")
    report = {"what": __doc__.split("\n\n")[1], "teacher": ctx["teacher_rec"], "teacher_survival": teacher_surv,
              "data": ctx["prep"],
              "n_dev_items": len(ctx["dev_items"]), "rates": list(RATES), "train_docs": len(tr), "val_docs": len(va),
              "pos_weight": float(ctx["pos_weight"]), "settings": {k: v for k, v in vars(args).items()},
              "rows": rows, "best_4x": best, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "job_seconds": round(time.perf_counter() - t0, 1)}
    (out / "answer_head.json").write_text(json.dumps(report, indent=1, default=str))
    log(f"best {best}; done")
    return 0


def refold(a: argparse.Namespace) -> int:
    """Fold a run's answer head (from ``--report``) into its unfolded model (``run_<name>.tar``,
    extracted) at each ``--gammas``, float32 head, and measure dev survival as ``run`` does."""
    from fold_worthiness import fold

    from mooscomp import Compressor
    from mooscomp.training.downstream import dev_qa_items, survival_grid

    t0 = time.perf_counter()
    rep = json.loads(Path(a.report).read_text())
    head = next(r["answer_head"] for r in rep["rows"] if r["run"] == a.run and "answer_head" in r)
    items = dev_qa_items(a.dev)
    rows = []
    for g in a.gammas:
        d = Path(a.run_dir) if g == 0 else Path(a.work) / f"{a.run}_g{g:g}"
        if g:
            fold(Path(a.run_dir), d, head["weight"], head["bias"], g, {"answers_from": "generated", "refold": True})
        comp = Compressor.from_pretrained(d, device=a.device, backend="torch")
        grid = survival_grid(comp, items, {f"focus {f:g}": comp.config.replace(focus=f) for f in FOCI}, RATES,
                             workers=a.workers)
        rows.append({"run": a.run, "gamma": g, "survival": grid})
        print(f"gamma {g:g}: 4x " + "; ".join(f"{k} {v[str(0.25)]['squad']:.3f}/{v[str(0.25)]['hotpotqa']:.3f}"
                                             for k, v in grid.items()), flush=True)
    out = {"what": refold.__doc__, "report": a.report, "run": a.run, "dev_items_per_task": a.dev,
           "rates": list(RATES), "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--model", help="teacher (default: the shipped default)")
    p.add_argument("--dest", default=".carry/ah")
    p.add_argument("--qa", default=str(REPO / "data/labels_modern/qgen_qa.jsonl.gz"))
    p.add_argument("--passages", default=str(REPO / "data/cache/qgen/qg_passages.jsonl.xz"))
    p.add_argument("--gen-limit", type=int, default=100_000)
    p.add_argument("--other", type=int, default=600, help="other-genre documents (KL anchor only)")
    p.add_argument("--max-words", type=int, default=400)
    p.add_argument("--dev", type=int, default=400, help="dev items per task")
    p.add_argument("--labels", choices=("answer", "support"), default="answer",  # worthiness_finetune.LABELS
                   help="answer: the answers' words; support: also the words each question names in its answer's "
                        "sentence (worthiness_finetune.support_labels)")
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--teacher")
    r.add_argument("--out")
    r.add_argument("--work", default="/tmp/answer_head_work")
    r.add_argument("--runs", nargs="+", default=["freeze:1:0:4", "lam0.5:0.5:5e-5:4", "lam2:2:5e-5:4",
                                                 "lam2hi:2:1.5e-4:4", "lam8:8:5e-5:4"],
                   help="name:lambda:encoder_lr:epochs (a name starting 'freeze' trains the head only)")
    r.add_argument("--gammas", type=float, nargs="+", default=[0, 2, 4, 8])
    r.add_argument("--head-lr", type=float, default=1e-3)
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--workers", type=int, default=max(1, min(15, (os.cpu_count() or 2) - 1)))
    r.add_argument("--tar-runs", action="store_true", help="also write run_<name>.tar, each run's unfolded model")
    r.add_argument("--budget", type=float, default=480.0, help="no new run starts after this many seconds")
    f = sub.add_parser("refold", help="re-fold a run's answer head at other gammas (float32 head), dev survival")
    f.add_argument("--run-dir", required=True, help="the run's unfolded model (run_<name>.tar, extracted)")
    f.add_argument("--report", required=True, help="the answer_head.json holding the run's answer head")
    f.add_argument("--run", required=True)
    f.add_argument("--gammas", type=float, nargs="+", default=[0, 2, 4, 8, 16])
    f.add_argument("--dev", type=int, default=400, help="dev items per task")
    f.add_argument("--work", default="/tmp/answer_head_refold")
    f.add_argument("--device", default="cpu")
    f.add_argument("--workers", type=int, default=max(1, min(15, (os.cpu_count() or 2) - 1)))
    f.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    return {"prepare": prepare, "run": run, "refold": refold}[a.cmd](a)


if __name__ == "__main__":
    raise SystemExit(main())
