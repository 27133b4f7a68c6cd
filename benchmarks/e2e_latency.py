"""End-to-end latency on this CPU: compress + reader prefill + answer generation, against the full
prompt, at 2x/3x/4x/5x → reports/e2e_latency.json (+ PNG).

Reader: a GGUF model through llama-cpp-python (the weak-device setting: MOOSComp reports 3.3x at
4x on a mobile device). Prompts: real long SQuAD long-context items of at least each of
``--sizes`` cl100k tokens (e.g. 2000,8000: more paragraphs of the article for the larger size).
The compressor is ``Compressor.from_pretrained()`` as a user gets it (the default CPU backend);
every compressed setting is run twice: without the question and with it (``question=``, the
question-aware path; rows ``4x+q``). Per prompt and setting: one run, KV cache reset before each, settings interleaved
(full, 2x, 3x, 4x, 5x for prompt 1, then prompt 2, ...) so machine drift hits all alike; the
compressor runs on CPU with ``--threads`` torch threads.

    python benchmarks/e2e_latency.py --reader <qwen .gguf> --model <mooscomp model dir> --n 4
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

RATES = {"2x": 0.5, "3x": 0.33, "4x": 0.25, "5x": 0.2}


def long_items(n: int, min_tokens: int, seed: int) -> list:
    """SQuAD long-context items (10-14 paragraphs of the question's article) of at least
    ``min_tokens`` tokens; an item shorter than that gets whole paragraphs of other articles
    appended (distractors) until it is long enough."""
    import dataclasses

    from mooscomp.counting import cl100k_count
    from mooscomp.evaluation.tasks import sample_squad

    pool = sample_squad(max(8 * n, 40), seed=seed + 101, min_paragraphs=10, max_paragraphs=14)
    out = []
    for k, it in enumerate(pool[:n]):
        ctx = list(it.contexts)
        others = [p for o in pool[k + 1 :] + pool[:k] if o.meta.get("title") != it.meta.get("title")
                  for p in o.contexts]
        n_tok = cl100k_count("\n\n".join(ctx))
        for p in others:
            if n_tok >= min_tokens:
                break
            ctx.append(p)
            n_tok += cl100k_count(p) + 1
        if n_tok < min_tokens:
            raise SystemExit(f"could not build a prompt of >= {min_tokens} tokens")
        out.append(dataclasses.replace(it, contexts=tuple(dict.fromkeys(ctx))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reader", required=True, help="GGUF file for llama.cpp")
    ap.add_argument("--model", default="", help="mooscomp model dir ('' = shipped default)")
    ap.add_argument("--n", type=int, default=4, help="prompts")
    ap.add_argument("--sizes", default="2000,8000", help="prompt sizes (min cl100k tokens), comma-separated")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=12288)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", default="reports/e2e_latency.json")
    ap.add_argument("--plot", default="reports/e2e_latency.png")
    a = ap.parse_args()

    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))  # the warm ONNX path imports no torch
    from mooscomp import Compressor
    from mooscomp.counting import cl100k_count
    from mooscomp.evaluation.reader import LlamaCppReader, build_prompt

    sizes = [int(x) for x in a.sizes.split(",")]
    items = [it for size in sizes for it in long_items(a.n, size, a.seed)]
    size_of = [size for size in sizes for _ in range(a.n)]
    t0 = time.perf_counter()
    comp = Compressor.from_pretrained(a.model or None)
    load_comp = time.perf_counter() - t0
    reader = LlamaCppReader(a.reader, n_ctx=a.n_ctx, n_threads=a.threads)
    comp.compress(list(items[0].contexts), rate=0.5)  # warm-up (allocations, tiktoken)
    reader.generate(["Say OK."], max_new_tokens=2)
    model_stand_in = not (
        a.model
        or (
            Path(__file__).resolve().parents[1] / "src/mooscomp/models/default/config.json"
        ).is_file()
    )

    rows = []
    settings = [("1x", 1.0, False), *((k, r, False) for k, r in RATES.items()),
                *((f"{k}+q", r, True) for k, r in RATES.items())]
    for i, it in enumerate(items):
        for label, rate, with_q in settings:
            t_c = 0.0
            context = "\n\n".join(it.contexts)
            if rate < 1.0:
                tc = time.perf_counter()
                q = it.question if with_q else None
                context = comp.compress(list(it.contexts), rate=rate, question=q).text
                t_c = time.perf_counter() - tc
            prompt = build_prompt("qa", context, it.question)
            reader.reset()
            tr = time.perf_counter()
            answer = reader.generate([prompt], max_new_tokens=a.max_new_tokens)[0]
            t_r = time.perf_counter() - tr
            tim = reader.last_timings[0]
            rows.append(
                {
                    "prompt": i,
                    "size": size_of[i],
                    "setting": label,
                    "rate": rate,
                    "context_tokens": cl100k_count(context),
                    "reader_prompt_tokens": int(tim["prompt_tokens"]),
                    "completion_tokens": int(tim["completion_tokens"]),
                    "compress_s": round(t_c, 3),
                    "reader_s": round(t_r, 3),
                    "total_s": round(t_c + t_r, 3),
                    "answer": answer[:80],
                    "gold": it.answers[0],
                }
            )
            print(
                f"prompt {i} {label}: ctx {rows[-1]['context_tokens']} tok, "
                f"compress {t_c:.2f}s + reader {t_r:.2f}s",
                file=sys.stderr,
                flush=True,
            )

    labels = [k for k, _, _ in settings]
    per: dict[str, dict[str, float]] = {}
    for label in labels:
        sel = [r for r in rows if r["setting"] == label]
        per[label] = {
            "total_s_mean": round(statistics.mean(r["total_s"] for r in sel), 3),
            "compress_s_mean": round(statistics.mean(r["compress_s"] for r in sel), 3),
            "reader_s_mean": round(statistics.mean(r["reader_s"] for r in sel), 3),
            "context_tokens_mean": round(statistics.mean(r["context_tokens"] for r in sel), 1),
            "completion_tokens_mean": round(
                statistics.mean(r["completion_tokens"] for r in sel), 1
            ),
        }
    summary: dict[str, Any] = {"compressor": "default" if not a.model else a.model,
                               "backend": comp.backend}
    for size in sizes:
        idx = [i for i in range(len(items)) if size_of[i] == size]
        for label in labels[1:]:
            ratios = [
                next(r["total_s"] for r in rows if r["prompt"] == i and r["setting"] == "1x")
                / next(r["total_s"] for r in rows if r["prompt"] == i and r["setting"] == label)
                for i in idx
            ]
            key = f"speedup_at_{label.replace('+q', '_question')}" + ("" if size == sizes[0] else f"_{size}")
            summary[key] = round(statistics.mean(ratios), 3)
            summary[f"{key}_min"] = round(min(ratios), 3)
            summary[f"{key}_max"] = round(max(ratios), 3)
    import llama_cpp

    report = {
        "summary": summary,
        "per_setting": per,
        "rows": rows,
        "runtime": {
            "reader": reader.info(),
            "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
            "compressor_model": a.model or "shipped default",
            "compressor_is_untrained_stand_in": model_stand_in,
            "compressor_load_s": round(load_comp, 2),
            "compressor_threads": a.threads,
            "cpu": platform.processor() or platform.machine(),
            "host": platform.node(),
            "max_new_tokens": a.max_new_tokens,
            "n_prompts": len(items),
            "command": " ".join(sys.argv),
            "note": "speedup = mean over prompts of full_total / compressed_total; answers may stop "
            "early at EOS, so completion lengths differ between settings",
        },
    }
    Path(a.report).parent.mkdir(parents=True, exist_ok=True)
    Path(a.report).write_text(json.dumps(report, indent=1))
    _plot(per, summary, a.plot)
    print(f"{'setting':<8}{'ctx tok':>9}{'compress':>10}{'reader':>9}{'total':>9}{'speedup':>9}")
    for label in labels:
        p = per[label]
        sp = summary.get(f"speedup_at_{label.replace('+q', '_question')}", 1.0)
        print(
            f"{label:<8}{p['context_tokens_mean']:>9.0f}{p['compress_s_mean']:>10.2f}"
            f"{p['reader_s_mean']:>9.2f}{p['total_s_mean']:>9.2f}{sp:>9.2f}"
        )
    return 0


def _plot(per: dict[str, dict[str, float]], summary: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(per)
    comp = [per[k]["compress_s_mean"] for k in labels]
    read = [per[k]["reader_s_mean"] for k in labels]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.bar(labels, read, label="reader (prefill + generation)")
    ax.bar(labels, comp, bottom=read, label="compression")
    for i, k in enumerate(labels):
        sp = summary.get(f"speedup_at_{k.replace('+q', '_question')}")
        if sp:
            ax.text(i, comp[i] + read[i], f"{sp:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("seconds per request")
    ax.set_xlabel("compression")
    ax.set_title("End-to-end latency, 2-core CPU, llama.cpp reader")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
