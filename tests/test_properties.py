"""Property tests of the public API on the tiny random model (hypothesis).

The compressor only ever drops words: what it returns is built from the input's words, in order;
forced tokens survive; rate 1 is the identity; a lower rate keeps a subset; the result does not
depend on how the work is batched or threaded; and the counts it reports are recounts of its text.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mooscomp.alignment import segment_words
from mooscomp.config import CompressionConfig
from mooscomp.counting import cl100k_count

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VOCAB = [
    "the", "a", "of", "cat", "sat", "Paris", "New", "York", "3.5", "km", "1066", "e-mail", "U.S.",
    "(note)", "don't", "$5", "50%", "naïve", "日本", "語", "😀", "—", "...", "!", "?", "x_y",
    "Ⅻ", "ﬁ", "İstanbul", "שלום", "\u200b", "a\u0301",
]
_chars = st.characters(codec="utf-8", exclude_categories=("Cs",))
WORD = st.one_of(st.sampled_from(VOCAB), st.text(alphabet=_chars, min_size=1, max_size=6))
SEP = st.sampled_from([" ", " ", " ", " ", "\n", ", ", ". ", "  ", "\n\n", "", "\t"])
TEXT = st.lists(st.tuples(WORD, SEP), min_size=1, max_size=50).map(
    lambda xs: "".join(w + s for w, s in xs)
)
RATE = st.floats(min_value=0.05, max_value=1.0, allow_nan=False)
BUDGET = st.sampled_from(["global", "llmlingua2"])


def _kept_words(res) -> list[str]:
    d = res.details[0]
    return [w for w, k in zip(d.words.tolist(), d.kept.tolist(), strict=True) if k]


@SETTINGS
@given(text=TEXT, rate=RATE, budget=BUDGET)
def test_output_is_in_order_subsequence_of_input_words(tiny_compressor, text, rate, budget):
    res = tiny_compressor.compress(text, rate=rate, config=CompressionConfig(budget=budget))
    d = res.details[0]
    assert d.words.tolist() == segment_words(text).tolist()
    # the output text is exactly the kept words, in input order, nothing added
    assert segment_words(res.text).tolist() == _kept_words(res)
    # and only whitespace was inserted between them
    assert "".join(res.text.split()) == "".join(_kept_words(res))


@SETTINGS
@given(text=TEXT, data=st.data())
def test_forced_tokens_always_kept(tiny_compressor, text, data):
    words = segment_words(text).tolist()
    if not words:
        return
    force = data.draw(st.lists(st.sampled_from(words), max_size=4, unique=True), label="force")
    rate = data.draw(st.floats(0.01, 1.0), label="rate")
    # a large outlier weight / question boost pushes fused scores above the forced score of 1.0
    cfg = CompressionConfig(
        budget=data.draw(BUDGET, label="budget"),
        outlier_alpha=data.draw(st.sampled_from([0.0, 0.1, 2.0]), label="alpha"),
    )
    question = data.draw(st.sampled_from([None, " ".join(words[:5])]), label="question")
    res = tiny_compressor.compress(text, rate=rate, force_tokens=force, question=question, config=cfg)
    d = res.details[0]
    for t in force:
        if t.strip():
            assert t in res.text, (t, res.text)
    assert not (d.forced & ~d.kept).any()


@SETTINGS
@given(text=TEXT, budget=BUDGET)
def test_rate_one_and_full_target_return_input_unchanged(tiny_compressor, text, budget):
    cfg = CompressionConfig(budget=budget)
    res = tiny_compressor.compress(text, rate=1.0, config=cfg)
    n = cl100k_count(text) if segment_words(text).tolist() else 0
    assert res.text == (text if n else "")
    assert res.compressed_tokens == res.origin_tokens == n
    if n:
        assert tiny_compressor.compress(text, target_tokens=n, config=cfg).text == text


@settings(SETTINGS, max_examples=10)
@given(text=TEXT, rates=st.lists(RATE, min_size=2, max_size=5, unique=True), budget=BUDGET)
def test_lower_rate_keeps_a_subset(tiny_compressor, text, rates, budget):
    cfg = CompressionConfig(budget=budget)
    results = [tiny_compressor.compress(text, rate=r, config=cfg) for r in sorted(rates)]
    for lo, hi in zip(results, results[1:], strict=False):
        k_lo, k_hi = lo.details[0].kept, hi.details[0].kept
        assert not (k_lo & ~k_hi).any(), "a word kept at a lower rate was dropped at a higher one"
        if budget == "global":
            assert lo.compressed_tokens <= hi.compressed_tokens


@settings(SETTINGS, max_examples=10)
@given(text=TEXT, data=st.data())
def test_global_budget_monotone_in_target_tokens(tiny_compressor, text, data):
    n = tiny_compressor.compress(text, rate=1.0).origin_tokens
    if n < 2:
        return
    targets = sorted(data.draw(st.lists(st.integers(1, n), min_size=2, max_size=5, unique=True)))
    prev = None
    for t in targets:
        res = tiny_compressor.compress(text, target_tokens=t)
        if prev is not None:
            assert not (prev.details[0].kept & ~res.details[0].kept).any()
            assert prev.compressed_tokens <= res.compressed_tokens
        prev = res


@settings(SETTINGS, max_examples=8)
@given(texts=st.lists(TEXT, min_size=1, max_size=3), rate=RATE, budget=BUDGET)
def test_same_output_whatever_batching_or_threads(tiny_compressor, texts, rate, budget):
    cfg = CompressionConfig(budget=budget)
    ref = [tiny_compressor.compress(t, rate=rate, config=cfg) for t in texts]
    batched = tiny_compressor.compress_batch(texts, rate=rate, config=cfg)
    one = tiny_compressor.compress_batch(texts, rate=rate, config=cfg.replace(batch_size=1))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = tiny_compressor.compress_batch(texts, rate=rate, config=cfg.replace(batch_size=3))
    finally:
        torch.set_num_threads(threads)
    for r, *others in zip(ref, batched, one, single, strict=True):
        for o in others:
            assert o.text == r.text
            assert np.array_equal(o.details[0].kept, r.details[0].kept)
            assert o.compressed_tokens == r.compressed_tokens


@SETTINGS
@given(contexts=st.lists(TEXT, min_size=1, max_size=3), rate=RATE, budget=BUDGET)
def test_counts_match_a_recount(tiny_compressor, contexts, rate, budget):
    res = tiny_compressor.compress(contexts, rate=rate, config=CompressionConfig(budget=budget))
    origin = sum(cl100k_count(c) for c in contexts if segment_words(c).tolist())
    assert res.origin_tokens == origin
    kept = [c for c, k in zip(res.contexts, res.context_kept, strict=True) if k]
    assert res.compressed_tokens == sum(cl100k_count(c) for c in kept)
    if len(contexts) == 1:
        assert res.compressed_tokens == cl100k_count(res.text)
    assert res.rate == pytest.approx(res.compressed_tokens / origin if origin else 1.0)


def test_global_budget_regression_tolerance_made_counts_non_monotonic(tiny_compressor, sample_text):
    """Before the exact search, target 164 kept 162 tokens while target 163 kept 163: the first
    count "within 2 %" was accepted, so the answer depended on the search path."""
    prev = tiny_compressor.compress(sample_text, target_tokens=160, format="raw")
    for t in (162, 163, 164, 165, 181, 182, 194, 195):  # the raw path's exact search
        res = tiny_compressor.compress(sample_text, target_tokens=t, format="raw")
        assert prev.compressed_tokens <= res.compressed_tokens
        assert not (prev.details[0].kept & ~res.details[0].kept).any()
        assert abs(res.compressed_tokens - t) <= 3
        prev = res


def test_llmlingua2_regression_forced_kept_when_scores_exceed_one(tiny_compressor, sample_text):
    """Forced words score 1.0; with outlier_alpha 2 fused scores exceed 1, the percentile went
    above 1 and forced words were dropped (26 of them on the sample at rate 0.3)."""
    cfg = CompressionConfig(budget="llmlingua2", outlier_alpha=2.0)
    res = tiny_compressor.compress(sample_text, rate=0.3, force_tokens=["Normans", "the"], config=cfg)
    d = res.details[0]
    assert d.forced.sum() > 20 and not (d.forced & ~d.kept).any()


def test_surrogate_regression_replaced_by_fffd_not_question_mark(tiny_compressor):
    res = tiny_compressor.compress("hello \ud800 world", rate=1.0)
    assert res.text == "hello \ufffd world" and "?" not in res.text


@pytest.mark.parametrize("inputs", ["", "  \n\t", ["", " "]])
def test_empty_input_regression_has_one_detail_per_context(tiny_compressor, inputs):
    res = tiny_compressor.compress(inputs, rate=0.5)
    n = 1 if isinstance(inputs, str) else len(inputs)
    assert len(res.details) == len(res.contexts) == n and res.text == ""
    assert all(len(d.words) == 0 and d.kept.shape == (0,) for d in res.details)


# the shipped model's question-free defaults (sentence focus, paragraph openings first)
FOCUS = CompressionConfig(focus=1.0, focus_spread=1.5, focus_first=1, focus_per_paragraph=0,
                          units=("attached", "capitalised", "number", "phrase"))


@SETTINGS
@given(contexts=st.lists(TEXT, min_size=1, max_size=3), data=st.data())
def test_focus_defaults_drop_words_only_and_keep_forced(tiny_compressor, contexts, data):
    words = [w for c in contexts for w in segment_words(c).tolist()]
    force = data.draw(st.lists(st.sampled_from(words), max_size=3, unique=True), label="force") if words else []
    cfg = FOCUS.replace(focus_per_paragraph=data.draw(st.sampled_from([0, 1]), label="per_paragraph"))
    res = tiny_compressor.compress(contexts, rate=data.draw(RATE, label="rate"), force_tokens=force, config=cfg)
    for ctx, d in zip(contexts, res.details, strict=True):
        assert d.words.tolist() == segment_words(ctx).tolist()
        assert not (d.forced & ~d.kept).any()
    kept = [c for c, k in zip(res.contexts, res.context_kept, strict=True) if k]
    assert res.compressed_tokens == sum(cl100k_count(c) for c in kept)
    for ctx, d in zip(res.contexts, res.details, strict=True):
        kept_words = [w for w, k in zip(d.words.tolist(), d.kept.tolist(), strict=True) if k]
        assert segment_words(ctx).tolist() == kept_words
