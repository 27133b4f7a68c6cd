"""Training objective of MOOSComp: token cross-entropy + beta * inter-class cosine similarity.

The similarity term of the MOOSComp paper penalises keep and drop tokens whose last-layer
representations point the same way, which is how over-smoothing shows up in deep encoders.
For one sequence with gold keep set P and drop set D,

    S = 1/(|P||D|) * sum_{i in P} sum_{j in D} cos(h_i, h_j) = mean_P(u_i) . mean_D(u_j),

with u = h / ||h||; the right-hand side is the exact O(n*d) form used here (no n x n matrix).
Tokens labelled -100 (special tokens, padding, tokens outside every word) are ignored; a
sequence with an empty class contributes nothing; the loss is the mean over contributing
sequences (not over the pooled batch, which would be a different estimator).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100
_EPS = 1e-8


def sequence_interclass_cosine(
    hidden: torch.Tensor,  # (batch, seq_len, hidden)
    labels: torch.Tensor,  # (batch, seq_len) in {0, 1, -100}
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence S and whether each sequence has both classes.

    Returns ``(s, valid)``: (batch,) float32 similarities (0 where not valid) and (batch,) bool.
    Zero vectors normalise to zero (they add 0 to the sum instead of NaN).
    """
    if hidden.dim() != 3 or labels.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden must be (batch, seq_len, hidden) and labels (batch, seq_len); got "
            f"{tuple(hidden.shape)} and {tuple(labels.shape)}"
        )
    u = F.normalize(hidden.float(), dim=-1, eps=_EPS)  # (B, L, D)
    keep = (labels == 1).to(u.dtype)  # (B, L)
    drop = (labels == 0).to(u.dtype)  # (B, L)
    n_keep = keep.sum(dim=1)  # (B,)
    n_drop = drop.sum(dim=1)  # (B,)
    mean_keep = torch.einsum("bl,bld->bd", keep, u) / n_keep.clamp_min(1.0).unsqueeze(-1)  # (B, D)
    mean_drop = torch.einsum("bl,bld->bd", drop, u) / n_drop.clamp_min(1.0).unsqueeze(-1)  # (B, D)
    valid = (n_keep > 0) & (n_drop > 0)  # (B,)
    s = (mean_keep * mean_drop).sum(dim=-1) * valid.to(u.dtype)  # (B,)
    return s, valid


def interclass_cosine(
    hidden: torch.Tensor,  # (batch, seq_len, hidden)
    labels: torch.Tensor,  # (batch, seq_len)
) -> torch.Tensor:
    """L_CS: mean of S over sequences that have both classes; 0 (graph-free) when none has."""
    s, valid = sequence_interclass_cosine(hidden, labels)
    n = valid.sum()
    if int(n) == 0:
        return torch.zeros((), device=hidden.device, dtype=torch.float32)
    return s.sum() / n


def layerwise_interclass_cosine(
    hidden_states: Sequence[torch.Tensor],  # n_layers x (batch, seq_len, hidden)
    labels: torch.Tensor,  # (batch, seq_len)
) -> tuple[torch.Tensor, int]:
    """Diagnostic S^l for every layer (embeddings first): sums over valid sequences and their count.

    Returns ``(sums, count)`` with sums (n_layers,) so callers can accumulate over batches and
    divide once; ``sums / count`` is the per-layer mean.
    """
    sums = []
    valid = torch.zeros(labels.shape[0], dtype=torch.bool)
    for h in hidden_states:
        s, valid = sequence_interclass_cosine(h, labels)
        sums.append(s.sum())
    return torch.stack(sums).detach(), int(valid.sum())


def token_cross_entropy(
    logits: torch.Tensor,  # (batch, seq_len, 2)
    labels: torch.Tensor,  # (batch, seq_len)
) -> torch.Tensor:
    """Mean CE over labelled tokens (LLMLingua-2 Eq. 7); 0 when no token is labelled."""
    flat = labels.reshape(-1)
    if not bool((flat != IGNORE_INDEX).any()):
        return logits.sum().float() * 0.0
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), flat, ignore_index=IGNORE_INDEX
    )


def moos_loss(
    logits: torch.Tensor,  # (batch, seq_len, 2)
    hidden: torch.Tensor,  # (batch, seq_len, hidden) last layer, input of the head
    labels: torch.Tensor,  # (batch, seq_len)
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, ce, cs)`` with total = CE + beta * L_CS. beta = 0 is plain LLMLingua-2."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    ce = token_cross_entropy(logits, labels)
    cs = interclass_cosine(hidden, labels)
    total = ce + beta * cs if beta > 0 else ce
    return total, ce, cs


class MoosLoss(nn.Module):
    """Module form of :func:`moos_loss` with a fixed beta."""

    def __init__(self, beta: float = 0.0) -> None:
        super().__init__()
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def forward(
        self, logits: torch.Tensor, hidden: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return moos_loss(logits, hidden, labels, self.beta)
