"""Sentence focus: concentrate a budget on the best sentences so the kept text stays readable.

Word-level selection spreads a 4x budget over every sentence, keeping a few words of each; a
reader LLM then gets the names and numbers but not the words that tie them together (measured:
reports/reader_use.json). A sentence bonus that falls with the tokens of the better sentences
ranked before it (:func:`sentence_bonus`) moves the budget into fewer, less compressed
sentences. The question-aware allocator (:mod:`mooscomp.allocation`) ranks sentences by their
relevance to the question; without a question (:func:`focus_scores`) the ranking is a sentence's
mean keep-score. Torch-free: the ONNX path uses it too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from mooscomp.alignment import Alignment, Words

_EPS = 1e-6
# Sentences longer than this many words are cut into pieces (no-punctuation inputs).
MAX_SENTENCE_WORDS = 64


def zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    return (x - x.mean()) / (x.std() + _EPS)


def word_sentences(
    words: Words, alignment: Alignment, *, max_words: int = MAX_SENTENCE_WORDS
) -> np.ndarray:
    """(n_words,) non-decreasing sentence index of every word.

    Sentence ends are the alignment's (``.!?`` followed by space or a closer, or a line break),
    so sentences and compressor chunks agree; runs longer than ``max_words`` are cut.
    """
    n = len(words)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    end = np.zeros(n, dtype=bool)
    tw = alignment.token_word
    m = alignment.sentence_end & (tw >= 0)
    end[tw[m]] = True
    start = np.r_[True, end[:-1]]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    start |= ((idx - first) % max_words) == 0
    return np.cumsum(start) - 1


# Titles and abbreviations whose period rarely ends a sentence ("St. Louis", "Dr. Smith").
_ABBREVIATIONS = frozenset("Mr Mrs Ms Dr St Jr Sr Mt Ft Prof Gen Gov Lt Col Sgt Capt Rev Fr vs".split())


def question_sentences(words: Words, alignment: Alignment) -> np.ndarray:
    """(n_words,) sentence index as :func:`word_sentences`, except that a period after an
    initial or a title ("C. J. Cherryh", "St. Louis") ends no sentence: the question path
    ranks whole sentences, and a name cut in three matches neither the question nor a title."""
    ws = word_sentences(words, alignment)
    n = len(words)
    if n < 3:
        return ws
    toks = words.tolist()
    start = np.r_[True, ws[1:] != ws[:-1]]
    i = np.flatnonzero(start[2:]) + 2  # a sentence starts at word i
    dot = np.asarray([toks[k - 1] == "." for k in i.tolist()], dtype=bool)
    abbr = np.asarray([(len(toks[k - 2]) == 1 and toks[k - 2].isupper()) or toks[k - 2] in _ABBREVIATIONS
                       for k in i.tolist()], dtype=bool)
    attached = words.ends[i - 2] == words.starts[i - 1]
    same_line = ~words.newline_before()[i]
    start[i[dot & abbr & attached & same_line]] = False
    return np.cumsum(start) - 1


def paragraph_starts(words: Words) -> np.ndarray:
    """(n_words,) bool: the word opens a paragraph (the first word, or a blank line before it)."""
    n = len(words)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    nl = np.fromiter((m.start() for m in re.finditer("\n", words.text)), dtype=np.int64)  # offsets
    between = np.searchsorted(nl, words.starts[1:]) - np.searchsorted(nl, words.ends[:-1])
    out[0] = True
    out[1:] = between >= 2
    return out


def paragraph_leads(
    word_sent: Sequence[np.ndarray], para_start: Sequence[np.ndarray], priority: np.ndarray, per: int,
    *, first: int = 0,
) -> np.ndarray:
    """(n_sent_total,) bool: the ``per`` best sentences (by ``priority``) and the ``first``
    opening sentences of every paragraph of every context."""
    out = np.zeros(priority.shape[0], dtype=bool)
    k = 0
    for ws, ps in zip(word_sent, para_start, strict=True):
        ns = int(ws[-1]) + 1 if ws.size else 0
        if ns:
            first_word = np.r_[True, ws[1:] != ws[:-1]]  # (n_words,) first word of its sentence
            para = np.cumsum(ps)[first_word]  # (ns,) paragraph of each sentence (non-decreasing)
            pri = priority[k : k + ns]
            order = np.lexsort((-pri, para))  # by paragraph, best first
            rank = np.arange(ns) - np.searchsorted(para[order], para[order])
            out[k + order[rank < per]] = True
            out[k : k + ns] |= np.arange(ns) - np.searchsorted(para, para) < first  # position in paragraph
        k += ns
    return out


def sentence_stats(
    word_sent: np.ndarray, scores: np.ndarray, costs: np.ndarray, n_sent: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n_sent,) mean word score and (n_sent,) token cost of every sentence of one context."""
    cnt = np.maximum(np.bincount(word_sent, minlength=n_sent), 1)
    means = np.bincount(word_sent, weights=np.asarray(scores, np.float64), minlength=n_sent) / cnt
    return means, np.bincount(word_sent, weights=np.asarray(costs, np.float64), minlength=n_sent)


def sentence_bonus(
    priority: np.ndarray, cost: np.ndarray, target: float, *, spread: float, first: np.ndarray
) -> np.ndarray:
    """(n_sent,) bonus in [0, 1]: 1 for the top sentence, falling linearly with the tokens of
    the sentences ranked before it, 0 once they fill ``spread * target`` tokens.

    ``first``: (n_sent,) bool, sentences ranked ahead of all others (``min_contexts``).
    """
    n = priority.shape[0]
    if n == 0:
        return np.zeros(0)
    key = np.where(first, np.inf, priority)
    order = np.lexsort((np.arange(n), -key))
    c = cost[order].astype(np.float64)
    before = np.cumsum(c) - c
    out = np.zeros(n)
    out[order] = np.clip(1.0 - before / max(spread * target, _EPS), 0.0, 1.0)
    out[first] = 1.0  # min_contexts: their best sentences share the top bonus
    return out


def focus_scores(
    word_sent: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    target: float,
    *,
    weight: float,
    spread: float,
    protect: Sequence[np.ndarray] | None = None,
    protect_share: float = 0.0,
    para_start: Sequence[np.ndarray] | None = None,
    per_paragraph: int = 0,
    first_per_paragraph: int = 0,
) -> list[np.ndarray]:
    """Per context, (n_words,) scores + ``weight`` x the bonus of the word's sentence.

    Sentences of all contexts are ranked together by their mean word score (the classifier's
    own view of how much a sentence holds); ``costs`` are per-word token costs. Words marked in
    ``protect`` (per context, (n_words,) bool) get at least ``protect_share`` of the full bonus
    wherever they stand. The ``per_paragraph`` best sentences of every paragraph (``para_start``:
    per context, (n_words,) bool, :func:`paragraph_starts`) are ranked ahead of all others, so a
    lone fact in its own paragraph (a needle) keeps its place; so are the ``first_per_paragraph``
    opening sentences of every paragraph (an encyclopedic paragraph's first sentence names and
    defines its subject: reports/readable_focus_first.json). ``weight`` 0 returns the scores
    unchanged.
    """
    if weight <= 0.0:
        return [np.asarray(s, dtype=np.float64) for s in scores]
    n_sent = [int(ws[-1]) + 1 if ws.size else 0 for ws in word_sent]
    stats = [sentence_stats(ws, s, c, ns) for ws, s, c, ns in zip(word_sent, scores, costs, n_sent, strict=True)]
    means, sent_cost = [m for m, _ in stats], [c for _, c in stats]
    pri = zscore(np.concatenate(means)) if sum(n_sent) else np.zeros(0)
    first = (paragraph_leads(word_sent, para_start, pri, per_paragraph, first=first_per_paragraph)
             if para_start is not None and (per_paragraph > 0 or first_per_paragraph > 0)
             else np.zeros(pri.shape[0], dtype=bool))
    bonus = sentence_bonus(pri, np.concatenate(sent_cost) if sent_cost else np.zeros(0), target,
                           spread=spread, first=first)
    out, k = [], 0
    for i, (ws, s, ns) in enumerate(zip(word_sent, scores, n_sent, strict=True)):
        b = bonus[k : k + ns][ws]
        if protect is not None and protect_share > 0:
            b = np.where(protect[i], np.maximum(b, protect_share), b)
        out.append(np.asarray(s, dtype=np.float64) + weight * b)
        k += ns
    return out
