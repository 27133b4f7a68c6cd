"""Throughput pipeline: same results as Compressor.compress, in order, bad texts isolated."""

from __future__ import annotations

import pytest

from mooscomp import CompressionConfig, Compressor
from mooscomp.pipeline import CompressionPipeline, PipelineConfig, PipelineError

pytestmark = pytest.mark.spawn  # the pipeline starts spawned CPU worker processes


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    cfg = CompressionConfig(max_input_chars=5000)
    with CompressionPipeline(tiny_model_dir, device="cpu", config=cfg,
                             pipeline=PipelineConfig(workers=2, group_docs=3, inflight=2)) as p:
        yield p


def _texts(sample: str) -> list[str]:
    sents = [s.strip() + "." for s in sample.split(".") if s.strip()]
    return [" ".join(sents[i : i + 1 + i % 4]) for i in range(len(sents))] + ["", "  \n ", "x"]


def test_matches_compress_in_input_order(pipe, tiny_model_dir, sample_text):
    texts = _texts(sample_text)
    ref = Compressor.from_pretrained(tiny_model_dir, config=pipe.config, backend="torch")
    rows = list(pipe.compress_many(texts, rate=0.4, force_tokens=["Normans"]))
    assert len(rows) == len(texts)
    for t, r in zip(texts, rows, strict=True):
        want = ref.compress(t, rate=0.4, force_tokens=["Normans"])
        assert r == want.to_row()  # the same row the single-process API gives
    assert pipe.forward_tokens > 0  # the parent, not the workers, ran the encoder


def test_a_bad_text_gets_an_error_row_and_the_rest_go_on(pipe, sample_text):
    texts = [sample_text[:300], "word " * 2000, sample_text[300:600], "bad \ud800 surrogate"]
    rows = list(pipe.compress_many(texts, target_tokens=20))
    assert [r["error"] is None for r in rows] == [True, False, True, True]
    assert "max_input_chars" in rows[1]["error"] and rows[1]["compressed_prompt"] is None
    assert set(rows[1]) == set(rows[0]) and rows[1]["origin_tokens"] is None
    assert 0 < rows[0]["compressed_tokens"] <= 25
    assert "\ud800" not in rows[3]["compressed_prompt"]


def test_argument_errors_before_any_work(pipe):
    with pytest.raises(ValueError, match="exactly one"):
        list(pipe.compress_many(["a b"], rate=0.5, target_tokens=3))
    with pytest.raises(ValueError, match="rate"):
        list(pipe.compress_many(["a b"], rate=1.5))
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        list(pipe.compress_many(["a b", 7], rate=0.5))  # type: ignore[list-item]
    # the pipeline still works after refused calls
    assert [r["error"] for r in pipe.compress_many(["one two three"], rate=0.5)] == [None]


@pytest.mark.parametrize("kw", [{"workers": 0}, {"group_docs": 0}, {"inflight": True},
                                {"start_method": "teleport"}, {"timeout_s": -1}])
def test_config_validation(kw):
    with pytest.raises(ValueError):
        PipelineConfig(**kw)


def test_dead_worker_is_reported(tiny_model_dir):
    with CompressionPipeline(tiny_model_dir, device="cpu",
                             pipeline=PipelineConfig(workers=1, timeout_s=30)) as p:
        p._procs[0].kill()
        with pytest.raises(PipelineError, match="died"):
            list(p.compress_many(["some words here"] * 4, rate=0.5))
