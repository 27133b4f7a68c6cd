"""LLMLingua-2's own distillation as a teacher: an instruct LLM compresses, annotation maps back.

The LLM (any ``ChatBackend``: an OpenAI-compatible endpoint, llama.cpp, or a test fake) compresses
chunks of ≤ ``chunk_tokens`` tokens with the LLMLingua-2 prompt; ``annotate`` matches the
compressed words to the original ones in a sliding window, and ``quality_filter`` drops chunks
whose variation rate or alignment gap is in the top decile (Pan et al., 2024, "LLMLingua-2").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mooscomp._util import check_float, check_int
from mooscomp.alignment import segment_words
from mooscomp.labeling._chat import ChatBackend
from mooscomp.labeling.base import Document

SYSTEM_PROMPT = (
    "You are an excellent linguist and very good at compressing passages into short expressions "
    "by removing unimportant words, while retaining as much information as possible."
)
USER_PROMPT = (
    "Compress some text to short expressions, and such that you (GPT-4) can reconstruct it as "
    "close as possible to the original. Unlike the usual text compression, I need you to comply "
    "with the 5 conditions below: 1. You can ONLY remove unimportant words. 2. Do not change the "
    "order of words. 3. Do not change the original words, e.g. 'asking'->'ask' is NOT OK, "
    "'current'->'now' is NOT OK. 4. Do not use abbreviations or emojis, e.g. 'without'->'w/o' is "
    "NOT OK, 'as soon as possible'->'ASAP' is NOT OK. 5. Do not add new words or symbols, this is "
    "very important. For example, 'dedicate 3 hours to each chapter'->'3 hours/chapter' is NOT OK "
    "because you add new token '/', just compress it into '3 hours each chapter'. '30 eggs plus 20 "
    "eggs equals 50 eggs'->'30+20=50' is also NOT OK becuase you add new symbols + and =, just "
    "compress it into '30 plus 20 equals 50'. \nCompress the origin aggressively by removing words "
    "only. Compress the origin as short as you can, while retaining as much information as "
    "possible. \nIf you understand, please compress the following text: \n{text_to_compress}\nThe "
    "compressed text is: "
)


@dataclass(frozen=True)
class Annotation:
    """Labels of one chunk's annotation units and its quality metrics (VR, hitting, matching)."""

    labels: np.ndarray
    comp_rate: float
    variation_rate: float
    hitting_rate: float
    matching_rate: float

    @property
    def alignment_gap(self) -> float:
        return self.hitting_rate - self.matching_rate


def annotate(original: Sequence[str], compressed: Sequence[str], *, window_size: int = 400) -> Annotation:
    """LLMLingua-2 word annotation: match compressed words to original ones in a sliding window."""
    if window_size < 1:
        raise ValueError(f"window_size must be >= 1, got {window_size}")
    orig = list(original)
    C = list(compressed)
    n = len(orig)
    labels = np.zeros(n, dtype=bool)
    if n == 0:
        return Annotation(labels.astype(np.int8), 0.0, 1.0 if C else 0.0, 0.0, 0.0)
    o_low = [w.lower() for w in orig]
    o_set = set(orig) | set(o_low)
    prev = 0
    num_find = 0
    half = window_size // 2
    for w in C:
        wl = w.lower()
        if w in o_set or wl in o_set:
            num_find += 1
        for i in range(window_size):
            j = min(prev + i, n - 1)
            if o_low[j] == wl and not labels[j]:
                labels[j] = True
                prev = prev + half if j - prev > half else j
                break
            j = max(prev - i, 0)
            if o_low[j] == wl and not labels[j]:
                labels[j] = True
                prev = j
                break
    nc = len(C)
    return Annotation(
        labels=labels.astype(np.int8),
        comp_rate=nc / n,
        variation_rate=(1.0 - num_find / nc) if nc else 0.0,
        hitting_rate=num_find / n,
        matching_rate=float(labels.sum()) / n,
    )


def quality_filter(
    annotations: Sequence[Annotation], *, vr_percentile: float = 90.0, ag_percentile: float = 90.0
) -> np.ndarray:
    """(n,) bool keep mask: drop VR >= its percentile, then AG >= its percentile among the rest.

    Follows LLMLingua-2's ``filter.py`` (top ~10% of both), not the paper's 5%/10% wording.
    """
    n = len(annotations)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    vr = np.array([a.variation_rate for a in annotations])
    ag = np.array([a.alignment_gap for a in annotations])
    t_vr = np.percentile(vr, vr_percentile)
    keep &= ~((vr >= t_vr) & (vr > 0))
    if keep.sum() >= 2:
        t_ag = np.percentile(ag[keep], ag_percentile)
        keep &= ~((ag >= t_ag) & (ag > 0))
    return keep


def chunk_text(text: str, *, max_tokens: int = 512, count: Callable[[str], int] | None = None) -> list[tuple[int, int]]:
    """Character spans of chunks of ≤ ``max_tokens`` tokens, cut after the last sentence end.

    ``count`` counts tokens of a string (default: ``segment_words`` words, close to GPT tokens).
    A sentence longer than the budget is cut at a word boundary.
    """
    words = segment_words(text)
    n = len(words)
    if n == 0:
        return []
    toks = words.tolist()
    if count is None:
        cost = np.ones(n, dtype=np.int64)
    else:
        cost = np.array([max(1, count(("" if i == 0 else " ") + t)) for i, t in enumerate(toks)])
    nl = words.newline_before()
    end_ok = np.array([t in (".", "!", "?") for t in toks]) | np.r_[nl[1:], True]
    spans: list[tuple[int, int]] = []
    st = 0
    while st < n:
        cum = np.cumsum(cost[st:])
        lim = int(np.searchsorted(cum, max_tokens, side="right"))  # words that fit
        ed = min(st + max(lim, 1), n)
        if ed < n:
            cand = np.flatnonzero(end_ok[st:ed])
            if cand.size:
                ed = st + int(cand[-1]) + 1
        a = int(words.starts[st]) if st > 0 else 0
        b = int(words.starts[ed]) if ed < n else len(text)
        spans.append((a, b))
        st = ed
    return spans


@dataclass(frozen=True)
class GenerativeConfig:
    """Options of ``GenerativeTeacher`` (defaults from LLMLingua-2's released scripts)."""

    chunk_tokens: int = 512
    window_size: int = 400
    vr_percentile: float = 90.0
    ag_percentile: float = 90.0
    use_lemmas: bool = True

    def __post_init__(self) -> None:
        check_int("chunk_tokens", self.chunk_tokens, 16, 32768)
        check_int("window_size", self.window_size, 1, 2**31 - 1)
        check_float("vr_percentile", self.vr_percentile, 0.0, 100.0, low_open=True)
        check_float("ag_percentile", self.ag_percentile, 0.0, 100.0, low_open=True)


class GenerativeTeacher:
    """LLMLingua-2 distillation: LLM compresses chunks, annotation maps words back.

    Labels are per ``segment_words`` word: 1 keep, 0 drop, -1 unlabelled (the chunk failed the
    variation-rate / alignment-gap filter, computed over the chunks of one ``label_batch`` call;
    train with an ignore index for -1).
    """

    def __init__(
        self,
        backend: ChatBackend,
        *,
        config: GenerativeConfig | None = None,
        nlp: Any | None = None,
        model_id: str = "",
        model_sha256: str = "",
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or GenerativeConfig()
        self.nlp = nlp
        self.model_id = model_id
        self.model_sha256 = model_sha256
        self.count_tokens = count_tokens
        self.last_annotations: list[Annotation] = []

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "kind": "generative",
            "model_id": self.model_id,
            "sha256": self.model_sha256,
            "chunk_tokens": c.chunk_tokens,
            "window_size": c.window_size,
            "vr_percentile": c.vr_percentile,
            "ag_percentile": c.ag_percentile,
            "lemmas": self.nlp is not None and c.use_lemmas,
        }

    def _split(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """Annotation units (lemmas or lower-cased words, commas removed) and their char spans."""
        if self.nlp is not None and self.config.use_lemmas:
            doc = self.nlp(text)
            toks = [(t.lemma_ or t.text, t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]
        else:
            w = segment_words(text)
            toks = [(t, int(s), int(e)) for t, s, e in zip(w.tolist(), w.starts, w.ends, strict=True)]
        toks = [t for t in toks if t[0] != ","]
        return [t[0] for t in toks], [(t[1], t[2]) for t in toks]

    def _split_words(self, text: str) -> list[str]:
        return self._split(text)[0]

    def label_batch(self, docs: Sequence[Document]) -> list[np.ndarray]:
        c = self.config
        per_chunk: list[tuple[int, int, int, Annotation, list[tuple[int, int]]]] = []
        for di, d in enumerate(docs):
            for a, b in chunk_text(d.text, max_tokens=c.chunk_tokens, count=self.count_tokens):
                chunk = d.text[a:b]
                out = self.backend.complete(SYSTEM_PROMPT, USER_PROMPT.format(text_to_compress=chunk))
                o_words, o_spans = self._split(chunk)
                ann = annotate(o_words, self._split_words(out), window_size=c.window_size)
                per_chunk.append((di, a, b, ann, o_spans))
        keep = quality_filter(
            [p[3] for p in per_chunk], vr_percentile=c.vr_percentile, ag_percentile=c.ag_percentile
        )
        self.last_annotations = [p[3] for p in per_chunk]
        labels = []
        words_list = [segment_words(d.text) for d in docs]
        for w in words_list:
            labels.append(np.full(len(w), -1, dtype=np.int8))
        for (di, a, _b, ann, spans), ok in zip(per_chunk, keep, strict=True):
            if not ok:
                continue
            words = words_list[di]
            # a word is kept if any kept annotation token overlaps it
            lab = labels[di]
            wa = int(np.searchsorted(words.starts, a, side="left"))
            wb = int(np.searchsorted(words.starts, _b, side="left"))
            lab[wa:wb] = 0
            for (s, e), k in zip(spans, ann.labels, strict=True):
                if k:
                    i0 = int(np.searchsorted(words.ends, s + a, side="right"))
                    i1 = int(np.searchsorted(words.starts, e + a, side="left"))
                    lab[i0:i1] = 1
        return labels
