"""MOOSComp outlier scores and their fusion with the classifier's keep-probability.

A word's selection score is

    score = p + alpha * g(clip(z, -c, c))

where ``p`` is the classifier's keep-probability pooled over the word's sub-tokens and ``z`` an
outlier Z-score pooled the same way (mean). Two variants of ``z``:

* ``hidden``: ``1 - cos(h_i, mean direction of the chunk)`` of each token's last-layer state,
  standardised over the valid tokens of its chunk (:func:`hidden_deviation_z`);
* ``rarity``: ``-log f(token)`` from the model's unigram table (or in-prompt counts),
  standardised over the context (:func:`rarity_z`).

``g`` is ``relu``, ``sigmoid`` or ``identity`` (:func:`transform`). The exported ONNX graph calls
:func:`hidden_deviation_z` too, so :data:`FORMULA_VERSION` is part of its cache key: bump it on any
change to the formulas here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from mooscomp.config import CompressionConfig

FORMULA_VERSION = 1
EPS = 1e-6


def hidden_deviation_z(hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Z-scored deviation (1 - cosine to the chunk's mean direction) of each token's state.

    Args:
        hidden: (batch, seq, dim) last-layer states.
        valid: (batch, seq) bool, tokens that take part (no specials, no padding).
    Returns:
        (batch, seq) Z-scores, 0 at invalid positions.
    """
    import torch

    v = valid.unsqueeze(-1).float()  # (batch, seq, 1)
    unit = torch.nn.functional.normalize(hidden, dim=-1)  # (batch, seq, dim)
    mean_dir = torch.nn.functional.normalize((unit * v).sum(1), dim=-1)  # (batch, dim)
    dev = 1.0 - torch.einsum("bsd,bd->bs", unit, mean_dir)  # (batch, seq)
    return masked_z(dev, valid)


def masked_z(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(batch, seq) Z-score of ``x`` over the valid positions of each row (population sd)."""
    import torch

    vf = valid.float()  # (batch, seq)
    n = vf.sum(1, keepdim=True).clamp_min(1.0)  # (batch, 1)
    mu = (x * vf).sum(1, keepdim=True) / n
    var = (((x - mu) * vf) ** 2).sum(1, keepdim=True) / n
    return torch.where(valid, (x - mu) / (var.sqrt() + EPS), torch.zeros_like(x))


def zscore(x: np.ndarray) -> np.ndarray:
    """(n,) float32 Z-score with population sd (``EPS`` keeps a constant input at 0)."""
    if x.size == 0:
        return x.astype(np.float32)
    sd = float(x.std())
    return ((x - x.mean()) / (sd + EPS)).astype(np.float32)


def rarity_z(input_ids: np.ndarray, log_freq: np.ndarray | None) -> np.ndarray:
    """(n_tokens,) Z-scored rarity -log f(token): corpus table if given, else in-prompt counts."""
    if input_ids.size == 0:
        return np.zeros(0, np.float32)
    if log_freq is not None:
        surprise = -log_freq[np.clip(input_ids, 0, log_freq.shape[0] - 1)]
    else:
        _, inv, counts = np.unique(input_ids, return_inverse=True, return_counts=True)
        surprise = -np.log(counts[inv] / input_ids.size)
    return zscore(surprise.astype(np.float64))


def tokens_to_words(
    values: np.ndarray, token_word: np.ndarray, n_words: int, how: str
) -> np.ndarray:
    """(n_words,) pooled token values (mean or first sub-token); 0 for words without tokens."""
    ok = token_word >= 0
    tw = token_word[ok]
    v = values[ok].astype(np.float64)
    if how == "first":
        out = np.zeros(n_words, dtype=np.float64)
        uniq, first = np.unique(tw, return_index=True)
        out[uniq] = v[first]
        return out.astype(np.float32)
    sums = np.bincount(tw, weights=v, minlength=n_words)
    cnt = np.bincount(tw, minlength=n_words)
    return (sums / np.maximum(cnt, 1)).astype(np.float32)


def transform(z: np.ndarray, how: str, clip: float) -> np.ndarray:
    """g(z) of the fused score ``p + alpha * g(z)``, after clipping |z| to ``clip``."""
    zc = np.clip(z, -clip, clip)
    if how == "relu":
        return np.maximum(zc, 0.0)
    if how == "sigmoid":
        return 1.0 / (1.0 + np.exp(-zc))
    return zc


def fuse(p: np.ndarray, z: np.ndarray, cfg: CompressionConfig) -> np.ndarray:
    """(n_words,) float32 ``p + alpha * g(z)`` with the config's alpha, g and clip."""
    g = transform(z, cfg.outlier_transform, cfg.outlier_clip)
    return (p + cfg.outlier_alpha * g).astype(np.float32)


def word_scores(
    p_tok: np.ndarray,
    z_tok: np.ndarray,
    input_ids: np.ndarray,
    token_word: np.ndarray,
    n_words: int,
    cfg: CompressionConfig,
    log_freq: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_words,) keep-prob, outlier z and fused score of one context from its token scores.

    ``p_tok``/``z_tok``/``input_ids``/``token_word`` are (n_tokens,); ``z_tok`` is the hidden
    variant's Z-score, replaced by :func:`rarity_z` when ``cfg.outlier_variant == "rarity"``.
    """
    p = tokens_to_words(p_tok, token_word, n_words, cfg.token_to_word)
    zt = z_tok if cfg.outlier_variant == "hidden" else rarity_z(input_ids, log_freq)
    z = tokens_to_words(zt, token_word, n_words, "mean")
    return p, z, fuse(p, z, cfg)
