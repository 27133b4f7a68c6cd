"""The public staged API (prepare -> score -> select), the Request validator and the output row."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mooscomp import Request, stages
from mooscomp.result import ROW_KEYS, error_row


def test_stages_equal_compress(tiny_compressor, sample_text):
    comp = tiny_compressor
    cfg = comp.config
    ctxs = sample_text.split("\n\n")
    prepared = [comp.prepare(c, cfg) for c in ctxs]
    assert all(p.p_tok is None for p in prepared)
    comp.score(prepared, cfg)  # one forward, then the budget at many rates
    for rate in (0.2, 0.5, 1.0):
        req = Request(rate=rate, force_tokens=["Normans"], question="Who was Rollo?")
        got = comp.select(prepared, cfg, req)
        want = comp.compress(ctxs, rate=rate, force_tokens=["Normans"], question="Who was Rollo?")
        assert got.to_dict(include_scores=True) == want.to_dict(include_scores=True)


def test_module_functions_equal_bound_methods(tiny_compressor, sample_text):
    comp = tiny_compressor
    cfg = comp.config.replace(budget="llmlingua2")
    p = stages.prepare(sample_text, comp.tokenizer, cfg, max_len=comp.max_len)
    stages.score([p], comp.model, cfg, tokenizer=comp.tokenizer)
    res = stages.select([p], cfg, Request(target_tokens=50), count=comp.count, tokenizer=comp.tokenizer)
    assert res.text == comp.compress(sample_text, target_tokens=50, config=cfg, format="raw").text


def test_select_needs_scores(tiny_compressor):
    p = tiny_compressor.prepare("Some words to compress.")
    with pytest.raises(ValueError, match="score"):
        tiny_compressor.select([p], None, Request(rate=0.5))


def test_set_token_scores_splits_in_context_order(tiny_compressor):
    comp = tiny_compressor
    prepared = [comp.prepare(t) for t in ("one two three", "", "four five")]
    n = [p.n_tokens for p in prepared]
    flat = np.arange(sum(n), dtype=np.float32)
    stages.set_token_scores(prepared, flat, -flat)
    assert [p.p_tok.tolist() for p in prepared] == [flat[:n[0]].tolist(), [], flat[n[0]:].tolist()]
    assert prepared[2].z_tok.tolist() == (-flat[n[0]:]).tolist()
    chunks = [c for p in prepared for c in p.chunks()]
    assert sum(len(c) for c in chunks) == sum(n)


def test_as_contexts():
    assert stages.as_contexts("a", 10) == ["a"]
    assert stages.as_contexts(["a", "b\ud800"], 10) == ["a", "b\ufffd"]
    with pytest.raises(ValueError, match="max_input_chars"):
        stages.as_contexts(["abc", "def"], 5)
    with pytest.raises(TypeError, match="contexts must be strings"):
        stages.as_contexts(["a", 3], 5)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({}, ValueError, "exactly one"),
        ({"rate": 0.5, "target_tokens": 3}, ValueError, "exactly one"),
        ({"rate": 0}, ValueError, "rate"),
        ({"rate": True}, TypeError, "rate"),
        ({"target_tokens": 2.0}, TypeError, "target_tokens"),
        ({"target_tokens": np.int64(0)}, ValueError, "target_tokens"),
        ({"rate": 0.5, "force_tokens": "ab"}, TypeError, "force_tokens"),
        ({"rate": 0.5, "force_tokens": ["a", 1]}, TypeError, "force_tokens"),
        ({"rate": 0.5, "force_tokens": ["x"] * 1001}, ValueError, "at most"),
        ({"rate": 0.5, "question": b"q"}, TypeError, "question"),
    ],
)
def test_request_is_the_one_validator(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        Request(**kwargs)


def test_request_normalises_and_is_frozen():
    r = Request(target_tokens=np.int64(5), force_tokens=["\n", "a", "\n"])
    assert r.force_tokens == ("\n", "a") and r.keep_newlines
    assert r.wants_all(5) and not r.wants_all(6)
    assert Request(rate=1.0).wants_all(10) and not Request(rate=0.9, force_tokens=("a",)).keep_newlines
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.rate = 0.5  # type: ignore[misc]


def test_to_row_and_error_row(tiny_compressor, sample_text):
    res = tiny_compressor.compress(sample_text, rate=0.4)
    row = res.to_row()
    assert tuple(row) == ROW_KEYS
    assert row["compressed_prompt"] == res.text and row["error"] is None
    assert (row["origin_tokens"], row["compressed_tokens"]) == (res.origin_tokens, res.compressed_tokens)
    d = res.to_dict()
    assert all(d[k] == row[k] for k in ROW_KEYS if k != "error")  # same names and values as to_dict
    err = error_row("bad input")
    assert tuple(err) == ROW_KEYS and err["error"] == "bad input"
    assert all(err[k] is None for k in ROW_KEYS if k != "error")
