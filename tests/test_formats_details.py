"""Structured results carry per-word ``details`` over the input, like raw results.

The invariant that ties them to the output: the kept words, joined, are the output without its
whitespace (every non-space character of the input belongs to a word; structure is kept verbatim
and prose is rebuilt from the kept words).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_formats import MD, PROSE, WORDS, markdown_docs

from mooscomp.formats import FormatOptions, compress_formatted
from mooscomp.formats.details import _literal_offsets

HS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(res, source: str) -> np.ndarray:
    """Shape and invariant checks; returns the kept mask."""
    assert len(res.details) == 1
    d = res.details[0]
    w = d.words
    assert w.text == source
    n = len(w)
    for a in (d.kept, d.keep_prob, d.outlier_z, d.score, d.forced):
        assert a.shape == (n,)
    assert (np.diff(w.starts) > 0).all() and (w.ends > w.starts).all()
    assert (w.starts[1:] >= w.ends[:-1]).all()  # disjoint, in input order
    assert not (d.forced & ~d.kept).any()
    kept = [x for x, k in zip(w.tolist(), d.kept.tolist(), strict=True) if k]
    assert "".join(kept) == re.sub(r"\s+", "", res.text)
    # every non-space character of the input is in a word
    covered = np.zeros(len(source), dtype=bool)
    for s, e in zip(w.starts.tolist(), w.ends.tolist(), strict=True):
        covered[s:e] = True
    assert all(covered[i] or source[i].isspace() for i in range(len(source)))
    return d.kept


@HS
@given(doc=markdown_docs(), rate=st.sampled_from([0.3, 0.5, 0.8, 1.0]))
def test_property_markdown_details(tiny_compressor, doc, rate):
    res = compress_formatted(tiny_compressor, doc, format="markdown", rate=rate)
    kept = _check(res, doc)
    if rate == 1.0:
        assert kept.all() and res.text == doc


json_text = st.lists(st.sampled_from(PROSE + WORDS), min_size=1, max_size=3).map(" ".join)


@HS
@given(
    items=st.lists(
        st.fixed_dictionaries(
            {"id": st.integers(0, 99), "title": st.sampled_from(WORDS), "text": json_text}
        ),
        min_size=1,
        max_size=5,
    ),
    rate=st.sampled_from([0.3, 0.6]),
    indent=st.sampled_from([None, 2]),
)
def test_property_json_details(tiny_compressor, items, rate, indent):
    text = json.dumps({"results": items}, indent=indent)
    res = compress_formatted(tiny_compressor, text, format="json", rate=rate)
    _check(res, text)


def test_json_escapes_map_to_the_input(tiny_compressor):
    doc = {"a": "caf\u00e9 na\u00efve \U0001f600 words " + PROSE[0] + ' "quoted" end', "b": 1}
    text = json.dumps(doc, ensure_ascii=True)
    res = compress_formatted(tiny_compressor, text, format="json", rate=0.5)
    _check(res, text)  # the output escapes as the input did, so the invariant holds
    d = res.details[0]
    words = d.words.tolist()
    assert "caf\\u00e9" in words and "\\ud83d\\ude00" in words  # one word each, escapes and all


@HS
@given(v=st.text(max_size=30), ascii_=st.booleans())
def test_literal_offsets(v, ascii_):
    lit = json.dumps(v, ensure_ascii=ascii_)[1:-1]
    offs = _literal_offsets(lit, len(v))
    assert offs[0] == 0 and offs[-1] == len(lit)
    for i in range(len(v)):
        for j in range(i, len(v) + 1):
            assert json.loads('"' + lit[offs[i] : offs[j]] + '"') == v[i:j]


def test_structure_forced_prose_scored(tiny_compressor):
    res = tiny_compressor.compress(MD, rate=0.6)
    assert res.format == "markdown"
    d = res.details[0]
    words = d.words.tolist()
    i = words.index("Quarterly")  # heading: structure
    assert d.forced[i] and d.kept[i] and d.keep_prob[i] == 1.0
    j = words.index("enterprise")  # prose: scored, not forced
    assert not d.forced[j] and 0.0 <= d.keep_prob[j] <= 1.0
    assert (~d.kept).any() and res.to_dict(include_scores=True)["details"][0]["words"] == words


def test_dropped_code_block_and_structure_over_budget(tiny_compressor):
    res = compress_formatted(
        tiny_compressor, MD, rate=0.6, options=FormatOptions(code_blocks="drop")
    )
    kept = _check(res, MD)
    words = res.details[0].words.tolist()
    assert not kept[words.index("growth")] and not res.details[0].forced[words.index("growth")]
    lst = "Agenda:\n- open the meeting\n- approve the minutes of 12 May\n- budget: 4,500 EUR\n"
    with pytest.warns(UserWarning, match="structure"):
        res = tiny_compressor.compress(lst, rate=0.2, format="markdown")
    d = res.details[0]
    assert res.target_missed and (d.kept == d.forced).all()  # structure only: all prose dropped
    _check(res, lst)



def test_force_tokens_survive_a_structure_over_budget(tiny_compressor):
    # the short second paragraph is a label kept verbatim and costs the whole budget: the prose is
    # dropped, but never its force tokens (found by the property test of forced tokens)
    text = "the the the the\n\nthe 3.5 "
    with pytest.warns(UserWarning, match="but the force tokens"):
        res = tiny_compressor.compress(text, rate=0.5, force_tokens=["the"])
    d = res.details[0]
    assert d.forced.any() and not (d.forced & ~d.kept).any()
    assert res.text.count("the") == 5


def test_text_cjk_and_code_details(tiny_compressor):
    paras = PROSE[0] + ".\n\n" + PROSE[1] + ".\n\n" + PROSE[2] + "."
    _check(tiny_compressor.compress(paras, rate=0.5), paras)
    zh = "北京大学的学生在图书馆里学习。" * 3 + "\n\n" + "他们每天早上八点开始上课。" * 2
    _check(compress_formatted(tiny_compressor, zh, rate=0.5), zh)
    code = "import os\n\n\ndef f(x):\n    # " + PROSE[1] + "\n    return x + 1\n"
    res = compress_formatted(
        tiny_compressor, code, format="code", rate=0.8, options=FormatOptions(code="comments")
    )
    _check(res, code)


# ---------------------------------------------------------------------------- JSON list items


def _items_doc(n: int) -> dict:
    results = [
        {"id": i, "title": f"Item {i}", "text": PROSE[i % 5] + " " + PROSE[(i + 2) % 5]}
        for i in range(n)
    ]
    return {
        "query": "towers",
        "results": results,
        "tags": [{"a": 1}, {"b": 2}],
        "mix": [{"x": 1}, 2],
    }


def test_object_lists_found():
    from mooscomp.formats.json_items import object_lists

    text = json.dumps(_items_doc(3), indent=2)
    lists = object_lists(text)
    assert [len(x) for x in lists] == [3, 2]  # "mix" is not all objects
    for items in lists:
        for s, e in items:
            assert isinstance(json.loads(text[s:e]), dict)
    assert object_lists('[{"a": [1, {"b": 2}]}, "x"]') == [] and object_lists("[[], []]") == []


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("share", [0.3, 0.6, 1.0])
def test_json_item_rate_drops_whole_items(tiny_compressor, indent, share):
    import math

    doc = _items_doc(7)
    text = json.dumps(doc, indent=indent)
    opts = FormatOptions(json_item_rate=share)
    res = compress_formatted(tiny_compressor, text, rate=0.4, options=opts)
    out = json.loads(res.text)  # parses
    ids = [x["id"] for x in out["results"]]
    assert len(ids) == math.ceil(share * 7) and ids == sorted(ids)  # input order kept
    for x in out["results"]:
        assert set(x) == {"id", "title", "text"} and x["title"] == f"Item {x['id']}"
    assert out["tags"] == doc["tags"] and out["mix"] == doc["mix"]  # no prose / not objects
    assert res.compressed_tokens == tiny_compressor.count(res.text)
    if res.target_missed:  # the kept items are all shorter than the target: said so
        assert res.compressed_tokens < res.target_tokens and share < 1.0
        assert any("short of the target" in w for w in res.warnings)
    else:  # the budget holds with items dropped
        assert abs(res.compressed_tokens - res.target_tokens) <= max(0.02 * res.target_tokens, 1)
    assert any("dropped" in w for w in res.warnings) == (share < 1.0)
    kept = _check_items(res, text)
    assert kept is not None


def _check_items(res, text):
    """Details stay over the input: words of dropped items are not kept."""
    d = res.details[0]
    assert d.words.text == text and len(d.words) == len(d.kept)
    assert not (d.forced & ~d.kept).any()
    kept = [w for w, k in zip(d.words.tolist(), d.kept.tolist(), strict=True) if k]
    assert "".join(kept) == re.sub(r"\s+", "", res.text)
    return d.kept


def test_json_item_rate_default_off_and_validated(tiny_compressor):
    text = json.dumps(_items_doc(4))
    full = compress_formatted(
        tiny_compressor, text, rate=1.0, options=FormatOptions(json_item_rate=0.25)
    )
    assert full.text == text  # the budget covers everything: nothing dropped
    res = compress_formatted(tiny_compressor, text, rate=0.5)
    assert len(json.loads(res.text)["results"]) == 4
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ValueError, match="json_item_rate"):
            FormatOptions(json_item_rate=bad)
    with pytest.raises(TypeError):
        FormatOptions(4, "keep", "verbatim", "warn", 6, "compact", 0.5)  # keyword only
