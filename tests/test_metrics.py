from __future__ import annotations

import numpy as np
import pytest

from mooscomp.evaluation import metrics as M


def test_normalize_answer_squad_rules() -> None:
    assert M.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert M.normalize_answer("an apple, a pear") == "apple pear"


def test_em_f1_hand_computed() -> None:
    assert M.exact_match("the France", "France") == 1.0
    # pred {paris, france} vs gold {france}: p=1/2, r=1 -> f1=2/3
    assert M.f1_score("Paris France", "France") == pytest.approx(2 / 3)
    assert M.f1_score("", "France") == 0.0
    s = M.qa_scores("Answer: France\nBecause ...", ["Germany", "France"])
    assert s == {"em": 1.0, "f1": 1.0, "contains": 1.0}


def test_rouge_hand_computed() -> None:
    pred, ref = "the cat sat on the mat", "the cat lay on the mat"
    # unigrams: 5 of 6 overlap -> 5/6
    assert M.rouge_n(pred, ref, 1) == pytest.approx(5 / 6)
    # bigrams: (the cat),(on the),(the mat) of 5 -> 3/5
    assert M.rouge_n(pred, ref, 2) == pytest.approx(3 / 5)
    # LCS = the cat on the mat = 5 -> 5/6
    assert M.rouge_l(pred, ref) == pytest.approx(5 / 6)
    assert M.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert M.rouge_scores("x", ["y", "x"])["rouge1"] == 1.0


def test_choice_parsing() -> None:
    opts = ["red", "blue", "green"]
    assert M.parse_choice("(B)", opts) == "B"
    assert M.parse_choice("B. blue", opts) == "B"
    assert M.parse_choice("the answer is green", opts) == "C"
    assert M.parse_choice("no idea", opts) is None
    assert M.choice_accuracy("A) red", "A", opts) == 1.0


def test_answer_survival_whole_tokens() -> None:
    assert M.answer_survival("born in Paris, France.", ["France"]) == 1.0
    assert M.answer_survival("born in Francesca", ["France"]) == 0.0
    assert M.answer_survival("Griselda was", ["Griselda Blanco"]) == 0.0


def test_score_item_headlines() -> None:
    assert M.score_item("qa", "France", ["France"], {})["score"] == 1.0
    assert M.score_item("needle", "It is 1234567.", ["1234567"], {})["score"] == 1.0
    assert M.score_item("choice", "(A)", ["A"], {"options": ["x", "y"]})["score"] == 1.0
    with pytest.raises(ValueError):
        M.score_item("nope", "", ["x"], {})


def test_bootstrap_ci() -> None:
    lo, hi = M.bootstrap_ci([1.0] * 10)
    assert lo == hi == 1.0
    x = np.r_[np.ones(50), np.zeros(50)]
    lo, hi = M.bootstrap_ci(x, seed=1)
    assert 0.35 < lo < 0.5 < hi < 0.65
    assert M.bootstrap_ci(x, seed=1) == (lo, hi)
    assert np.isnan(M.bootstrap_ci([])[0])
