"""Generated questions as question-worthiness supervision (issue 15): parsing, grounding, passages, rows."""

from __future__ import annotations

import gzip
import json
import lzma
from pathlib import Path

import numpy as np
import pytest
from conftest import load_module as _load

ROOT = Path(__file__).resolve().parents[1]


def test_parse_pairs_reads_numbered_and_plain_listings() -> None:
    job = _load("question_gen_job", "scripts/device/question_gen_job.py")
    text = ("Here are the questions:\n1. Q: Who founded it?\nA: \"Carl Benz\".\n\n"
            "Q2: When?\nA2: in 1886\nQ: What is missing an answer?\n")
    assert job.parse_pairs(text) == [("Who founded it?", "Carl Benz"), ("When?", "in 1886")]
    assert job.parse_pairs("no pairs here") == []


def test_grounded_needs_a_whole_token_run_of_the_normalised_passage() -> None:
    job = _load("question_gen_job", "scripts/device/question_gen_job.py")
    passage = "The company was founded by Carl Benz in 1886, in Mannheim."
    assert job.grounded(passage, "Carl Benz")
    assert job.grounded(passage, "the 1886")  # articles and punctuation normalise away
    assert not job.grounded(passage, "Benz in Mannheim")  # not contiguous
    assert not job.grounded(passage, "Mann")  # not a whole token
    assert not job.grounded(passage, "")
    assert not job.grounded(passage + " " + passage, passage)  # longer than 8 words


def test_qg_passages_cuts_sized_paragraphs_in_hash_order(tmp_path: Path) -> None:
    qp = _load("qg_passages", "scripts/corpus/qg_passages.py")
    long_para = " ".join(["word"] * 60)
    docs = [{"doc_id": "wikipedia_leads/A#0", "source": "wikipedia_leads", "text": long_para},
            {"doc_id": "sotu/B", "source": "sotu", "text": f"short one\n\n{long_para}\n\n{' '.join(['w'] * 300)}"},
            {"doc_id": "linux_doc/C", "source": "linux_doc", "text": long_para}]
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    got = qp.passages(path)
    assert [r["pid"] for r in got["encyclopedic"]] == ["wikipedia_leads/A#0@0"]
    assert [r["pid"] for r in got["other"]] == ["sotu/B@1"]  # too short / too long paragraphs left out
    assert got["other"][0]["text"] == long_para


def test_generated_groups_and_labelled_rows_mark_every_answer(tiny_compressor, tmp_path: Path) -> None:
    qw = _load("question_worthiness", "benchmarks/question_worthiness.py")
    passages = tmp_path / "p.jsonl.xz"
    with lzma.open(passages, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"pid": "a", "text": "The Eiffel Tower opened in 1889 in Paris."}) + "\n")
        f.write(json.dumps({"pid": "b", "text": "Nothing was asked here."}) + "\n")
    qa = tmp_path / "qa.jsonl.gz"
    with gzip.open(qa, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"pid": "a", "pairs": [["When?", "1889"], ["Where?", "Paris"]], "raw_pairs": 2}) + "\n")
        f.write(json.dumps({"pid": "b", "pairs": [], "raw_pairs": 1}) + "\n")
    groups = qw.generated_groups(qa, passages, 10)
    with pytest.raises(FileNotFoundError, match="qg_passages.py --n 10000"):
        qw.generated_groups(qa, tmp_path / "missing.jsonl.xz", 10)
    assert groups == [("a", ["The Eiffel Tower opened in 1889 in Paris."], ["1889", "Paris"])]
    x, y, n_words, n_pos = qw.labelled_rows(tiny_compressor, qw.word_features, groups, neg_share=0.0)
    assert (n_words, n_pos) == (9, 2) and y.tolist() == [1.0, 1.0]  # only the positives at neg_share 0
    x, y, _, _ = qw.labelled_rows(tiny_compressor, qw.word_features, groups, neg_share=1.0)
    assert x.shape == (9, len(qw.FEATURES)) and y.sum() == 2 and np.isfinite(x).all()


def test_support_labels_add_the_question_words_of_the_answer_sentence_only() -> None:
    wf = _load("worthiness_finetune", "scripts/worthiness_finetune.py")
    from mooscomp.alignment import segment_words

    text = "The bridge was built in 1962 by the city. The bridge cost 4 million. Mayor Alvarez opened it."
    words = segment_words(text)
    y = wf.support_labels(words, [("When was the bridge built?", "1962"), ("Who opened it?", "Mayor Alvarez"),
                                  ("What did the tunnel cost?", "5 million")])  # not in the text: labels nothing
    assert [w for w, v in zip(words.tolist(), y, strict=True) if v] == [
        "bridge", "built", "1962", "Mayor", "Alvarez", "opened"]  # not the second sentence's "bridge"
    assert wf.support_labels(segment_words(""), [("Who?", "x")]).shape == (0,)
    y = wf.answer_labels(words, [("When was the bridge built?", "1962"), ("Who opened it?", "Mayor Alvarez")])
    assert [w for w, v in zip(words.tolist(), y, strict=True) if v] == ["1962", "Mayor", "Alvarez"]
    # numbers with a comma or a decimal point, possessives: one token each, as the answer's normalisation sees them
    words = segment_words("Staff estimate 4.2 million dollars. It had 386,000 people, the region's most.")
    y = wf.support_labels(words, [("What did staff estimate?", "4.2 million dollars"), ("How many?", "386,000"),
                                  ("Whose?", "region's")])
    assert [w for w, v in zip(words.tolist(), y, strict=True) if v] == [
        "Staff", "estimate", "4", ".", "2", "million", "dollars", "386", ",", "000", "region", "'", "s"]
    assert wf.answer_labels(words, [("?", "386")]).sum() == 0  # part of "386,000" is not a whole token
    assert set(wf.LABELS) == {"answer", "support"}


def test_committed_generated_questions_come_from_filtered_corpus_passages() -> None:
    """Every generated question belongs to a passage of a modern-corpus document (the corpus the
    overlap filter keeps apart from every evaluation set, tests/test_corpus_modern.py), and every
    kept answer is grounded in its passage when the corpus is built on this machine."""
    labels = ROOT / "data" / "labels_modern"
    with gzip.open(labels / "qgen_qa.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    with gzip.open(labels / "labels.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus_ids = {json.loads(line)["doc_id"] for line in f}
    pids = [r["pid"] for r in rows]
    assert len(rows) > 5000 and len(set(pids)) == len(pids)
    assert all(p.rsplit("@", 1)[0] in corpus_ids for p in pids)
    assert sum(len(r["pairs"]) for r in rows) > 20_000
    qp = _load("qg_passages", "scripts/corpus/qg_passages.py")
    if not qp.DOCS.exists():
        return  # the corpus is rebuilt by scripts/corpus/build_modern.py; the id check above stands
    job = _load("question_gen_job", "scripts/device/question_gen_job.py")
    text = {r["pid"]: r["text"] for pool in qp.passages().values() for r in pool}
    for r in rows[::50]:
        assert all(job.grounded(text[r["pid"]], a) for _, a in r["pairs"]), r["pid"]


def test_mlp_probe_separates_a_separable_set() -> None:
    qw = _load("question_worthiness", "benchmarks/question_worthiness.py")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float32)  # not linearly separable
    logit = qw.fit_mlp(x, y, hidden=32, epochs=400)
    z = logit(x)
    assert z.shape == (600,) and np.isfinite(z).all()
    assert ((z > 0) == (y > 0)).mean() > 0.9
    np.testing.assert_allclose(qw.fit_mlp(x, y, hidden=32, epochs=2)(x[:5]), qw.fit_mlp(x, y, hidden=32, epochs=2)(x[:5]))
