"""ONNX export and an onnxruntime forward backend (optional int8 dynamic quantisation).

The exported graph takes a padded batch (``input_ids``, ``attention_mask``, ``valid``) and returns
per token the keep-probability and the hidden-deviation Z-score, exactly what the torch path
computes (:class:`mooscomp.scoring.TorchScorer`), so the rest of the pipeline (alignment, word
pooling, selection) is shared. Needs the ``onnx`` extra (``onnx``, ``onnxruntime``).

Exported graphs are cached by a key over everything that changes their bytes or outputs: the
weights, the options, the torch/onnxruntime versions, ``mooscomp.__version__`` and
:data:`mooscomp.outliers.FORMULA_VERSION` (a changed formula is re-exported, never served stale).

Example:
    >>> from mooscomp.exporters.onnx import OnnxOptions, onnx_compressor
    >>> fast = onnx_compressor(comp, options=OnnxOptions(quantize=True))
    >>> fast.compress(text, rate=0.33).text
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mooscomp import outliers

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "valid")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
OUTPUT_NAMES = ("keep_prob", "outlier_z")


@dataclass(frozen=True)
class OnnxOptions:
    """How the ONNX backend is built and run.

    Attributes:
        quantize: int8 dynamic quantisation of the encoder's matrix multiplications (the keep/drop
            head stays fp32).
        optimize: fuse attention/GELU/LayerNorm with onnxruntime's transformer optimiser.
        threads: intra-op threads of the session; None = onnxruntime's default (all cores).
        opset: ONNX opset of the export.
    """

    quantize: bool = False
    optimize: bool = True
    threads: int | None = None
    opset: int = 17

    def __post_init__(self) -> None:
        for name in ("quantize", "optimize"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ValueError(f"threads must be a positive int or None, got {self.threads!r}")
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not 14 <= self.opset <= 21:
            raise ValueError(f"opset must be an int in [14, 21], got {self.opset!r}")


class _ScoringGraph(nn.Module):
    """(input_ids, attention_mask, valid) -> (keep_prob, outlier_z), each (batch, width)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.model(input_ids, attention_mask)
        probs = torch.softmax(o.logits.float(), dim=-1)[..., 1]
        z = outliers.hidden_deviation_z(o.last_hidden.float(), valid)
        return probs, z


def export_onnx(
    model: Any, path: str | Path, *, options: OnnxOptions | None = None
) -> Path:
    """Export a :class:`~mooscomp.modeling.TokenCompressorModel` (or a Compressor's model) to ONNX.

    With ``options.optimize`` the graph is fused for CPU; with ``options.quantize`` it is then
    quantised to int8 (dynamic, per-channel weights). Returns ``path``.
    """
    opts = options or OnnxOptions()
    model = getattr(model, "model", model)  # a Compressor
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _ScoringGraph(copy.deepcopy(model).float().cpu().eval())
    _eager_attention(graph.model)
    ids = torch.full((2, 16), 100, dtype=torch.long)
    attn = torch.ones((2, 16), dtype=torch.long)
    valid = torch.ones((2, 16), dtype=torch.bool)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
            torch.onnx.export(
                graph,
                (ids, attn, valid),
                str(raw),
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={n: {0: "batch", 1: "width"} for n in INPUT_NAMES + OUTPUT_NAMES},
                opset_version=opts.opset,
                do_constant_folding=True,
                dynamo=False,
            )
        cur = raw
        if opts.optimize:
            cur = _optimize(raw, Path(tmp) / "opt.onnx", model)
        if opts.quantize:
            _quantize(cur, path)
        else:
            import onnx

            onnx.save(onnx.load(str(cur)), str(path))
    return path


def _eager_attention(model: nn.Module) -> None:
    # SDPA masks are traced awkwardly by the exporter; the eager path exports cleanly.
    cfg = getattr(getattr(model, "encoder", None), "config", None)
    if cfg is not None:
        with contextlib.suppress(Exception):  # other transformers versions: keep the default
            cfg._attn_implementation = "eager"


def _optimize(src: Path, dst: Path, model: Any) -> Path:
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:  # pragma: no cover - optimiser missing from this onnxruntime build
        return src
    cfg = model.encoder.config
    opt = optimize_model(
        str(src),
        model_type="bert",
        num_heads=int(cfg.num_attention_heads),
        hidden_size=int(cfg.hidden_size),
        opt_level=1,
    )
    opt.save_model_to_file(str(dst))
    return dst


def _quantize(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m = onnx.load(str(src))
    # The head (last MatMul feeding the logits) stays fp32: it decides the keep/drop ranking.
    head = [n.name for n in m.graph.node if n.op_type in ("MatMul", "Gemm")][-1:]
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=head,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


class OnnxScorer:
    """A :class:`mooscomp.scoring.Scorer` that runs an exported graph with onnxruntime."""

    def __init__(self, path: str | Path, *, options: OnnxOptions | None = None) -> None:
        import onnxruntime as ort

        self.options = options or OnnxOptions()
        self.path = Path(path)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.threads is not None:
            so.intra_op_num_threads = self.options.threads
        so.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(self.path), sess_options=so, providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in self.session.get_inputs()]
        if sorted(names) != sorted(INPUT_NAMES):
            raise ValueError(f"{self.path} is not a mooscomp scoring graph (inputs {names})")

    @property
    def name(self) -> str:
        """The runtime as ``Compressor.backend`` and the service's /healthz report it."""
        return "onnx-int8" if self.options.quantize else "onnx"

    def forward_batch(
        self, ids: np.ndarray, attn: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        p, z = self.session.run(
            list(OUTPUT_NAMES),
            {
                "input_ids": ids.astype(np.int64, copy=False),
                "attention_mask": attn.astype(np.int64),
                "valid": valid.astype(bool, copy=False),
            },
        )
        return np.asarray(p, dtype=np.float32), np.asarray(z, dtype=np.float32)

    def __deepcopy__(self, memo: dict[int, Any]) -> OnnxScorer:
        return OnnxScorer(self.path, options=self.options)  # sessions cannot be copied

    @classmethod
    def from_model(
        cls,
        model: Any,
        *,
        options: OnnxOptions | None = None,
        cache_dir: str | Path | None = None,
    ) -> OnnxScorer:
        """Export ``model`` (cached by a hash of its weights and the options) and load it."""
        opts = options or OnnxOptions()
        model = getattr(model, "model", model)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = root / f"{_fingerprint(model, opts)}.onnx"
        if not path.is_file():
            tmp = path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp")
            logger.info("exporting the model to ONNX for the CPU runtime (once; cached in %s)", root)
            export_onnx(model, tmp, options=opts)
            tmp.replace(path)  # atomic: concurrent exporters never see a partial file
        return cls(path, options=opts)


def onnx_compressor(
    compressor: Any,
    *,
    options: OnnxOptions | None = None,
    cache_dir: str | Path | None = None,
) -> Any:
    """A copy of ``compressor`` (sharing its model and tokenizer) that scores with onnxruntime."""
    scorer = OnnxScorer.from_model(compressor.model, options=options, cache_dir=cache_dir)
    fast = copy.copy(compressor)
    fast.scorer = scorer
    return fast


def default_cache_dir() -> Path:
    """Where exported graphs are kept: ``$MOOSCOMP_CACHE``, else ``$XDG_CACHE_HOME/mooscomp``
    (``~/.cache/mooscomp``), each with an ``onnx/`` folder."""
    root = os.environ.get("MOOSCOMP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mooscomp"
    )
    return Path(root) / "onnx"


def onnx_available() -> bool:
    """True when both ``onnx`` (export) and ``onnxruntime`` (inference) import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def check_backend(backend: str, device: str | torch.device) -> None:
    """Raise ValueError for a backend name that does not exist or cannot run on ``device``
    (callers check this before loading a model)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend.startswith("onnx") and torch.device(device).type != "cpu":
        raise ValueError(f"backend={backend!r} runs on the CPU only, got device={str(device)!r}")


def select_scorer(
    model: Any,
    *,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
) -> OnnxScorer | None:
    """The forward backend for ``model`` on ``device``; None means the torch model itself.

    ``"auto"``: onnxruntime fp32 on a CPU when it is installed (the same kept words as torch,
    measured 1.2-1.6x faster on 2 cores: reports/speed_cpu.json), torch on a GPU or when the
    export fails (logged). ``"onnx"``: onnxruntime, errors raised. ``"onnx-int8"``: the same
    with int8 dynamic quantisation (close to, not equal to, the fp32 kept words). ``"torch"``:
    always torch.
    The graph is exported once per weights (cached under :func:`default_cache_dir`); the session
    uses as many threads as torch does when it is made (``torch.get_num_threads()``).
    """
    check_backend(backend, device)
    on_cpu = torch.device(device).type == "cpu"
    if backend == "torch" or (backend == "auto" and not (on_cpu and onnx_available())):
        return None
    if not onnx_available():
        raise ValueError(f"backend={backend!r} needs onnx and onnxruntime: bash scripts/setup.sh (or pip install -e .) in the checkout")
    opts = OnnxOptions(quantize=backend == "onnx-int8", threads=torch.get_num_threads())
    try:
        return OnnxScorer.from_model(model, options=opts, cache_dir=cache_dir)
    except Exception as e:
        if backend != "auto":  # asked for explicitly: the error is the caller's to see
            raise
        # auto: a failed export must not stop compression
        logger.warning("onnxruntime backend unavailable (%s: %s); using torch", type(e).__name__, e)
        return None


def _fingerprint(model: nn.Module, opts: OnnxOptions) -> str:
    """Cache key: everything that changes the graph's bytes or outputs (threads do not)."""
    import onnxruntime

    import mooscomp

    h = hashlib.sha256()
    h.update(json.dumps({**asdict(opts), "threads": None, "torch": torch.__version__,
                         "onnxruntime": onnxruntime.__version__, "mooscomp": mooscomp.__version__,
                         "formula": outliers.FORMULA_VERSION}).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]
