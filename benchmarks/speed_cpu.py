"""CPU speed: mooscomp vs the bare encoder forward vs llmlingua 0.2.2, same weights, one run.

For real long inputs of ~2k / 8k / 32k cl100k tokens (SQuAD-v2 dev articles concatenated), with
2 torch threads, rotating the contenders' order in every repetition (these machines drift):
- mooscomp ``compress(text, rate=0.33)`` (tokenisation, forward, outlier scores, budget, output);
- the same with the onnxruntime fp32 backend (2 threads; same kept words), reported beside it;
- the fastest bare encoder forward over the very same chunks (no tokenisation, no
  post-processing), the best of several batch sizes;
- llmlingua ``PromptCompressor.compress_prompt(text, rate=0.33)`` (LLMLingua-2 path).

Usage: .venv/bin/python benchmarks/speed_cpu.py [--reps 6]
Writes reports/speed_cpu.json and reports/speed_cpu.png; prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _peers import build_checkpoint, mooscomp_from_checkpoint, squad_articles, tiktoken_cache  # noqa: E402

REPORTS = ROOT / "reports"
SIZES = (2000, 8000, 32000)
RATE = 0.33
ROTATION = (("mooscomp", "bare", "llmlingua", "onnx"), ("bare", "llmlingua", "onnx", "mooscomp"),
            ("llmlingua", "onnx", "mooscomp", "bare"), ("onnx", "mooscomp", "bare", "llmlingua"))


def make_inputs() -> dict[int, str]:
    from mooscomp.counting import cl100k_count

    paras = [p for art in squad_articles() for p in art]
    out: dict[int, str] = {}
    for size in SIZES:
        acc: list[str] = []
        n = 0
        for p in paras:
            acc.append(p)
            n += cl100k_count(p) + 1
            if n >= size:
                break
        out[size] = "\n".join(acc)
    return out


def bare_forward_time(comp, text: str, batch_sizes=(1, 4, 8, 16)) -> tuple[float, int]:
    """Fastest time of a plain no-grad forward over mooscomp's own chunks (ids prepared)."""
    ctx = comp._prepare(text, comp.config)
    chunks = [ctx.alignment.input_ids[s:e] for s, e in ctx.spans]
    order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i]))
    tok = comp.tokenizer
    best = float("inf")
    best_b = 0
    for b in batch_sizes:
        batches = []
        for i in range(0, len(order), b):
            sel = [chunks[j] for j in order[i : i + b]]
            width = max(len(c) for c in sel) + 2
            ids = torch.full((len(sel), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(sel), width), dtype=torch.long)
            for r, c in enumerate(sel):
                ids[r, 0] = tok.cls_token_id
                ids[r, 1 : 1 + len(c)] = torch.from_numpy(c)
                ids[r, 1 + len(c)] = tok.sep_token_id
                mask[r, : len(c) + 2] = 1
            batches.append((ids, mask))
        t0 = time.perf_counter()
        with torch.inference_mode():
            for ids, mask in batches:
                comp.model.encoder(input_ids=ids, attention_mask=mask)
        dt = time.perf_counter() - t0
        if dt < best:
            best, best_b = dt, b
    return best, best_b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from llmlingua import PromptCompressor

    from mooscomp.counting import cl100k_count

    inputs = make_inputs()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = build_checkpoint(Path(tmp) / "minilm-bert-base-multilingual-cased")
        tiktoken_cache(Path(tmp) / "tiktoken")
        ll = PromptCompressor(model_name=str(ckpt), device_map="cpu", use_llmlingua2=True)
        mc = mooscomp_from_checkpoint(ckpt)
        # the same compressor with the onnxruntime fp32 backend (identical kept words, see
        # reports/speed_onnx.json); reported beside the torch path, not instead of it
        from mooscomp.onnx_runtime import OnnxOptions, onnx_compressor

        mo = onnx_compressor(mc, options=OnnxOptions(threads=2), cache_dir=Path(tmp) / "onnx")
        for size, text in inputs.items():
            mc.compress(text, rate=RATE)  # warm-up
            ll.compress_prompt(text, rate=RATE)
            mo.compress(text, rate=RATE)
            t_mc, t_bare, t_ll, t_ox, bsz = [], [], [], [], []
            for rep in range(args.reps):
                for who in ROTATION[rep % 4]:  # rotate who goes first
                    if who == "bare":
                        bt, bb = bare_forward_time(mc, text)
                        t_bare.append(bt)
                        bsz.append(bb)
                        continue
                    t0 = time.perf_counter()
                    if who == "llmlingua":
                        ll.compress_prompt(text, rate=RATE)
                    else:
                        (mc if who == "mooscomp" else mo).compress(text, rate=RATE)
                    {"mooscomp": t_mc, "onnx": t_ox, "llmlingua": t_ll}[who].append(
                        time.perf_counter() - t0)
            row = {
                "size_label": size,
                "cl100k_tokens": cl100k_count(text),
                "mooscomp_s": statistics.median(t_mc),
                "bare_forward_s": statistics.median(t_bare),
                "bare_best_batch": max(set(bsz), key=bsz.count),
                "llmlingua_s": statistics.median(t_ll),
                "all_mooscomp_s": t_mc,
                "all_bare_s": t_bare,
                "all_llmlingua_s": t_ll,
                "onnx_fp32_s": statistics.median(t_ox),
                "all_onnx_fp32_s": t_ox,
            }
            # paired ratios: the three contenders of one repetition ran back to back, so the
            # machine's drift cancels; the median over repetitions is the figure
            row["speedup_vs_llmlingua"] = statistics.median(
                b / a for a, b in zip(t_mc, t_ll, strict=True))
            row["overhead_vs_encoder"] = statistics.median(
                a / b for a, b in zip(t_mc, t_bare, strict=True))
            row["onnx_fp32_speedup_vs_llmlingua"] = statistics.median(
                b / a for a, b in zip(t_ox, t_ll, strict=True))
            row["ratio_of_medians"] = {
                "speedup_vs_llmlingua": row["llmlingua_s"] / row["mooscomp_s"],
                "overhead_vs_encoder": row["mooscomp_s"] / row["bare_forward_s"],
            }
            results.append(row)
            print(
                f"{row['cl100k_tokens']:>7} tok  mooscomp {row['mooscomp_s']:.2f}s  "
                f"bare {row['bare_forward_s']:.2f}s  llmlingua {row['llmlingua_s']:.2f}s  "
                f"speedup {row['speedup_vs_llmlingua']:.2f}x  overhead {row['overhead_vs_encoder']:.2f}x  "
                f"onnx fp32 {row['onnx_fp32_s']:.2f}s ({row['onnx_fp32_speedup_vs_llmlingua']:.2f}x)",
                flush=True,
            )
    big = [r["speedup_vs_llmlingua"] for r in results if r["cl100k_tokens"] >= 8000]
    big_ox = [r["onnx_fp32_speedup_vs_llmlingua"] for r in results if r["cl100k_tokens"] >= 8000]
    summary = {
        "speedup_vs_llmlingua": float(np.median(big)),
        "onnx_fp32_speedup_vs_llmlingua": float(np.median(big_ox)),
        "overhead_vs_encoder": float(results[-1]["overhead_vs_encoder"]),
        "targets": {"speedup_vs_llmlingua": ">= 1.25", "overhead_vs_encoder": "<= 1.10"},
        "threads": 2,
        "rate": RATE,
        "weights": "all-MiniLM-L6-v2 + seeded head (identical for both)",
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "statistic": "median over repetitions of the per-repetition ratio (contenders run back "
                     "to back in rotating order); rows also give the ratio of medians",
        "command": "python benchmarks/speed_cpu.py --reps " + str(args.reps),
    }
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "speed_cpu.json").write_text(json.dumps({"summary": summary, "rows": results}, indent=1))
    print(json.dumps(summary))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = [r["cl100k_tokens"] for r in results]
    for key, label in (("mooscomp_s", "mooscomp (torch)"), ("onnx_fp32_s", "mooscomp (onnxruntime fp32)"),
                       ("bare_forward_s", "bare encoder forward"), ("llmlingua_s", "llmlingua 0.2.2")):
        ax.plot(x, [r[key] for r in results], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input tokens (cl100k)")
    ax.set_ylabel("seconds (median, 2 threads)")
    ax.set_title("CPU compression time, same MiniLM weights")
    ax.legend()
    fig.tight_layout()
    fig.savefig(REPORTS / "speed_cpu.png", dpi=110)


if __name__ == "__main__":
    main()
