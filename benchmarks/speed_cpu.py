"""CPU speed: mooscomp vs the bare encoder forward vs llmlingua 0.2.2, same weights, one run.

For real long inputs of ~2k / 8k / 32k cl100k tokens (SQuAD-v2 dev articles concatenated), with
2 threads, rotating the contenders' order in every repetition (these machines drift):
- mooscomp ``compress(text, rate=0.33)`` as ``Compressor.from_pretrained`` sets it up by default
  (``backend="auto"``: onnxruntime fp32 on a CPU; tokenisation, forward, outlier scores, budget,
  output);
- the same with the torch backend (``backend="torch"``; same kept words), reported beside it;
- the fastest bare forward over the very same chunks (no tokenisation, no post-processing): the
  best of several batch sizes, for the torch encoder and for the onnxruntime graph; the faster
  of the two is the "bare forward" of the overhead figure;
- llmlingua ``PromptCompressor.compress_prompt(text, rate=0.33)`` (LLMLingua-2 path).

Usage: .venv/bin/python benchmarks/speed_cpu.py [--reps 6] [--out reports/speed_cpu.json]
Writes the JSON report and a PNG beside it; prints a table.
"""

from __future__ import annotations

import argparse
import copy
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
WHO = ("mooscomp", "torch", "bare_torch", "bare_onnx", "llmlingua")


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


def _chunk_batches(comp, text: str, b: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """mooscomp's own chunks of ``text``, length-sorted, padded in batches of ``b``."""
    ctx = comp.prepare(text, comp.config)
    chunks = [ctx.alignment.input_ids[s:e] for s, e in ctx.spans]
    order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i]))
    tok = comp.tokenizer
    batches = []
    for i in range(0, len(order), b):
        sel = [chunks[j] for j in order[i : i + b]]
        width = max(len(c) for c in sel) + 2
        ids = np.full((len(sel), width), tok.pad_token_id, dtype=np.int64)  # (b, width)
        mask = np.zeros((len(sel), width), dtype=bool)
        valid = np.zeros((len(sel), width), dtype=bool)
        for r, c in enumerate(sel):
            ids[r, 0] = tok.cls_token_id
            ids[r, 1 : 1 + len(c)] = c
            ids[r, 1 + len(c)] = tok.sep_token_id
            mask[r, : len(c) + 2] = True
            valid[r, 1 : 1 + len(c)] = True
        batches.append((ids, mask, valid))
    return batches


def bare_forward_time(comp, text: str, runtime: str, batch_sizes=(1, 2, 4, 8, 16)) -> tuple[float, int]:
    """Fastest time of a plain forward over mooscomp's own chunks (ids prepared beforehand):
    the torch encoder under no-grad, or the exported onnxruntime graph (``comp.scorer``)."""
    best, best_b = float("inf"), 0
    for b in batch_sizes:
        batches = _chunk_batches(comp, text, b)
        if runtime == "torch":
            tb = [(torch.from_numpy(i), torch.from_numpy(m).long()) for i, m, _ in batches]
            t0 = time.perf_counter()
            with torch.inference_mode():
                for ids, mask in tb:
                    comp.model.encoder(input_ids=ids, attention_mask=mask)
        else:
            t0 = time.perf_counter()
            for ids, mask, valid in batches:
                comp.scorer.forward_batch(ids, mask, valid)
        dt = time.perf_counter() - t0
        if dt < best:
            best, best_b = dt, b
    return best, best_b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--out", default=str(REPORTS / "speed_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)  # before select_scorer: the onnxruntime session takes torch's count
    import onnxruntime
    from llmlingua import PromptCompressor

    from mooscomp.counting import cl100k_count
    from mooscomp.onnx_runtime import select_scorer

    ort_version = onnxruntime.__version__

    same_words: dict[int, bool] = {}
    inputs = make_inputs()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = build_checkpoint(Path(tmp) / "minilm-bert-base-multilingual-cased")
        tiktoken_cache(Path(tmp) / "tiktoken")
        ll = PromptCompressor(model_name=str(ckpt), device_map="cpu", use_llmlingua2=True)
        mt = mooscomp_from_checkpoint(ckpt)  # the torch backend
        # what Compressor.from_pretrained(backend="auto") picks on a CPU for these weights
        mc = copy.copy(mt)
        mc.scorer = select_scorer(mt.model, backend="auto", cache_dir=Path(tmp) / "onnx")
        assert mc.backend == "onnx", "onnxruntime is a dependency: auto should pick it on a CPU"
        for size, text in inputs.items():
            if mt.compress(text, rate=RATE).text != mc.compress(text, rate=RATE).text:
                same_words[size] = False
            ll.compress_prompt(text, rate=RATE)  # warm-up
            t: dict[str, list[float]] = {w: [] for w in WHO}
            bsz: dict[str, list[int]] = {"bare_torch": [], "bare_onnx": []}
            for rep in range(args.reps):
                for who in WHO[rep % len(WHO):] + WHO[: rep % len(WHO)]:  # rotate who goes first
                    if who.startswith("bare_"):
                        bt, bb = bare_forward_time(mc, text, who[5:])
                        t[who].append(bt)
                        bsz[who].append(bb)
                        continue
                    t0 = time.perf_counter()
                    if who == "llmlingua":
                        ll.compress_prompt(text, rate=RATE)
                    else:
                        (mc if who == "mooscomp" else mt).compress(text, rate=RATE)
                    t[who].append(time.perf_counter() - t0)
            bare = [min(a, b) for a, b in zip(t["bare_torch"], t["bare_onnx"], strict=True)]
            row = {
                "size_label": size,
                "cl100k_tokens": cl100k_count(text),
                "same_kept_words_torch_vs_onnx": same_words.get(size, True),
                "mooscomp_s": statistics.median(t["mooscomp"]),
                "mooscomp_torch_s": statistics.median(t["torch"]),
                "bare_forward_s": statistics.median(bare),
                "bare_torch_s": statistics.median(t["bare_torch"]),
                "bare_onnx_s": statistics.median(t["bare_onnx"]),
                "bare_best_batch": {k: max(set(v), key=v.count) for k, v in bsz.items()},
                "llmlingua_s": statistics.median(t["llmlingua"]),
                "all_s": t,
            }
            # paired ratios: the contenders of one repetition ran back to back, so the machine's
            # drift cancels; the median over repetitions is the figure
            row["speedup_vs_llmlingua"] = statistics.median(
                b / a for a, b in zip(t["mooscomp"], t["llmlingua"], strict=True))
            row["overhead_vs_encoder"] = statistics.median(
                a / b for a, b in zip(t["mooscomp"], bare, strict=True))
            row["torch_speedup_vs_llmlingua"] = statistics.median(
                b / a for a, b in zip(t["torch"], t["llmlingua"], strict=True))
            row["torch_overhead_vs_torch_encoder"] = statistics.median(
                a / b for a, b in zip(t["torch"], t["bare_torch"], strict=True))
            row["llmlingua_over_bare_torch"] = statistics.median(
                b / a for a, b in zip(t["bare_torch"], t["llmlingua"], strict=True))
            results.append(row)
            print(
                f"{row['cl100k_tokens']:>7} tok  mooscomp {row['mooscomp_s']:.2f}s  "
                f"torch {row['mooscomp_torch_s']:.2f}s  bare torch {row['bare_torch_s']:.2f}s  "
                f"bare onnx {row['bare_onnx_s']:.2f}s  llmlingua {row['llmlingua_s']:.2f}s  "
                f"speedup {row['speedup_vs_llmlingua']:.2f}x (torch {row['torch_speedup_vs_llmlingua']:.2f}x)  "
                f"overhead {row['overhead_vs_encoder']:.2f}x (torch {row['torch_overhead_vs_torch_encoder']:.2f}x)",
                flush=True,
            )
    big = [r for r in results if r["cl100k_tokens"] >= 8000]
    summary = {
        "speedup_vs_llmlingua": float(np.median([r["speedup_vs_llmlingua"] for r in big])),
        "overhead_vs_encoder": float(results[-1]["overhead_vs_encoder"]),
        "backend": "onnxruntime fp32 (Compressor.from_pretrained default on a CPU)",
        "torch_backend": {
            "speedup_vs_llmlingua": float(np.median([r["torch_speedup_vs_llmlingua"] for r in big])),
            "overhead_vs_torch_encoder": float(results[-1]["torch_overhead_vs_torch_encoder"]),
            "ceiling_llmlingua_over_bare_torch": float(
                np.median([r["llmlingua_over_bare_torch"] for r in big])),
        },
        "same_kept_words_torch_vs_onnx": all(r["same_kept_words_torch_vs_onnx"] for r in results),
        "targets": {"speedup_vs_llmlingua": ">= 1.25", "overhead_vs_encoder": "<= 1.10"},
        "threads": 2,
        "rate": RATE,
        "weights": "all-MiniLM-L6-v2 + seeded head (identical for both)",
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"onnxruntime {ort_version}",
        "statistic": "median over repetitions of the per-repetition ratio (contenders run back "
                     "to back in rotating order); overhead is against the faster of the two bare "
                     "forwards (torch encoder, onnxruntime graph) of the same repetition",
        "command": f"python benchmarks/speed_cpu.py --reps {args.reps}",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": results}, indent=1))
    print(json.dumps(summary))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = [r["cl100k_tokens"] for r in results]
    for key, label in (("mooscomp_s", "mooscomp (default: onnxruntime fp32)"),
                       ("mooscomp_torch_s", "mooscomp (torch backend)"),
                       ("bare_onnx_s", "bare forward (onnxruntime)"),
                       ("bare_torch_s", "bare forward (torch)"), ("llmlingua_s", "llmlingua 0.2.2")):
        ax.plot(x, [r[key] for r in results], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input tokens (cl100k)")
    ax.set_ylabel("seconds (median, 2 threads)")
    ax.set_title("CPU compression time, same MiniLM weights")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
