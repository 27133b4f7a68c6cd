"""What every GPU job script starts with: its output folder and a timestamped log."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def job_start(out: str | Path) -> tuple[Path, Callable[[str], None]]:
    """(the created output folder, ``log(line)`` printing seconds since this call)."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(s: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {s}", flush=True)

    return path, log
