"""The base sentence encoder (all-MiniLM-L6-v2, mean pooling) as an onnxruntime int8 graph.

The question path ranks sentences by their cosine to the question. The shipped model fine-tunes
every encoder layer, so relevance needs its own pass over the text; run through torch fp32 that
pass cost more than the whole task-agnostic call. This graph runs it at the task-agnostic path's
speed: the same export, operator fusion and dynamic int8 quantisation as the scoring graph
(:mod:`mooscomp.exporters.onnx`), cached in the same folder under its own ``sentence-`` key (the
scoring graphs' keys are unchanged). Its output is the L2-normalised mean of the last layer over
the attended tokens, as sentence-transformers computes it.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SENTENCE_INPUTS = ("input_ids", "attention_mask")
SENTENCE_OUTPUT = "embedding"
# cache key: change with _SentenceGraph or the quantisation below
SENTENCE_RECIPE = "sentence-v1:mean-pool-l2:dynamic-per-channel:MatMul+Attention"


class OnnxSentenceEncoder:
    """An exported sentence graph in an onnxruntime session: ids -> (batch, dim) unit vectors."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(
            str(path), sess_options=so, providers=["CPUExecutionProvider"]
        )

    def embed_batch(self, ids: np.ndarray, attn: np.ndarray) -> np.ndarray:
        """(batch, width) ids and bool mask -> (batch, dim) float32 unit embeddings."""
        (out,) = self.session.run(
            [SENTENCE_OUTPUT],
            {
                "input_ids": ids.astype(np.int64, copy=False),
                "attention_mask": attn.astype(bool, copy=False),
            },
        )
        return np.asarray(out, np.float32)

    @classmethod
    def from_encoder(
        cls,
        encoder: Any,
        *,
        layers: int | None = None,
        quantize: bool = True,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> OnnxSentenceEncoder:
        """Export ``encoder`` (a transformers BertModel; its first ``layers`` layers, None = all)
        once per weights and options, then load it."""
        from mooscomp.exporters.onnx import default_cache_dir

        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = root / f"sentence-{fingerprint(encoder, layers=layers, quantize=quantize)}.onnx"
        if not path.is_file():
            root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            logger.info("exporting the sentence encoder to ONNX (once; cached in %s)", root)
            export_sentence(encoder, tmp, layers=layers, quantize=quantize)
            tmp.replace(path)  # atomic: concurrent exporters never see a partial file
        return cls(path, threads=threads)


def fingerprint(encoder: Any, *, layers: int | None, quantize: bool) -> str:
    """Cache key: recipe, options, runtime versions and every weight's bytes."""
    from mooscomp.exporters._torch_export import weights_fingerprint
    from mooscomp.exporters.onnx import runtime_versions

    header = {"recipe": SENTENCE_RECIPE, "layers": layers, "quantize": quantize, **runtime_versions()}
    return weights_fingerprint(encoder, header)


def export_sentence(
    encoder: Any, path: str | Path, *, layers: int | None = None, quantize: bool = True
) -> Path:
    """Trace the mean-pooling sentence graph of ``encoder`` to ``path`` (fused; int8 if asked),
    through the scoring graph's export steps (every MatMul/Attention quantised: no head here)."""
    import torch
    from torch import nn

    from mooscomp.exporters._torch_export import (
        eager_attention,
        finish_graph,
        optimize_bert,
        trace_onnx,
    )

    enc = copy.deepcopy(encoder).float().cpu().eval()
    if layers is not None:
        enc.encoder.layer = nn.ModuleList(list(enc.encoder.layer)[: max(1, int(layers))])
        enc.config.num_hidden_layers = len(enc.encoder.layer)
    eager_attention(enc.config)
    ids = torch.full((2, 16), 100, dtype=torch.long)
    attn = torch.ones((2, 16), dtype=torch.bool)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = trace_onnx(
            _SentenceGraph(enc), (ids, attn), Path(tmp) / "raw.onnx",
            input_names=SENTENCE_INPUTS, output_names=(SENTENCE_OUTPUT,),
            dynamic_axes={"input_ids": {0: "batch", 1: "width"},
                          "attention_mask": {0: "batch", 1: "width"}, SENTENCE_OUTPUT: {0: "batch"}},
            opset=17,
        )
        cur = optimize_bert(raw, Path(tmp) / "opt.onnx", enc.config)
        finish_graph(cur, path, fp32_tail=0 if quantize else None)
    return path


def _sentence_graph_cls() -> Any:
    from torch import nn

    class SentenceGraph(nn.Module):
        """(input_ids, attention_mask) -> (batch, dim) L2-normalised mean of the last layer."""

        def __init__(self, encoder: nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            import torch

            h = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask.long()
            ).last_hidden_state
            m = attention_mask.to(h.dtype)[..., None]  # (batch, width, 1)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (batch, dim)
            return pooled / torch.linalg.vector_norm(pooled, dim=-1, keepdim=True).clamp(min=1e-12)

    return SentenceGraph


def _SentenceGraph(encoder: Any) -> Any:  # noqa: N802 - a factory that reads as the class
    return _sentence_graph_cls()(encoder)
