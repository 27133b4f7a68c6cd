"""Fine-tune the encoder itself toward question-worthy spans (issue 15; same architecture and speed).

The folded probe (scripts/fold_worthiness.py) reads the frozen states; a non-linear probe over them
does no better (reports/question_worthiness_generated_mlp.json), so this lets the encoder move: the
model is self-distilled (:func:`mooscomp.training.distill.distill`, every layer trainable) toward its
own keep-minus-drop logit plus ``--boost`` on the words of the answers of the reader LLM's questions
over training-corpus passages (scripts/device/question_gen_job.py), so it learns the boost it can
predict from context. ``--other`` corpus documents of the other genres (no answers: pure
self-distillation) keep it from drifting there. Writes a model directory (int8 delta over the same
pip base, the relevance encoder copied); judge it with benchmarks/question_worthiness.py --gammas 0.

    .venv/bin/python scripts/worthiness_finetune.py --model <session-15 weights> --boost 4 --out M
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mooscomp.alignment import Words

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts" / "corpus"))
OTHER_GENRES = ("technical", "dialogue", "speech_email_web")


def documents(qa: Path, passages: Path, gen_limit: int, other: int, max_words: int, *,
              labels: str = "answer") -> list[dict[str, Any]]:
    """Generated-question passages labelled by ``LABELS[labels]`` (their words, their questions'
    pairs), then ``other`` corpus documents of the other genres (sha256(doc_id) order, first
    ``max_words`` words) labelled 0."""
    import question_worthiness as qw
    from qg_passages import DOCS  # the modern corpus the passages come from

    from mooscomp.alignment import segment_words

    if labels not in LABELS:
        raise ValueError(f"labels must be one of {sorted(LABELS)}, got {labels!r}")
    docs = []
    for pid, text, pairs in qw.generated_pairs(qa, passages, gen_limit):
        lab = LABELS[labels](segment_words(text), pairs)
        docs.append({"doc_id": f"gen/{pid}", "text": text, "labels": lab.astype(int).tolist()})
    with gzip.open(DOCS, "rt", encoding="utf-8") as f:
        rest = [d for d in map(json.loads, f) if d["genre"] in OTHER_GENRES]
    rest.sort(key=lambda d: hashlib.sha256(d["doc_id"].encode()).hexdigest())
    for d in rest[:other]:
        text = " ".join(d["text"].split(" ")[:max_words])
        docs.append({"doc_id": d["doc_id"], "text": text, "labels": [0] * len(segment_words(text))})
    return docs


def answer_labels(words: Words, pairs: list[tuple[str, str]]) -> np.ndarray:
    """(n_words,) 1 for the words (:class:`mooscomp.alignment.Words`) of every answer's occurrences."""
    import question_worthiness as qw

    return np.max([qw.word_answer_labels(words, a) for _, a in pairs], axis=0)


def support_labels(words: Words, pairs: list[tuple[str, str]]) -> np.ndarray:
    """(n_words,) 1 for every answer's words and, in each sentence holding one, for the words its
    question names: the evidence a reader matches the question against, which answer-only labels
    starve (session 18: more answers kept, fewer of the words around them, lower reader F1)."""
    import question_worthiness as qw

    from mooscomp.terms import question_terms

    strs = words.tolist()
    n = len(strs)
    ends = np.fromiter((w in (".", "!", "?") for w in strs), bool, n)
    ends[:-1] &= words.starts[1:] > words.ends[:-1]  # "4.2": a period inside a number ends nothing
    sent = np.r_[0, np.cumsum(ends[:-1])] if n else np.zeros(0, dtype=np.int64)  # (n_words,)
    lower = [w.lower() for w in strs]
    y = np.zeros(n, dtype=np.float32)
    for q, a in pairs:
        ans = qw.word_answer_labels(words, a) > 0
        if not ans.any():
            continue
        terms = question_terms(q)
        named = np.fromiter((w in terms for w in lower), bool, n)
        y[ans | (named & np.isin(sent, sent[ans]))] = 1.0
    return y


LABELS = {"answer": answer_labels, "support": support_labels}


def carry_relevance(src: Path, out: Path) -> None:
    """Copy ``src``'s question-path encoder (unchanged by fine-tuning the keep model) into the
    model directory ``out`` and record it in ``out``'s config; nothing when ``src`` has none."""
    rel = json.loads((src / "config.json").read_text(encoding="utf-8")).get("relevance")
    if not rel or not (src / rel["file"]).exists():
        return
    shutil.copy2(src / rel["file"], out / rel["file"])
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    cfg["relevance"] = rel
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the model to fine-tune (teacher and starting point)")
    ap.add_argument("--qa", default=str(ROOT / "data" / "labels_modern" / "qgen_qa.jsonl.gz"))
    ap.add_argument("--passages", default=str(ROOT / "data" / "cache" / "qgen" / "qg_passages.jsonl.xz"))
    ap.add_argument("--gen-limit", type=int, default=100_000)
    ap.add_argument("--other", type=int, default=300, help="other-genre corpus documents (no answers)")
    ap.add_argument("--max-words", type=int, default=400, help="words taken from each other-genre document")
    ap.add_argument("--boost", type=float, default=4.0)
    ap.add_argument("--hard-weight", type=float, default=0.0,
                    help="weight of a CE on the answer labels themselves (answers keep, every other word drop)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import torch

    from mooscomp import Compressor
    from mooscomp._util import sha256_file
    from mooscomp.modeling import LOG_FREQ_KEY
    from mooscomp.training.distill import DistillConfig, distill, save_student

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    src = Path(a.model)
    comp = Compressor.from_pretrained(src)
    docs = documents(Path(a.qa), Path(a.passages), a.gen_limit, a.other, a.max_words)
    n_layers = int(comp.model.encoder.config.num_hidden_layers)
    cfg = DistillConfig(layers=tuple(range(n_layers)), label_boost=a.boost, hard_weight=a.hard_weight,
                        epochs=a.epochs, lr=a.lr,
                        val_fraction=0.05, device=a.device)
    res = distill(comp.model, comp.tokenizer, docs, cfg, log=lambda s: print(s, flush=True))
    spec = json.loads((src / "config.json").read_text(encoding="utf-8"))
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    lf = comp.log_freq
    record = {"what": "self-distilled toward its own keep logit + boost on answer words (scripts/worthiness_finetune.py)",
              "from_weights_sha256": spec["weights_sha256"], "boost": a.boost,
              "hard_weight": a.hard_weight,
              "questions_file_sha256": sha256_file(Path(a.qa)), "passages_sha256": sha256_file(Path(a.passages)),
              "generated_docs": sum(d["doc_id"].startswith("gen/") for d in docs),
              "other_docs": sum(not d["doc_id"].startswith("gen/") for d in docs)}
    save_student(res, comp.tokenizer, out, base=spec["base"], defaults=comp.config.to_dict(),
                 metadata={"worthiness_finetune": record},
                 extra_tensors=None if lf is None else {LOG_FREQ_KEY: torch.from_numpy(lf)})
    carry_relevance(src, out)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f}s (best epoch {res.best_epoch}: {res.best_metrics})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
