"""GPU job: a 3-layer sentence encoder distilled from all-MiniLM-L6-v2 for the question path.

The question path ranks sentences by cosine to the question with all-MiniLM-L6-v2 (6 layers). With
the 3-layer student as the default compressor, that relevance pass costs twice the task-agnostic
forward. This job distils the sentence embedder the same way: students made of 3 of the base's
layers (frozen embeddings), trained on corpus sentences (and short prefixes of them, which look
like queries) to match the base's L2-normalised mean-pooled embeddings (1 - cosine) and the
in-batch cosine matrix (relational term, what ranking needs). Judged on DEV QA items (never the
test items): agreement of the question-to-sentence ranking with the teacher's, and the share of
items whose answer-bearing sentence is in the top 5, teacher vs student.

    PYTHONPATH=src python3 scripts/device/distill_sentence_job.py --encoder /root/enc \\
        --data .carry/x/labels.jsonl.gz --dev-items .carry/x/dev_items.jsonl.gz --out "$OUT"

Writes sentence_distill.json and relevance_<layers>.safetensors (the best student's layers, fp16,
keys ``encoder.layer.{i}.*`` renumbered from 0) to --out. Runs on CPU with ``--max-sents 2000``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_SENT = re.compile(r"(?<=[.!?])\s+")


def corpus_sentences(path: str, n: int, seed: int) -> list[str]:
    """Up to ``n`` sentences of 5-80 words, 30 % cut to a 4-12-word prefix (query-like)."""
    rng = random.Random(seed)
    pool: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            for s in _SENT.split(json.loads(line)["text"]):
                w = s.split()
                if 5 <= len(w) <= 80:
                    pool.append(s)
    rng.shuffle(pool)
    out = []
    for s in pool[:n]:
        w = s.split()
        out.append(" ".join(w[: rng.randint(4, 12)]) if rng.random() < 0.3 else s)
    return out


def embed(model: Any, batches: list[dict[str, Any]], grad: bool = False) -> Any:
    import torch

    outs = []
    for b in batches:
        with torch.set_grad_enabled(grad), torch.autocast("cuda", dtype=torch.bfloat16,
                                                          enabled=b["input_ids"].is_cuda):
            h = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        m = b["attention_mask"][..., None].float()
        outs.append(torch.nn.functional.normalize((h.float() * m).sum(1) / m.sum(1), dim=-1))
    return torch.cat(outs)


def make_batches(tok: Any, texts: list[str], bs: int, device: str) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(texts), bs):
        e = tok(texts[i : i + bs], truncation=True, max_length=128, padding=True, return_tensors="pt")
        out.append({k: e[k].to(device) for k in ("input_ids", "attention_mask")})
    return out


def student_of(teacher: Any, layers: tuple[int, ...]) -> Any:
    import torch

    s = copy.deepcopy(teacher)
    s.encoder.layer = torch.nn.ModuleList([copy.deepcopy(teacher.encoder.layer[i]) for i in layers])
    s.config.num_hidden_layers = len(layers)
    for p in s.embeddings.parameters():
        p.requires_grad_(False)
    return s


def train_student(teacher: Any, layers: tuple[int, ...], batches: list, targets: Any, *,
                  epochs: int, lr: float, rel_weight: float, log: Any) -> Any:
    import torch

    s = student_of(teacher, layers).train()
    opt = torch.optim.AdamW([p for p in s.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    steps = epochs * len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / (0.06 * steps)) * max(0.0, 1 - k / steps))
    sizes = [len(b["input_ids"]) for b in batches]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    for ep in range(epochs):
        order = list(range(len(batches)))
        random.Random(ep).shuffle(order)
        tot = 0.0
        for k in order:
            t = targets[starts[k] : starts[k] + sizes[k]]  # (batch, dim)
            e = embed(s, [batches[k]], grad=True)
            loss = (1 - (e * t).sum(-1)).mean() + rel_weight * ((e @ e.T - t @ t.T) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(s.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += float(loss)
        log(f"  layers {layers} epoch {ep + 1}: loss {tot / len(batches):.4f}")
    return s.eval()


def judge(model: Any, tok: Any, items: list[Any], device: str, teacher_rank: list | None = None) -> dict[str, Any]:
    """Ranking of each dev item's sentences by cosine to its question (and agreement with teacher)."""
    import numpy as np

    from mooscomp.evaluation.metrics import normalize_answer

    ranks, hit5 = [], []
    for it in items:
        sents = [s for c in it.contexts for s in _SENT.split(c) if s.strip()]
        emb = embed(model, make_batches(tok, [it.question, *sents], 256, device)).float().cpu().numpy()
        order = np.argsort(-(emb[1:] @ emb[0]))
        ranks.append(order)
        gold = [i for i, s in enumerate(sents) if any(f" {normalize_answer(a)} " in f" {normalize_answer(s)} " for a in it.answers)]
        hit5.append(float(bool(set(order[:5].tolist()) & set(gold))) if gold else np.nan)
    out: dict[str, Any] = {"answer_sentence_in_top5": float(np.nanmean(hit5)), "ranks": ranks}
    if teacher_rank is not None:
        out["top1_agreement"] = float(np.mean([a[0] == b[0] for a, b in zip(ranks, teacher_rank, strict=True)]))
        out["top5_overlap"] = float(np.mean([len(set(a[:5]) & set(b[:5])) / min(5, len(a)) for a, b in zip(ranks, teacher_rank, strict=True)]))
    return out


def main(argv: list[str] | None = None) -> int:
    import torch
    from _job import job_start
    from safetensors.torch import save_file
    from train_job import widen_encoder
    from transformers import AutoModel, AutoTokenizer

    from mooscomp.evaluation.items import load_items

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--dev-items", required=True)
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/sentence_distill"))
    ap.add_argument("--work", default="/tmp/sentence_distill_work")
    ap.add_argument("--max-sents", type=int, default=400_000)
    ap.add_argument("--layers", default="0,2,4;1,3,5;0,1,2")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--rel-weight", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--dev-limit", type=int, default=None)
    a = ap.parse_args(argv)
    out, log = job_start(a.out)
    t0 = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    enc_dir, _ = widen_encoder(Path(a.encoder), Path(a.work) / "encoder_fp32")
    tok = AutoTokenizer.from_pretrained(enc_dir)
    teacher = AutoModel.from_pretrained(enc_dir, add_pooling_layer=False).to(device).eval()
    texts = corpus_sentences(a.data, a.max_sents, seed=0)
    texts.sort(key=len)  # batches of similar length
    batches = make_batches(tok, texts, a.batch_size, device)
    targets = embed(teacher, batches).detach()
    items = load_items(a.dev_items)[: a.dev_limit]
    log(f"{len(texts)} sentences, {len(batches)} batches; teacher embedded; {len(items)} dev items")
    ref = judge(teacher, tok, items, device)
    rows = [{"name": "teacher (6 layers)", "answer_sentence_in_top5": ref["answer_sentence_in_top5"]}]
    best = None
    for spec in a.layers.split(";"):
        layers = tuple(int(x) for x in spec.split(","))
        s = train_student(teacher, layers, batches, targets, epochs=a.epochs, lr=a.lr,
                          rel_weight=a.rel_weight, log=log)
        j = judge(s, tok, items, device, teacher_rank=ref["ranks"])
        row = {"name": f"layers {spec}", "layers": list(layers), **{k: v for k, v in j.items() if k != "ranks"}}
        rows.append(row)
        log(f"{row}")
        if best is None or (row["answer_sentence_in_top5"], row["top5_overlap"]) > (best[0]["answer_sentence_in_top5"], best[0]["top5_overlap"]):
            best = (row, s)
    assert best is not None
    row, s = best
    tag = "-".join(map(str, row["layers"]))
    sd = {k: v.detach().half().cpu().contiguous() for k, v in s.state_dict().items() if k.startswith("encoder.layer.")}
    save_file(sd, str(out / f"relevance_{tag}.safetensors"))
    (out / "sentence_distill.json").write_text(json.dumps(
        {"what": __doc__.split("\n\n")[0], "rows": rows, "best": row["name"], "n_sentences": len(texts),
         "settings": {k: v for k, v in vars(a).items() if k not in ("out", "work")},
         "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
         "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    log(f"best {row['name']}; done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
