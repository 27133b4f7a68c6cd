"""Question terms: which words of a prompt the question names, and how much that says.

Lexical evidence beside the sentence encoder's embeddings: a name or number the question repeats
marks the sentence that holds the answer more sharply than a cosine does (hybrid dense + sparse
ranking, :attr:`mooscomp.allocation.AllocationConfig.lexical`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mooscomp.alignment import Words, segment_words

# Question words that say nothing about the content.
_STOP = frozenset(["a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "is", "are", "was", "were", "be", "been", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "does", "do", "did", "that", "this", "these", "those", "it", "its", "as", "than", "then", "there", "their"])


def question_terms(question: str) -> frozenset[str]:
    """Lower-cased alphanumeric words of the question, without stop words."""
    return frozenset(
        w.lower() for w in segment_words(question).tolist() if w.isalnum() and w.lower() not in _STOP
    )


def mentions(words: Words, terms: frozenset[str]) -> np.ndarray:
    """(n_words,) float32: 1 where the (lower-cased) word is a question term."""
    return (term_ids(words, terms) >= 0).astype(np.float32)


def term_ids(words: Words, terms: frozenset[str]) -> np.ndarray:
    """(n_words,) int64: index of the (lower-cased) word in ``sorted(terms)``, -1 for none."""
    index = {t: i for i, t in enumerate(sorted(terms))}
    if not index or len(words) == 0:
        return np.full(len(words), -1, dtype=np.int64)
    return np.fromiter((index.get(w.lower(), -1) for w in words.tolist()), np.int64, len(words))


def term_overlap(contexts: Sequence[Any]) -> np.ndarray:
    """(n_sent_total,) IDF-weighted share of the question's terms each sentence contains, in
    [0, 1]; IDF (BM25's, over the prompt's sentences) of the terms that occur at all."""
    n_sent = [c.n_sent for c in contexts]
    total = sum(n_sent)
    ids = [c.term_ids if c.term_ids is not None else np.where(c.mentions > 0, 0, -1) for c in contexts]
    n_terms = max((int(t.max()) + 1 for t in ids if t.size), default=0)
    if n_terms == 0 or total == 0:
        return np.zeros(total)
    # distinct (sentence, term) pairs: memory grows with the matches, not sentences x terms
    pairs = np.unique(np.concatenate([
        (off + c.word_sent[t >= 0]) * n_terms + t[t >= 0]
        for c, t, off in zip(contexts, ids, np.cumsum([0, *n_sent])[:-1].tolist(), strict=True)]))
    sent, term = pairs // n_terms, pairs % n_terms  # (n_pairs,) each
    df = np.bincount(term, minlength=n_terms)  # (n_terms,) sentences holding each term
    idf = np.where(df > 0, np.log1p((total - df + 0.5) / (df + 0.5)), 0.0)
    norm = idf.sum()
    return np.bincount(sent, weights=idf[term], minlength=total) / norm if norm > 0 else np.zeros(total)
