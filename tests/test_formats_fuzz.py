"""Seeded hostile structured inputs (tests/fuzz/formats.py) and a large single-line JSON."""

from __future__ import annotations

import json
import time

import pytest
from fuzz.formats import FORMAT_CATEGORIES, big_json, check_formatted, make_format_case


@pytest.mark.parametrize("category", list(FORMAT_CATEGORIES))
def test_seeded_structured_inputs(tiny_compressor, category):
    for seed in range(4):
        case = make_format_case(category, seed)
        out = check_formatted(tiny_compressor, case)
        assert out.ok, (category, seed, out.message)


def _big_json_case(comp, mb: float) -> float:
    text = big_json(mb)
    assert "\n" not in text
    t0 = time.perf_counter()
    out = check_formatted(comp, {"text": text, "format": "auto", "rate": 0.5})
    dt = time.perf_counter() - t0
    assert out.ok, out.message
    assert out.produced.startswith("json")
    return dt


def test_quarter_megabyte_single_line_json(tiny_compressor):
    assert _big_json_case(tiny_compressor, 0.25) < 120


@pytest.mark.slow
def test_ten_megabyte_single_line_json(tiny_compressor):
    """Issue 18: 10 MB of single-line JSON must not hang (seconds are in reports/fuzz.json)."""
    assert _big_json_case(tiny_compressor, 10.0) < 900


def test_big_json_generator_is_valid():
    assert isinstance(json.loads(big_json(0.05)), list)
