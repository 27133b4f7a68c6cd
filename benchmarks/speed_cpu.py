"""CPU speed: the shipped default model's default CPU path vs its fp32 reference, the bare forwards
and llmlingua 0.2.2.

Real long inputs of ~2k / 8k / 32k cl100k tokens (SQuAD-v2 dev paragraphs concatenated; another
text in every repetition, the same for all contenders of that repetition: :func:`make_inputs`), 2 threads,
the contenders back to back in rotating order in every repetition (the machine is shared and
drifts); every figure is the median over repetitions of a per-repetition ratio. The weights are
the shipped default model's (``--model``, default: ``src/mooscomp/models/default``) for every
contender but one:
- ``mooscomp``: ``compress(text, rate=0.33)`` on the backend ``Compressor.from_pretrained``
  picks by default on a CPU (``backend="auto"``);
- ``fp32``: the same on the fp32 graph (``backend="onnx"``: the same kept words as torch), and
  ``torch`` (``backend="torch"``);
- the bare forwards over the very same chunks (ids prepared beforehand; each compressor's own
  batches and backend, ``Compressor.score_chunks``): the default path's (the overhead figure's
  denominator), fp32's and torch's;
- ``llmlingua``: ``PromptCompressor.compress_prompt(text, rate=0.33)`` (LLMLingua-2 path) on the
  same weights, saved as a HF token-classification checkpoint (``summary.speedup_vs_llmlingua``);
- ``llmlingua_reference``: the same llmlingua call on the quality reference (``--reference``,
  default ``benchmarks/models/minilm6_v2``: the 6-layer model the default was distilled from and
  whose dev answer survival it keeps, ``summary.survival_delta_vs_reference``): the speedup at the
  same quality (``summary.speedup_vs_llmlingua_same_quality``);
- ``question`` (``question_overhead``): the shipped default model with ``question=`` against the
  same compressor without it, back to back in rotating order, on the same inputs
  (:func:`question_overhead`; ``--question-only`` runs just this part and updates the report).
The quality of the default path against the fp32 reference (dev answer survival) comes from
``reports/cpu_runtime_quality.json`` (benchmarks/cpu_runtime_quality.py).

Usage: .venv/bin/python benchmarks/speed_cpu.py [--reps 4] [--out reports/speed_cpu.json]
Writes the JSON report and a PNG beside it; prints a table.
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
from _peers import export_for_llmlingua, squad_articles, tiktoken_cache  # noqa: E402

REPORTS = ROOT / "reports"
SIZES = (2000, 8000, 32000)
RATE = 0.33
WHO = ("mooscomp", "fp32", "torch", "bare_default", "bare_fp32", "bare_torch", "llmlingua",
       "llmlingua_reference")
REFERENCE = ROOT / "benchmarks/models/minilm6_v2"
QUESTION = "What did the Normans do in the 10th century?"
QUALITY = REPORTS / "cpu_runtime_quality.json"


STRIDE = 97  # SQuAD paragraphs between the starts of two repetitions' inputs


def make_inputs(reps: int) -> dict[int, list[str]]:
    """Per size, ``reps + 1`` different inputs (the first for warm-up) of about ``size`` cl100k
    tokens: consecutive SQuAD-v2 dev paragraphs from a start that moves by ``STRIDE`` paragraphs
    each repetition (cyclic). All contenders of one repetition read the same text; no repetition
    re-reads the last one's (nothing is timed on a text a cache has already seen whole)."""
    from mooscomp.counting import cl100k_count

    paras = [p for art in squad_articles() for p in art]
    cost = [cl100k_count(p) + 1 for p in paras]
    out: dict[int, list[str]] = {}
    for size in SIZES:
        texts = []
        for r in range(reps + 1):
            acc: list[str] = []
            n, i = 0, r * STRIDE
            while n < size:
                acc.append(paras[i % len(paras)])
                n += cost[i % len(paras)]
                i += 1
            texts.append("\n".join(acc))
        out[size] = texts
    return out


def bare_forward_time(comp, chunks: list[np.ndarray]) -> float:
    """Seconds of ``comp``'s own forward over ``chunks`` (its ids prepared beforehand): the very
    batches and backend its ``compress`` runs (:meth:`mooscomp.Compressor.score_chunks`), timed
    once like every other contender."""
    t0 = time.perf_counter()
    comp.score_chunks(chunks)
    return time.perf_counter() - t0


def _ratio(num: list[float], den: list[float]) -> float:
    return float(statistics.median(a / b for a, b in zip(num, den, strict=True)))


def quality_of(backend: str) -> dict:
    """The shipped model's dev survival delta on ``backend`` against the fp32 quality reference it
    was distilled from (its row in cpu_runtime_quality.json: the candidate named the shipped
    default, ``int8`` for ``onnx-int8``, ``fp32`` for ``onnx``/``torch``)."""
    if not QUALITY.is_file():
        return {"survival_delta_vs_reference": None, "source": f"{QUALITY.name} missing"}
    q = json.loads(QUALITY.read_text())
    suffix = " int8" if backend == "onnx-int8" else " fp32"
    row = next((r for r in q["rows"] if "shipped default" in r["candidate"] and r["candidate"].endswith(suffix)),
               None)
    if row is None:
        return {"survival_delta_vs_reference": None, "source": f"no shipped-default{suffix} row in {QUALITY.name}"}
    return {"survival_delta_vs_reference": row["survival_delta_4x_mean_over_tasks"],
            "survival_delta_2x_5x_mean": row["survival_delta_2x_5x_mean"],
            "keep_f1_vs_reference": row["keep_f1_mean"], "items": q["items"], "row": row["candidate"],
            "source": f"reports/{QUALITY.name} ({q['model']}, dev split, no question)"}


def question_overhead(inputs: dict[int, list[str]], reps: int) -> dict:
    """``compress(text, rate, question=...)`` / ``compress(text, rate)`` with the shipped default
    model, per input size: median over repetitions of the paired ratio (the two calls back to
    back, who goes first alternating)."""
    from mooscomp import Compressor
    from mooscomp import question as _question

    comp = Compressor.from_pretrained()
    qc = _question.for_compressor(comp)
    calls = {"plain": lambda x: comp.compress(x, rate=RATE),
             "question": lambda x: comp.compress(x, rate=RATE, question=QUESTION)}
    rows = []
    for size, texts in inputs.items():
        for f in calls.values():
            f(texts[0])  # warm-up (the question path builds its sentence graph on first use)
        t: dict[str, list[float]] = {k: [] for k in calls}
        for rep in range(reps):
            for k in (("plain", "question") if rep % 2 == 0 else ("question", "plain")):
                t0 = time.perf_counter()
                calls[k](texts[1 + rep])
                t[k].append(time.perf_counter() - t0)
        rows.append({"size_label": size, "plain_s": statistics.median(t["plain"]),
                     "question_s": statistics.median(t["question"]),
                     "question_overhead": _ratio(t["question"], t["plain"]), "all_s": t})
        print(f"question: {size:>6} tok  plain {rows[-1]['plain_s']:.2f}s  question {rows[-1]['question_s']:.2f}s  "
              f"overhead {rows[-1]['question_overhead']:.2f}x", flush=True)
    big = [r["question_overhead"] for r in rows if r["size_label"] >= 8000] or [r["question_overhead"] for r in rows]
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {
        "question_overhead": float(np.median(big)),
        "question_path": "Compressor.compress(text, rate=0.33, question=...) with the shipped default model on "
                         f"its default CPU backend ({comp.backend}): coarse-to-fine (mooscomp.question, relevance="
                         f"{getattr(qc, 'relevance', None)!r}: sentences embedded by the model's "
                         "own relevance encoder (relevance.safetensors, 3 layers distilled from all-MiniLM-L6-v2, fine-tuned on HotpotQA supporting facts) as an int8 graph, "
                         "token classifier over the candidate sentences only)",
        "question_rows": rows,
        "question_reps": reps,
        "question_load_average": load,
    }


def run_size(texts: list[str], who: dict, bare: dict, reps: int,
             names: tuple[str, ...] = WHO) -> dict[str, list[float]]:
    """Seconds per contender and repetition (``texts[1 + rep]``), in rotating order (``bare``:
    name -> compressor whose forward alone is timed over the text's chunks)."""
    any_comp = next(iter(bare.values()))
    t: dict[str, list[float]] = {w: [] for w in names}
    for rep in range(reps):
        text = texts[1 + rep]
        chunks = any_comp.prepare(text).chunks()  # the three compressors share tokenizer and config
        for w in names[rep % len(names):] + names[: rep % len(names)]:  # rotate who goes first
            if w.startswith("bare_"):
                t[w].append(bare_forward_time(bare[w], chunks))
                continue
            t0 = time.perf_counter()
            who[w](text)
            t[w].append(time.perf_counter() - t0)
    return t


def _contenders(model: Path, reference: Path, tmp: Path) -> tuple[dict, dict, dict]:
    """(who, bare, compressors): the shipped model on its three backends, llmlingua on its weights
    and on the quality reference's."""
    from llmlingua import PromptCompressor

    from mooscomp import Compressor

    cache = tmp / "onnx"
    mc = Compressor.from_pretrained(model, cache_dir=cache)  # backend="auto": the default CPU path
    mf = Compressor.from_pretrained(model, backend="onnx", cache_dir=cache)
    mt = Compressor.from_pretrained(model, backend="torch")
    ref = Compressor.from_pretrained(reference, backend="torch")
    # llmlingua picks its code path from the folder name
    ll = PromptCompressor(model_name=str(export_for_llmlingua(mt, tmp / "default-bert-base-multilingual-cased")),
                          device_map="cpu", use_llmlingua2=True)
    lr = PromptCompressor(model_name=str(export_for_llmlingua(ref, tmp / "ref-bert-base-multilingual-cased")),
                          device_map="cpu", use_llmlingua2=True)
    who = {
        "mooscomp": lambda x: mc.compress(x, rate=RATE),
        "fp32": lambda x: mf.compress(x, rate=RATE),
        "torch": lambda x: mt.compress(x, rate=RATE),
        "llmlingua": lambda x: ll.compress_prompt(x, rate=RATE),
        "llmlingua_reference": lambda x: lr.compress_prompt(x, rate=RATE),
    }
    bare = {"bare_default": mc, "bare_fp32": mf, "bare_torch": mt}
    return who, bare, {"default": mc, "fp32": mf, "torch": mt}


def _row(texts: list[str], t: dict[str, list[float]], same: bool) -> dict:
    from mooscomp.counting import cl100k_count

    return {
        "size_label": None,
        "cl100k_tokens": int(np.mean([cl100k_count(x) for x in texts[1:]])),  # mean over repetitions
        "same_kept_words_torch_vs_fp32": same,
        **{f"{w}_s": statistics.median(v) for w, v in t.items()},
        # paired ratios: the contenders of one repetition ran back to back, so the machine's
        # drift cancels; the median over repetitions is the figure
        "speedup_vs_llmlingua": _ratio(t["llmlingua"], t["mooscomp"]),
        "speedup_vs_llmlingua_same_quality": _ratio(t["llmlingua_reference"], t["mooscomp"]),
        "overhead_vs_encoder": _ratio(t["mooscomp"], t["bare_default"]),
        "speedup_vs_fp32": _ratio(t["fp32"], t["mooscomp"]),
        "fp32_speedup_vs_llmlingua": _ratio(t["llmlingua"], t["fp32"]),
        "fp32_overhead_vs_fp32_encoder": _ratio(t["fp32"], t["bare_fp32"]),
        "torch_speedup_vs_llmlingua": _ratio(t["llmlingua"], t["torch"]),
        "torch_overhead_vs_torch_encoder": _ratio(t["torch"], t["bare_torch"]),
        "llmlingua_over_bare_torch": _ratio(t["llmlingua"], t["bare_torch"]),
        "all_s": t,
    }


def _summary(results: list[dict], default: str, model: Path, args, inputs: dict, ort_version: str) -> dict:
    """The report's summary: medians over the inputs of >= 8k tokens, quality, question cost."""
    big = [r for r in results if r["cl100k_tokens"] >= 8000] or results
    med = lambda k: float(np.median([r[k] for r in big]))  # noqa: E731
    qual = quality_of(default)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    summary = {
        "default_backend": default,
        "model": str(model.resolve().relative_to(ROOT) if model.resolve().is_relative_to(ROOT) else model),
        "speedup_vs_llmlingua": med("speedup_vs_llmlingua"),
        "speedup_vs_llmlingua_same_quality": med("speedup_vs_llmlingua_same_quality"),
        "overhead_vs_encoder": med("overhead_vs_encoder"),
        "survival_delta_vs_reference": qual["survival_delta_vs_reference"],
        "quality": qual,
        **question_overhead(inputs, args.reps),
        "speedup_vs_fp32": med("speedup_vs_fp32"),
        "fp32": {
            "speedup_vs_llmlingua": med("fp32_speedup_vs_llmlingua"),
            "overhead_vs_fp32_encoder": med("fp32_overhead_vs_fp32_encoder"),
            "same_kept_words_as_torch": all(r["same_kept_words_torch_vs_fp32"] for r in results),
        },
        "torch_backend": {
            "speedup_vs_llmlingua": med("torch_speedup_vs_llmlingua"),
            "overhead_vs_torch_encoder": med("torch_overhead_vs_torch_encoder"),
            "ceiling_llmlingua_over_bare_torch": med("llmlingua_over_bare_torch"),
        },
        "targets": {"speedup_vs_llmlingua": ">= 3 (inputs >= 8k tokens)", "overhead_vs_encoder": "<= 1.10",
                    "survival_delta_vs_reference": ">= -0.01"},
        "summary_over": "inputs >= 8k cl100k tokens (median of the per-size figures)",
        "threads": 2,
        "rate": RATE,
        "weights": "the shipped default model's for every contender (llmlingua: the same weights saved as a HF "
                   "BertForTokenClassification checkpoint), except llmlingua_reference: the quality reference "
                   f"({Path(args.reference).name}, fp32, the model the default was distilled from)",
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"onnxruntime {ort_version}; load average at the end {load} on 2 cores "
                   "(shared with other jobs: seconds are noisy, paired ratios less so)",
        "statistic": "median over repetitions of the per-repetition ratio (contenders run back "
                     "to back in rotating order)",
        "command": f"python benchmarks/speed_cpu.py --reps {args.reps}"
                   + (f" --sizes {args.sizes}" if args.sizes else ""),
    }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--out", default=str(REPORTS / "speed_cpu.json"))
    ap.add_argument("--model", default=None, help="model dir (default: the shipped default model)")
    ap.add_argument("--reference", default=str(REFERENCE),
                    help="the fp32 quality reference the default keeps (llmlingua runs it too)")
    ap.add_argument("--question-only", action="store_true",
                    help="only the question overhead (shipped model); updates the report's question fields")
    ap.add_argument("--sizes", default=None, help="comma-separated input sizes (default: 2000,8000,32000)")
    args = ap.parse_args()
    torch.set_num_threads(2)  # before any onnxruntime session: the sessions take torch's count
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else list(SIZES)
    inputs = {k: v for k, v in make_inputs(args.reps).items() if k in sizes}
    if args.question_only:
        q = question_overhead(inputs, args.reps)
        out = Path(args.out)
        report = json.loads(out.read_text()) if out.is_file() else {"summary": {}, "rows": []}
        report["summary"].update(q, question_command=f"python benchmarks/speed_cpu.py --question-only "
                                 f"--reps {args.reps}" + (f" --sizes {args.sizes}" if args.sizes else ""))
        out.write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in q.items() if k != "question_rows"}))
        return
    import onnxruntime

    from mooscomp.compressor import DEFAULT_MODEL_DIR

    model = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tiktoken_cache(Path(tmp) / "tiktoken")
        who, bare, comps = _contenders(model, Path(args.reference), Path(tmp))
        mc, mf, mt = comps["default"], comps["fp32"], comps["torch"]
        default = mc.backend
        for size, texts in inputs.items():
            same = all(mt.compress(x, rate=RATE).text == mf.compress(x, rate=RATE).text for x in texts[:2])
            for f in who.values():
                f(texts[0])  # warm-up
            t = run_size(texts, who, bare, args.reps)
            row = {**_row(texts, t, same), "size_label": size}
            results.append(row)
            print(
                f"{row['cl100k_tokens']:>7} tok  default({default}) {row['mooscomp_s']:.2f}s  "
                f"fp32 {row['fp32_s']:.2f}s  torch {row['torch_s']:.2f}s  bare {row['bare_default_s']:.2f}s  "
                f"llmlingua {row['llmlingua_s']:.2f}s (reference {row['llmlingua_reference_s']:.2f}s)  "
                f"speedup {row['speedup_vs_llmlingua']:.2f}x (same quality "
                f"{row['speedup_vs_llmlingua_same_quality']:.2f}x)  overhead {row['overhead_vs_encoder']:.2f}x",
                flush=True,
            )
    summary = _summary(results, default, model, args, inputs, onnxruntime.__version__)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": results}, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "question_rows"}))
    plot(results, summary, out.with_suffix(".png"))


def plot(results: list[dict], summary: dict, path: Path) -> None:
    """Bar chart of the speedup over llmlingua per input size, the figure printed on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    keys = (("speedup_vs_llmlingua_same_quality", f"default ({summary['default_backend']}) vs llmlingua on the "
             "fp32 reference (same quality)"),
            ("speedup_vs_llmlingua", f"default ({summary['default_backend']}), same weights"),
            ("fp32_speedup_vs_llmlingua", "onnxruntime fp32, same weights"),
            ("torch_speedup_vs_llmlingua", "torch, same weights"))
    x = np.arange(len(results))
    w = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        vals = [r[key] for r in results]
        bars = ax.bar(x + (k - (len(keys) - 1) / 2) * w, vals, w, label=label)
        ax.bar_label(bars, labels=[f"{v:.2f}x" for v in vals], fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(3.0, color="red", lw=0.8, ls="--", label="target (3x)")
    ax.set_xticks(x, [f"{r['cl100k_tokens']:,} tokens" for r in results])
    ax.set_ylabel("speedup over llmlingua 0.2.2 (x)")
    ax.set_title("CPU compression speed, 2 threads, rate 0.33")
    ax.set_ylim(0, 1.12 * max(max(r[k] for k, _ in keys) for r in results))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
