"""Shared primitives: number checks, file hashing, package folders, JSONL I/O, atomic writes.

One copy of each small helper that configs, jobs and loaders need, so that validation messages,
torn-line tolerance and hashing behave the same everywhere. Importing this module is cheap (no
torch): device helpers import torch lazily.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

# ---------------------------------------------------------------------------- validation


def check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    """Raise TypeError for a non-number (bools included), ValueError outside [low, high] / (low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        lo = "(" if low_open else "["
        raise ValueError(f"{name} must be in {lo}{low}, {high}], got {value!r}")


def check_int(name: str, value: Any, low: int, high: int) -> None:
    """Raise TypeError for a non-int (bools included), ValueError outside [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices`` (message lists them)."""
    opts = tuple(choices)
    if value not in opts:
        raise ValueError(f"{name} must be one of {opts}, got {value!r}")


# ---------------------------------------------------------------------------- devices


def resolve_device(name: str = "auto") -> Any:
    """``"auto"`` -> cuda when available else cpu; a cuda device without CUDA -> ValueError.

    Returns a ``torch.device`` (torch is imported here, not at module import).
    """
    import torch

    if not isinstance(name, str):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: {e}") from None


# ---------------------------------------------------------------------------- files


def sha256_file(path: str | Path, *, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_dir(package: str) -> Path | None:
    """Folder of an installed (import) package, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def open_text(path: str | Path, mode: str = "rt") -> IO[str]:
    """Open plain or gzip (by ``.gz`` suffix) text, UTF-8."""
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, mode, encoding="utf-8")  # type: ignore[return-value]
    return open(p, mode.replace("t", ""), encoding="utf-8")


def iter_jsonl(path: str | Path, *, strict: bool = False) -> Iterator[dict[str, Any]]:
    """Rows of a (gz) JSONL file, skipping blank lines.

    ``strict=False`` skips lines that are not valid JSON (a line torn by an interrupted write);
    ``strict=True`` raises ValueError naming ``path:line``.
    """
    with open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                if strict:
                    raise ValueError(f"{path}:{n}: not valid JSON: {e}") from None


def read_jsonl(path: str | Path, *, strict: bool = False) -> list[dict[str, Any]]:
    """All rows of a (gz) JSONL file; a missing file is an empty list."""
    if not Path(path).is_file():
        return []
    return list(iter_jsonl(path, strict=strict))


def open_append(path: str | Path) -> IO[str]:
    """Open a JSONL file for appending, first ending a line torn by an interrupted write."""
    p = Path(path)
    if p.is_file() and p.stat().st_size > 0:
        with open(p, "rb") as f:
            f.seek(-1, 2)
            torn = f.read(1) != b"\n"
        if torn:
            with open(p, "a", encoding="utf-8") as f:
                f.write("\n")
    return open(p, "a", encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write through a temp file in the same folder and rename: readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
