#!/usr/bin/env python3
"""GPU labelling job: the surprisal teacher (a GGUF dequantised by transformers) over the corpus.

Runs on the lent GPU machine (see scripts/device/README.md) or any CUDA/CPU box:
    PYTHONPATH=src python scripts/device/label_job.py --gguf /root/qwen/qwen.gguf \
        --tokenizer .whl/qwen_tok --corpus data/corpus/docs.jsonl.gz --out $OUT
Writes OUT/shards/shard-*.jsonl.gz (resumable), OUT/squad_labels.json (teacher labels of the
answer-survival sample, unit-level and word-level) and OUT/job_gpu.json (timings, device).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from mooscomp._util import resolve_device  # noqa: E402
from mooscomp.alignment import segment_words  # noqa: E402
from mooscomp.labeling import (  # noqa: E402
    Document,
    JobConfig,
    SurprisalConfig,
    SurprisalTeacher,
    label_corpus,
    read_documents,
    units_from_spans,
)


def load_teacher(a: argparse.Namespace, device: torch.device) -> tuple[SurprisalTeacher, float]:
    """The GGUF teacher (dequantised, bf16 on CUDA) and its load time in seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gg = Path(a.gguf)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(a.tokenizer or str(gg.parent), **({} if a.tokenizer else {"gguf_file": gg.name}))
    model = AutoModelForCausalLM.from_pretrained(str(gg.parent), gguf_file=gg.name, dtype=dtype)
    model.to(device).eval()
    cfg = SurprisalConfig(keep_fraction=a.keep_fraction, batch_size=a.batch_size, logprob_chunk=4096)
    teacher = SurprisalTeacher(model, tok, config=cfg, model_id=a.model_id, model_sha256=a.sha256)
    return teacher, time.time() - t0


def label_squad_sample(teacher: SurprisalTeacher, a: argparse.Namespace) -> dict:
    """Unit-level and word-level teacher labels of each context of the answer-survival sample."""
    cfg = teacher.config
    items = json.loads(Path(a.squad_sample).read_text())
    res = {}
    for use_units in (True, False):
        t1 = time.time()
        teacher.config = SurprisalConfig(
            keep_fraction=a.keep_fraction, batch_size=a.batch_size, logprob_chunk=4096,
            use_units=use_units,
        )
        docs = []
        for it in items:
            n = len(segment_words(it["context"]))
            docs.append(Document(str(it["id"]), it["context"],
                                 units=units_from_spans(n, it["unit_spans"])))
        labs = []
        for k in range(0, len(docs), 64):
            labs += [x.astype(int).tolist() for x in teacher.label_batch(docs[k : k + 64])]
        res["units" if use_units else "words"] = {d.doc_id: lab for d, lab in zip(docs, labs)}
        print(f"squad sample ({'units' if use_units else 'words'}): {time.time() - t1:.1f}s", flush=True)
    teacher.config = cfg
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, help="GGUF file of the teacher")
    ap.add_argument("--tokenizer", default=None, help="saved tokenizer folder (skips GGUF vocab)")
    ap.add_argument("--corpus", default=str(ROOT / "data/corpus/docs.jsonl.gz"))
    ap.add_argument("--squad-sample", default=None, help="JSON list of {id,context,answers,unit_spans}")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model-id", default="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M")
    ap.add_argument("--sha256", default="")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shard-size", type=int, default=800)
    ap.add_argument("--max-seconds", type=float, default=420.0, help="stop labelling after this")
    ap.add_argument("--keep-fraction", type=float, default=0.4)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t_start = time.time()
    device = resolve_device("auto")
    teacher, t_load = load_teacher(a, device)
    print(f"loaded in {t_load:.1f}s on {device.type}", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    info: dict = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "dtype": str(next(teacher.model.parameters()).dtype),
        "load_s": round(t_load, 1),
        "teacher": teacher.describe(),
    }
    if a.squad_sample:
        (out / "squad_labels.json").write_text(json.dumps(label_squad_sample(teacher, a)))

    deadline = time.time() + a.max_seconds

    def docs_until_deadline():
        for d in read_documents(a.corpus):
            if time.time() > deadline:
                info["stopped_at_deadline"] = True
                return
            yield d

    if device.type == "cuda":
        torch.cuda.synchronize()
    tok0 = teacher.tokens_scored
    stats = label_corpus(
        docs_until_deadline(), teacher, out / "shards", shard_size=a.shard_size, seed=0,
        config=JobConfig(batch_docs=64),
        progress=lambda s: print(f"docs {s.done} words {s.words} {s.words / max(s.seconds_teacher, 1e-9):.0f} w/s", flush=True),
    )
    info["corpus"] = stats.as_dict()
    info["lm_tokens_scored"] = teacher.tokens_scored - tok0
    info["lm_tokens_per_s"] = info["lm_tokens_scored"] / max(stats.seconds_teacher, 1e-9)
    info["total_s"] = round(time.time() - t_start, 1)
    if device.type == "cuda":
        info["max_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    (out / "job_gpu.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
