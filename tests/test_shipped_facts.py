"""The shipped model keeps the facts issue 15 names in the transcript example (real weights, one call).

Session 21: a candidate with a better dev reader F1 (a HotpotQA answer probe folded at gamma 16) dropped
"1962", "Route 9" and "April 11" here at every rate up to 0.4; a default must not bring that back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FACTS = ("1962", "Route 9", "April 11", "4.2 million dollars")


@pytest.fixture(scope="module")
def shipped():
    from mooscomp import Compressor
    from mooscomp.compressor import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("no shipped model in this build")
    return Compressor.from_pretrained()


@pytest.mark.parametrize("rate", [0.25, 0.33])
def test_default_model_keeps_the_meeting_facts(shipped, rate: float) -> None:
    text = (ROOT / "examples" / "meeting.txt").read_text(encoding="utf-8")
    out = shipped.compress(text, rate=rate).text
    assert [f for f in FACTS if f not in out] == []
