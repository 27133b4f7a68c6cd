from __future__ import annotations

import pytest

from mooscomp.counting import (
    cl100k_count,
    cl100k_count_many,
    cl100k_encoding,
    counter_from_tokenizer,
)


def test_cl100k_known_strings():
    assert cl100k_count("hello world") == 2
    assert cl100k_encoding().encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert cl100k_count("") == 0


def test_special_token_text_is_plain_text():
    assert cl100k_count("<|endoftext|>") > 1


def test_count_many_matches_single():
    texts = ["a b c", " hello", "", "Ünïcödé 東京 😀"]
    assert cl100k_count_many(texts).tolist() == [cl100k_count(t) for t in texts]


def test_hf_tokenizer_counter(wordpiece_tokenizer):
    count = counter_from_tokenizer(wordpiece_tokenizer)
    assert count("hello world") == 2


def test_count_many_agrees_on_short_and_long_strings():
    from mooscomp.counting import _BATCH_MIN_CHARS, cl100k_count, cl100k_count_many

    short = [" word", "3.5", "", " naïve", "\n\n", " Zürich"]
    long_ = ["The river rises in the hills. " * (_BATCH_MIN_CHARS // 20)] * 3  # thread-pool path
    for texts in (short, long_, short + long_):
        assert cl100k_count_many(texts).tolist() == [cl100k_count(t) for t in texts]
    assert cl100k_count_many(short).tolist() == [1, 3, 0, 2, 1, 3]


@pytest.mark.parametrize(
    "text",
    ["Hello world, it's 1962 and Route 9!\n\nThe end.", "Café naïve — 東京 tower 😀 ok  ", "  lead", "x"],
)
def test_span_costs_one_encoding(text):
    from mooscomp.alignment import segment_words
    from mooscomp.counting import cl100k_span_costs

    w = segment_words(text)
    total, costs = cl100k_span_costs(text, w.ends)
    assert total == cl100k_count(text)
    assert costs.shape == (len(w),) and (costs >= 0).all()
    # every token up to the last word's end is some word's: only trailing whitespace is nobody's
    trailing = len(text) - int(w.ends[-1])
    assert total - trailing <= costs.sum() <= total
    assert costs[-1] >= 1
