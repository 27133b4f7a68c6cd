"""Validation metrics of a token compressor: keep-class P/R/F1, accuracy, CE, S^l per layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mooscomp.losses import IGNORE_INDEX, layerwise_interclass_cosine
from mooscomp.modeling import TokenCompressorModel
from mooscomp.training.data import collate, make_batches
from mooscomp.training.params import autocast


@torch.no_grad()
def evaluate(
    model: TokenCompressorModel,
    examples: Sequence[tuple[np.ndarray, ...]],
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Token-level keep-class precision/recall/F1, accuracy, CE and S^l of every layer.

    ``layer_cos[0]`` is the embedding output, ``layer_cos[-1]`` the last layer (the one the loss
    acts on). Averages are over sequences that have both classes.
    """
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    tp = fp = fn = correct = total = 0
    ce_sum = 0.0
    cos_sum: torch.Tensor | None = None
    cos_n = 0
    try:
        for idx in make_batches([len(x[0]) for x in examples], batch_size, generator=None):
            batch = {k: v.to(dev) for k, v in collate([examples[j] for j in idx], pad_id=pad_id).items()}
            with autocast(dev):
                out = model(batch["input_ids"], batch["attention_mask"], output_hidden_states=True,
                            shape_ids=batch["shape_ids"])
            y = batch["labels"]  # (B, L)
            m = y != IGNORE_INDEX
            logits = out.logits.float()  # (B, L, 2)
            pred = logits.argmax(-1)  # (B, L)
            tp += int(((pred == 1) & (y == 1) & m).sum())
            fp += int(((pred == 1) & (y == 0) & m).sum())
            fn += int(((pred == 0) & (y == 1) & m).sum())
            correct += int(((pred == y) & m).sum())
            total += int(m.sum())
            ce_sum += float(nn.functional.cross_entropy(logits[m], y[m], reduction="sum"))
            assert out.hidden_states is not None
            sums, n = layerwise_interclass_cosine(out.hidden_states, y)
            cos_sum = sums.cpu() if cos_sum is None else cos_sum + sums.cpu()
            cos_n += n
    finally:
        model.train(was_training)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    layer_cos = (cos_sum / cos_n).tolist() if cos_sum is not None and cos_n else []
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": correct / total if total else 0.0,
        "ce": ce_sum / total if total else 0.0,
        "gold_keep_rate": (tp + fn) / total if total else 0.0,
        "pred_keep_rate": (tp + fp) / total if total else 0.0,
        "n_tokens": total,
        "n_sequences": len(examples),
        "layer_cos": layer_cos,
        "last_layer_cos": layer_cos[-1] if layer_cos else None,
    }
