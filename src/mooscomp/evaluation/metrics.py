"""Task metrics: SQuAD EM/F1, ROUGE-1/2/L, multiple-choice accuracy, needle accuracy, answer
survival, and bootstrap confidence intervals.

ROUGE is implemented here (no stemming, lower-cased alphanumeric tokens), so numbers are close to
but not identical with ``rouge_score`` with its Porter stemmer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)
_WORD = re.compile(r"[a-z0-9]+")


def normalize_answer(s: str) -> str:
    """SQuAD's official normalisation: lower, drop punctuation and articles, squash spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    p = normalize_answer(prediction).split()
    g = normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def clean_prediction(text: str) -> str:
    """First non-empty line, without a leading "Answer:" label: readers often add explanations."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            return re.sub(r"^(answer|a)\s*[:\-]\s*", "", line, flags=re.IGNORECASE).strip()
    return ""


def qa_scores(prediction: str, golds: Sequence[str]) -> dict[str, float]:
    """Max over gold answers of EM and F1 (on the cleaned first line), and whether any
    normalised gold answer occurs in the normalised full prediction ("contains")."""
    pred = clean_prediction(prediction)
    full = f" {normalize_answer(prediction)} "
    return {
        "em": max(exact_match(pred, g) for g in golds),
        "f1": max(f1_score(pred, g) for g in golds),
        "contains": float(
            any(f" {normalize_answer(g)} " in full for g in golds if normalize_answer(g))
        ),
    }


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _prf(overlap: float, n_pred: int, n_ref: int) -> float:
    if n_pred == 0 or n_ref == 0 or overlap == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n(prediction: str, reference: str, n: int) -> float:
    """ROUGE-N F1."""
    pc, rc = _ngrams(_tokens(prediction), n), _ngrams(_tokens(reference), n)
    return _prf(sum((pc & rc).values()), sum(pc.values()), sum(rc.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (sentence-level LCS)."""
    p, r = _tokens(prediction), _tokens(reference)
    return _prf(lcs_length(p, r), len(p), len(r))


def rouge_scores(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L F1, each the max over references."""
    return {
        "rouge1": max(rouge_n(prediction, r, 1) for r in references),
        "rouge2": max(rouge_n(prediction, r, 2) for r in references),
        "rougeL": max(rouge_l(prediction, r) for r in references),
    }


def parse_choice(prediction: str, options: Sequence[str] = ()) -> str | None:
    """The option letter a reader chose: "(B)", "B)", "B." or "B" at the start, or the text of
    exactly one option. None when nothing can be read."""
    text = prediction.strip()
    m = re.search(r"\(([A-P])\)", text)
    if m:
        return m.group(1)
    m = re.match(r"^(?:answer\s*[:\-]?\s*)?([A-P])(?:[\s\).:,]|$)", text, flags=re.IGNORECASE)
    if m:
        return m.group(1).upper()
    low = normalize_answer(text)
    hits = [i for i, o in enumerate(options) if normalize_answer(o) and normalize_answer(o) in low]
    if len(hits) == 1:
        return "ABCDEFGHIJKLMNOP"[hits[0]]
    return None


def choice_accuracy(prediction: str, gold_letter: str, options: Sequence[str] = ()) -> float:
    return float(parse_choice(prediction, options) == gold_letter)


def answer_survival(compressed_text: str, answers: Sequence[str]) -> float:
    """1.0 when any (normalised) gold answer still occurs as a whole-token run in the
    (normalised) compressed text."""
    hay = f" {normalize_answer(compressed_text)} "
    return float(any(f" {normalize_answer(a)} " in hay for a in answers if normalize_answer(a)))


def score_item(
    metric: str, prediction: str, answers: Sequence[str], meta: dict[str, Any]
) -> dict[str, float]:
    """All scores of one item; ``"score"`` is the task's headline number."""
    if metric == "qa":
        s = qa_scores(prediction, answers)
        return {**s, "score": s["f1"]}
    if metric == "rouge":
        s = rouge_scores(prediction, answers)
        return {**s, "score": s["rougeL"]}
    if metric == "choice":
        acc = choice_accuracy(prediction, answers[0], meta.get("options", ()))
        return {"accuracy": acc, "score": acc}
    if metric == "needle":
        acc = float(any(a in prediction for a in answers))
        return {"accuracy": acc, "score": acc}
    raise ValueError(f"unknown metric {metric!r}")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (vectorised). NaN bounds for an empty sample."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return (float(lo), float(hi))
