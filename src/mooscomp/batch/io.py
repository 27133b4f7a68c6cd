"""Dataset files: JSONL/Parquet rows in, resumable shards (parts + manifest + done record) out.

A finished shard is written atomically to ``<OUT>.parts/part-NNNNNN.<fmt>`` and then recorded in
``<OUT>.parts/done.jsonl``; ``manifest.json`` fingerprints the job so that a rerun with other
options refuses the folder instead of mixing outputs. :func:`merge` concatenates the parts into
OUT once every shard is done.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mooscomp._util import atomic_write_bytes, atomic_write_json, iter_jsonl, open_append
from mooscomp.batch.rows import INVALID_COLUMN, RESULT_COLUMNS, short

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.batch import DatasetJobConfig, Progress

Format = Literal["jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "parquet")
PARTS_SUFFIX = ".parts"
_DONE = "done.jsonl"
_MANIFEST = "manifest.json"
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def format_from_suffix(path: Path) -> Format | None:
    """The format a file name implies (``.gz`` looked through), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes:
        return None
    if suffixes[-1] in _JSONL_SUFFIXES:
        return "jsonl"
    if suffixes[-1] in _PARQUET_SUFFIXES:
        return "parquet"
    return None


def input_format(path: str | os.PathLike[str]) -> Format:
    """``"jsonl"`` or ``"parquet"`` from a file name; ValueError for anything else."""
    fmt = format_from_suffix(Path(path))
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path}: use .jsonl, .ndjson, .json or .parquet")
    return fmt


def output_format(path: Path, explicit: Format | None) -> Format:
    """OUT's format: ``explicit``, else its suffix; no suffix = JSONL. Any other suffix (e.g.
    ``.csv``) is refused rather than silently written as JSONL."""
    if explicit is not None:
        return explicit
    fmt = format_from_suffix(path)
    if fmt is not None:
        return fmt
    if not path.suffix:
        return "jsonl"
    raise ValueError(
        f"cannot write {path.suffix} output ({path.name}): OUT must end in .jsonl or .parquet "
        "(or pass the format explicitly)"
    )


def count_rows(path: str | os.PathLike[str], fmt: Format) -> int:
    """Rows of a file (JSONL: non-blank lines)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(str(path)).metadata.num_rows)
    with _open_text(Path(path)) as f:
        return sum(1 for line in f if line.strip())


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of a JSONL or Parquet file (handy for tests and small outputs)."""
    p = Path(path)
    fmt = input_format(p)
    rows: list[dict[str, Any]] = []
    for _, _, raw in iter_shards(p, fmt, 4096):
        rows.extend(parse_rows(raw, fmt))
    return rows


def _open_text(path: Path) -> Any:
    # input files: undecodable bytes become U+FFFD (a row error later, never a crash here)
    if path.suffix.lower() == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _iter_raw(path: Path, fmt: Format) -> Iterator[Any]:
    """Raw rows: JSONL lines (unparsed, blank lines skipped) or Parquet row dicts."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=4096):
            yield from batch.to_pylist()
        return
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                yield line


def iter_shards(path: Path, fmt: Format, shard_rows: int) -> Iterator[tuple[int, int, list[Any]]]:
    """(shard index, first row, raw rows) of ``shard_rows`` consecutive rows."""
    buf: list[Any] = []
    k = start = 0
    for raw in _iter_raw(path, fmt):
        buf.append(raw)
        if len(buf) == shard_rows:
            yield k, start, buf
            k, start, buf = k + 1, start + shard_rows, []
    if buf:
        yield k, start, buf


def parse_rows(raw: list[Any], fmt: Format) -> list[dict[str, Any]]:
    """Row dicts; a JSONL line that is not a JSON object becomes ``{INVALID_COLUMN: line}``."""
    if fmt == "parquet":
        return raw
    rows: list[dict[str, Any]] = []
    for line in raw:
        try:
            obj = json.loads(line)
        except ValueError:
            rows.append({INVALID_COLUMN: short(line.rstrip("\n"), 1000)})
            continue
        rows.append(obj if isinstance(obj, dict) else {INVALID_COLUMN: short(line.strip(), 1000)})
    return rows


def part_name(k: int, fmt: str) -> str:
    return f"part-{k:06d}.{fmt}"


def fingerprint(src: Path, cfg: DatasetJobConfig, out_fmt: str, rows: int) -> dict[str, Any]:
    """Everything that changes a shard's bytes (a parts folder is reused only when equal)."""
    st = src.stat()
    comp = cfg.compression.to_dict() if cfg.compression is not None else None
    return {
        "input": str(src.resolve()),
        "input_size": st.st_size,
        "input_mtime_ns": st.st_mtime_ns,
        "rows": rows,
        "format": out_fmt,
        "text_column": cfg.text_column,
        "rate": cfg.rate,
        "target_tokens": cfg.target_tokens,
        "force_tokens": list(cfg.force_tokens),
        "model": str(Path(cfg.model).resolve()) if cfg.model else None,
        "compression": comp,
        "shard_rows": cfg.shard_rows,
        "batch_rows": cfg.batch_rows,
        "max_chars": cfg.max_chars,
    }


def open_parts(parts: Path, fp: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Create or reopen the parts folder; returns the done record {shard: stats}."""
    manifest = parts / _MANIFEST
    if parts.exists() and manifest.exists():
        old = json.loads(manifest.read_text(encoding="utf-8"))
        if old != json.loads(json.dumps(fp)):
            diff = sorted(k for k in fp if old.get(k) != fp[k])
            raise ValueError(
                f"{parts} belongs to a different job (differs in {diff}); delete it to start over"
            )
    else:
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write_json(manifest, fp, indent=1)
    done: dict[int, dict[str, Any]] = {}
    for d in iter_jsonl(parts / _DONE) if (parts / _DONE).exists() else ():
        try:  # a torn last line from an interrupted run is skipped by iter_jsonl
            done[int(d["shard"])] = d
        except (KeyError, TypeError, ValueError):
            continue
    return {k: v for k, v in done.items() if (parts / part_name(k, fp["format"])).exists()}


class Tracker:
    """Counts finished shards, rows, errors and tokens; calls the progress callback."""

    def __init__(
        self, shards: int, rows: int, progress: Callable[[Progress], None] | None, t0: float
    ) -> None:
        self.shards_total = shards
        self.rows_total = rows
        self.progress = progress
        self.t0 = t0
        self.shards_done = 0
        self.stats: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, rec: dict[str, Any]) -> None:
        from mooscomp.batch import Progress

        self.shards_done += 1
        for key in ("rows", "error_rows", "origin_tokens", "compressed_tokens"):
            self.stats[key] += int(rec.get(key, 0))
        self.errors.update({k: int(v) for k, v in rec.get("errors", {}).items()})
        if self.progress is not None:
            self.progress(
                Progress(
                    shards_done=self.shards_done,
                    shards_total=self.shards_total,
                    rows_done=self.stats["rows"],
                    rows_total=self.rows_total,
                    error_rows=self.stats["error_rows"],
                    elapsed_s=time.perf_counter() - self.t0,
                )
            )


class ShardWriter:
    """Writes a finished shard atomically, then records it in done.jsonl."""

    def __init__(self, parts: Path, fmt: Format, tracker: Tracker, text_column: str) -> None:
        self.parts = parts
        self.fmt = fmt
        self.tracker = tracker
        self.text_column = text_column
        self.written: set[int] = set()

    def write(self, k: int, rows: list[dict[str, Any]]) -> None:
        if self.fmt == "parquet":
            data = parquet_bytes(rows, text_column=self.text_column)
        else:
            data = "".join(json_line(r) for r in rows).encode("utf-8")
        atomic_write_bytes(self.parts / part_name(k, self.fmt), data)
        errors = Counter(str(r["error"]).split(":", 1)[0] for r in rows if r.get("error"))
        rec = {
            "shard": k,
            "rows": len(rows),
            "error_rows": sum(errors.values()),
            "errors": dict(errors),
            "origin_tokens": sum(int(r["origin_tokens"] or 0) for r in rows),
            "compressed_tokens": sum(int(r["compressed_tokens"] or 0) for r in rows),
        }
        with open_append(self.parts / _DONE) as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.written.add(k)
        self.tracker.add(rec)


def json_default(o: Any) -> Any:
    """JSON for values Parquet can hold and JSON cannot (bytes: base64, dates: ISO 8601)."""
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(bytes(o)).decode("ascii")
    if isinstance(o, (_dt.datetime, _dt.date, _dt.time)):
        return o.isoformat()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=json_default) + "\n"


def merge(parts: Path, out: Path, fmt: Format, n_shards: int) -> None:
    """Concatenate the parts, in shard order, into ``out`` (atomically), then drop the folder."""
    files = [parts / part_name(k, fmt) for k in range(n_shards)]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise RuntimeError(f"shards missing after the run: {missing[:10]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    if fmt == "jsonl":
        with open(tmp, "wb") as w:
            for f in files:
                with open(f, "rb") as r:
                    shutil.copyfileobj(r, w)
    else:
        from mooscomp.batch._parquet import merge_parquet

        merge_parquet(files, tmp, RESULT_COLUMNS)
    os.replace(tmp, out)
    shutil.rmtree(parts, ignore_errors=True)


def parquet_bytes(rows: list[dict[str, Any]], *, text_column: str) -> bytes:
    from mooscomp.batch._parquet import parquet_bytes as _pb

    return _pb(rows, text_column=text_column)
