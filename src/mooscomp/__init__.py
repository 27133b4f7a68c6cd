"""mooscomp: MOOSComp prompt compression (token classification + anti-over-smoothing + outlier scores).

Importing the package is cheap: torch and transformers load on first use of the classes below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["CompressionConfig", "CompressionResult", "Compressor", "Request", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.compressor import Compressor
    from mooscomp.config import CompressionConfig, Request
    from mooscomp.result import CompressionResult

_LAZY = {
    "Compressor": "mooscomp.compressor",
    "CompressionConfig": "mooscomp.config",
    "Request": "mooscomp.config",
    "CompressionResult": "mooscomp.result",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mooscomp' has no attribute {name!r}")
