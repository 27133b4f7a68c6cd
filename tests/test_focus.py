"""Sentence focus without a question (mooscomp.focus, CompressionConfig.focus)."""

from __future__ import annotations

import numpy as np
import pytest

from mooscomp.config import CompressionConfig
from mooscomp.focus import focus_scores, sentence_bonus, zscore


def test_weight_zero_leaves_scores_unchanged() -> None:
    ws = [np.array([0, 0, 1, 1])]
    s = [np.array([0.1, 0.9, 0.4, 0.5])]
    out = focus_scores(ws, s, [np.ones(4)], 2.0, weight=0.0, spread=1.0)
    np.testing.assert_array_equal(out[0], s[0])


def test_best_mean_sentence_gets_the_bonus_across_contexts() -> None:
    # context 0: sentences with means 0.2 and 0.8; context 1: one sentence, mean 0.5.
    ws = [np.array([0, 0, 1, 1]), np.array([0, 0])]
    s = [np.array([0.1, 0.3, 0.7, 0.9]), np.array([0.5, 0.5])]
    cost = [np.ones(4), np.ones(2)]
    out = focus_scores(ws, s, cost, 2.0, weight=1.0, spread=1.0)
    # the top sentence (mean 0.8) has bonus 1; the next (0.5) starts after 2 tokens = one budget: 0
    np.testing.assert_allclose(out[0], s[0] + np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(out[1], s[1])


def test_spread_lets_the_bonus_reach_later_sentences() -> None:
    ws = [np.array([0, 0, 1, 1, 2, 2])]
    s = [np.array([0.9, 0.9, 0.5, 0.5, 0.1, 0.1])]
    out = focus_scores(ws, s, [np.ones(6)], 2.0, weight=1.0, spread=2.0)
    np.testing.assert_allclose(out[0] - s[0], [1, 1, 0.5, 0.5, 0, 0])


def test_empty_contexts() -> None:
    out = focus_scores([np.zeros(0, dtype=np.int64)], [np.zeros(0)], [np.zeros(0)], 1.0, weight=1.0, spread=1.0)
    assert out[0].shape == (0,)
    assert zscore(np.zeros(0)).shape == (0,)
    assert sentence_bonus(np.zeros(0), np.zeros(0), 1.0, spread=1.0, first=np.zeros(0, bool)).shape == (0,)


def test_protected_words_get_the_share_of_the_bonus() -> None:
    ws = [np.array([0, 0, 1, 1])]
    s = [np.array([0.9, 0.9, 0.1, 0.1])]
    prot = [np.array([False, False, False, True])]
    out = focus_scores(ws, s, [np.ones(4)], 2.0, weight=1.0, spread=1.0, protect=prot, protect_share=0.5)
    np.testing.assert_allclose(out[0] - s[0], [1, 1, 0, 0.5])


@pytest.mark.parametrize("bad", [{"focus": -1.0}, {"focus_spread": 0.0}, {"focus": float("nan")},
                                 {"focus_numbers": 1.5}])
def test_config_rejects_bad_focus(bad: dict) -> None:
    with pytest.raises(ValueError):
        CompressionConfig(**bad)


def _kept_sentences(res) -> int:
    """How many sentences (ended by . ! ?) keep at least one word."""
    n = 0
    for d in res.details:
        sent = np.cumsum([0] + [w.endswith((".", "!", "?")) for w in d.words.tolist()[:-1]])
        n += len(set(sent[d.kept].tolist()))
    return n


def test_focus_concentrates_the_budget_and_keeps_it_exact(tiny_compressor, sample_text) -> None:
    base = tiny_compressor.compress(sample_text, rate=0.25)
    cfg = tiny_compressor.config.replace(focus=4.0, focus_spread=1.0)
    focused = tiny_compressor.compress(sample_text, rate=0.25, config=cfg)
    target = 0.25 * base.origin_tokens
    for r in (base, focused):
        assert abs(r.compressed_tokens - target) <= max(0.02 * r.origin_tokens, 2)
    assert _kept_sentences(focused) < _kept_sentences(base)


def test_focus_ignored_with_llmlingua2_budget(tiny_compressor, sample_text) -> None:
    cfg = tiny_compressor.config.replace(budget="llmlingua2", outlier_alpha=0.0)
    a = tiny_compressor.compress(sample_text, rate=0.5, config=cfg)
    b = tiny_compressor.compress(sample_text, rate=0.5, config=cfg.replace(focus=3.0))
    assert a.text == b.text


def test_paragraph_starts_and_leads() -> None:
    from mooscomp.alignment import segment_words
    from mooscomp.focus import paragraph_leads, paragraph_starts

    w = segment_words("One two. Three four.\n\nFive six.\nSeven.")
    # words: One two . Three four . | Five six . Seven .  (punctuation is a word of its own)
    np.testing.assert_array_equal(paragraph_starts(w), [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    ws = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3])  # four sentences; paragraphs {0, 1}, {2, 3}
    pri = np.array([0.1, 0.9, 0.2, 0.5])
    np.testing.assert_array_equal(paragraph_leads([ws], [paragraph_starts(w)], pri, 1), [0, 1, 0, 1])
    np.testing.assert_array_equal(paragraph_leads([ws], [paragraph_starts(w)], pri, 2), [1, 1, 1, 1])
    # the opening sentence of every paragraph, alone or beside the best one
    np.testing.assert_array_equal(paragraph_leads([ws], [paragraph_starts(w)], pri, 0, first=1), [1, 0, 1, 0])
    np.testing.assert_array_equal(paragraph_leads([ws], [paragraph_starts(w)], pri, 1, first=1), [1, 1, 1, 1])
    np.testing.assert_array_equal(paragraph_leads([ws], [paragraph_starts(w)], pri, 0, first=5), [1, 1, 1, 1])


def test_per_paragraph_lead_keeps_a_lone_fact(tiny_compressor) -> None:
    needle = "The special magic number for Oslo is 4821937."
    para = " ".join(f"Sentence {w} talks about the river and the old town." for w in
                    ("one", "two", "three", "four", "five"))
    text = "\n\n".join([para, needle, para.replace("river", "forest")])
    # three paragraph leads of ~10 words fit a 35% budget; a huge focus keeps only them
    cfg = tiny_compressor.config.replace(focus=100.0, focus_spread=0.05, focus_per_paragraph=1)
    res = tiny_compressor.compress(text, rate=0.35, format="raw", config=cfg)
    assert "4821937" in res.text and "Oslo" in res.text
    assert abs(res.compressed_tokens - 0.35 * res.origin_tokens) <= max(0.02 * res.origin_tokens, 2)


def test_focus_first_keeps_each_paragraph_opening(tiny_compressor) -> None:
    paras = [f"{name} is a town on the coast of {land}. " + " ".join(
        f"Sentence {w} talks about the river and the old harbour." for w in ("one", "two", "three", "four"))
        for name, land in (("Aldmouth", "Norway"), ("Brenfield", "Chile"), ("Corvale", "Japan"))]
    text = "\n\n".join(paras)
    # a huge focus keeps whole top-ranked sentences only: the three openings fit a 30% budget
    cfg = tiny_compressor.config.replace(focus=100.0, focus_spread=0.05, focus_per_paragraph=0, focus_first=1)
    res = tiny_compressor.compress(text, rate=0.3, format="raw", config=cfg)
    for name, land in (("Aldmouth", "Norway"), ("Brenfield", "Chile"), ("Corvale", "Japan")):
        assert name in res.text and land in res.text
    with pytest.raises(ValueError, match="focus_first"):
        tiny_compressor.config.replace(focus_first=-1)


def test_details_report_the_focused_score(tiny_compressor, sample_text) -> None:
    cfg = tiny_compressor.config.replace(focus=4.0)
    res = tiny_compressor.compress(sample_text, rate=0.25, format="raw", config=cfg)
    base = tiny_compressor.compress(sample_text, rate=0.25, format="raw")
    d, b = res.details[0], base.details[0]
    np.testing.assert_array_equal(d.keep_prob, b.keep_prob)
    assert (d.score >= b.score - 1e-6).all() and (d.score > b.score + 1.0).any()  # the bonus is in
    # units pool their words' scores, so only on average do kept words score higher
    assert d.score[d.kept].mean() > d.score[~d.kept].mean()
