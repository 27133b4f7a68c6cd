"""End-to-end latency on this CPU: compress + reader prefill + answer generation, against the full
prompt, at 2x/3x/4x/5x → reports/e2e_latency.json (+ PNG).

Reader: llama-cpp-python on a GGUF (MOOSComp reports 3.3x at 4x on a mobile device). Prompts:
SQuAD long-context items of at least each of ``--sizes`` cl100k tokens (more paragraphs of the
article, then of others). Compressor: ``Compressor.from_pretrained()`` as a user gets it (shipped
default model and CPU backend); ``--question-rates`` settings also run with ``question=`` (rows
``4x+q``). One run per prompt and setting, KV cache reset before each, settings interleaved per
prompt (1x, 4x, 4x+q, then 2x, 3x, 5x: a ``--max-wall-s`` stop drops those first) and sizes
alternated, so drift hits all alike; speedups are per-prompt paired ratios. ``--cold-runs`` > 0
then times a first ``from_pretrained()`` on an empty graph cache (export + load) against warm
loads (``benchmarks/cli_startup.py``'s method). Needs ``pip install -e .[e2e]``.

    python benchmarks/e2e_latency.py --reader <qwen .gguf> --sizes 2000,8000 --n 3,2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

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
        others = [
            p
            for o in pool[k + 1 :] + pool[:k]
            if o.meta.get("title") != it.meta.get("title")
            for p in o.contexts
        ]
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


def schedule(sizes: list[int], ns: list[int], seed: int) -> list[tuple[int, Any]]:
    """(size, item) pairs, sizes alternated: 2k #1, 8k #1, 2k #2, ..."""
    per = {s: long_items(n, s, seed) for s, n in zip(sizes, ns)}
    out = []
    for k in range(max(ns)):
        out += [(s, per[s][k]) for s in sizes if k < len(per[s])]
    return out


def model_identity(comp: Any, model_arg: str) -> dict[str, Any]:
    """Which compressor ran: its directory, recorded config/metadata and the weights' sha256."""
    from mooscomp._util import sha256_file
    from mooscomp.compressor import DEFAULT_MODEL_DIR

    mdir = Path(model_arg) if model_arg else DEFAULT_MODEL_DIR
    cfg = comp.model_config or {}
    meta = cfg.get("metadata", {})
    weights = mdir / "model.safetensors"
    return {
        "dir": str(mdir.relative_to(ROOT) if mdir.is_relative_to(ROOT) else mdir),
        "is_shipped_default": not model_arg,
        "untrained_stand_in": not (mdir / "config.json").is_file(),
        "base": cfg.get("base", {}).get("name"),
        "run": meta.get("ablation_val", {}).get("run"),
        "val_f1": meta.get("training", {}).get("val", {}).get("f1"),
        "storage": cfg.get("storage"),
        "config_sha256": sha256_file(mdir / "config.json")
        if (mdir / "config.json").is_file()
        else None,
        "weights_sha256": sha256_file(weights) if weights.is_file() else None,
        "weights_sha256_recorded": cfg.get("weights_sha256"),
        "weights_bytes": weights.stat().st_size if weights.is_file() else None,
    }


def run_rows(
    comp: Any, reader: Any, plan: list, settings: list, max_new: int, stop_at: float
) -> list[dict]:
    """One timed request per (prompt, setting); settings interleaved inside each prompt. No new
    request starts after ``stop_at`` (perf_counter): the report then holds the pairs measured."""
    from mooscomp.counting import cl100k_count
    from mooscomp.evaluation.reader import build_prompt

    rows: list[dict] = []
    # full prompt, question-aware settings and their twins first: a budget stop drops the rest
    q_twins = {k.removesuffix("+q") for k, _, q in settings if q}
    order = sorted(
        settings, key=lambda st: (st[0] != "1x", st[0].removesuffix("+q") not in q_twins)
    )
    for i, (size, it) in enumerate(plan):
        for label, rate, with_q in order:
            if time.perf_counter() > stop_at:
                print(f"--max-wall-s reached before prompt {i} {label}", file=sys.stderr)
                return rows
            t_c = c_c = 0.0
            context = "\n\n".join(it.contexts)
            if rate < 1.0:
                tc, cc = time.perf_counter(), time.process_time()
                q = it.question if with_q else None
                context = comp.compress(list(it.contexts), rate=rate, question=q).text
                t_c, c_c = time.perf_counter() - tc, time.process_time() - cc
            prompt = build_prompt("qa", context, it.question)
            reader.reset()
            tr, cr = time.perf_counter(), time.process_time()
            answer = reader.generate([prompt], max_new_tokens=max_new)[0]
            t_r, c_r = time.perf_counter() - tr, time.process_time() - cr
            tim = reader.last_timings[0]
            rows.append(
                {
                    "prompt": i,
                    "size": size,
                    "setting": label,
                    "rate": rate,
                    "context_tokens": cl100k_count(context),
                    "reader_prompt_tokens": int(tim["prompt_tokens"]),
                    "completion_tokens": int(tim["completion_tokens"]),
                    "compress_s": round(t_c, 3),
                    "reader_s": round(t_r, 3),
                    "total_s": round(t_c + t_r, 3),
                    "total_cpu_s": round(c_c + c_r, 3),
                    "compress_cpu_s": round(c_c, 3),
                    "answer": answer[:80],
                    "gold": it.answers[0],
                }
            )
            print(
                f"prompt {i} ({size}) {label}: ctx {rows[-1]['context_tokens']} tok, "
                f"compress {t_c:.2f}s + reader {t_r:.2f}s",
                file=sys.stderr,
                flush=True,
            )
    return rows


def summarise(rows: list[dict], sizes: list[int], labels: list[str]) -> tuple[dict, dict]:
    """Per size: mean seconds per setting, and speedups as per-prompt paired ratios full/compressed."""
    by_size: dict[str, dict[str, Any]] = {}
    per: dict[str, dict[str, dict[str, float]]] = {}
    for size in sizes:
        sel_s = [r for r in rows if r["size"] == size]
        prompts = sorted({r["prompt"] for r in sel_s})
        per[str(size)] = {}
        for label in labels:
            sel = [r for r in sel_s if r["setting"] == label]
            if not sel:
                continue
            per[str(size)][label] = {
                k + "_mean": round(statistics.mean(r[k] for r in sel), 3)
                for k in (
                    "total_s",
                    "total_cpu_s",
                    "compress_s",
                    "compress_cpu_s",
                    "reader_s",
                    "context_tokens",
                    "reader_prompt_tokens",
                    "completion_tokens",
                )
            }
        if "1x" not in per[str(size)]:
            continue
        full = {r["prompt"]: r for r in sel_s if r["setting"] == "1x"}
        s: dict[str, Any] = {
            "n_prompts": len(prompts),
            "full_context_tokens_mean": per[str(size)]["1x"]["context_tokens_mean"],
        }
        for label in labels[1:]:
            sel = [r for r in sel_s if r["setting"] == label]
            if not sel:
                continue
            ratios = [full[r["prompt"]]["total_s"] / r["total_s"] for r in sel]
            key = f"speedup_at_{label.replace('+q', '_question')}"
            s[key] = round(statistics.mean(ratios), 3)
            s[f"{key}_min"] = round(min(ratios), 3)
            s[f"{key}_max"] = round(max(ratios), 3)
            s[f"{key}_n"] = len(ratios)
            cpu = [full[r["prompt"]]["total_cpu_s"] / r["total_cpu_s"] for r in sel]
            s[f"cpu_time_{key}"] = round(statistics.mean(cpu), 3)
        by_size[str(size)] = s
    return by_size, per


def load_figures(runs: int) -> dict[str, Any] | None:
    """Cold (empty graph cache: export + load) vs warm ``from_pretrained()``, in subprocesses."""
    if runs <= 0:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cli_startup import load_times

    out = load_times("auto", runs)
    out["note"] = (
        "subprocess: imports included; cold = empty MOOSCOMP_CACHE (ONNX export + "
        f"load), warm = median of {runs} loads with the graph cached"
    )
    return out


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reader", required=True, help="GGUF file for llama.cpp")
    ap.add_argument("--model", default="", help="mooscomp model dir ('' = shipped default)")
    ap.add_argument("--sizes", default="2000,8000", help="prompt sizes (min cl100k tokens)")
    ap.add_argument("--n", default="3,2", help="prompts per size (one number or one per size)")
    ap.add_argument(
        "--question-rates",
        default="4x",
        help="settings also run with the question (comma-separated, e.g. 2x,4x)",
    )
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=12288)
    ap.add_argument(
        "--cold-runs", type=int, default=2, help="warm loads after the cold one (0: skip)"
    )
    ap.add_argument(
        "--max-wall-s", type=float, default=0, help="start no request after this (0: no limit)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", default="reports/e2e_latency.json")
    ap.add_argument("--plot", default="reports/e2e_latency.png")
    return ap.parse_args()


def main() -> int:
    a = _args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))  # the warm ONNX path imports no torch
    from mooscomp import Compressor
    from mooscomp.evaluation.reader import LlamaCppReader

    load_start = os.getloadavg()
    t_start = time.time()
    sizes = [int(x) for x in a.sizes.split(",")]
    ns = [int(x) for x in a.n.split(",")]
    ns = ns * len(sizes) if len(ns) == 1 else ns
    if len(ns) != len(sizes) or min(ns) < 1:
        raise SystemExit("--n: one count, or one per size")
    q_labels = [x for x in a.question_rates.split(",") if x]
    if any(x not in RATES for x in q_labels):
        raise SystemExit(f"--question-rates: labels of {list(RATES)}")
    stop_at = time.perf_counter() + (a.max_wall_s or float("inf"))
    plan = schedule(sizes, ns, a.seed)
    t0 = time.perf_counter()
    comp = Compressor.from_pretrained(a.model or None)
    load_comp = time.perf_counter() - t0
    reader = LlamaCppReader(a.reader, n_ctx=a.n_ctx, n_threads=a.threads)
    comp.compress(list(plan[0][1].contexts), rate=0.5)  # warm-up (allocations, tiktoken)
    t0 = time.perf_counter()
    comp.compress(list(plan[0][1].contexts), rate=0.5, question=plan[0][1].question)
    first_q = time.perf_counter() - t0  # builds the question path (base encoder, its graph)
    for _, it in plan[1 : len(sizes)]:  # one untimed call per path on each other size
        comp.compress(list(it.contexts), rate=0.5)
        comp.compress(list(it.contexts), rate=0.5, question=it.question)
    reader.generate(["Say OK."], max_new_tokens=2)

    settings = [
        ("1x", 1.0, False),
        *((k, r, False) for k, r in RATES.items()),
        *((f"{k}+q", RATES[k], True) for k in q_labels),
    ]
    rows = run_rows(comp, reader, plan, settings, a.max_new_tokens, stop_at)
    reader_info = reader.info()
    del reader  # frees the KV cache before the cold-start subprocesses
    cold = load_figures(a.cold_runs if time.perf_counter() < stop_at else 0)
    labels = [k for k, _, _ in settings]
    by_size, per = summarise(rows, sizes, labels)
    report = {
        "summary": {
            "compressor": "default" if not a.model else a.model,
            "backend": comp.backend,
            "sizes": sizes,
            "by_size": by_size,
        },
        "per_setting": per,
        "rows": rows,
        "runtime": _runtime(a, comp, reader_info, load_comp, first_q, cold, load_start, t_start),
    }
    Path(a.report).parent.mkdir(parents=True, exist_ok=True)
    Path(a.report).write_text(json.dumps(report, indent=1) + "\n")
    _plot(per, by_size, a.plot)
    _table(per, by_size)
    return 0


def _table(per: dict[str, dict[str, dict[str, float]]], by_size: dict[str, dict]) -> None:
    for size, rows in per.items():
        print(f"-- >= {size} tokens ({by_size.get(size, {}).get('n_prompts', 0)} prompts)")
        print(
            f"{'setting':<8}{'ctx tok':>9}{'compress':>10}{'reader':>9}{'total':>9}{'speedup':>9}"
        )
        for label, p in rows.items():
            key = f"speedup_at_{label.replace('+q', '_question')}"
            sp = by_size.get(size, {}).get(key, 1.0)
            print(
                f"{label:<8}{p['context_tokens_mean']:>9.0f}{p['compress_s_mean']:>10.2f}"
                f"{p['reader_s_mean']:>9.2f}{p['total_s_mean']:>9.2f}{sp:>9.2f}"
            )


def _runtime(
    a: argparse.Namespace,
    comp: Any,
    reader_info: dict,
    load_comp: float,
    first_q: float,
    cold: dict | None,
    load_start: tuple,
    t_start: float,
) -> dict[str, Any]:
    import llama_cpp
    import onnxruntime

    qc = comp.__dict__.get("_question_compressor")
    return {
        "reader": reader_info,
        "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
        "compressor_model": model_identity(comp, a.model),
        "compressor_backend": comp.backend,
        "question_path": qc
        and {
            "relevance": qc.relevance,
            "sentence_encoder_onnx": qc.encoder.graph is not None,
            "shared_forward": qc.forward and type(qc.forward).__name__,
        },
        "onnxruntime": onnxruntime.__version__,
        "torch_imported": "torch" in sys.modules,
        "compressor_load_s": round(load_comp, 2),
        "question_path_first_call_s": round(first_q, 2),
        "cold_start": cold,
        "compressor_threads": a.threads,
        "cpu": f"{platform.processor() or platform.machine()} x{os.cpu_count()}, {platform.node()}",
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.time() - t_start, 1),
        "max_new_tokens": a.max_new_tokens,
        "command": "python benchmarks/e2e_latency.py " + " ".join(sys.argv[1:]),
        "note": "speedup = mean over prompts of full_total / compressed_total, paired per prompt; "
        "settings interleaved within each prompt and sizes alternated, on 2 cores shared with "
        "other jobs (see load_average_*): absolute seconds are inflated, paired ratios less so. "
        "Answers may stop early at EOS, so completion lengths differ between settings",
    }


def _plot(per: dict[str, dict[str, dict[str, float]]], by_size: dict[str, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = {size: rows for size, rows in per.items() if size in by_size}
    fig, axes = plt.subplots(1, len(per), figsize=(5.2 * len(per), 3.8), squeeze=False)
    for ax, (size, rows) in zip(axes[0], per.items()):
        labels = list(rows)
        comp = [rows[k]["compress_s_mean"] for k in labels]
        read = [rows[k]["reader_s_mean"] for k in labels]
        ax.bar(labels, read, label="reader (prefill + generation)")
        ax.bar(labels, comp, bottom=read, label="compression")
        for i, k in enumerate(labels):
            sp = by_size[size].get(f"speedup_at_{k.replace('+q', '_question')}")
            if sp:
                ax.text(i, comp[i] + read[i], f"{sp:.2f}x", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("seconds per request")
        ax.set_xlabel("compression")
        ax.set_title(f">= {size}-token prompts ({by_size[size]['n_prompts']})", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("End-to-end latency, 2-core CPU, llama.cpp Qwen2.5-Coder-1.5B reader", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
