"""ONNX export and an onnxruntime forward backend (optional int8 dynamic quantisation).

The exported graph takes a padded batch (``input_ids``, ``attention_mask``, ``valid``) and returns
per token the keep-probability and the hidden-deviation Z-score, exactly what the torch path
computes (:class:`mooscomp.scoring.TorchScorer`), so the rest of the pipeline (alignment, word
pooling, selection) is shared. Needs the ``onnx`` extra (``onnx``, ``onnxruntime``).

Exported graphs are cached by a key over everything that changes their bytes or outputs: the
weights, the options, the torch/transformers/onnx/onnxruntime versions, ``mooscomp.__version__``
and :data:`mooscomp.outliers.FORMULA_VERSION` (a changed formula is re-exported, never served
stale). A model loaded from a directory is keyed by its files instead of its tensors
(:mod:`mooscomp.exporters.fast_load`), so a cached graph loads without torch. This module imports
torch only to export (:mod:`mooscomp.exporters._torch_export`).

Example:
    >>> from mooscomp.exporters.onnx import OnnxOptions, onnx_compressor
    >>> fast = onnx_compressor(comp, options=OnnxOptions(quantize=True))
    >>> fast.compress(text, rate=0.33).text
"""

from __future__ import annotations

import copy
import importlib.metadata
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp import outliers

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "valid")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
# What "auto" runs on a CPU: int8 keeps the fp32 reference's dev answer survival at 2x-5x
# (reports/cpu_runtime_quality.json) and is 1.4x faster; "onnx" stays the fp32 reference.
DEFAULT_CPU_BACKEND = "onnx-int8"
INT8_RECIPE = "dynamic-per-channel:MatMul+Attention:head-fp32"  # cache key: change with _quantize
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

    @classmethod
    def for_backend(cls, backend: str, *, threads: int | None = None) -> OnnxOptions:
        """The options of an ONNX backend name (``"onnx"``, ``"onnx-int8"``)."""
        return cls(quantize=backend == "onnx-int8", threads=threads)


def export_onnx(
    model: Any, path: str | Path, *, options: OnnxOptions | None = None
) -> Path:
    """Export a :class:`~mooscomp.modeling.TokenCompressorModel` (or a Compressor's model) to ONNX.

    With ``options.optimize`` the graph is fused for CPU; with ``options.quantize`` it is then
    quantised to int8 (dynamic, per-channel weights). Returns ``path``. Imports torch.
    """
    from mooscomp.exporters import _torch_export

    opts = options or OnnxOptions()
    model = getattr(model, "model", model)  # a Compressor
    return _torch_export.export(
        model, Path(path), opset=opts.opset, optimize=opts.optimize, quantize=opts.quantize
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

    @property
    def max_rows(self) -> int | None:
        """Most chunks per forward. Dynamic int8 scales each forward's activations by their
        min/max over the whole batch, so a chunk batched with others (or with their padding)
        can come out a few threshold words different: one chunk a forward keeps every chunk's
        scores, hence ``compress_batch``'s results, independent of what else is compressed (as
        fast on 2 cores: 1.04x at 8k, 0.97x at 32k tokens against two chunks a forward)."""
        return 1 if self.options.quantize else None

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
        key: str | None = None,
    ) -> OnnxScorer:
        """Export ``model`` (cached by ``key``, else a hash of its weights and the options) and
        load it."""
        opts = options or OnnxOptions()
        model = getattr(model, "model", model)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = root / f"{key or _fingerprint(model, opts)}.onnx"
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


def check_backend(backend: str, device: Any) -> None:
    """Raise ValueError for a backend name that does not exist or cannot run on ``device``
    (callers check this before loading a model). ``"cpu"`` is checked without importing torch."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend.startswith("onnx") and not is_cpu(device):
        raise ValueError(f"backend={backend!r} runs on the CPU only, got device={str(device)!r}")


def resolve_backend(backend: str) -> str:
    """The ONNX backend an ONNX-capable name runs on a CPU (``"auto"`` -> the default)."""
    return DEFAULT_CPU_BACKEND if backend == "auto" else backend


def is_cpu(device: Any) -> bool:
    """True for a CPU device (the plain string ``"cpu"`` needs no torch import)."""
    if isinstance(device, str) and device == "cpu":
        return True
    import torch

    return bool(torch.device(device).type == "cpu")


def select_scorer(
    model: Any,
    *,
    backend: str = "auto",
    device: Any = "cpu",
    cache_dir: str | Path | None = None,
    key: str | None = None,
) -> OnnxScorer | None:
    """The forward backend for ``model`` on ``device``; None means the torch model itself.

    ``"auto"``: :data:`DEFAULT_CPU_BACKEND` on a CPU when onnxruntime is installed, torch on a
    GPU or when the export fails (logged). ``"onnx-int8"``: onnxruntime with int8 dynamic
    quantisation of the encoder (not the same kept words as fp32, the same dev answer survival:
    reports/cpu_runtime_quality.json; faster: reports/speed_cpu.json). ``"onnx"``: onnxruntime
    fp32, the same kept words as torch (the reference). ``"torch"``: always torch.
    The graph is exported once per weights (cached under :func:`default_cache_dir` by ``key``,
    else by a hash of the weights); the session uses as many threads as torch does when it is
    made (``torch.get_num_threads()``).
    """
    check_backend(backend, device)
    if backend == "torch" or (backend == "auto" and not (is_cpu(device) and onnx_available())):
        return None
    if not onnx_available():
        raise ValueError(f"backend={backend!r} needs onnx and onnxruntime: bash scripts/setup.sh (or pip install -e .) in the checkout")
    from mooscomp.exporters._torch_export import num_threads

    opts = OnnxOptions.for_backend(resolve_backend(backend), threads=num_threads())
    try:
        return OnnxScorer.from_model(model, options=opts, cache_dir=cache_dir, key=key)
    except Exception as e:
        if backend != "auto":  # asked for explicitly: the error is the caller's to see
            raise
        # auto: a failed export must not stop compression
        logger.warning("onnxruntime backend unavailable (%s: %s); using torch", type(e).__name__, e)
        return None


def runtime_versions() -> dict[str, str]:
    """Versions that change an exported graph, read from package metadata (no imports)."""
    import mooscomp

    out = {"mooscomp": mooscomp.__version__, "formula": str(outliers.FORMULA_VERSION)}
    for name in ("torch", "transformers", "onnxruntime", "onnx"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def options_header(opts: OnnxOptions) -> dict[str, Any]:
    """The cache-key header of ``opts``: everything but the threads, plus the versions."""
    recipe = INT8_RECIPE if opts.quantize else None
    return {**asdict(opts), "threads": None, "int8_recipe": recipe, **runtime_versions()}


def _fingerprint(model: Any, opts: OnnxOptions) -> str:
    """Cache key of a model without a directory: options, versions and every weight's bytes."""
    from mooscomp.exporters._torch_export import weights_fingerprint

    return weights_fingerprint(model, options_header(opts))


def session_threads() -> int | None:
    """Threads for a session made without torch: torch's count when torch is loaded, else
    ``$OMP_NUM_THREADS``, else None (onnxruntime's default: the physical cores, as torch)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else None
