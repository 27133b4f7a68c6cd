from __future__ import annotations

import numpy as np

from mooscomp.alignment import segment_words
from mooscomp.selection import join_kept, select_global, select_llmlingua2, unit_ids


def _units(text, rules):
    w = segment_words(text)
    u = unit_ids(w, rules)
    groups: dict[int, list[str]] = {}
    for word, g in zip(w.tolist(), u.tolist(), strict=True):
        groups.setdefault(g, []).append(word)
    return [" ".join(v) for v in groups.values()]


def test_units_none_is_one_word_each():
    assert _units("Griselda Blanco paid 3.5 km.", ()) == ["Griselda", "Blanco", "paid", "3", ".", "5", "km", "."]


def test_units_rules():
    got = _units("Griselda Blanco paid 3.5 km, by e-mail.", ("attached", "capitalised", "number"))
    assert got == ["Griselda Blanco", "paid", "3 . 5 km", ",", "by", "e - mail", "."]


def test_units_capitalised_stop_at_newline():
    got = _units("Alice\nBob", ("capitalised",))
    assert got == ["Alice", "Bob"]


def test_select_global_hits_target_exactly_with_exact_measure():
    rng = np.random.default_rng(0)
    score = rng.random(1000)
    cost = rng.integers(1, 4, size=1000).astype(float)
    forced = np.zeros(1000, dtype=bool)
    forced[[3, 7]] = True
    keep = select_global(score, cost, forced, 500, measure=lambda m: int(cost[m].sum()))
    assert abs(cost[keep].sum() - 500) <= 3
    assert keep[3] and keep[7]
    # the kept set is a top-k by score among non-forced units
    free = ~forced
    assert score[free & keep].min() >= score[free & ~keep].max()


def test_select_global_forced_exceeding_budget_keeps_forced():
    score = np.array([0.9, 0.1, 0.5])
    cost = np.array([10.0, 10.0, 10.0])
    forced = np.array([False, True, True])
    keep = select_global(score, cost, forced, 5, measure=lambda m: int(cost[m].sum()))
    assert keep.tolist() == [False, True, True]


def test_select_llmlingua2_percentile_rule():
    score = np.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.8])
    cost = np.array([1, 1, 2, 1, 1, 1])
    chunk = np.array([0, 0, 0, 1, 1, 1])
    keep = select_llmlingua2(score, cost, chunk, reduce_rate=0.5)
    # chunk 0: expanded [0.1, 0.9, 0.5, 0.5], 51st percentile ~0.5 -> keep > thr
    t0 = np.percentile([0.1, 0.9, 0.5, 0.5], 51)
    t1 = np.percentile([0.7, 0.2, 0.8], 51)
    assert keep.tolist() == [0.1 > t0, 0.9 > t0, 0.5 > t0, 0.7 > t1, 0.2 > t1, 0.8 > t1]


def test_join_kept_spacing():
    w = segment_words("Hello, world. It is e-mail\nnow.")
    keep = np.ones(len(w), dtype=bool)
    keep[1] = False  # drop ","
    assert join_kept(w, keep, keep_newlines=False) == "Hello world. It is e-mail now."
    assert join_kept(w, keep, keep_newlines=True) == "Hello world. It is e-mail\nnow."
    keep2 = keep.copy()
    keep2[w.tolist().index("-")] = False
    assert join_kept(w, keep2, keep_newlines=False) == "Hello world. It is e mail now."


def test_forced_words_marks_every_overlapped_word():
    from mooscomp.selection import forced_words

    w = segment_words("Call West Francia now, West Francia!")
    got = forced_words(w, ["West Francia", "!"])
    assert [x for x, f in zip(w.tolist(), got.tolist(), strict=True) if f] == [
        "West", "Francia", "West", "Francia", "!"]
    assert not forced_words(w, [" ", "\n"]).any()  # whitespace-only tokens mark no word


def test_mark_adds_the_question_boost_and_digits():
    from mooscomp.config import CompressionConfig, Request
    from mooscomp.selection import mark

    w = segment_words("Rollo paid 911 coins to Charles")
    n = len(w)
    zeros = np.zeros(n, np.float32)
    cfg = CompressionConfig(question_weight=0.5, force_reserve_digit=True)
    ft, forced, scored = mark([w], [(zeros, zeros, zeros)], Request(rate=0.5, question="Who paid Charles?"), cfg)
    assert not ft[0].any() and forced[0].tolist() == [False, False, True, False, False, False]
    assert scored[0][2].tolist() == [0.0, 0.5, 0.0, 0.0, 0.0, 0.5]  # "paid", "Charles"; "who" is a stop word


def test_context_filter_levels():
    from mooscomp.config import CompressionConfig
    from mooscomp.selection import context_filter

    probs = [np.asarray([0.9]), np.asarray([0.1]), np.asarray([0.5]), np.zeros(0)]
    cfg = CompressionConfig()
    assert context_filter(probs, 0.5, None, 100, cfg) == [True, True, True, False]  # level 0.75: p25 = 0.075
    assert context_filter(probs, None, 10, 100, cfg) == [True, False, False, False]  # level 0.2: p80 = 0.66
    assert context_filter(probs, 0.5, None, 100, cfg.replace(context_level_rate=1.0)) == [True] * 4


def test_word_chunks_follow_first_token():
    from mooscomp.alignment import Alignment
    from mooscomp.selection import word_chunks

    al = Alignment.__new__(Alignment)
    object.__setattr__(al, "token_word", np.asarray([0, 0, 1, 2, 2, 4]))
    object.__setattr__(al, "input_ids", np.arange(6))
    got = word_chunks(al, [(0, 3), (3, 6)], 5)
    assert got.tolist() == [0, 0, 1, 1, 1]  # word 3 has no token: it follows word 2
