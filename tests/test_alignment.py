from __future__ import annotations

import numpy as np
import pytest

from mooscomp.alignment import align, chunk_spans, segment_words


def test_segment_words_units():
    w = segment_words("Hello, Griselda! 3.5km e-mail 東京")
    assert w.tolist() == ["Hello", ",", "Griselda", "!", "3", ".", "5km", "e", "-", "mail", "東", "京"]
    assert w.space_before().tolist() == [True, False, True, False, True, False, False, True, False, False, True, False]


def test_segment_words_empty_and_type():
    assert len(segment_words("")) == 0
    assert len(segment_words("  \n\t ")) == 0
    with pytest.raises(TypeError):
        segment_words(b"bytes")  # type: ignore[arg-type]


def test_align_wordpiece(wordpiece_tokenizer):
    w = segment_words("Griselda Blanco paid $3.5M.")
    a = align(w, wordpiece_tokenizer)
    toks = wordpiece_tokenizer.convert_ids_to_tokens(a.input_ids.tolist())
    words = w.tolist()
    # every token lies inside its word (uncased: compare lower-case)
    for t, wi in zip(toks, a.token_word.tolist(), strict=True):
        assert wi >= 0
        assert t.replace("##", "") in words[wi].lower()
    assert a.sentence_end[-1]
    assert not a.sentence_end[toks.index(".")] or toks.count(".") == 1


def _sentencepiece_like_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog. " * 20], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def test_align_sentencepiece_offsets():
    tok = _sentencepiece_like_tokenizer()
    w = segment_words("the quick fox. the lazy dog")
    a = align(w, tok)
    covered = set(a.token_word[a.token_word >= 0].tolist())
    assert covered == set(range(len(w)))  # every word has tokens


def test_chunk_spans_respect_limit_and_sentences(wordpiece_tokenizer):
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    w = segment_words(text)
    a = align(w, wordpiece_tokenizer)
    spans = chunk_spans(a, 50)
    assert spans[0][0] == 0 and spans[-1][1] == len(a)
    for (_s, e), (s2, _) in zip(spans, spans[1:], strict=False):
        assert e == s2
    for s, e in spans:
        assert 0 < e - s <= 50
    for _, e in spans[:-1]:
        assert a.sentence_end[e - 1]


def test_chunk_spans_one_huge_word(wordpiece_tokenizer):
    w = segment_words("x" * 5000)
    a = align(w, wordpiece_tokenizer)
    spans = chunk_spans(a, 64)
    assert sum(e - s for s, e in spans) == len(a)
    assert max(e - s for s, e in spans) <= 64


def test_decimal_point_is_not_a_sentence_end(wordpiece_tokenizer):
    w = segment_words("It costs 3.5 dollars. Yes")
    a = align(w, wordpiece_tokenizer)
    ends = np.flatnonzero(a.sentence_end).tolist()
    toks = wordpiece_tokenizer.convert_ids_to_tokens(a.input_ids.tolist())
    assert [toks[i] for i in ends] == ["."]
    assert ends == [toks.index("dollars") + 1]


@pytest.mark.parametrize("make", ["wordpiece", "sentencepiece"])
def test_blocks_tokenise_as_the_whole_text(make, wordpiece_tokenizer):
    """Long texts are tokenised in blocks cut before the space before a word: the same ids and word map
    as one pass over the whole text, for WordPiece and a SentencePiece-style space marker."""
    from mooscomp.alignment import _blocks

    tok = wordpiece_tokenizer if make == "wordpiece" else _sentencepiece_like_tokenizer()
    text = "the quick  brown fox.\n\n  jumps over\tthe lazy dog. " * 12 + "thequickbrownfoxjumps" * 5
    w = segment_words(text)
    whole = align(w, tok, block_chars=10**6)
    for block in (7, 16, 40):
        spans = _blocks(text, block)
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
        assert all(text[a] == " " and not text[a + 1].isspace() for a, _ in spans[1:])
        part = align(w, tok, block_chars=block)
        assert np.array_equal(part.input_ids, whole.input_ids)
        assert np.array_equal(part.token_word, whole.token_word)
