"""Batched encoder scoring: chunks of token ids -> per-token (keep-probability, outlier z).

The forward pass runs over length-sorted batches of chunks (little padding, no gradient). Per
token it yields the classifier's keep-probability and the "hidden" outlier score of
:func:`mooscomp.outliers.hidden_deviation_z`. The outlier formulas themselves live in
:mod:`mooscomp.outliers` (re-exported here for old imports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mooscomp.outliers import (  # noqa: F401  (re-exports: old import paths)
    EPS as _EPS,
)
from mooscomp.outliers import (
    hidden_deviation_z,
    rarity_z,
    tokens_to_words,
    transform,
    zscore,
)

__all__ = [
    "CPU_BATCH_TOKENS", "GPU_BATCH_TOKENS", "Scorer", "TorchScorer", "hidden_deviation_z",
    "rarity_z", "score_chunks", "tokens_to_words", "transform", "zscore",
]
# Two full 512-token chunks: on a 2-core CPU larger batches push the (tokens, 4 x hidden) FFN
# activations out of cache (GELU becomes memory-bound); 1028 vs 4096 measured 3-9% faster at
# 2k-32k tokens with MiniLM (scoring stage alone, best of 3).
CPU_BATCH_TOKENS = 1028
# 512 full chunks: on an H100 MiniLM reaches 3.8M encoder tokens/s at 512 chunks a forward vs
# 3.5M at 128 (reports/speed_gpu.json); activations stay under ~3 GB.
GPU_BATCH_TOKENS = 512 * 514


@runtime_checkable
class Scorer(Protocol):
    """A forward backend: scores one padded batch of chunks.

    ``forward_batch(ids, attn, valid)`` gets (batch, width) int64 token ids, a bool mask of real
    tokens (specials included) and a bool mask of the positions that take part in the outlier
    statistics (no specials, no padding); it returns (batch, width) float32 keep-probabilities
    and hidden-deviation Z-scores (see :func:`hidden_deviation_z`). Optional attributes that
    :func:`score_chunks` honours: ``default_batch_tokens`` (padded tokens per forward when the
    config leaves it open), ``pad_shape(rows, width)`` and ``max_rows`` (most chunks a forward,
    for a backend whose outputs depend on what they are batched with).
    """

    def forward_batch(
        self, ids: np.ndarray, attn: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


class TorchScorer:
    """The default backend: the torch model itself (bf16 autocast on CUDA)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def default_batch_tokens(self) -> int:
        """Padded tokens per forward when the config leaves it open (CPU: cache-friendly)."""
        on_gpu = next(self.model.parameters()).device.type == "cuda"
        return GPU_BATCH_TOKENS if on_gpu else CPU_BATCH_TOKENS

    def pad_shape(self, rows: int, width: int) -> tuple[int, int]:
        """Padded (rows, width) of a batch. On CUDA rows round up to a multiple of 16 and width
        to one of 64, so a corpus meets a few dozen shapes instead of thousands: each new shape
        costs GEMM/attention kernel selection the first time (an H100 ran 1.05M tokens/s on a
        cold process vs 1.43M warm). On a CPU padding only costs compute, so none."""
        if next(self.model.parameters()).device.type != "cuda":
            return rows, width
        width = max(width, min(-(-width // 64) * 64, int(self.model.max_positions)))
        return -(-rows // 16) * 16, width

    def forward_batch(
        self, ids: np.ndarray, attn: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        device = next(self.model.parameters()).device
        return _forward(self.model, ids, attn, valid, device=device, use_bf16=device.type == "cuda")


def score_chunks(
    model: Any,
    chunks: Sequence[np.ndarray],
    *,
    cls_id: int | None,
    sep_id: int | None,
    pad_id: int,
    batch_size: int,
    max_batch_tokens: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Keep-probability and hidden-deviation Z-score for every token of every chunk.

    Args:
        model: a torch :class:`TokenCompressorModel`, or any :class:`Scorer` backend.
        chunks: token id arrays (no special tokens), each short enough for the encoder.
    Returns:
        one ``(p, z)`` pair of (len(chunk),) float32 arrays per chunk, in input order.
    """
    out: list[tuple[np.ndarray, np.ndarray]] = [
        (np.zeros(0, np.float32), np.zeros(0, np.float32))
    ] * len(chunks)
    lengths = np.asarray([c.shape[0] for c in chunks], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    n_pre = 1 if cls_id is not None else 0
    n_post = 1 if sep_id is not None else 0
    scorer: Scorer = model if isinstance(model, Scorer) else TorchScorer(model)
    if max_batch_tokens is None:
        max_batch_tokens = int(getattr(scorer, "default_batch_tokens", CPU_BATCH_TOKENS))
    i = 0
    pad_shape = getattr(scorer, "pad_shape", None)
    max_rows = getattr(scorer, "max_rows", None)  # a backend whose outputs depend on the batch
    while i < order.size:
        width = int(lengths[order[i]]) + n_pre + n_post
        if pad_shape is not None:
            width = int(pad_shape(1, width)[1])
        b = max(1, min(batch_size, max_batch_tokens // max(width, 1), max_rows or batch_size))
        batch = order[i : i + b]
        i += b
        rows = int(pad_shape(batch.size, width)[0]) if pad_shape is not None else batch.size
        ids = np.full((rows, width), pad_id, dtype=np.int64)  # (rows, width)
        attn = np.zeros((rows, width), dtype=bool)  # real tokens incl. specials
        attn[batch.size :, 0] = True  # filler rows attend to one token (no all-masked softmax)
        valid = np.zeros((rows, width), dtype=bool)  # non-special, non-pad positions
        for r, ci in enumerate(batch.tolist()):
            c = chunks[ci]
            n = c.shape[0]
            if cls_id is not None:
                ids[r, 0] = cls_id
            ids[r, n_pre : n_pre + n] = c
            if sep_id is not None:
                ids[r, n_pre + n] = sep_id
            attn[r, : n_pre + n + n_post] = True
            valid[r, n_pre : n_pre + n] = True
        p, z = scorer.forward_batch(ids, attn, valid)
        for r, ci in enumerate(batch.tolist()):
            n = int(lengths[ci])
            out[ci] = (p[r, n_pre : n_pre + n], z[r, n_pre : n_pre + n])
    return out


def _forward(
    model: Any,
    ids: np.ndarray,
    attn: np.ndarray,
    valid: np.ndarray,
    *,
    device: Any,
    use_bf16: bool,
) -> tuple[np.ndarray, np.ndarray]:
    p, z, _ = forward_with_states(model, ids, attn, valid, device=device, use_bf16=use_bf16)
    return p, z


def forward_with_states(
    model: Any,
    ids: np.ndarray,  # (batch, width)
    attn: np.ndarray,  # (batch, width)
    valid: np.ndarray,  # (batch, width) bool: tokens the outlier Z-scores are taken over
    *,
    device: Any,
    use_bf16: bool,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """(keep-probability, outlier Z) float32 (batch, width) and the last-layer states as a
    (batch, width, dim) tensor on ``device`` (for probes over the states, e.g. benchmarks)."""
    import torch

    with torch.inference_mode():
        input_ids = torch.from_numpy(ids).to(device)  # (batch, width)
        mask = torch.from_numpy(attn).to(device)
        vmask = torch.from_numpy(valid).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            o = model(input_ids, mask.long())
        probs = torch.softmax(o.logits.float(), dim=-1)[..., 1]  # (batch, width)
        z = hidden_deviation_z(o.last_hidden.float(), vmask)  # (batch, width)
        return probs.cpu().numpy().astype(np.float32), z.cpu().numpy().astype(np.float32), o.last_hidden
