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
