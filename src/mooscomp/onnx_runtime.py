"""Old import path of :mod:`mooscomp.exporters.onnx` (kept as a re-export)."""

from mooscomp.exporters.onnx import (  # noqa: F401
    BACKENDS,
    INPUT_NAMES,
    OUTPUT_NAMES,
    OnnxOptions,
    OnnxScorer,
    check_backend,
    default_cache_dir,
    export_onnx,
    onnx_available,
    onnx_compressor,
    select_scorer,
)

__all__ = [
    "BACKENDS", "INPUT_NAMES", "OUTPUT_NAMES", "OnnxOptions", "OnnxScorer", "check_backend",
    "default_cache_dir", "export_onnx", "onnx_available", "onnx_compressor", "select_scorer",
]
