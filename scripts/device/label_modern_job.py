#!/usr/bin/env python3
"""GPU job: per-token surprisal of the Qwen teacher over the modern corpus and the dev QA contexts.

Only the expensive part runs on the device; keep/drop selection (every labelling scheme, the 4x
answer-survival ceiling) runs afterwards on the CPU from these numbers
(``scripts/corpus/label_modern.py``), so trying a scheme costs no device time. Self-contained
(torch + transformers + gguf only): it does not import mooscomp, whose labelling package may be
mid-refactor on the machine that sends it. Windows match ``SurprisalTeacher`` (512 tokens, 128
tokens of carried left context, the first token scored after BOS).

    python3 scripts/device/label_modern_job.py --gguf /root/q/model.gguf --tokenizer .carry/job/tok \
        --texts .carry/job/texts.jsonl.gz --out "$OUT"
    # CPU smoke test with any small HF causal LM folder:
    python scripts/device/label_modern_job.py --model /tmp/tiny --tokenizer /tmp/tiny --texts t.jsonl.gz --out /tmp/o

Writes OUT/index.json ({"ids": [...], "n_tokens": [...], ...timings}) and OUT/surp_NNN.npy (float16
surprisal in nats, all texts' tokens concatenated in index order, <= 7.5M values per file).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PER_FILE = 7_500_000  # float16 values per output file (15 MB, under the 16 MiB return limit)


def windows(n_tok: int, window: int, context: int) -> list[tuple[int, int, int]]:
    """(ctx_start, score_start, end) covering [0, n_tok) once, as SurprisalTeacher._windows."""
    span = window - 1
    out = []
    s = 0
    while s < n_tok:
        ctx = max(0, s - context)
        end = min(n_tok, ctx + span)
        out.append((ctx, s, end))
        s = end
    return out


def forward_surprisal(model: Any, inp: Any, att: Any, chunk: int) -> np.ndarray:
    """(B, L-1) surprisal of token t+1 given tokens <= t (log-softmax in fp32)."""
    import torch

    with torch.inference_mode():
        hid = model.get_decoder()(input_ids=inp, attention_mask=att).last_hidden_state[:, :-1]
        head = model.get_output_embeddings()
        tgt = inp[:, 1:]
        B, T = tgt.shape
        flat_h = hid.reshape(B * T, -1)  # (B*T, hidden)
        flat_t = tgt.reshape(-1)
        res = torch.empty(B * T, dtype=torch.float32, device=flat_h.device)
        for a in range(0, B * T, chunk):
            lg = head(flat_h[a : a + chunk]).float()  # (chunk, vocab)
            res[a : a + chunk] = torch.logsumexp(lg, -1) - lg.gather(1, flat_t[a : a + chunk, None])[:, 0]
        return res.reshape(B, T).cpu().numpy()


def score_block(model: Any, ids_list: list[np.ndarray], start_id: int, a: argparse.Namespace) -> list[np.ndarray]:
    import torch

    device = next(model.parameters()).device
    jobs = [(si, c, s, e) for si, ids in enumerate(ids_list) for c, s, e in windows(len(ids), a.window, a.context)]
    jobs.sort(key=lambda j: -(j[3] - j[1]))
    out = [np.zeros(len(ids), dtype=np.float32) for ids in ids_list]
    k = 0
    while k < len(jobs):
        L = jobs[k][3] - jobs[k][1] + 1
        bs = max(1, a.batch_tokens // L)
        batch = jobs[k : k + bs]
        k += bs
        inp = np.full((len(batch), L), start_id, dtype=np.int64)
        att = np.zeros((len(batch), L), dtype=np.int64)
        for r, (si, c, _s, e) in enumerate(batch):
            x = np.r_[start_id, ids_list[si][c:e]]
            inp[r, : len(x)] = x
            att[r, : len(x)] = 1
        surp = forward_surprisal(model, torch.from_numpy(inp).to(device), torch.from_numpy(att).to(device), a.chunk)
        for r, (si, c, s, e) in enumerate(batch):
            out[si][s:e] = surp[r, np.arange(s - c, e - c)]  # token j predicted at position j (BOS first)
    return out


def load(a: argparse.Namespace) -> tuple[Any, Any, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    if a.gguf:
        g = Path(a.gguf)
        model = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    return model.to(device).eval(), tok, device


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf", help="GGUF file of the teacher (needs the gguf package)")
    src.add_argument("--model", help="HF causal LM folder (CPU smoke tests)")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--texts", required=True, help="gzip JSONL of {id, text}, scored in file order")
    ap.add_argument("--out", required=True)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--chunk", type=int, default=8192, help="rows of logits at a time")
    ap.add_argument("--block", type=int, default=3000, help="texts tokenised and scored together")
    ap.add_argument("--max-seconds", type=float, default=420.0, help="stop starting new blocks after this")
    a = ap.parse_args()
    t0 = time.time()
    import torch

    model, tok, device = load(a)
    start_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    info: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                            "load_s": round(time.time() - t0, 1), "window": a.window, "context": a.context,
                            "start_id": int(start_id), "torch": torch.__version__}  # fmt: skip
    print(f"loaded in {info['load_s']}s on {info['device']}", flush=True)
    with gzip.open(a.texts, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ids_done: list[str] = []
    ntok: list[int] = []
    buf: list[np.ndarray] = []
    t1 = time.time()
    for b0 in range(0, len(rows), a.block):
        if time.time() - t1 > a.max_seconds:
            info["stopped_at_deadline"] = True
            break
        block = rows[b0 : b0 + a.block]
        enc = tok([r["text"] for r in block], add_special_tokens=False)["input_ids"]
        ids_list = [np.asarray(x, dtype=np.int64) for x in enc]
        for r, s in zip(block, score_block(model, ids_list, int(start_id), a), strict=True):
            ids_done.append(str(r["id"]))
            ntok.append(int(s.shape[0]))
            buf.append(s.astype(np.float16))
        print(f"{len(ids_done)}/{len(rows)} texts, {sum(ntok)} tokens, {time.time() - t1:.0f}s", flush=True)
    allv = np.concatenate(buf) if buf else np.zeros(0, np.float16)
    for k in range(0, max(len(allv), 1), PER_FILE):
        np.save(out / f"surp_{k // PER_FILE:03d}.npy", allv[k : k + PER_FILE])
    info.update(texts=len(ids_done), tokens=int(sum(ntok)), score_s=round(time.time() - t1, 1),
                tokens_per_s=round(sum(ntok) / max(time.time() - t1, 1e-9)), total_s=round(time.time() - t0, 1))  # fmt: skip
    if device == "cuda":
        info["max_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    (out / "index.json").write_text(json.dumps({**info, "ids": ids_done, "n_tokens": ntok}))
    print(json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
