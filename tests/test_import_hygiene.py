"""``import mooscomp`` stays light: the heavy stacks load on first use, never at import
(the tiktoken pattern: a fresh interpreter, then a look at ``sys.modules``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "onnxruntime", "onnx", "fastapi", "ray", "spacy", "transformers")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_import_mooscomp_loads_no_heavy_stack() -> None:
    assert _loaded_after("import mooscomp; mooscomp.__version__") == []


@pytest.mark.parametrize(
    "module", ["mooscomp.config", "mooscomp.result", "mooscomp.outliers", "mooscomp.units",
               "mooscomp.selection", "mooscomp.scoring", "mooscomp.stages", "mooscomp.pipeline",
               "mooscomp.exporters"],
)
def test_light_modules_load_no_heavy_stack(module: str) -> None:
    """Configs, results, the stages and the pipeline parent import without torch (a warm ONNX
    path can run without it)."""
    assert _loaded_after(f"import {module}") == []


def test_compressor_does_not_import_onnx_code() -> None:
    loaded = _loaded_after("import mooscomp.compressor, sys; assert 'mooscomp.exporters.onnx' not in sys.modules")
    assert "onnxruntime" not in loaded and "onnx" not in loaded
