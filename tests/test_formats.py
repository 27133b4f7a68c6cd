"""Format-aware compression: structure survives, the budget counts it, bad input is handled."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mooscomp.formats import FormatOptions, compress_formatted, detect_format

PROSE = [
    "the committee met on tuesday to review the budget for the new library",
    "after a long discussion the members agreed that the roof must be finished first",
    "revenue grew strongly in every region driven by new enterprise contracts",
    "the tower was built in 1958 and is used for broadcasting and observation",
    "Gustave Eiffel designed the lattice tower for the world fair of 1889 in Paris",
]
WORDS = ["alpha", "beta", "Tokyo Tower", "id_42", "2024-01-05", "https://example.com/x", "ok"]
HS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MD = """# Quarterly report

Revenue grew strongly in every region this quarter, driven by new enterprise contracts and a
recovery in consumer demand after the slow summer months.

| Region | Revenue | Comment |
|---|---|---|
| North America | 120.5 | strong enterprise demand from large banks and insurers |
| Europe | 80.2 | steady but the currency effects reduced the reported figure |

- Hiring will continue in the engineering and sales departments next quarter.
- The board approved a new [share buyback](https://example.com/buyback) programme worth millions.

```python
def growth(a, b):
    return (b - a) / a
```
"""


def _shape(v):
    """JSON value with every string replaced by "": keys, nesting, numbers and bools remain."""
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    return "" if isinstance(v, str) else v


def _fences(text: str) -> list[str]:
    return re.findall(r"^```.*?^```\n?", text, flags=re.M | re.S)


# ---------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "text, fmt",
    [
        ('{"a": [1, 2, {"b": "c"}]}', "json"),
        ("  [1, 2, 3]\n", "json"),
        ('{"a": 1,}', "text"),  # does not parse: never guessed as JSON
        ("[not json] at all", "text"),
        ("# Title\n\nSome text here.", "markdown"),
        ("a | b\n|---|---|\n1 | 2", "markdown"),
        ("- one\n- two\n", "markdown"),
        ("1. one\n\n2. two\n", "markdown"),  # a loose list: a blank line between its items
        # prose whose wrapped lines start with "2." and "4)" far apart (SQuAD paragraphs): no list
        ("The bed is purged in two steps.\n2. Then nitrogen is released from the other bed.\n"
         "Ozone is a form of oxygen.\nThe (PO\n4) groups carry energy in ATP.\n", "text"),
        ("See [the docs](https://x.org) for more.", "markdown"),
        ("```\ncode\n```", "markdown"),
        ("def f(x):\n    y = g(x)\n    return y;\n", "code"),
        ("int main() {\n  int x = 1;\n  return x;\n}\n", "code"),
        ("Agenda:\nopen the meeting.\nclose it (later).\n", "text"),
        ("Plain prose. Nothing else here, really.", "text"),
        ("", "text"),
    ],
)
def test_detect_format(text, fmt):
    assert detect_format(text) == fmt


def test_bad_arguments(tiny_compressor):
    with pytest.raises(ValueError, match="format must be one of"):
        compress_formatted(tiny_compressor, "x", format="yaml", rate=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        compress_formatted(tiny_compressor, "x", rate=0.5, target_tokens=3)
    with pytest.raises(ValueError, match="rate"):
        compress_formatted(tiny_compressor, "x", rate=1.5)
    with pytest.raises(TypeError):
        compress_formatted(tiny_compressor, b"x", rate=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_words"):
        FormatOptions(min_words=0)
    with pytest.raises(ValueError, match="code_blocks"):
        FormatOptions(code_blocks="cut")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- json


def test_malformed_json_is_an_error_not_a_fallback(tiny_compressor):
    with pytest.raises(ValueError, match="not valid JSON: .* line 1 column"):
        compress_formatted(tiny_compressor, '{"a": "b",}', format="json", rate=0.5)
    res = compress_formatted(tiny_compressor, '{"a": "b",} ' + PROSE[0], format="auto", rate=0.5)
    assert res.format == "text"


def test_json_keeps_keys_numbers_and_short_values(tiny_compressor):
    doc = {
        "results": [
            {"title": "Eiffel Tower", "height_m": 330, "ok": True, "summary": " ".join(PROSE[:3])},
            {"title": "Tokyo Tower", "height_m": 333, "ok": None, "summary": " ".join(PROSE[2:])},
        ],
        "query": "tall towers",
    }
    text = json.dumps(doc, indent=2)
    res = compress_formatted(tiny_compressor, text, rate=0.6)
    out = json.loads(res.text)
    assert res.format == "json"
    assert _shape(out) == _shape(doc)
    assert [r["title"] for r in out["results"]] == ["Eiffel Tower", "Tokyo Tower"]
    assert out["query"] == "tall towers"
    assert len(out["results"][0]["summary"]) < len(doc["results"][0]["summary"])
    assert res.compressed_tokens == tiny_compressor.count(res.text)
    assert not res.target_missed, res.warnings
    assert abs(res.compressed_tokens - res.target_tokens) <= max(0.02 * res.target_tokens, 1)


json_leaf = st.one_of(
    st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.none(),
    st.sampled_from(WORDS),
    st.lists(st.sampled_from(PROSE), min_size=1, max_size=3).map(" ".join),
    st.text(max_size=12),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


@HS
@given(doc=st.one_of(st.lists(json_value, max_size=4), st.dictionaries(st.text(max_size=8), json_value, max_size=5)),
       rate=st.sampled_from([0.3, 0.5, 0.8]), indent=st.sampled_from([None, 2]),
       ascii_=st.booleans())
def test_property_json_in_json_out(tiny_compressor, doc, rate, indent, ascii_):
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_)
    res = compress_formatted(tiny_compressor, text, format="json", rate=rate)
    out = json.loads(res.text)
    assert _shape(out) == _shape(doc)
    assert res.compressed_tokens == (tiny_compressor.count(res.text) if res.text.strip() else 0)
    tol = max(0.02 * res.target_tokens, 1)
    assert res.target_missed == (abs(res.compressed_tokens - min(res.target_tokens, res.origin_tokens)) > tol)
    if res.target_missed:
        assert res.warnings


# ---------------------------------------------------------------------------- markdown


def test_markdown_structure_kept(tiny_compressor):
    res = compress_formatted(tiny_compressor, MD, rate=0.8)
    assert res.format == "markdown"
    out = res.text
    assert out.startswith("# Quarterly report\n")
    assert _fences(out) == _fences(MD)
    rows = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert len(rows) == 4 and rows[:2] == MD.splitlines()[5:7]
    assert rows[2].startswith("| North America | 120.5 |") and rows[3].startswith("| Europe | 80.2 |")
    assert all(r.count("|") == 4 for r in rows)
    assert "](https://example.com/buyback)" in out
    assert sum(ln.startswith("- ") for ln in out.splitlines()) == 2
    assert len(out) < len(MD)
    assert res.compressed_tokens == tiny_compressor.count(out)


def test_markdown_structure_over_budget_warns_or_raises(tiny_compressor):
    res = compress_formatted(tiny_compressor, MD, rate=0.2)
    assert res.target_missed and "structure" in res.warnings[0]
    assert _fences(res.text) == _fences(MD)  # still the structure, never a silent miss
    with pytest.raises(ValueError, match="structure"):
        compress_formatted(tiny_compressor, MD, rate=0.2, options=FormatOptions(over_budget="error"))


def test_markdown_code_blocks_dropped_whole(tiny_compressor):
    res = compress_formatted(tiny_compressor, MD, rate=0.8, options=FormatOptions(code_blocks="drop"))
    assert "```" not in res.text and "growth" not in res.text


def test_markdown_bad_inputs(tiny_compressor):
    unterminated = "# T\n\n" + PROSE[0] + "\n\n```python\nx = 1\n" + PROSE[1]
    res = compress_formatted(tiny_compressor, unterminated, rate=0.5)
    assert any("unterminated code fence" in w for w in res.warnings)
    assert "```python\nx = 1\n" + PROSE[1] in res.text
    ragged = "| a | b |\n|---|---|\n| x | " + PROSE[0] + " | extra | cells |\n| y\n|\n| z | w |\n"
    res = compress_formatted(tiny_compressor, ragged, format="markdown", rate=0.5)
    lines = res.text.splitlines()
    assert len(lines) == 6 and lines[2].startswith("| x |") and lines[4] == "|"
    rtl = "# כותרת\n\n- שלום עולם " + PROSE[0] + "\n- مرحبا بالعالم هذا نص طويل جدا للاختبار\n"
    res = compress_formatted(tiny_compressor, rtl, rate=0.5)
    assert res.text.startswith("# כותרת\n") and res.text.count("\n- ") == 2


md_row = st.tuples(st.sampled_from(["Paris", "Tokyo", "Row 7", "x"]), st.sampled_from(PROSE + WORDS))


@st.composite
def markdown_docs(draw):
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["heading", "para", "table", "list", "code"]))
        if kind == "heading":
            parts.append("#" * draw(st.integers(1, 3)) + " " + draw(st.sampled_from(WORDS)))
        elif kind == "para":
            parts.append(" ".join(draw(st.lists(st.sampled_from(PROSE), min_size=1, max_size=3))))
        elif kind == "table":
            rows = draw(st.lists(md_row, min_size=1, max_size=5))
            parts.append("| name | text |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows))
        elif kind == "list":
            items = draw(st.lists(st.sampled_from(PROSE), min_size=1, max_size=4))
            parts.append("\n".join(f"- {x}" for x in items))
        else:
            body = draw(st.sampled_from(["x = 1", "def f():\n    return 2", "| not | a table |\n# nor a heading"]))
            parts.append(f"```\n{body}\n```")
    return "\n\n".join(parts) + "\n"


def _outside_code(text: str) -> list[str]:
    return re.sub(r"^```.*?^```\n?", "", text, flags=re.M | re.S).splitlines()


@HS
@given(doc=markdown_docs(), rate=st.sampled_from([0.3, 0.5, 0.8]))
def test_property_markdown_headings_rows_code(tiny_compressor, doc, rate):
    res = compress_formatted(tiny_compressor, doc, format="markdown", rate=rate)
    heads_in = [ln for ln in _outside_code(doc) if ln.startswith("#")]
    heads_out = [ln for ln in _outside_code(res.text) if ln.startswith("#")]
    assert heads_out == heads_in
    rows_in = [ln.split("|")[1] for ln in _outside_code(doc) if ln.startswith("|")]
    rows_out = [ln.split("|")[1] for ln in _outside_code(res.text) if ln.startswith("|")]
    assert rows_out == rows_in  # same row count, every row label kept
    assert _fences(res.text) == _fences(doc)  # byte-identical code blocks
    assert res.target_missed == (
        abs(res.compressed_tokens - min(res.target_tokens, res.origin_tokens))
        > max(0.02 * min(res.target_tokens, res.origin_tokens), 1)
    )


# ---------------------------------------------------------------------------- code and text


CODE = '''import os


def load(path):
    """Read the configuration file from the given path and return its parsed contents as a dict."""
    # open the file in text mode because the configuration is always stored as utf-8 text
    with open(path) as f:  # the with block closes the file again even when parsing fails badly
        return parse(f.read())
'''


def test_code_verbatim_by_default_and_says_so(tiny_compressor):
    res = compress_formatted(tiny_compressor, CODE, rate=0.5)
    assert res.format == "code" and res.text == CODE
    assert res.target_missed and "verbatim" in res.warnings[0]


def test_code_comments_only(tiny_compressor):
    res = compress_formatted(tiny_compressor, CODE, format="code", rate=0.8,
                             options=FormatOptions(code="comments"))
    code_lines = [ln.split("#")[0].rstrip() for ln in CODE.splitlines() if '"""' not in ln]
    out_lines = [ln.split("#")[0].rstrip() for ln in res.text.splitlines() if '"""' not in ln]
    assert out_lines == code_lines  # only comment text and the docstring changed
    assert res.text.count('"""') == 2 and len(res.text) < len(CODE)


def test_text_keeps_paragraph_breaks(tiny_compressor):
    text = "\n\n".join(" ".join(PROSE[i:i + 2]) for i in range(4)) + "\n\nShort line.\n"
    res = compress_formatted(tiny_compressor, text, rate=0.5)
    assert res.format == "text"
    assert res.text.count("\n\n") >= 2 and "Short line." in res.text
    assert not res.target_missed, res.warnings
    full = compress_formatted(tiny_compressor, text, rate=1.0)
    assert full.text == text and full.rate == 1.0 and not full.target_missed


def test_big_single_line_json_is_fast(tiny_compressor):
    import time

    doc = [{"id": i, "name": f"item{i}", "text": PROSE[i % 5]} for i in range(4000)]
    text = json.dumps(doc)  # one line, ~400 kB
    t0 = time.perf_counter()
    res = compress_formatted(tiny_compressor, text, format="auto", rate=0.7)
    assert time.perf_counter() - t0 < 120
    out = json.loads(res.text)
    assert [x["id"] for x in out] == list(range(4000))


def test_json_layout_compact_or_kept(tiny_compressor):
    doc = {"items": [{"id": i, "text": " ".join(PROSE[i:i + 2])} for i in range(3)]}
    text = json.dumps(doc, indent=2)
    compact = compress_formatted(tiny_compressor, text, rate=0.7)
    kept = compress_formatted(tiny_compressor, text, rate=0.7, options=FormatOptions(json_layout="keep"))
    assert "\n" not in compact.text and compact.structure_tokens < kept.structure_tokens
    assert kept.text.count("\n") == text.count("\n")
    for res in (compact, kept):
        assert _shape(json.loads(res.text)) == _shape(doc)
