"""The warm CPU path (issue 17 item 5): a model directory whose ONNX graph is cached loads with
``tokenizers`` + onnxruntime only, and compresses exactly as the torch-loaded compressor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mooscomp.compressor import Compressor
from mooscomp.exporters.fast_load import FastTokenizer, LazyModel, dir_key
from mooscomp.exporters.onnx import OnnxOptions

TEXTS = ("Short one.", "Ünïcode — déjà vu: 3.5% of \u4e2d\u6587 words, e-mail a@b.c!\n\nNew  para.")

_PROBE = """
import json, sys
from mooscomp.compressor import Compressor
comp = Compressor.from_pretrained(sys.argv[1], cache_dir=sys.argv[2], backend=sys.argv[4])
texts = json.loads(sys.argv[3])
out = [comp.compress(t, rate=0.4).text for t in texts]
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print(json.dumps({"texts": out, "heavy": heavy, "backend": comp.backend,
                  "tokenizer": type(comp.tokenizer).__name__}))
"""


def _run(code: str, *args: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def shaped_model_dir(wordpiece_tokenizer, tmp_path_factory) -> Path:
    """A tiny model with a word-shape term and unigram log-frequencies (both go to the sidecar)."""
    import torch
    from conftest import TINY_BERT

    from mooscomp.config import CompressionConfig
    from mooscomp.modeling import TokenCompressorModel

    torch.manual_seed(1)
    model = TokenCompressorModel.from_config_dict(TINY_BERT, word_shape=("capitalised", "has_digit"))
    with torch.no_grad():
        model.shape_bias.weight.copy_(torch.randn_like(model.shape_bias.weight))
    lf = np.random.default_rng(0).normal(-10, 2, size=TINY_BERT["vocab_size"])
    comp = Compressor(model, wordpiece_tokenizer, log_freq=lf,
                      config=CompressionConfig(outlier_variant="rarity"))
    path = tmp_path_factory.mktemp("models") / "shaped"
    comp.save_pretrained(path)
    return path


def test_warm_load_imports_no_torch_and_matches_torch(tiny_model_dir, tmp_path, sample_text):
    texts = [sample_text, *TEXTS]
    cold = Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path, backend="onnx")  # export
    assert cold.backend == "onnx" and sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".onnx"]
    ref = Compressor.from_pretrained(tiny_model_dir, backend="torch")
    got = _run(_PROBE, str(tiny_model_dir), str(tmp_path), json.dumps(texts), "onnx")
    assert got["heavy"] == [] and got["backend"] == "onnx" and got["tokenizer"] == "FastTokenizer"
    assert got["texts"] == [ref.compress(t, rate=0.4).text for t in texts]
    # the default (auto = int8 on a CPU): warm too, the same texts as the torch-loaded int8 path
    int8 = Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path)
    got = _run(_PROBE, str(tiny_model_dir), str(tmp_path), json.dumps(texts), "auto")
    assert got["heavy"] == [] and got["backend"] == "onnx-int8"
    assert got["texts"] == [int8.compress(t, rate=0.4).text for t in texts]


def test_warm_path_keeps_shape_term_and_log_freq(shaped_model_dir, tmp_path, sample_text):
    cold = Compressor.from_pretrained(shaped_model_dir, cache_dir=tmp_path)
    warm = Compressor.from_pretrained(shaped_model_dir, cache_dir=tmp_path)
    assert isinstance(warm.model, LazyModel) and not isinstance(cold.model, LazyModel)
    assert warm.config == cold.config and warm.config.outlier_variant == "rarity"
    np.testing.assert_allclose(warm.log_freq, cold.log_freq)
    np.testing.assert_allclose(warm.shape_term.delta, cold.shape_term.delta)
    for text in (sample_text, *TEXTS):
        a, b = cold.compress(text, rate=0.4), warm.compress(text, rate=0.4)
        assert a.text == b.text
        for da, db in zip(a.details, b.details, strict=True):
            np.testing.assert_allclose(da.keep_prob, db.keep_prob, atol=1e-6)
            np.testing.assert_allclose(da.score, db.score, atol=1e-6)


def test_fast_tokenizer_matches_transformers(wordpiece_tokenizer, minilm_dir):
    fast = FastTokenizer.from_dir(minilm_dir, {"cls_token_id": 101, "sep_token_id": 102})
    texts = [*TEXTS, "x " * 600, ""]
    kw = {"add_special_tokens": False, "return_offsets_mapping": True}
    a, b = wordpiece_tokenizer(texts, **kw), fast(texts, **kw)
    assert a["input_ids"] == b["input_ids"]
    assert [list(map(tuple, o)) for o in a["offset_mapping"]] == [list(map(tuple, o)) for o in b["offset_mapping"]]
    assert fast(TEXTS[0])["input_ids"] == wordpiece_tokenizer(TEXTS[0])["input_ids"]  # one str, specials
    assert fast.num_special_tokens_to_add(pair=False) == wordpiece_tokenizer.num_special_tokens_to_add(pair=False)
    assert fast.backend_tokenizer.normalizer.normalize_str("ÉCOLE") == "ecole"
    assert fast.cls_token_id == 101 and fast.pad_token_id is None
    with pytest.raises(TypeError):
        fast(texts, truncation=True)  # an option it does not implement is not ignored


def test_key_follows_the_files(tiny_model_dir, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, d)
    opts = OnnxOptions()
    k = dir_key(d, opts)
    assert k == dir_key(tiny_model_dir, opts) and k != dir_key(d, OnnxOptions(quantize=True))
    cfg = json.loads((d / "config.json").read_text())
    cfg["dropout"] = 0.2
    (d / "config.json").write_text(json.dumps(cfg))
    assert dir_key(d, opts) != k
    (d / "model.safetensors").unlink()
    assert dir_key(d, opts) is None


def test_changed_weights_are_not_served_from_the_cache(tiny_model_dir, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, d)
    Compressor.from_pretrained(d, cache_dir=tmp_path / "c")
    w = d / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1  # the recorded sha256 no longer matches: the load must fail, not reuse a graph
    w.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        Compressor.from_pretrained(d, cache_dir=tmp_path / "c")


def test_lazy_model_loads_torch_on_use(tiny_model_dir, tmp_path):
    Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path)
    warm = Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path)
    assert isinstance(warm.model, LazyModel) and warm.model._real is None
    assert next(warm.model.parameters()).device.type == "cpu"  # loads the torch model
    assert warm.model._real is not None
    torch_comp = Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path, backend="torch")
    assert torch_comp.backend == "torch" and not isinstance(torch_comp.model, LazyModel)


def test_cli_warm_path_imports_no_torch(tiny_model_dir, tmp_path, sample_text, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text(sample_text)
    Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path / "cache" / "onnx")
    monkeypatch.setenv("MOOSCOMP_CACHE", str(tmp_path / "cache"))
    code = (
        "import json, sys, contextlib, io\nfrom mooscomp.cli import main\nbuf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = main(['compress', sys.argv[1], '--rate', '0.5', '--format', 'raw', '--model', sys.argv[2]])\n"
        "print(json.dumps({'rc': rc, 'out': buf.getvalue(),"
        " 'heavy': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}))"
    )
    got = _run(code, str(src), str(tiny_model_dir))
    ref = Compressor.from_pretrained(tiny_model_dir, cache_dir=tmp_path / "cache" / "onnx").compress(
        sample_text, rate=0.5, format="raw")
    assert got["rc"] == 0 and got["heavy"] == [] and got["out"] == ref.text + "\n"
