"""ONNX export + onnxruntime backend: parity with the torch path on the tiny model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
pytest.importorskip("onnx", reason="the onnx extra (onnx) is not installed")

from mooscomp.onnx_runtime import OnnxOptions, OnnxScorer, onnx_compressor  # noqa: E402
from mooscomp.scoring import Scorer  # noqa: E402


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


def test_fp32_matches_torch(_tiny_compressor, onnx_dir, sample_text):
    fast = onnx_compressor(_tiny_compressor, cache_dir=onnx_dir)
    assert isinstance(fast.scorer, OnnxScorer) and isinstance(fast.scorer, Scorer)
    assert _tiny_compressor.scorer is None  # the original is untouched
    texts = [sample_text, *sample_text.split("\n\n"), "Short one.", "x " * 700]
    for t in texts:
        a = _tiny_compressor.compress(t, rate=0.33)
        b = fast.compress(t, rate=0.33)
        assert a.text == b.text
        for da, db in zip(a.details, b.details):
            np.testing.assert_allclose(da.keep_prob, db.keep_prob, atol=1e-4)
            np.testing.assert_allclose(da.outlier_z, db.outlier_z, atol=1e-3)
    # batched, several widths in one call, contexts
    ra = _tiny_compressor.compress_batch(texts, rate=0.5)
    rb = fast.compress_batch(texts, rate=0.5)
    assert [r.text for r in ra] == [r.text for r in rb]
    # cached: a second build reuses the file
    again = onnx_compressor(_tiny_compressor, cache_dir=onnx_dir)
    assert again.scorer.path == fast.scorer.path
    # deepcopy of a compressor that holds a session works
    a = _tiny_compressor.compress(sample_text, rate=0.33)
    assert copy.deepcopy(fast).compress(sample_text, rate=0.33).text == a.text


def test_int8_runs_close(_tiny_compressor, onnx_dir, sample_text):
    q = onnx_compressor(_tiny_compressor, options=OnnxOptions(quantize=True), cache_dir=onnx_dir)
    a = _tiny_compressor.compress(sample_text, rate=0.33)
    b = q.compress(sample_text, rate=0.33)
    ka = np.concatenate([d.kept for d in a.details])
    kb = np.concatenate([d.kept for d in b.details])
    assert (ka == kb).mean() > 0.8
    assert b.compressed_tokens > 0


def test_options_validated():
    with pytest.raises(ValueError, match="threads"):
        OnnxOptions(threads=0)
    with pytest.raises(TypeError, match="quantize"):
        OnnxOptions(quantize="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="opset"):
        OnnxOptions(opset=9)


def test_rejects_foreign_graph(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="not a mooscomp scoring graph"):
        OnnxScorer(path)
