"""Causal-LM surprisal teacher: words scored by -log p(token | left context), kept per unit.

The Selective-Context / LLMLingua criterion: a word's score is the sum of its tokens' surprisal
under a causal LM, a unit's score the sum of its words', and the top units of every window of
``select_tokens`` LM tokens are kept until ``keep_fraction`` of its words are. Scoring a multi-word
name as one unit keeps or drops it whole.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp._util import check_float, check_int, resolve_device, sha256_file
from mooscomp.alignment import Words, segment_words
from mooscomp.labeling.base import Document
from mooscomp.labeling.units import rule_unit_spans, units_from_spans

_MAX = 2**31 - 1


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
        check_float("keep_fraction", self.keep_fraction, 0.0, 1.0, low_open=True)
        check_int("window_tokens", self.window_tokens, 16, _MAX)
        check_int("context_tokens", self.context_tokens, 0, self.window_tokens - 1)
        check_int("select_tokens", self.select_tokens, 1, _MAX)
        check_int("batch_size", self.batch_size, 1, _MAX)
        check_int("logprob_chunk", self.logprob_chunk, 1, _MAX)



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


def windowed_nll(
    model: Any,
    windows: Sequence[np.ndarray],
    *,
    pad_id: int = 0,
    batch_size: int = 8,
    logprob_chunk: int = 1024,
) -> list[np.ndarray]:
    """Surprisal (nats) of tokens 1..n-1 of every (n,) int64 window given its earlier tokens.

    The shared causal-LM kernel: callers choose their own windowing (overlap, BOS) and get back
    one (n-1,) float32 array per window. Windows run longest first in right-padded batches of
    ``batch_size`` (order does not change results); the vocabulary projection runs
    ``logprob_chunk`` positions at a time, so full-vocabulary logits of a batch never sit in
    memory at once.
    """
    import torch

    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(windows)
    device = next(model.parameters()).device
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        width = max(len(windows[i]) for i in idx)
        inp = np.full((len(idx), width), pad_id, dtype=np.int64)  # (B, L)
        att = np.zeros((len(idx), width), dtype=np.int64)  # (B, L)
        for k, i in enumerate(idx):
            inp[k, : len(windows[i])] = windows[i]
            att[k, : len(windows[i])] = 1
        nll = _batch_nll(
            model, torch.from_numpy(inp).to(device), torch.from_numpy(att).to(device), logprob_chunk
        )  # (B, L-1): surprisal of token t+1 given <= t
        for k, i in enumerate(idx):
            out[i] = nll[k, : max(len(windows[i]) - 1, 0)].copy()
    return out


def _batch_nll(model: Any, inp: Any, att: Any, chunk: int) -> np.ndarray:
    """(B, L-1) surprisal of ``inp[:, 1:]`` under ``model`` (logits in ``chunk``-row slices)."""
    import torch

    if inp.shape[1] < 2:  # nothing to predict in one-token windows
        return np.zeros((inp.shape[0], 0), dtype=np.float32)
    with torch.inference_mode():
        head = model.get_output_embeddings()
        body = model.get_decoder() if hasattr(model, "get_decoder") else None
        if body is not None and head is not None:
            hid = body(input_ids=inp, attention_mask=att).last_hidden_state
            hid = hid[:, :-1]
            logits_fn = head
        else:  # pragma: no cover - models without a separable head
            hid = model(input_ids=inp, attention_mask=att).logits[:, :-1]
            logits_fn = None
        tgt = inp[:, 1:]
        B, T = tgt.shape
        flat_h = hid.reshape(B * T, -1)
        flat_t = tgt.reshape(-1)
        res = torch.empty(B * T, dtype=torch.float32, device=flat_h.device)
        for a in range(0, B * T, chunk):
            h = flat_h[a : a + chunk]
            lg = (logits_fn(h) if logits_fn is not None else h).float()
            lse = torch.logsumexp(lg, dim=-1)
            res[a : a + chunk] = lse - lg.gather(1, flat_t[a : a + chunk, None]).squeeze(1)
        return res.reshape(B, T).cpu().numpy()


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

        dev = resolve_device(device or "auto")
        if dtype is None:
            dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        kw: dict[str, Any] = {}
        sha = ""
        if gguf_file is not None:
            if importlib.util.find_spec("gguf") is None:
                raise ImportError(
                    "reading a GGUF teacher needs the 'gguf' package: bash scripts/setup.sh label (or pip install -e '.[label]')"
                )
            kw["gguf_file"] = gguf_file
            sha = sha256_file(Path(path) / gguf_file)
        tok = AutoTokenizer.from_pretrained(str(path), **kw)
        model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **kw)
        model = model.to(dev).eval()
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
        jobs = [  # (seq, ctx, score_start, end)
            (si, ctx, s, e)
            for si, ids in enumerate(ids_list)
            for ctx, s, e in self._windows(int(ids.shape[0]))
        ]
        start = np.asarray([] if self.start_id is None else [self.start_id], dtype=np.int64)
        windows = [np.concatenate([start, ids_list[si][ctx:e]]) for si, ctx, _s, e in jobs]
        c = self.config
        nll = windowed_nll(
            self.model, windows, pad_id=self.pad_id, batch_size=c.batch_size,
            logprob_chunk=c.logprob_chunk,
        )
        out = [np.zeros(int(ids.shape[0]), dtype=np.float32) for ids in ids_list]
        off = 1 if self.start_id is not None else 0
        for (si, ctx, s, e), surp in zip(jobs, nll, strict=True):
            # token j of the window (j = index in ids[ctx:e]) is predicted at position j+off-1
            pos = np.arange(s - ctx, e - ctx) + off - 1
            vals = np.zeros(len(pos), dtype=np.float32)
            ok = pos >= 0
            vals[ok] = surp[pos[ok]]
            if not ok.all():
                # no BOS and at the very start: no prediction; use the window mean
                vals[~ok] = float(vals[ok].mean()) if ok.any() else 0.0
            out[si][s:e] = vals
        self.tokens_scored += sum(len(w) for w in windows)
        return out

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
