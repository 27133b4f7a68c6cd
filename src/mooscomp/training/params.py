"""What trains and how: trainable layers, optimiser groups, the LR schedule, per-epoch seeds."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import torch
from torch import nn

from mooscomp.modeling import HEAD_PREFIXES, TokenCompressorModel


def autocast(dev: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (speed, no loss scaling needed); plain fp32 elsewhere."""
    if dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encoder_layer_prefixes(model: TokenCompressorModel) -> list[str]:
    """Parameter-name prefixes of the encoder's transformer layers, bottom to top."""
    n = int(getattr(model.encoder.config, "num_hidden_layers", 0))
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and n > 0:
            return [f"{name}.{i}." for i in range(n)]
    raise ValueError("cannot find the encoder's layer list (expected an nn.ModuleList of num_hidden_layers)")


def select_trainable(model: TokenCompressorModel, top: int | None) -> list[str] | None:
    """Freeze all but the top layers + head; returns their prefixes (None = all trainable)."""
    if top is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return None
    layers = encoder_layer_prefixes(model)
    if top > len(layers):
        raise ValueError(
            f"TrainConfig.trainable_top_layers must be <= the encoder's {len(layers)} layers, got {top}"
        )
    prefixes = layers[len(layers) - top :]
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(HEAD_PREFIXES) or any(name.startswith(x) for x in prefixes))
    return prefixes


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters being trained (what checkpoints and best-epoch restores hold)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch's shuffling and dropout, so a resumed run replays the epochs it missed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}".encode()).digest()[:6], "little")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def param_groups(
    model: nn.Module, weight_decay: float, *, lr: float | None = None, shape_lr_scale: float = 1.0
) -> list[dict[str, Any]]:
    """No decay for biases and LayerNorm weights (standard BERT fine-tuning).

    The word-shape logit table (zero-initialised, no decay) learns at ``lr * shape_lr_scale``:
    Adam moves a parameter by about lr per step, so at a fine-tuning lr of 1e-4 the table
    would need tens of thousands of steps to reach logit offsets of a few units.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    shape: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("shape_bias."):
            shape.append(p)
            continue
        (no_decay if p.dim() < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if shape:
        if lr is None:
            raise ValueError("param_groups needs lr when the model has a word-shape table")
        groups.append({"params": shape, "weight_decay": 0.0, "lr": lr * shape_lr_scale})
    return groups
