"""The shared-layer forward of the question path's ``"shared"`` / ``"independent"`` modes.

A compressor model whose bottom layers equal the base sentence encoder's can run them once: above
them the fine-tuned layers + head give keep-probabilities and outlier Z-scores, and a copy of the
base's top layers gives the states pooled into sentence embeddings (:class:`SharedEncoder`, its
onnxruntime export :class:`OnnxSharedEncoder`, and :func:`score_and_embed` over chunks). The
default ``"sentences"`` mode needs none of this (:class:`mooscomp.relevance.SentenceEncoder`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from mooscomp.relevance import SentenceEncoder
from mooscomp.scoring import hidden_deviation_z


def _additive_mask(attn: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, width) bool -> (batch, 1, 1, width) additive attention mask."""
    return torch.where(attn, 0.0, torch.finfo(dtype).min).to(dtype)[:, None, None, :]


def shared_layers(model: Any, base_encoder: Any) -> int:
    """How many bottom layers of ``model``'s encoder (embeddings included) equal the base's."""
    if not _same_prefix(model, base_encoder, "embeddings."):
        return 0
    n = 0
    while n < len(model.encoder.encoder.layer) and _same_prefix(model, base_encoder, f"encoder.layer.{n}."):
        n += 1
    return n


def _same_prefix(model: Any, base_encoder: Any, prefix: str) -> bool:
    own = model.encoder.state_dict()
    base = base_encoder.state_dict()
    keys = [k for k in base if k.startswith(prefix)]
    return bool(keys) and all(k in own and torch.equal(own[k].float(), base[k].float()) for k in keys)


class SharedEncoder(nn.Module):
    """Compressor forward that also yields base-encoder states for relevance.

    Layers below ``n_shared`` run once; above it the fine-tuned layers + head give keep
    probabilities and outlier Z-scores (exactly :func:`mooscomp.scoring._forward`'s outputs) and a
    copy of the base layers gives the states that are pooled into sentence embeddings.
    """

    def __init__(self, model: Any, base_top: nn.ModuleList, n_shared: int) -> None:
        super().__init__()
        self.model = model
        self.base_top = base_top
        self.n_shared = n_shared

    @classmethod
    def from_model(
        cls, model: Any, base_encoder: Any | None = None, *, top_layers: int | None = None
    ) -> SharedEncoder:
        """Share what the compressor model and the base encoder have in common (checked).

        ``top_layers``: how many base layers above the shared ones feed the relevance states
        (None = all, as sentence-transformers does; fewer = cheaper; quality of fewer not measured yet).
        """
        if not isinstance(model, nn.Module) and hasattr(model, "load"):
            model = model.load()  # the warm path's stand-in: its weights must be the module's to export
        if base_encoder is None:
            base_encoder = SentenceEncoder.from_base().encoder
        n = shared_layers(model, base_encoder)
        if n == 0 and not _same_prefix(model, base_encoder, "embeddings."):
            raise ValueError("the compressor's embeddings differ from the base encoder's: nothing to share")
        # n == 0: a model fine-tuned in every layer shares only the embeddings (relevance then
        # costs a second pass through all base layers)
        device = next(model.parameters()).device
        layers = base_encoder.encoder.layer[n:]
        if top_layers is not None:
            layers = layers[: max(0, int(top_layers))]
        top = copy.deepcopy(nn.ModuleList(layers)).to(device).eval()
        return cls(model.eval(), top, n)

    @property
    def hidden_size(self) -> int:
        return int(self.model.encoder.config.hidden_size)

    def forward(
        self, input_ids: torch.Tensor, attn: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch, width) ids / bool masks -> p, z (batch, width) and base-top states (batch, width, dim)."""
        enc = self.model.encoder
        h = enc.embeddings(input_ids=input_ids)  # (batch, width, dim)
        ext = _additive_mask(attn, h.dtype)
        layers = enc.encoder.layer
        for layer in layers[: self.n_shared]:
            h = layer(h, ext)
        ft = h
        for layer in layers[self.n_shared :]:
            ft = layer(ft, ext)
        rel = h
        for layer in self.base_top:
            rel = layer(rel, ext)
        probs = torch.softmax(self.model.head(ft).float(), dim=-1)[..., 1]  # (batch, width)
        return probs, hidden_deviation_z(ft.float(), valid), rel.float()

    @torch.inference_mode()
    def forward_batch(
        self, ids: np.ndarray, attn: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(batch, width) p and z, and (batch, width, dim) base-top states (numpy in and out)."""
        device = next(self.model.parameters()).device
        p, z, rel = self(torch.from_numpy(ids).to(device), torch.from_numpy(attn).to(device),
                         torch.from_numpy(valid).to(device))
        return p.cpu().numpy().astype(np.float32), z.cpu().numpy().astype(np.float32), rel.cpu().numpy()


class OnnxSharedEncoder:
    """:class:`SharedEncoder` exported to ONNX and run by onnxruntime (the CPU default).

    The graph is cached under :func:`mooscomp.onnx_runtime.default_cache_dir` by a hash of the
    weights, as the task-agnostic scoring graph is.
    """

    def __init__(self, path: str | Path, *, hidden_size: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        self.hidden_size = hidden_size

    @classmethod
    def from_shared(cls, shared: SharedEncoder, *, cache_dir: str | Path | None = None) -> OnnxSharedEncoder:
        from mooscomp.onnx_runtime import default_cache_dir

        h = hashlib.sha256(f"dual-v2:{torch.__version__}:{len(shared.base_top)}".encode())
        for name, t in sorted(shared.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = root / f"shared-{h.hexdigest()[:24]}.onnx"
        if not path.is_file():
            root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            export_shared(shared, tmp)
            tmp.replace(path)  # atomic: concurrent exporters never see a partial file
        return cls(path, hidden_size=shared.hidden_size, threads=torch.get_num_threads())

    def forward_batch(
        self, ids: np.ndarray, attn: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, z, rel = self.session.run(
            ["keep_prob", "outlier_z", "states"],
            {"input_ids": ids.astype(np.int64, copy=False), "attention_mask": attn.astype(bool, copy=False),
             "valid": valid.astype(bool, copy=False)},
        )
        return np.asarray(p, np.float32), np.asarray(z, np.float32), np.asarray(rel, np.float32)


def export_shared(shared: SharedEncoder, path: str | Path) -> Path:
    """Export a CPU fp32 copy of ``shared`` (eager attention: it traces cleanly) to ONNX."""
    graph = copy.deepcopy(shared).float().cpu().eval()
    for m in graph.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            with contextlib.suppress(Exception):
                cfg._attn_implementation = "eager"
    ids = torch.full((2, 16), 100, dtype=torch.long)
    attn = torch.ones((2, 16), dtype=torch.bool)
    names = ["input_ids", "attention_mask", "valid", "keep_prob", "outlier_z", "states"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
        torch.onnx.export(graph, (ids, attn, attn.clone()), str(path), input_names=names[:3],
                          output_names=names[3:], dynamic_axes={n: {0: "batch", 1: "width"} for n in names},
                          opset_version=17, do_constant_folding=True, dynamo=False)
    with contextlib.suppress(ImportError):  # fuse attention/GELU/LayerNorm as the scoring graph does
        from onnxruntime.transformers.optimizer import optimize_model

        cfg = shared.model.encoder.config
        opt = optimize_model(str(path), model_type="bert", num_heads=int(cfg.num_attention_heads),
                             hidden_size=int(cfg.hidden_size), opt_level=1)
        opt.save_model_to_file(str(path))
    return Path(path)


class DualScorer(Protocol):
    """A forward that yields keep-probabilities, outlier Z-scores and relevance states."""

    @property
    def hidden_size(self) -> int: ...

    def forward_batch(
        self, ids: np.ndarray, attn: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def score_and_embed(
    shared: DualScorer,
    chunks: Sequence[np.ndarray],
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    max_batch_tokens: int = 1028,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(p, z, states) per chunk of token ids (no specials): (n,), (n,), (n, dim)."""
    lengths = np.asarray([c.shape[0] for c in chunks], dtype=np.int64)
    dim = int(shared.hidden_size)
    empty = (np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros((0, dim), np.float32))
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [empty] * len(chunks)
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    i = 0
    while i < order.size:
        width = int(lengths[order[i]]) + 2
        batch = order[i : i + max(1, max_batch_tokens // width)]
        i += batch.size
        ids = np.full((batch.size, width), pad_id, dtype=np.int64)  # (batch, width)
        attn = np.zeros((batch.size, width), dtype=bool)
        valid = np.zeros((batch.size, width), dtype=bool)
        for r, ci in enumerate(batch.tolist()):
            n = int(lengths[ci])
            ids[r, 0], ids[r, 1 : n + 1], ids[r, n + 1] = cls_id, chunks[ci], sep_id
            attn[r, : n + 2] = True
            valid[r, 1 : n + 1] = True
        p, z, st = shared.forward_batch(ids, attn, valid)
        for r, ci in enumerate(batch.tolist()):
            n = int(lengths[ci])
            out[ci] = (p[r, 1 : n + 1], z[r, 1 : n + 1], st[r, 1 : n + 1])
    return out
