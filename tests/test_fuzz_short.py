"""Short fuzz budget for the default run: a few seeded hostile inputs per category, plus a few
hypothesis-drawn texts and raw stdin bytes. The long run is ``benchmarks/fuzz.py``."""

from __future__ import annotations

import pytest
from fuzz.harness import CATEGORIES, check_api, check_cli, make_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = [c for c in CATEGORIES if c != "long_single_word"]


@pytest.mark.parametrize("category", FAST)
def test_seeded_hostile_inputs(tiny_compressor, category):
    for seed in range(3):
        case = make_case(category, seed)
        out = (check_cli if "stdin" in case else check_api)(tiny_compressor, case)
        assert out.ok, (category, seed, out.message)


def test_long_single_word(tiny_compressor):
    case = make_case("long_single_word", 0)
    out = check_api(tiny_compressor, case)
    assert out.ok, out.message


_S = settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_S
@given(text=st.text(max_size=200), rate=st.sampled_from([0.1, 0.5, 1.0]),
       force=st.lists(st.text(min_size=1, max_size=5), max_size=3))
def test_hypothesis_text(tiny_compressor, text, rate, force):
    case = {"text": text, "rate": rate, "force": force, "question": None}
    out = check_api(tiny_compressor, case)
    assert out.ok, out.message


@_S
@given(data=st.binary(max_size=200), rate=st.sampled_from([0.3, 1.0]))
def test_hypothesis_cli_stdin_bytes(tiny_compressor, data, rate):
    out = check_cli(tiny_compressor, {"stdin": data, "rate": rate, "force": []})
    assert out.ok, out.message


@pytest.mark.benchmark
def test_long_fuzz_benchmark(tmp_path):
    """The long run (>= 10k inputs); excluded by default (``-m benchmark`` runs it)."""
    import runpy
    from pathlib import Path

    mod = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "fuzz.py"))
    assert mod["main"](["--inputs", "10400", "--big", "", "--out", str(tmp_path / "f.json")]) == 0
