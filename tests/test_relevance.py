"""Sentence segmentation, pooling and the shared-layer forward of mooscomp.relevance."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mooscomp.alignment import align, segment_words
from mooscomp.focus import question_sentences, word_sentences
from mooscomp.relevance import (
    SentenceEncoder,
    pool_segments,
    sentence_texts,
    sentence_token_ids,
    token_sentences,
)
from mooscomp.scoring import score_chunks
from mooscomp.shared_encoder import SharedEncoder, score_and_embed, shared_layers


def _sentences(text: str, tok, **kw) -> list[str]:
    words = segment_words(text)
    ws = word_sentences(words, align(words, tok), **kw)
    return sentence_texts(words, ws)


def test_sentences_follow_alignment_ends(wordpiece_tokenizer):
    text = "Pi is 3.14 today. Is it? Yes!\nNew line here"
    assert _sentences(text, wordpiece_tokenizer) == ["Pi is 3.14 today.", "Is it?", "Yes!", "New line here"]


def test_question_sentences_keep_initials_and_titles(wordpiece_tokenizer):
    text = ("Finity's End is a novel by C. J. Cherryh. She lived in St. Louis. Dr. Who ends here. "
            "He likes vitamin C.\nNext line. A. Then")
    words = segment_words(text)
    al = align(words, wordpiece_tokenizer)
    qs = question_sentences(words, al)
    assert sentence_texts(words, qs) == [
        "Finity's End is a novel by C. J. Cherryh.", "She lived in St. Louis.", "Dr. Who ends here.",
        "He likes vitamin C.", "Next line.", "A. Then"]
    assert len(sentence_texts(words, word_sentences(words, al))) > 6  # the plain cut breaks at each "."
    assert np.all(np.diff(qs) >= 0) and qs[0] == 0
    for short in ("", "A."):  # fewer than 3 words: unchanged
        w = segment_words(short)
        a = align(w, wordpiece_tokenizer)
        assert question_sentences(w, a).tolist() == word_sentences(w, a).tolist()
    w = segment_words("A. B")
    assert question_sentences(w, align(w, wordpiece_tokenizer)).tolist() == [0, 0, 0]


def test_long_run_without_punctuation_is_cut(wordpiece_tokenizer):
    text = " ".join(f"w{i}" for i in range(10_000))
    words = segment_words(text)
    ws = word_sentences(words, align(words, wordpiece_tokenizer), max_words=64)
    assert ws.shape == (10_000,)
    assert np.all(np.diff(ws) >= 0)
    assert np.bincount(ws).max() == 64
    assert int(ws[-1]) + 1 == -(-10_000 // 64)


def test_token_sentences_and_empty_inputs(wordpiece_tokenizer):
    words = segment_words("")
    al = align(words, wordpiece_tokenizer)
    assert word_sentences(words, al).size == 0
    assert token_sentences(al, np.zeros(0, np.int64)).size == 0
    words = segment_words("Aa bb. Cc dd.")
    al = align(words, wordpiece_tokenizer)
    ts = token_sentences(al, word_sentences(words, al))
    assert ts.tolist() == [0, 0, 0, 1, 1, 1]


def test_pool_segments_means_and_normalises():
    states = np.asarray([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    out = pool_segments(states, np.asarray([0, 0, 2]), 3)
    np.testing.assert_allclose(out, [[1, 0], [0, 0], [0, 1]])


@pytest.fixture(scope="module")
def pair(_tiny_compressor):
    """A tiny compressor whose top layer differs from its 'base' (lower layers shared)."""
    comp = copy.deepcopy(_tiny_compressor)
    base = copy.deepcopy(comp.model.encoder)
    with torch.no_grad():
        for p in comp.model.encoder.encoder.layer[1].parameters():
            p.add_(0.05)
    return comp, base


def test_shared_layers_counts_identical_prefix(pair):
    comp, base = pair
    assert shared_layers(comp.model, base) == 1
    assert shared_layers(comp.model, comp.model.encoder) == 2
    other = copy.deepcopy(base)
    with torch.no_grad():
        other.embeddings.word_embeddings.weight.add_(1.0)
    assert shared_layers(comp.model, other) == 0
    with pytest.raises(ValueError, match="nothing to share"):
        SharedEncoder.from_model(comp.model, other)


def test_shared_forward_matches_separate_passes(pair):
    comp, base = pair
    shared = SharedEncoder.from_model(comp.model, base)
    rng = np.random.default_rng(0)
    chunks = [rng.integers(1000, 20000, size=n) for n in (40, 7, 0, 25)]
    want = score_chunks(comp.model, chunks, cls_id=101, sep_id=102, pad_id=0, batch_size=8)
    got = score_and_embed(shared, chunks, cls_id=101, sep_id=102, pad_id=0, max_batch_tokens=64)
    for (p, z), (p2, z2, st) in zip(want, got, strict=True):
        np.testing.assert_allclose(p, p2, atol=1e-5)
        np.testing.assert_allclose(z, z2, atol=1e-4)
        assert st.shape == (p.shape[0], 32)
    ids = torch.tensor([[101, *chunks[1].tolist(), 102]])
    with torch.no_grad():
        h = base(input_ids=ids).last_hidden_state[0, 1:-1].numpy()
    np.testing.assert_allclose(got[1][2], h, atol=1e-5)


def test_sentence_encoder_is_batch_invariant(pair, wordpiece_tokenizer):
    _, base = pair
    enc = SentenceEncoder(base, wordpiece_tokenizer)
    texts = ["a short one", "a much longer sentence with several more words in it", ""]
    together = enc.embed(texts)
    alone = np.concatenate([enc.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert enc.embed([]).shape == (0, 32)


_HOSTILE = ("Héllo WORLD, naïve café: 北京 3.5km² e-mail\u00a0a@b.io ¿Qué? ﬁne\u200b co-op.\n\n# Title\n\n"
            "- item one 😀\t tab\n- item two. " + "x" * 2000 + " end. 中文的句子。另一个句子！")


def test_sentence_ids_from_the_alignment_equal_tokenising_each_sentence(pair, wordpiece_tokenizer, minilm_dir):
    from mooscomp.exporters.fast_load import FastTokenizer

    _, base = pair
    enc = SentenceEncoder(base, wordpiece_tokenizer, max_tokens=64)  # the long word is truncated
    fast = FastTokenizer.from_dir(minilm_dir, {"cls_token_id": 101, "sep_token_id": 102})
    assert enc.tokenizes_as(fast) and enc.tokenizes_as(wordpiece_tokenizer)
    words = segment_words(_HOSTILE)
    al = align(words, fast)
    ws = word_sentences(words, al)
    texts = sentence_texts(words, ws)
    ids = sentence_token_ids(al, ws)
    assert [x.tolist() for x in ids] == wordpiece_tokenizer(texts, add_special_tokens=False)["input_ids"]
    (got,) = enc.embed_aligned([(words, al)], fast)
    np.testing.assert_allclose(got, enc.embed(texts), atol=1e-6)
    assert got.shape == (len(texts), 32)
    empty = segment_words("")
    assert enc.embed_aligned([(empty, align(empty, fast))], fast)[0].shape == (0, 32)


def test_sentence_encoder_tokenises_the_text_when_tokenizers_differ(pair, wordpiece_tokenizer):
    _, base = pair
    enc = SentenceEncoder(base, wordpiece_tokenizer)

    class Other:  # another vocabulary: its alignments' ids mean nothing to this encoder
        cls_token_id, sep_token_id = 101, 102

        def get_vocab(self):
            return {"a": 0}

    assert not enc.tokenizes_as(Other())
    words = segment_words("Aa bb. Cc dd.")
    al = align(words, wordpiece_tokenizer)
    al_other = type(al)(al.input_ids + 7, al.token_word, al.sentence_end, al.word_start)  # wrong ids
    (got,) = enc.embed_aligned([(words, al_other)], Other())
    np.testing.assert_allclose(got, enc.embed(["Aa bb.", "Cc dd."]), atol=1e-6)


def test_minilm_embeddings_rank_related_sentence_first():
    enc = SentenceEncoder.from_base()
    q, related, unrelated = enc.embed(
        ["Who wrote Pride and Prejudice?", "Jane Austen wrote the novel Pride and Prejudice.",
         "The river freezes every winter."]
    )
    assert float(q @ related) > float(q @ unrelated) + 0.2


def test_onnx_sentence_graph_matches_torch_and_is_cached(pair, wordpiece_tokenizer, tmp_path):
    pytest.importorskip("onnxruntime")
    _, base = pair
    enc = SentenceEncoder(base, wordpiece_tokenizer)
    texts = ["a short one", "a much longer sentence with several more words in it", ""]
    want = enc.embed(texts)
    fp32 = enc.with_onnx(cache_dir=tmp_path, quantize=False)
    np.testing.assert_allclose(fp32.embed(texts), want, atol=1e-4)
    int8 = enc.with_onnx(cache_dir=tmp_path)
    got = int8.embed(texts)
    assert np.all(np.sum(got * want, axis=1) > 0.95)  # int8 rounding moves the vectors a little
    graphs = sorted(p.name for p in tmp_path.glob("sentence-*.onnx"))
    assert len(graphs) == 2  # fp32 and int8: their own keys
    again = enc.with_onnx(cache_dir=tmp_path)  # a second load reuses the cached graph
    assert again.graph.path == int8.graph.path
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == graphs
    short = enc.with_onnx(cache_dir=tmp_path, quantize=False, layers=1)
    with torch.no_grad():
        ids = wordpiece_tokenizer(["a short one"], return_tensors="pt")["input_ids"]
        out = base.encoder.layer[0](base.embeddings(input_ids=ids))
        h = out[0] if isinstance(out, tuple) else out  # (1, width, dim)
    ref = h[0].mean(0).numpy()
    np.testing.assert_allclose(short.embed(["a short one"])[0], ref / np.linalg.norm(ref), atol=1e-4)
