"""Shared primitives: validation messages, torn-line tolerant JSONL, atomic writes, hashing."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path

import pytest

from mooscomp import _util


@pytest.mark.parametrize("value", [True, "1", None])
def test_check_float_rejects_non_numbers(value: object) -> None:
    with pytest.raises(TypeError, match="x must be a number"):
        _util.check_float("x", value, 0.0, 1.0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.1, 1.5])
def test_check_float_range(value: float) -> None:
    with pytest.raises(ValueError, match=r"x must be in \[0.0, 1.0\]"):
        _util.check_float("x", value, 0.0, 1.0)


def test_check_float_open_low_bound() -> None:
    _util.check_float("x", 1.0, 0.0, 1.0, low_open=True)
    with pytest.raises(ValueError, match=r"\(0.0, 1.0\]"):
        _util.check_float("x", 0.0, 0.0, 1.0, low_open=True)


def test_check_int_and_choice() -> None:
    _util.check_int("n", 3, 1, 5)
    with pytest.raises(TypeError):
        _util.check_int("n", True, 0, 5)
    with pytest.raises(ValueError, match=r"n must be in \[1, 5\], got 9"):
        _util.check_int("n", 9, 1, 5)
    with pytest.raises(ValueError, match="mode must be one of"):
        _util.check_choice("mode", "c", ("a", "b"))


def test_jsonl_skips_torn_line_unless_strict(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write('{"a": 1}\n\n{"a": 2}\n{"a": ')
    assert _util.read_jsonl(p) == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match=r"rows.jsonl.gz:4"):
        _util.read_jsonl(p, strict=True)
    assert _util.read_jsonl(tmp_path / "missing.jsonl") == []


def test_open_append_ends_torn_line(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\n{"a": 2', encoding="utf-8")
    with _util.open_append(p) as f:
        f.write(json.dumps({"a": 3}) + "\n")
    assert _util.read_jsonl(p) == [{"a": 1}, {"a": 3}]


def test_atomic_write_and_sha256(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "x.json"
    _util.atomic_write_json(p, {"k": "é"})
    assert json.loads(p.read_text(encoding="utf-8")) == {"k": "é"}
    assert [q.name for q in p.parent.iterdir()] == ["x.json"]  # no temp file left behind
    assert _util.sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert _util.sha256_bytes(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_package_dir() -> None:
    assert _util.package_dir("json") is not None
    assert _util.package_dir("no_such_package_xyz") is None


def test_resolve_device() -> None:
    assert str(_util.resolve_device("cpu")) == "cpu"
    with pytest.raises(ValueError):
        _util.resolve_device("not-a-device")
