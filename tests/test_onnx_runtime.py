"""ONNX export + onnxruntime backend: parity with the torch path on the tiny model, and the
backend choice of ``Compressor.from_pretrained`` (onnxruntime is a core dependency)."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from mooscomp.compressor import Compressor
from mooscomp.exporters import onnx as onnx_exporter
from mooscomp.exporters.onnx import (
    OnnxOptions,
    OnnxScorer,
    default_cache_dir,
    onnx_compressor,
    select_scorer,
)
from mooscomp.scoring import Scorer


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
    assert q.backend == "onnx-int8"
    a = _tiny_compressor.compress(sample_text, rate=0.33)
    b = q.compress(sample_text, rate=0.33)
    ka = np.concatenate([d.kept for d in a.details])
    kb = np.concatenate([d.kept for d in b.details])
    assert (ka == kb).mean() > 0.8
    assert b.compressed_tokens > 0


def test_int8_scores_a_chunk_alone_so_batches_do_not_change_results(_tiny_compressor, onnx_dir, sample_text):
    """Dynamic int8 scales activations per forward: one chunk a forward, so a prompt compresses
    the same alone as inside compress_batch with prompts of other lengths."""
    q = onnx_compressor(_tiny_compressor, options=OnnxOptions(quantize=True), cache_dir=onnx_dir)
    assert q.scorer.max_rows == 1
    rows = []
    real = q.scorer.forward_batch
    q.scorer.forward_batch = lambda ids, attn, valid: (rows.append(ids.shape[0]), real(ids, attn, valid))[1]
    texts = [sample_text, sample_text[: len(sample_text) // 3], "Short note about 42 apples. " * 3]
    batch = q.compress_batch(texts, rate=0.4, format="raw")
    assert rows and set(rows) == {1}
    assert [r.text for r in batch] == [q.compress(t, rate=0.4, format="raw").text for t in texts]
    fp32 = onnx_compressor(_tiny_compressor, options=OnnxOptions(quantize=False), cache_dir=onnx_dir)
    assert fp32.scorer.max_rows is None  # fp32 is batch-invariant: batches stay as configured


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


def test_from_pretrained_defaults_to_int8_onnx_on_cpu(tiny_model_dir, tmp_path, sample_text):
    auto = Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path)
    fp32 = Compressor.from_pretrained(tiny_model_dir, backend="onnx", cache_dir=tmp_path)
    plain = Compressor.from_pretrained(tiny_model_dir, backend="torch")
    assert auto.backend == onnx_exporter.DEFAULT_CPU_BACKEND == "onnx-int8"
    assert fp32.backend == "onnx" and plain.backend == "torch"
    assert auto.scorer.options.threads == torch.get_num_threads()
    assert sorted(tmp_path.glob("*.onnx")) == sorted([auto.scorer.path, fp32.scorer.path])  # in cache_dir
    for text in (sample_text, "Short one.", "x " * 700):
        for rate in (0.2, 0.5):
            # fp32 is the reference: torch's kept words; int8 is close, not equal
            assert fp32.compress(text, rate=rate).text == plain.compress(text, rate=rate).text
            a = np.concatenate([d.kept for d in auto.compress(text, rate=rate).details])
            b = np.concatenate([d.kept for d in plain.compress(text, rate=rate).details])
            assert (a == b).mean() > 0.8
    again = Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path)
    assert again.scorer.path == auto.scorer.path  # the cached graph is reused


def test_backend_validated_before_loading(tmp_path):
    with pytest.raises(ValueError, match="backend must be one of"):
        Compressor.from_pretrained(tmp_path / "missing", backend="tensorrt")


def test_gpu_device_keeps_torch_or_refuses_onnx(_tiny_compressor, tmp_path):
    assert select_scorer(_tiny_compressor.model, backend="auto", device="cuda") is None
    with pytest.raises(ValueError, match="CPU only"):
        select_scorer(_tiny_compressor.model, backend="onnx", device="cuda", cache_dir=tmp_path)
    assert select_scorer(_tiny_compressor.model, backend="torch", cache_dir=tmp_path) is None
    assert not list(tmp_path.iterdir())  # nothing exported


def test_auto_falls_back_to_torch_when_export_fails(_tiny_compressor, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(OnnxScorer, "from_model", broken)
    with caplog.at_level(logging.WARNING, logger="mooscomp.exporters.onnx"):
        assert select_scorer(_tiny_compressor.model, backend="auto", cache_dir=tmp_path) is None
    assert "exporter exploded" in caplog.text and "using torch" in caplog.text
    with pytest.raises(RuntimeError, match="exploded"):  # asked for explicitly: not hidden
        select_scorer(_tiny_compressor.model, backend="onnx", cache_dir=tmp_path)


def test_missing_onnxruntime(_tiny_compressor, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_exporter, "onnx_available", lambda: False)
    assert select_scorer(_tiny_compressor.model, backend="auto", cache_dir=tmp_path) is None
    with pytest.raises(ValueError, match="needs onnx and onnxruntime"):
        select_scorer(_tiny_compressor.model, backend="onnx", cache_dir=tmp_path)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOOSCOMP_CACHE", str(tmp_path / "mc"))
    assert default_cache_dir() == tmp_path / "mc" / "onnx"
    monkeypatch.delenv("MOOSCOMP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mooscomp" / "onnx"


def test_old_import_path_is_the_exporter():
    from mooscomp import onnx_runtime

    assert onnx_runtime.OnnxScorer is OnnxScorer and onnx_runtime.select_scorer is select_scorer


def test_cache_key_covers_package_and_formula_versions(_tiny_compressor, tmp_path, monkeypatch):
    """A new mooscomp version or outlier formula must re-export, never reuse a stale graph."""
    import mooscomp
    from mooscomp import outliers

    first = OnnxScorer.from_model(_tiny_compressor.model, cache_dir=tmp_path).path
    assert OnnxScorer.from_model(_tiny_compressor.model, cache_dir=tmp_path).path == first
    monkeypatch.setattr(mooscomp, "__version__", mooscomp.__version__ + ".post1")
    second = OnnxScorer.from_model(_tiny_compressor.model, cache_dir=tmp_path).path
    monkeypatch.setattr(outliers, "FORMULA_VERSION", outliers.FORMULA_VERSION + 1)
    third = OnnxScorer.from_model(_tiny_compressor.model, cache_dir=tmp_path).path
    assert len({first, second, third}) == 3
    assert sorted(tmp_path.glob("*.onnx")) == sorted([first, second, third])  # each exported


def test_onnx_int8_backend_name(_tiny_compressor, tiny_model_dir, tmp_path):
    from mooscomp.exporters.onnx import check_backend

    check_backend("onnx-int8", "cpu")
    with pytest.raises(ValueError, match="CPU only"):
        check_backend("onnx-int8", "cuda")
    q = select_scorer(_tiny_compressor.model, backend="onnx-int8", cache_dir=tmp_path)
    assert isinstance(q, OnnxScorer) and q.name == "onnx-int8" and q.options.quantize
    comp = Compressor.from_pretrained(tiny_model_dir, backend="onnx-int8", cache_dir=tmp_path)
    assert comp.backend == "onnx-int8" and comp.scorer.options.quantize
    again = Compressor.from_pretrained(tiny_model_dir, backend="onnx-int8", cache_dir=tmp_path)
    assert again.backend == "onnx-int8" and again.scorer.path == comp.scorer.path  # the cached graph
    fp32 = Compressor.from_pretrained(tiny_model_dir, backend="onnx", cache_dir=tmp_path)
    assert fp32.scorer.path != comp.scorer.path  # one graph per backend
