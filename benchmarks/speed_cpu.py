"""CPU speed: mooscomp's default CPU path vs its fp32 reference, the bare forwards and llmlingua 0.2.2.

Same weights for every contender (MiniLM + a seeded head, exported as an llmlingua-2 checkpoint),
real long inputs of ~2k / 8k / 32k cl100k tokens (SQuAD-v2 dev articles concatenated), 2 threads,
the contenders back to back in rotating order in every repetition (the machine is shared and
drifts); every figure is the median over repetitions of a per-repetition ratio:
- ``mooscomp``: ``compress(text, rate=0.33)`` on the backend ``Compressor.from_pretrained``
  picks by default on a CPU (``backend="auto"``);
- ``fp32``: the same on the fp32 reference graph (``backend="onnx"``: the same kept words as
  torch), and ``torch`` (``backend="torch"``);
- ``question`` (``question_overhead``): the shipped default model (``Compressor.from_pretrained()``,
  its default CPU backend) with ``question=`` against the same compressor without it, back to back
  in rotating order, on the same inputs (:func:`question_overhead`; ``--question-only`` runs just
  this part and updates the report's question fields);
- the bare forwards over the very same chunks (ids prepared beforehand, best of several batch
  sizes): the default graph's (the overhead figure's denominator), fp32's and the torch encoder's;
- llmlingua ``PromptCompressor.compress_prompt(text, rate=0.33)`` (LLMLingua-2 path).
The quality of the default path against the fp32 reference (dev answer survival) comes from
``reports/cpu_runtime_quality.json`` (benchmarks/cpu_runtime_quality.py, the shipped model).

With ``--student DIR`` a distilled student (scripts/device/distill_job.py) runs as one more
contender on the backend ``from_pretrained`` picks (``student``, ``bare_student``): its own
weights, so its rows and ``summary.student`` say how much faster it is, not how good.

Usage: .venv/bin/python benchmarks/speed_cpu.py [--reps 6] [--out reports/speed_cpu.json] [--student DIR]
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
WHO = ("mooscomp", "fp32", "torch", "bare_default", "bare_fp32", "bare_torch", "llmlingua")
QUESTION = "What did the Normans do in the 10th century?"
QUALITY = REPORTS / "cpu_runtime_quality.json"


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


def bare_forward_time(comp, text: str, scorer, batch_sizes=(2, 4)) -> tuple[float, int]:
    """Fastest time of a plain forward over mooscomp's own chunks (ids prepared beforehand):
    the torch encoder under no-grad (``scorer`` None), or an onnxruntime graph."""
    best, best_b = float("inf"), 0
    for b in batch_sizes:
        batches = _chunk_batches(comp, text, b)
        if scorer is None:
            tb = [(torch.from_numpy(i), torch.from_numpy(m).long()) for i, m, _ in batches]
            t0 = time.perf_counter()
            with torch.inference_mode():
                for ids, mask in tb:
                    comp.model.encoder(input_ids=ids, attention_mask=mask)
        else:
            t0 = time.perf_counter()
            for ids, mask, valid in batches:
                scorer.forward_batch(ids, mask, valid)
        dt = time.perf_counter() - t0
        if dt < best:
            best, best_b = dt, b
    return best, best_b


def _ratio(num: list[float], den: list[float]) -> float:
    return float(statistics.median(a / b for a, b in zip(num, den, strict=True)))


def quality_of(backend: str) -> dict:
    """The default backend's dev survival delta vs fp32 (from cpu_runtime_quality.json)."""
    if backend == "onnx":
        return {"survival_delta_vs_reference": 0.0, "keep_f1_vs_reference": 1.0,
                "source": "the default is the fp32 reference itself"}
    if not QUALITY.is_file():
        return {"survival_delta_vs_reference": None, "source": f"{QUALITY.name} missing"}
    q = json.loads(QUALITY.read_text())
    row = next((r for r in q["rows"] if r["candidate"].endswith(f"({backend})")), None)
    if row is None:
        return {"survival_delta_vs_reference": None, "source": f"no {backend} row in {QUALITY.name}"}
    return {"survival_delta_vs_reference": row["survival_delta_4x_mean_over_tasks"],
            "survival_delta_2x_5x_mean": row["survival_delta_2x_5x_mean"],
            "keep_f1_vs_reference": row["keep_f1_mean"], "items": q["items"],
            "source": f"reports/{QUALITY.name} ({q['model']}, dev split, no question)"}


def question_overhead(inputs: dict[int, str], reps: int) -> dict:
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
    for size, text in inputs.items():
        for f in calls.values():
            f(text)  # warm-up (the question path builds its sentence graph on first use)
        t: dict[str, list[float]] = {k: [] for k in calls}
        for rep in range(reps):
            for k in (("plain", "question") if rep % 2 == 0 else ("question", "plain")):
                t0 = time.perf_counter()
                calls[k](text)
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
                         f"{getattr(qc, 'relevance', None)!r}: sentences embedded by the int8 all-MiniLM-L6-v2 graph, "
                         "token classifier over the candidate sentences only)",
        "question_rows": rows,
        "question_reps": reps,
        "question_load_average": load,
    }


def run_size(text: str, who: dict, bare: dict, comp, reps: int,
             names: tuple[str, ...] = WHO) -> dict[str, list[float]]:
    """Seconds per contender and repetition, in rotating order."""
    t: dict[str, list[float]] = {w: [] for w in names}
    for rep in range(reps):
        for w in names[rep % len(names):] + names[: rep % len(names)]:  # rotate who goes first
            if w.startswith("bare_"):
                t[w].append(bare_forward_time(comp, text, bare[w])[0])
                continue
            t0 = time.perf_counter()
            who[w](text, None)
            t[w].append(time.perf_counter() - t0)
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--out", default=str(REPORTS / "speed_cpu.json"))
    ap.add_argument("--student", help="a distilled student's model dir: one more contender")
    ap.add_argument("--question-only", action="store_true",
                    help="only the question overhead (shipped model); updates the report's question fields")
    ap.add_argument("--sizes", default=None, help="with --question-only: comma-separated input sizes")
    args = ap.parse_args()
    torch.set_num_threads(2)  # before select_scorer: the onnxruntime session takes torch's count
    if args.question_only:
        sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else list(SIZES)
        q = question_overhead({k: v for k, v in make_inputs().items() if k in sizes}, args.reps)
        out = Path(args.out)
        report = json.loads(out.read_text()) if out.is_file() else {"summary": {}, "rows": []}
        report["summary"].update(q, question_command=f"python benchmarks/speed_cpu.py --question-only "
                                 f"--reps {args.reps}" + (f" --sizes {args.sizes}" if args.sizes else ""))
        out.write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in q.items() if k != "question_rows"}))
        return
    import onnxruntime
    from llmlingua import PromptCompressor

    from mooscomp.counting import cl100k_count
    from mooscomp.exporters.onnx import select_scorer

    inputs = make_inputs()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = build_checkpoint(Path(tmp) / "minilm-bert-base-multilingual-cased")
        tiktoken_cache(Path(tmp) / "tiktoken")
        ll = PromptCompressor(model_name=str(ckpt), device_map="cpu", use_llmlingua2=True)
        mt = mooscomp_from_checkpoint(ckpt)  # the torch backend
        mc, mf = copy.copy(mt), copy.copy(mt)
        # what Compressor.from_pretrained(backend="auto") picks on a CPU for these weights
        mc.scorer = select_scorer(mt.model, backend="auto", cache_dir=Path(tmp) / "onnx")
        mf.scorer = select_scorer(mt.model, backend="onnx", cache_dir=Path(tmp) / "onnx")
        assert mc.scorer is not None, "onnxruntime is a dependency: auto should pick it on a CPU"
        default = mc.backend
        who = {
            "mooscomp": lambda x, q: mc.compress(x, rate=RATE),
            "fp32": lambda x, q: mf.compress(x, rate=RATE),
            "torch": lambda x, q: mt.compress(x, rate=RATE),
            "llmlingua": lambda x, q: ll.compress_prompt(x, rate=RATE),
        }
        bare = {"bare_default": mc.scorer, "bare_fp32": mf.scorer, "bare_torch": None}
        names = WHO
        if args.student:  # its own weights; the same tokenizer, so mc's chunks fit its bare forward
            from mooscomp import Compressor

            ms = Compressor.from_pretrained(args.student, cache_dir=Path(tmp) / "onnx")
            who["student"] = lambda x, q: ms.compress(x, rate=RATE)
            bare["bare_student"] = ms.scorer
            names = (*WHO, "student", "bare_student")
        for size, text in inputs.items():
            same = mt.compress(text, rate=RATE).text == mf.compress(text, rate=RATE).text
            ll.compress_prompt(text, rate=RATE)  # warm-up
            mc.compress(text, rate=RATE)
            if args.student:
                ms.compress(text, rate=RATE)
            t = run_size(text, who, bare, mc, args.reps, names)
            row = {
                "size_label": size,
                "cl100k_tokens": cl100k_count(text),
                "same_kept_words_torch_vs_fp32": same,
                **{f"{w}_s": statistics.median(v) for w, v in t.items()},
                # paired ratios: the contenders of one repetition ran back to back, so the
                # machine's drift cancels; the median over repetitions is the figure
                "speedup_vs_llmlingua": _ratio(t["llmlingua"], t["mooscomp"]),
                "overhead_vs_encoder": _ratio(t["mooscomp"], t["bare_default"]),
                "speedup_vs_fp32": _ratio(t["fp32"], t["mooscomp"]),
                "fp32_speedup_vs_llmlingua": _ratio(t["llmlingua"], t["fp32"]),
                "fp32_overhead_vs_fp32_encoder": _ratio(t["fp32"], t["bare_fp32"]),
                "torch_speedup_vs_llmlingua": _ratio(t["llmlingua"], t["torch"]),
                "torch_overhead_vs_torch_encoder": _ratio(t["torch"], t["bare_torch"]),
                "llmlingua_over_bare_torch": _ratio(t["llmlingua"], t["bare_torch"]),
                "all_s": t,
            }
            if args.student:
                row.update(student_speedup_vs_llmlingua=_ratio(t["llmlingua"], t["student"]),
                           student_overhead_vs_encoder=_ratio(t["student"], t["bare_student"]),
                           student_speedup_vs_default=_ratio(t["mooscomp"], t["student"]))
            results.append(row)
            print(
                f"{row['cl100k_tokens']:>7} tok  default({default}) {row['mooscomp_s']:.2f}s  "
                f"fp32 {row['fp32_s']:.2f}s  torch {row['torch_s']:.2f}s  bare {row['bare_default_s']:.2f}s  "
                f"llmlingua {row['llmlingua_s']:.2f}s  speedup {row['speedup_vs_llmlingua']:.2f}x "
                f"(fp32 {row['fp32_speedup_vs_llmlingua']:.2f}x)  overhead {row['overhead_vs_encoder']:.2f}x",
                flush=True,
            )
    big = [r for r in results if r["cl100k_tokens"] >= 8000]
    med = lambda k: float(np.median([r[k] for r in big]))  # noqa: E731
    qual = quality_of(default)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    summary = {
        "default_backend": default,
        "speedup_vs_llmlingua": med("speedup_vs_llmlingua"),
        "overhead_vs_encoder": med("overhead_vs_encoder"),
        "survival_delta_vs_reference": qual["survival_delta_vs_reference"],
        "quality": qual,
        **question_overhead(inputs, args.reps),
        "speedup_vs_fp32_reference": med("speedup_vs_fp32"),
        "fp32_reference": {
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
        "weights": "all-MiniLM-L6-v2 + seeded head (identical for every contender)",
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"onnxruntime {onnxruntime.__version__}; load average at the end {load} on 2 cores "
                   "(shared with other jobs: seconds are noisy, paired ratios less so)",
        "statistic": "median over repetitions of the per-repetition ratio (contenders run back "
                     "to back in rotating order)",
        "command": f"python benchmarks/speed_cpu.py --reps {args.reps}"
                   + (f" --student {args.student}" if args.student else ""),
    }
    if args.student:
        summary["student"] = {"dir": args.student, "backend": ms.backend,
                              "layers": json.loads((Path(args.student) / "config.json").read_text())[
                                  "encoder_config"]["num_hidden_layers"],
                              **{k: med(f"student_{k}") for k in ("speedup_vs_llmlingua", "overhead_vs_encoder",
                                                                  "speedup_vs_default")}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": results}, indent=1))
    print(json.dumps(summary))
    plot(results, summary, out.with_suffix(".png"))


def plot(results: list[dict], summary: dict, path: Path) -> None:
    """Bar chart of the speedup over llmlingua per input size, the figure printed on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    keys = (("speedup_vs_llmlingua", f"default ({summary['default_backend']})"),
            ("fp32_speedup_vs_llmlingua", "onnxruntime fp32"), ("torch_speedup_vs_llmlingua", "torch"))
    x = np.arange(len(results))
    w = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        vals = [r[key] for r in results]
        bars = ax.bar(x + (k - 1) * w, vals, w, label=label)
        ax.bar_label(bars, labels=[f"{v:.2f}x" for v in vals], fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(3.0, color="red", lw=0.8, ls="--", label="target (3x)")
    ax.set_xticks(x, [f"{r['cl100k_tokens']:,} tokens" for r in results])
    ax.set_ylabel("speedup over llmlingua 0.2.2 (same weights)")
    ax.set_title("CPU compression speed, 2 threads, rate 0.33")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
