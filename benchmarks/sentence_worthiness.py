"""Answer head for the sentence ranking only (issue 15, reader-free; the next session reads the best).

reports/readable_answer_head.json: folding the answer head into the keep head raises dev survival
but not reader F1: where both keep the answer, the reader does worse with the folded model's text,
and the share of the answer sentence kept falls (SQuAD 4x 0.81 -> 0.63). This keeps the keep head
for choosing words and lets the answer head move only whole sentences: sentence focus ranks
sentences by mean(word score) + ``eta`` x mean(answer probability) (``--pool mean``) or + ``eta`` x
the sentence's largest answer probability (``--pool max``: "holds something worth asking"), the
words inside still chosen by the keep score. Measured on dev (``dev_qa_items``), without a question:
answer survival and the answer-sentence share (:func:`readable_focus.answer_sentence_share`, the
proxy that tracked reader F1 better in session 18) at 2x-5x, beside the plain model.

    .venv/bin/python benchmarks/sentence_worthiness.py --run-dir <run_lam2e8 extracted> \
        --report reports/answer_head_sweep2.json --run lam2e8 --out reports/sentence_worthiness.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
RATES = (0.5, 0.33, 0.25, 0.2)
_RANK: dict[str, Any] = {}  # the item being selected: per live context, (n_words,) extra ranking score


def _patched_focus(original: Any) -> Any:
    """focus_scores that ranks sentences by score + the current item's extra term, and returns the
    plain word scores + the bonus those ranks give (the words inside a sentence keep their order)."""

    def focus(word_sent: Any, scores: Any, costs: Any, target: float, **kw: Any) -> list[np.ndarray]:
        extra = _RANK.get("extra")
        if extra is None:
            return original(word_sent, scores, costs, target, **kw)
        rank = [np.asarray(s, np.float64) + e for s, e in zip(scores, extra, strict=True)]
        fused = original(word_sent, rank, costs, target, **kw)
        return [np.asarray(s, np.float64) + (f - r) for s, f, r in zip(scores, fused, rank, strict=True)]

    return focus


def sentence_pool(word_sent: np.ndarray, p: np.ndarray, how: str) -> np.ndarray:
    """(n_words,) ``p`` itself (mean pooling happens in the focus ranking) or each sentence's max."""
    if how == "mean" or p.size == 0:
        return p
    top = np.full(int(word_sent[-1]) + 1, -np.inf)
    np.maximum.at(top, word_sent, p)
    return top[word_sent]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, help="a fine-tuned run's unfolded model (answer_head_job --tar-runs)")
    ap.add_argument("--report", required=True, help="answer_head.json holding that run's answer head")
    ap.add_argument("--run", required=True)
    ap.add_argument("--dev", type=int, default=400, help="dev items per task")
    ap.add_argument("--etas", default="0.5,1,2,4")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import question_worthiness as qw
    import torch
    from readable_focus import answer_sentence_share

    import mooscomp.selection as selection
    from mooscomp import Compressor
    from mooscomp.config import Request
    from mooscomp.evaluation.metrics import answer_survival
    from mooscomp.focus import word_sentences
    from mooscomp.training.downstream import dev_qa_items

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    head = next(r["answer_head"] for r in json.loads(Path(a.report).read_text())["rows"]
                if r["run"] == a.run and "answer_head" in r)
    w, b = np.asarray(head["weight"], np.float64), float(head["bias"])
    comp = Compressor.from_pretrained(a.run_dir, backend="torch")
    cap = qw.StateCapture(comp.model)
    comp.scorer = cap
    cfg = comp.config
    items = dev_qa_items(a.dev)
    prepared, answer_p = [], []
    for k in range(0, len(items), 50):  # states of 50 items at a time
        batch = [[comp.prepare(c, cfg) for c in it.contexts] for it in items[k : k + 50]]
        comp.score([p for pl in batch for p in pl], cfg)
        for pl in batch:
            answer_p.append([1 / (1 + np.exp(-(s @ w + b))) if len(p.words) else np.zeros(0)
                             for p, s in zip(pl, cap.word_states(pl), strict=True)])
        cap.clear()
        prepared += batch
    selection.focus_scores = _patched_focus(selection.focus_scores)
    variants: dict[str, tuple[float, str]] = {"plain": (0.0, "mean")}
    for pool in ("mean", "max"):
        variants |= {f"rank_{pool}_eta{float(e):g}": (float(e), pool) for e in a.etas.split(",")}
    rows: dict[str, Any] = {}
    for name, (eta, pool) in variants.items():
        acc: dict[str, dict[str, list[float]]] = {}
        for it, pl, probs in zip(items, prepared, answer_p, strict=True):
            live = [(p, q) for p, q in zip(pl, probs, strict=True) if len(p.words)]
            _RANK["extra"] = None if eta == 0 else [
                eta * sentence_pool(word_sentences(p.words, p.alignment), q, pool) for p, q in live]
            for r in RATES:
                text = comp.select(pl, cfg, Request(rate=r)).text
                cell = acc.setdefault(f"{it.task}/{r}", {"survival": [], "sentence": []})
                cell["survival"].append(answer_survival(text, it.answers))
                share = answer_sentence_share(it, text)
                if share is not None:
                    cell["sentence"].append(share)
        _RANK.clear()
        rows[name] = {k: {m: round(float(np.mean(v)), 4) for m, v in c.items()} for k, c in acc.items()}
        print(f"{name:18s} 4x " + "  ".join(f"{t} surv {rows[name][f'{t}/0.25']['survival']:.3f} sent "
                                           f"{rows[name][f'{t}/0.25']['sentence']:.3f}" for t in ("squad", "hotpotqa")),
              flush=True)
    report = {"what": __doc__.split("\n\n")[0], "model": a.run_dir, "run": a.run, "answer_head_from": a.report,
              "dev_items_per_task": a.dev, "rates": list(RATES), "focus": cfg.focus, "rows": rows,
              "command": "python benchmarks/sentence_worthiness.py " + " ".join(sys.argv[1:]),
              "seconds": round(time.perf_counter() - t0, 1)}
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
