"""The unit rules (issue 15 item 4): numbers, quantities, dates, labelled numbers, names with
connectors, and one definition shared by labelling and inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mooscomp.alignment import segment_words
from mooscomp.config import UNIT_RULES, CompressionConfig
from mooscomp.labeling import (
    lexical_units,
    rule_unit_spans,
    rule_unit_spans_attached,
    units_from_spans,
)
from mooscomp.units import unit_ids

ROOT = Path(__file__).resolve().parents[1]


def _units(text: str, rules=UNIT_RULES) -> list[str]:
    w = segment_words(text)
    u = unit_ids(w, rules)
    groups: dict[int, list[str]] = {}
    for word, g in zip(w.tolist(), u.tolist(), strict=True):
        groups.setdefault(g, []).append(word)
    return [" ".join(v) for v in groups.values()]


@pytest.mark.parametrize(
    "text, number",
    [("It was built in 1962 and the roof leaked.", "1962"), ("Route 9 will run.", "9"),
     ("About 1,500 books were lost.", "1 , 500"), ("He had 3 cats.", "3")],
)
def test_number_never_pools_with_a_following_ordinary_word(text, number):
    units = _units(text)
    nxt = text.split(number.replace(" ", ""))[1].split()[0].strip(".,")
    assert not any(u.startswith(f"{number} {nxt}") for u in units), units
    assert "1962 and" not in units and "9 will" not in units


@pytest.mark.parametrize(
    "text, unit",
    [("It costs 4.2 million dollars today.", "4 . 2 million dollars"),
     ("It costs $4.2 million today.", "$ 4 . 2 million"), ("We walked 5 km home.", "5 km"),
     ("Prices rose 30 percent last year.", "30 percent"), ("Prices rose 30 % last year.", "30 %"),
     ("Buses run every 15 minutes now.", "15 minutes"), ("Rates fell 5 per cent here.", "5 per cent")],
)
def test_quantities_are_units(text, unit):
    assert unit in _units(text)


@pytest.mark.parametrize(
    "text, unit",
    [("Staff return on April 11 with a plan.", "April 11"), ("Staff return on 11 April with it.", "11 April"),
     ("It opened in April 2024 to the public.", "April 2024"), ("It opened on 11 April 2024 here.", "11 April 2024"),
     ("The bus starts on May 1, and more.", "May 1")],
)
def test_dates_are_units(text, unit):
    assert unit in _units(text)


@pytest.mark.parametrize(
    "text, unit",
    [("Route 9 will now run.", "Route 9"), ("It is in Chapter 3 now.", "Chapter 3"),
     ("The crew of Apollo 11 landed.", "Apollo 11"), ("It needs Windows 10 to work.", "Windows 10")],
)
def test_label_and_number_is_a_unit(text, unit):
    assert unit in _units(text)


def test_label_excludes_function_words():
    units = _units("In 1962 it rained. On 3 days it snowed.")
    assert "In" in units and "1962" in units and "On" in units


@pytest.mark.parametrize(
    "name",
    ["Queen Saleha of Brunei", "Suleiman the Magnificent", "Ludwig van Beethoven", "Rogier van der Weyden",
     "Leonardo da Vinci", "Mohammed bin Salman", "Bashar al - Assad", "Lord of the Rings"],
)
def test_names_keep_their_connectors(name):
    text = name.replace(" - ", "-")
    assert name in _units(f"Yesterday we read that {text} arrived.")


@pytest.mark.parametrize(
    "text, not_joined",
    [("The house of cards fell.", "house of cards"), ("Yesterday the dog barked.", "Yesterday the"),
     ("When the King came home.", "When the King"), ("In the Netherlands it rains.", "In the Netherlands"),
     ("Queen\nof Brunei", "Queen of"), ("He spoke of Brunei.", "of Brunei")],
)
def test_connectors_need_capitalised_words_on_both_sides(text, not_joined):
    units = _units(text)
    assert not any(not_joined in u for u in units), units


def test_capitalised_function_word_does_not_start_a_name():
    assert _units("The Beatles played. In Paris it rained.")[:4] == ["The", "Beatles", "played", "."]
    assert "Paris" in _units("In Paris it rained.")


def test_units_are_contiguous_and_rules_are_independent():
    text = "Queen Saleha of Brunei paid 4.2 million dollars on April 11 for Route 9."
    w = segment_words(text)
    for rules in [(), ("attached",), ("capitalised",), ("number",), UNIT_RULES]:
        u = unit_ids(w, rules)
        assert u[0] == 0 and np.all(np.diff(u) >= 0) and np.all(np.diff(u) <= 1)
    assert _units(text, ("capitalised",))[0] == "Queen Saleha of Brunei"
    assert "4" in _units(text, ("capitalised",))  # quantities belong to the number rule
    assert "April 11" not in _units(text, ("attached",))


def _sample() -> list[str]:
    texts = [(ROOT / "examples" / "meeting.txt").read_text(encoding="utf-8")]
    texts += [
        "Queen Saleha of Brunei met Suleiman the Magnificent in 1962 and Route 9 will cost "
        "4.2 million dollars on April 11, 1962. The U.S. e-mail said 30 % of $3.5 billion.",
        "北京大学的校园位于海淀区。张伟教授在2023年获得了国家科学技术奖，奖金为4.2百万元。",
        "",
    ]
    return texts


def test_labelling_and_inference_share_one_definition():
    for text in _sample():
        w = segment_words(text)
        infer = unit_ids(w, UNIT_RULES)
        assert np.array_equal(lexical_units(text), infer)
        assert np.array_equal(units_from_spans(len(w), rule_unit_spans(w)), infer)
        assert np.array_equal(units_from_spans(len(w), rule_unit_spans_attached(w)), unit_ids(w, ("attached",)))


def test_meeting_example_units():
    units = _units((ROOT / "examples" / "meeting.txt").read_text(encoding="utf-8"))
    for u in ("1962", "Route 9", "April 11", "4 . 2 million dollars", "March 14", "May 1", "15 minutes",
              "Maple Street", "Dana Whitfield", "Fifth Avenue"):
        assert u in units, u
    assert not any(u.startswith(("1962 ", "9 ")) for u in units)


def test_vectorised_rules_on_long_text():
    text = "Queen Saleha of Brunei paid 4.2 million dollars on April 11 in 1962 and left. " * 2000
    w = segment_words(text)
    u = unit_ids(w, UNIT_RULES)
    assert int(u[-1]) + 1 == 2000 * len(_units(text[: text.index("left.") + 6]))


@pytest.mark.parametrize(
    ("text", "unit"),
    [("It was the steam engine indicator that won.", "steam engine indicator"),
     ("They measured the speed of light twice.", "speed of light"),
     ("A crime against shipping toxic waste was new.", "shipping toxic waste"),
     ("Marvel Comics character Wolverine appears.", "Marvel Comics character Wolverine")],
)
def test_phrase_rule_keeps_phrases_whole(text, unit):
    # maximal runs of content words: the phrase lies inside one unit (which may hold more words)
    rules = (*UNIT_RULES, "phrase")
    assert any(unit in u for u in _units(text, rules))
    assert not any(unit in u for u in _units(text))  # opt-in: not in the defaults


def test_phrase_rule_keeps_numbers_and_lines_apart():
    rules = (*UNIT_RULES, "phrase")
    units = _units("It was built in 1962 and the old roof leaked.\nNew roof tiles came.", rules)
    assert "1962" in units and "old roof leaked" in units and "New roof tiles came" in units
    assert "speed of" not in _units("the speed of 1962 cars", rules)  # a connector needs content words


def test_phrase_rule_is_validated_as_an_option():
    assert CompressionConfig(units=(*UNIT_RULES, "phrase")).units[-1] == "phrase"
    with pytest.raises(ValueError, match="unknown rules"):
        CompressionConfig(units=("phrases",))
