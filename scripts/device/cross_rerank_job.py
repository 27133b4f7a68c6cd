"""GPU job (feasibility): would a 3-layer cross-encoder re-ranking the bi-encoder's top sentences
find the answer sentence of multi-hop questions earlier?

The question path ranks sentences by the cosine of independently embedded question and sentence
(the shipped 3-layer relevance encoder); its HotpotQA misses are second-hop sentences that do not
resemble the question. A cross-encoder reads question and sentence together. Here one is trained
from the distilled 3-layer encoder (the same start as the shipped bi-encoder) on the same
evaluation-disjoint HotpotQA groups (scripts/corpus/relevance_groups.py): input ``[CLS] question
[SEP] title: sentence [SEP]``, a linear head on ``[CLS]``, the listwise loss of the bi-encoder's
fine-tune over each group's sentences. It is judged, like that fine-tune, on held-out training
groups (val) and the question benchmark's DEV items, as a re-ranker of the shipped bi-encoder's
top ``k`` sentences (answer sentence in the top 5 / 1; all supporting facts within n + 3), against
the bi-encoder alone. Nothing here is wired into the library.

    PYTHONPATH=src python3 scripts/device/cross_rerank_job.py --data data/cache/relevance \\
        --start <distilled relevance.safetensors> --shipped src/mooscomp/models/default/relevance.safetensors \\
        --out "$OUT"
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pair_rows(tok: Any, lookup: Any, groups: list[Any], max_len: int) -> list[list[tuple[Any, Any]]]:
    """Per group, per sentence: (row ids in the packed table, token type ids) of the pair."""
    import torch

    out = []
    for g in groups:
        enc = tok([g.question] * len(g.sentences), list(g.sentences), truncation="only_second", max_length=max_len)
        rows = []
        for ids, tt in zip(enc["input_ids"], enc["token_type_ids"], strict=True):
            r = lookup[torch.tensor(ids)]
            if bool((r < 0).any()):
                raise SystemExit("a token id is missing from the packed embeddings: rebuild them")
            rows.append((r, torch.tensor(tt)))
        out.append(rows)
    return out


def batch(pairs: list[tuple[Any, Any]], device: str) -> dict[str, Any]:
    import torch

    width = max(int(r.numel()) for r, _ in pairs)
    ids = torch.zeros((len(pairs), width), dtype=torch.int64)
    tt = torch.zeros((len(pairs), width), dtype=torch.int64)
    mask = torch.zeros((len(pairs), width), dtype=torch.int64)
    for i, (r, t) in enumerate(pairs):
        n = int(r.numel())
        ids[i, :n], tt[i, :n], mask[i, :n] = r, t, 1
    return {"input_ids": ids.to(device), "token_type_ids": tt.to(device), "attention_mask": mask.to(device)}


class Cross:
    """Encoder + linear head on the [CLS] state: one relevance logit per pair."""

    def __init__(self, encoder: Any, device: str) -> None:
        import torch

        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1).to(device)

    def parameters(self) -> list[Any]:
        return [p for p in self.encoder.parameters() if p.requires_grad] + list(self.head.parameters())

    def __call__(self, b: dict[str, Any]) -> Any:
        import torch

        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=b["input_ids"].is_cuda):
            h = self.encoder(**b).last_hidden_state[:, 0]  # (n_pairs, dim)
        return self.head(h.float()).squeeze(-1)  # (n_pairs,)


def scores(model: Cross, rows: list[list[tuple[Any, Any]]], device: str, per: int = 2048) -> list[Any]:
    import torch

    out = []
    with torch.no_grad():
        for g in rows:
            out.append(torch.cat([model(batch(g[i : i + per], device)) for i in range(0, len(g), per)]).float().cpu())
    return out


def rerank_metrics(groups: list[Any], bi: list[Any], cross: list[Any] | None, k: int,
                   mix: float = 1.0) -> dict[str, dict[str, float]]:
    """Per task: positive in top 1 / top 5, all positives within n_pos + 3, when the bi-encoder's
    top ``k`` are re-ordered by ``mix`` x z(cross) + (1 - mix) x z(bi) within them (``cross``
    None: the bi-encoder alone)."""
    import numpy as np

    rows: dict[str, list[list[float]]] = {}
    for gi, g in enumerate(groups):
        b = np.asarray(bi[gi], dtype=np.float64)
        order = np.argsort(-b, kind="stable")
        if cross is not None:
            c = np.asarray(cross[gi], dtype=np.float64)
            head = order[:k]
            z = [(x[head] - x[head].mean()) / (x[head].std() + 1e-9) for x in (c, b)]
            key = mix * z[0] + (1.0 - mix) * z[1]
            order = np.r_[head[np.argsort(-key, kind="stable")], order[k:]]
        rank_of = np.empty(len(order), dtype=np.int64)
        rank_of[order] = np.arange(len(order))
        pr = np.sort(rank_of[list(g.positive)])
        rows.setdefault(g.item_id.split("/")[0], []).append(
            [float(pr[0] < 1), float(pr[0] < 5), float(pr[-1] < len(pr) + 3)])
    names = ("top1", "top5", "all_within_npos_plus_3")
    return {t: {n: round(float(np.mean([r[i] for r in v])), 4) for i, n in enumerate(names)} | {"n": len(v)}
            for t, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    import torch
    from _job import job_start
    from relevance_finetune_job import (
        Texts,
        all_embeddings,
        build_encoder,
        index_groups,
        split_groups,
        with_titles,
    )


    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--start", required=True, help="relevance.safetensors the cross-encoder starts from")
    ap.add_argument("--shipped", required=True, help="the shipped bi-encoder's relevance.safetensors")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/cross_rerank"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--groups-per-step", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=160)
    ap.add_argument("--ks", default="10,20,40")
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args(argv)
    out, log = job_start(a.out)
    t0 = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = Path(a.data)
    train_g, val_g, dev_g = split_groups(data, a.limit)
    torch.manual_seed(0)
    start, tok, lookup = build_encoder(data, Path(a.start), device)
    shipped, _, _ = build_encoder(data, Path(a.shipped), device)
    # the bi-encoder's scores, as the question path computes them (plain sentences)
    bi: dict[str, list[Any]] = {}
    for name, gs in (("val", val_g), ("dev", dev_g)):
        texts, index = index_groups(gs)
        emb = all_embeddings(shipped.eval(), Texts(tok, lookup, texts, 128), device)
        bi[name] = [(emb[s] @ emb[q]).float().cpu() for q, s, _ in index]
    titled = {"train": with_titles(train_g), "val": with_titles(val_g), "dev": with_titles(dev_g)}
    rows = {k: pair_rows(tok, lookup, v, a.max_len) for k, v in titled.items()}
    log(f"{len(train_g)} train / {len(val_g)} val / {len(dev_g)} dev groups")
    model = Cross(copy.deepcopy(start).train(), device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    steps = a.epochs * ((len(train_g) + a.groups_per_step - 1) // a.groups_per_step)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / max(1, 0.06 * steps)) * max(0.0, 1 - k / steps))
    rng = random.Random(0)
    for ep in range(a.epochs):
        order = list(range(len(train_g)))
        rng.shuffle(order)
        tot = 0.0
        for s in range(0, len(order), a.groups_per_step):
            part = order[s : s + a.groups_per_step]
            pairs = [p for i in part for p in rows["train"][i]]
            logit = model(batch(pairs, device))  # (n_pairs,)
            loss = logit.new_zeros(())
            k = 0
            for i in part:
                n = len(rows["train"][i])
                lg = logit[k : k + n]
                pos = torch.zeros(n, dtype=torch.bool, device=device)
                pos[list(train_g[i].positive)] = True
                loss = loss + torch.logsumexp(lg, 0) - torch.logsumexp(lg[pos], 0)
                k += n
            loss = loss / len(part)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += float(loss.detach())
        log(f"epoch {ep + 1}: loss {tot / max(1, len(order) // a.groups_per_step):.4f}")
    model.encoder.eval()
    result: dict[str, Any] = {}
    for name in ("val", "dev"):
        cr = scores(model, rows[name], device)
        gs = titled[name]
        result[name] = {"bi_encoder": rerank_metrics(gs, bi[name], None, 0),
                        **{f"rerank_top{k}": rerank_metrics(gs, bi[name], cr, int(k)) for k in a.ks.split(",")},
                        **{f"blend_top{k}": rerank_metrics(gs, bi[name], cr, int(k), 0.5) for k in a.ks.split(",")},
                        "cross_alone": rerank_metrics(gs, bi[name], cr, 10**6)}
        log(f"{name}: {json.dumps(result[name])}")
    (out / "cross_rerank.json").write_text(json.dumps({
        "what": __doc__.split("\n\n")[0], "results": result,
        "groups": {"train": len(train_g), "val": len(val_g), "dev": len(dev_g)},
        "settings": {k: v for k, v in vars(a).items() if k != "out"},
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
