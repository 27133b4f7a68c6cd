"""Training data: labelled documents -> encoder chunks -> padded batches.

Documents are chunked exactly as at inference (``align`` + ``chunk_spans`` at sentence ends,
``max_length - 2`` tokens + CLS/SEP), every sub-token takes the label of its word, and special
tokens, padding and tokens outside every word are ignored (-100). The validation split is by
document and depends only on the doc ids, so runs with different seeds or betas are compared on
the same documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mooscomp._util import iter_jsonl
from mooscomp.alignment import align, chunk_spans, segment_words
from mooscomp.losses import IGNORE_INDEX
from mooscomp.word_shape import check_features, token_shape_ids, word_shape_ids


@dataclass(frozen=True)
class EncodedDoc:
    """One labelled document as encoder inputs.

    Attributes:
        doc_id: the document id (drives the train/validation split).
        chunks: per chunk ``(input_ids, labels, shape_ids)``, each (n_tokens,) int64 including
            CLS/SEP; labels are 0/1 per word's label, -100 for specials and word-less tokens;
            shape_ids are the word-shape ids of ``word_shape`` (0 for specials, all 0 without).
        word_shape: the word-shape features the shape ids were computed with.
    """

    doc_id: str
    chunks: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    word_shape: tuple[str, ...] = ()


def load_label_shards(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read gzip (or plain) JSONL label shards, one document per line, in path order.

    A line that is not JSON raises ValueError naming ``path:line``; so does an unreadable file.
    """
    docs: list[dict[str, Any]] = []
    for p in sorted(Path(x) for x in paths):
        try:
            docs.extend(iter_jsonl(p, strict=True))
        except (OSError, EOFError) as e:
            raise ValueError(f"{p}: cannot be read as {'gzip ' if p.suffix == '.gz' else ''}JSONL: {e}") from None
    return docs


def encode_docs(
    docs: Sequence[Mapping[str, Any]], tokenizer: Any, *, max_length: int,
    word_shape: Sequence[str] = (),
) -> list[EncodedDoc]:
    """Chunk and label documents ``{"doc_id", "text", "labels"}`` exactly as inference chunks;
    word-shape ids come from the original (cased) words, as at inference."""
    feats = check_features(word_shape)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise ValueError("tokenizer needs cls_token_id and sep_token_id (BERT-style specials)")
    out: list[EncodedDoc] = []
    for i, doc in enumerate(docs):
        doc_id = str(doc.get("doc_id", f"#{i}"))
        text, labels = doc.get("text"), doc.get("labels")
        if not isinstance(text, str) or not isinstance(labels, list):
            raise ValueError(f"document {doc_id!r} (index {i}): needs 'text' (str) and 'labels' (list)")
        words = segment_words(text)
        if len(labels) != len(words):
            raise ValueError(
                f"document {doc_id!r} (index {i}): {len(labels)} labels but segment_words(text) "
                f"gives {len(words)} words; the label scheme does not match (one 0/1 per word)"
            )
        lab = np.asarray(labels, dtype=np.int64)  # (n_words,)
        if lab.size and not np.isin(lab, (0, 1)).all():
            raise ValueError(f"document {doc_id!r} (index {i}): labels must be 0 (drop) or 1 (keep)")
        al = align(words, tokenizer)
        has_word = (al.token_word >= 0) & (lab.size > 0)  # (n_tokens,)
        word_lab = lab[np.clip(al.token_word, 0, max(lab.size - 1, 0))] if lab.size else 0
        tok_lab = np.where(has_word, word_lab, IGNORE_INDEX)  # (n_tokens,)
        tok_shape = token_shape_ids(word_shape_ids(words, feats), al.token_word)  # (n_tokens,)
        chunks = []
        for st, ed in chunk_spans(al, max_length - 2):
            ids = np.concatenate([[cls_id], al.input_ids[st:ed], [sep_id]]).astype(np.int64)
            y = np.concatenate([[IGNORE_INDEX], tok_lab[st:ed], [IGNORE_INDEX]]).astype(np.int64)
            sh = np.concatenate([[0], tok_shape[st:ed], [0]]).astype(np.int64)
            if (y != IGNORE_INDEX).any():
                chunks.append((ids, y, sh))
        out.append(EncodedDoc(doc_id, tuple(chunks), feats))
    return out


def split_by_document(doc_ids: Sequence[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic document split: the docs whose sha256(doc_id) sort first go to validation."""
    n = len(doc_ids)
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * val_fraction)))
    ids = sorted(set(doc_ids), key=lambda d: hashlib.sha256(d.encode("utf-8")).hexdigest())
    val_ids: set[str] = set()
    count = {d: 0 for d in ids}
    for d in doc_ids:
        count[d] += 1
    taken = 0
    for d in ids:  # duplicates of one id stay on one side
        if taken >= n_val:
            break
        val_ids.add(d)
        taken += count[d]
    train = [i for i, d in enumerate(doc_ids) if d not in val_ids]
    val = [i for i, d in enumerate(doc_ids) if d in val_ids]
    return train, val


def make_batches(
    lengths: Sequence[int], batch_size: int, *, generator: torch.Generator | None
) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort inside blocks of 50 batches, shuffle batch order.

    Without a generator: sorted by length, no shuffling (validation).
    """
    n = len(lengths)
    if generator is None:
        order = sorted(range(n), key=lambda j: lengths[j])
        return [order[k : k + batch_size] for k in range(0, n, batch_size)]
    perm = torch.randperm(n, generator=generator).tolist()
    block = batch_size * 50
    batches: list[list[int]] = []
    for i in range(0, n, block):
        part = sorted(perm[i : i + block], key=lambda j: lengths[j])
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[j] for j in order]


def collate(
    examples: Sequence[tuple[np.ndarray, ...]], *, pad_id: int
) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids/attention_mask/labels/shape_ids, each (batch, max_len).

    Examples are ``(input_ids, labels)`` or ``(input_ids, labels, shape_ids)``; shape ids
    default to 0 (and padding gets 0).
    """
    width = max(len(ex[0]) for ex in examples)
    b = len(examples)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    attention = torch.zeros((b, width), dtype=torch.long)
    labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
    shapes = torch.zeros((b, width), dtype=torch.long)
    for r, ex in enumerate(examples):
        ids, y = ex[0], ex[1]
        input_ids[r, : len(ids)] = torch.from_numpy(ids)
        attention[r, : len(ids)] = 1
        labels[r, : len(y)] = torch.from_numpy(y)
        if len(ex) > 2:
            shapes[r, : len(ex[2])] = torch.from_numpy(ex[2])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "shape_ids": shapes}
