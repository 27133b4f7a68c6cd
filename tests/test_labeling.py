from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mooscomp.alignment import segment_words
from mooscomp.labeling import (
    Document,
    JobConfig,
    SurprisalConfig,
    SurprisalTeacher,
    annotate,
    label_corpus,
    lexical_units,
)

TEXT = (
    "Griselda Blanco moved to Miami in 1975. She ran a large network of couriers and paid "
    "them 3.5 million dollars. The police in New York arrested her after a long investigation. "
) * 3


@pytest.fixture(scope="module")
def teacher(wordpiece_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=wordpiece_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
        max_position_embeddings=512,
    )
    model = LlamaForCausalLM(cfg).eval()
    return SurprisalTeacher(
        model, wordpiece_tokenizer, config=SurprisalConfig(keep_fraction=0.4, window_tokens=64,
                                                           context_tokens=16, select_tokens=64)
    )


def test_surprisal_labels_one_per_word_and_keep_fraction(teacher):
    doc = Document("d1", TEXT)
    (labels,) = teacher.label_batch([doc])
    n = len(segment_words(TEXT))
    assert labels.shape == (n,)
    assert set(np.unique(labels).tolist()) <= {0, 1}
    assert 0.25 <= labels.mean() <= 0.55


def test_units_share_one_label(teacher):
    words = segment_words(TEXT)
    units = lexical_units(TEXT, words=words)
    (labels,) = teacher.label_batch([Document("d2", TEXT, units=units)])
    for u in np.unique(units):
        assert len(set(labels[units == u].tolist())) == 1


def test_label_corpus_resumes_and_counts_failures(teacher, tmp_path):
    docs = [{"doc_id": f"doc{i}", "text": TEXT, "source": "test"} for i in range(5)]
    s1 = label_corpus(docs[:3], teacher, tmp_path, shard_size=2, config=JobConfig(batch_docs=2))
    assert s1.done == 3
    s2 = label_corpus(docs, teacher, tmp_path, shard_size=2, config=JobConfig(batch_docs=2))
    assert s2.done == 2 and s2.skipped_existing == 3
    ids = []
    for p in sorted(tmp_path.glob("shard-*.jsonl.gz")):
        with gzip.open(p, "rt") as f:
            ids += [json.loads(line)["doc_id"] for line in f if line.strip()]
    assert sorted(ids) == [f"doc{i}" for i in range(5)]

    class Flaky:
        def describe(self):
            return {"kind": "flaky"}

        def label_batch(self, batch):
            if any(d.doc_id == "bad" for d in batch):
                raise RuntimeError("teacher died")
            return [np.zeros(len(segment_words(d.text)), dtype=np.int8) for d in batch]

    out = tmp_path / "flaky"
    docs2 = [{"doc_id": "ok1", "text": TEXT}, {"doc_id": "bad", "text": TEXT}, {"doc_id": "ok2", "text": TEXT}]
    s3 = label_corpus(docs2, Flaky(), out, shard_size=10, config=JobConfig(batch_docs=3))
    assert s3.errors == 1 and s3.done == 2


def test_label_corpus_skips_bad_documents(teacher, tmp_path):
    docs = [{"doc_id": "empty", "text": "   "}, {"doc_id": "ok", "text": TEXT}]
    s = label_corpus(docs, teacher, tmp_path, shard_size=10)
    assert s.done == 1 and sum(s.skipped.values()) == 1


def test_annotation_algorithm_hand_made():
    orig = "the meeting will start at nine and it will end at noon".split()
    comp = "meeting start nine end noon".split()
    a = annotate(orig, comp, window_size=10)
    kept = [w for w, k in zip(orig, a.labels.tolist()) if k]
    assert kept == comp
    assert a.variation_rate == 0.0 and a.alignment_gap == pytest.approx(0.0)
    b = annotate(orig, "meeting starts 9 noon".split(), window_size=10)
    assert b.variation_rate == pytest.approx(0.5)


def test_bad_config():
    with pytest.raises(ValueError, match="keep_fraction"):
        SurprisalConfig(keep_fraction=0.0)
    with pytest.raises(ValueError, match="batch_docs"):
        JobConfig(batch_docs=0)


def test_label_cli(tmp_path, wordpiece_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    from mooscomp.cli import main

    model_dir = tmp_path / "lm"
    cfg = LlamaConfig(vocab_size=wordpiece_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, intermediate_size=64)
    LlamaForCausalLM(cfg).save_pretrained(str(model_dir))
    wordpiece_tokenizer.save_pretrained(str(model_dir))
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"doc_id": f"d{i}", "text": TEXT}) for i in range(3)))
    out = tmp_path / "labels"
    assert main(["label", str(corpus), str(out), "--teacher-model", str(model_dir), "--device", "cpu"]) == 0
    rows = []
    for p in out.glob("shard-*.jsonl.gz"):
        with gzip.open(p, "rt") as f:
            rows += [json.loads(line) for line in f]
    assert sorted(r["doc_id"] for r in rows) == ["d0", "d1", "d2"]
    assert main(["label", str(tmp_path / "missing.jsonl"), str(out), "--teacher-model", str(model_dir)]) == 2


def test_windowed_nll_matches_full_logits(teacher):
    """The shared kernel equals -log softmax of a plain forward pass, window by window."""
    import torch

    from mooscomp.labeling import windowed_nll

    rng = np.random.default_rng(0)
    windows = [rng.integers(5, 1000, size=n).astype(np.int64) for n in (7, 12, 1, 12, 3)]
    got = windowed_nll(teacher.model, windows, pad_id=0, batch_size=2, logprob_chunk=5)
    assert [g.shape for g in got] == [(n - 1,) for n in (7, 12, 1, 12, 3)]
    for w, g in zip(windows, got):
        if len(w) < 2:
            continue
        with torch.no_grad():
            logits = teacher.model(input_ids=torch.from_numpy(w)[None]).logits[0, :-1].float()
        ref = torch.nn.functional.cross_entropy(logits, torch.from_numpy(w[1:]), reduction="none")
        np.testing.assert_allclose(g, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_label_corpus_counts_malformed_rows(teacher, tmp_path):
    docs = [["not", "a", "dict"], {"text": TEXT}, {"doc_id": "u", "text": TEXT, "unit_spans": 5},
            {"doc_id": "ok", "text": TEXT}]
    s = label_corpus(docs, teacher, tmp_path, shard_size=10)
    assert s.done == 1 and s.skipped == {"malformed": 3}


def test_read_documents_names_bad_line(tmp_path):
    from mooscomp.labeling import read_documents

    p = tmp_path / "c.jsonl"
    p.write_text('{"doc_id": "a", "text": "x"}\n{"doc_id": \n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2"):
        list(read_documents(p))


def test_gguf_teacher_without_gguf_names_the_package(monkeypatch, tmp_path):
    import importlib.util

    from mooscomp.labeling import SurprisalTeacher

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a))
    with pytest.raises(ImportError, match=r"'gguf' package.*label"):
        SurprisalTeacher.from_pretrained(tmp_path, gguf_file="m.gguf", device="cpu")
    from mooscomp.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"doc_id": "a", "text": "x"}\n')
    argv = ["label", str(corpus), str(tmp_path / "out"), "--teacher-model", str(tmp_path),
            "--gguf-file", "m.gguf", "--device", "cpu"]
    assert main(argv) == 2


class _Chat:
    def __init__(self, reply):
        self.reply = reply

    def complete(self, system, user):
        return self.reply(user.split("following text: \n", 1)[1].rsplit("\nThe compressed", 1)[0])


def test_generative_teacher_with_fake_backend():
    from mooscomp.labeling import GenerativeConfig, GenerativeTeacher, keep_rate

    caps = _Chat(lambda t: " ".join(w for w in t.split() if w[:1].isupper() or w[:1].isdigit()))
    t = GenerativeTeacher(caps, config=GenerativeConfig(use_lemmas=False, chunk_tokens=16))
    (lab,) = t.label_batch([Document("g", TEXT)])
    words = segment_words(TEXT).tolist()
    assert lab.shape == (len(words),) and set(lab.tolist()) <= {-1, 0, 1}
    assert len(t.last_annotations) > 1 and not (lab == -1).any()
    kept = {w for w, k in zip(words, lab.tolist()) if k == 1}
    assert {"Griselda", "Blanco", "Miami", "1975"} <= kept and "moved" not in kept
    assert 0 < keep_rate([lab]) < 0.5
    # an LLM that rewrites words: every chunk has the same VR, none is dropped by the top-decile
    # rule (> 0 and >= the percentile); one invented chunk among faithful ones is filtered out
    calls = []

    def odd(text):
        calls.append(text)
        return "zebra quantum" if len(calls) == 2 else text

    t2 = GenerativeTeacher(_Chat(odd), config=GenerativeConfig(use_lemmas=False, chunk_tokens=16))
    (lab2,) = t2.label_batch([Document("h", TEXT)])
    assert (lab2 == -1).sum() > 0 and (lab2 == 1).sum() > 0


def test_endpoint_backend_retries_then_fails(monkeypatch):
    import io
    import urllib.error
    import urllib.request

    from mooscomp.labeling import EndpointBackend, EndpointConfig

    monkeypatch.setattr("time.sleep", lambda s: None)
    replies = [urllib.error.URLError("down"), b'{"choices": []}',
               json.dumps({"choices": [{"message": {"content": "short text"}}]}).encode()]
    seen = []

    def fake_urlopen(req, timeout):
        seen.append(json.loads(req.data))
        r = replies.pop(0)
        if isinstance(r, Exception):
            raise r
        return io.BytesIO(r)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    b = EndpointBackend(EndpointConfig(base_url="http://127.0.0.1:9/v1", retries=2, seed=3))
    assert b.complete("sys", "user") == "short text"
    assert len(seen) == 3 and seen[0]["seed"] == 3 and seen[0]["messages"][1]["content"] == "user"
    replies[:] = [urllib.error.URLError("down")] * 3
    with pytest.raises(RuntimeError, match="after 3 attempts"):
        b.complete("sys", "user")
    with pytest.raises(ValueError, match="base_url"):
        EndpointConfig(base_url="ftp://x")


def test_llama_cpp_backend_with_a_fake_module(monkeypatch):
    import sys
    import types

    from mooscomp.labeling import LlamaCppBackend

    seen = {}

    class Llama:
        def __init__(self, **kw):
            seen["init"] = kw

        def create_chat_completion(self, **kw):
            seen["call"] = kw
            return {"choices": [{"message": {"content": "kept words"}}]}

    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(Llama=Llama))
    b = LlamaCppBackend("m.gguf", n_ctx=256, seed=4, max_tokens=9)
    assert b.complete("sys", "user") == "kept words"
    assert seen["init"]["model_path"] == "m.gguf" and seen["init"]["seed"] == 4
    assert seen["call"]["max_tokens"] == 9 and seen["call"]["messages"][0]["content"] == "sys"
