"""The resumable corpus job: documents in, append-only gzip JSONL label shards out.

``label_corpus`` filters documents (empty, too long, non-English, markup; malformed rows are
counted as "malformed"), hands them to a teacher in batches and appends one row per document
(``doc_id``, ``source``, ``text``, ``labels``, ``teacher``, ``seed``, optional ``unit_spans``) to
``shard-NNNNN.jsonl.gz``. A rerun skips the doc ids already in a shard, so a killed job continues
where it stopped; a shard cut mid-write is first repaired to its complete lines.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp._util import atomic_write_text, check_float, check_int, iter_jsonl
from mooscomp.alignment import Words, segment_words
from mooscomp.labeling.base import Document, Teacher
from mooscomp.labeling.units import spans_from_units, units_from_spans

logger = logging.getLogger(__name__)
_MAX = 2**31 - 1

_STOP = frozenset(
    ["the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on", "as", "with", "he", "be", "at", "by", "i", "his", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "you", "were", "her", "she", "all", "this", "one", "their", "we", "there", "been", "has", "would", "will", "more", "if", "no", "out", "so", "what", "up", "when", "can", "who", "my", "them", "me", "its", "into", "only", "do"]
)
_MARKUP_RE = re.compile(r"<[^>\n]{1,200}>|&[a-z]+;|\{\{|\}\}|\[\[|\]\]")


@dataclass(frozen=True)
class JobConfig:
    """Document filters and batching of ``label_corpus``.

    min_words / max_words: documents outside are skipped ("empty" / "too_long").
    min_english: minimum share of common English function words among alphabetic words.
    max_markup: maximum share of characters inside markup (tags, entities, wiki braces).
    batch_docs: documents handed to the teacher at once (bounds memory).
    """

    min_words: int = 1
    max_words: int = 200_000
    min_english: float = 0.08
    max_markup: float = 0.2
    batch_docs: int = 16

    def __post_init__(self) -> None:
        check_int("min_words", self.min_words, 1, _MAX)
        check_int("max_words", self.max_words, self.min_words, _MAX)
        check_float("min_english", self.min_english, 0.0, 1.0)
        check_float("max_markup", self.max_markup, 0.0, 1.0)
        check_int("batch_docs", self.batch_docs, 1, _MAX)


def check_document(text: str, config: JobConfig, words: Words | None = None) -> str | None:
    """Why a document should be skipped ("empty", "too_long", "non_english", "markup"), or None."""
    if not isinstance(text, str) or not text.strip():
        return "empty"
    # cheap size guard before segmenting a gigantic string
    if len(text) > config.max_words * 20:
        return "too_long"
    words = words if words is not None else segment_words(text)
    n = len(words)
    if n < config.min_words:
        return "empty"
    if n > config.max_words:
        return "too_long"
    markup_chars = sum(m.end() - m.start() for m in _MARKUP_RE.finditer(text))
    if markup_chars / max(len(text), 1) > config.max_markup:
        return "markup"
    alpha = [w.lower() for w in words.tolist() if w.isalpha()]
    if len(alpha) >= 20:
        share = sum(w in _STOP for w in alpha) / len(alpha)
        if share < config.min_english:
            return "non_english"
    elif n >= 20 and len(alpha) < 0.2 * n:
        return "non_english"
    return None


def _read_jsonl_gz(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Complete lines of a (possibly truncated) gzip JSONL file, and whether it was intact."""
    rows: list[dict[str, Any]] = []
    intact = True
    buf = b""
    try:
        with gzip.open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                buf += block
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    if ln.strip():
                        rows.append(json.loads(ln))
    except (EOFError, OSError, zlib.error, json.JSONDecodeError):
        intact = False
    if buf.strip():
        intact = False  # a last line without newline was cut mid-write
    return rows, intact


@dataclass
class JobStats:
    """Counts of one job run (cumulative figures come from the shards)."""

    done: int = 0
    skipped_existing: int = 0
    words: int = 0
    kept_words: int = 0
    seconds_teacher: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "skipped_existing": self.skipped_existing,
            "words": self.words,
            "kept_words": self.kept_words,
            "keep_rate": self.kept_words / self.words if self.words else 0.0,
            "seconds_teacher": round(self.seconds_teacher, 3),
            "words_per_s": self.words / self.seconds_teacher if self.seconds_teacher else 0.0,
            "skipped": dict(self.skipped),
            "errors": self.errors,
            "error_ids": self.error_ids[:100],
        }



def label_corpus(
    docs: Iterable[Document | dict[str, Any]],
    teacher: Teacher,
    out_dir: str | os.PathLike[str],
    *,
    shard_size: int = 500,
    seed: int = 0,
    config: JobConfig | None = None,
    progress: Callable[[JobStats], None] | None = None,
    limit: int | None = None,
) -> JobStats:
    """Label ``docs`` into append-only gzip JSONL shards under ``out_dir``; resumable.

    Documents whose ``doc_id`` is already in a shard are skipped, so a killed job continues where it
    stopped (a shard cut mid-write is repaired to its complete lines first). Each run writes new
    shards after the existing ones; finished shards are never rewritten. Teacher failures on a
    batch are retried one document at a time; a document that still fails is counted and skipped,
    as are rows that are not documents (``skipped["malformed"]``) and filtered ones (by reason).
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    cfg = config or JobConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done_ids, next_shard = _resume(out)
    tinfo = teacher.describe()
    stats = JobStats()
    writer = _ShardWriter(out, next_shard, shard_size)
    batch: list[Document] = []

    def flush() -> None:
        rows = _run_batch(batch, teacher, stats, teacher_id=tinfo.get("model_id", ""), seed=seed)
        writer.write(rows)
        if progress is not None:
            progress(stats)
        batch.clear()

    try:
        for d in _new_documents(docs, done_ids, cfg, stats, limit):
            batch.append(d)
            if len(batch) >= cfg.batch_docs:
                flush()
        if batch:
            flush()
    finally:
        writer.close()
    meta = {"teacher": tinfo, "seed": seed, "shard_size": shard_size, "last_run": stats.as_dict()}
    atomic_write_text(out / "job.json", json.dumps(meta, indent=1))
    return stats


def _resume(out: Path) -> tuple[set[str], int]:
    """Doc ids already labelled under ``out`` (repairing torn shards) and the next shard number."""
    done_ids: set[str] = set()
    shard_paths = sorted(out.glob("shard-*.jsonl.gz"))
    for p in shard_paths:
        rows, intact = _read_jsonl_gz(p)
        if not intact:
            logger.warning("repairing truncated shard %s (%d complete rows)", p, len(rows))
            tmp = p.with_suffix(".tmp")
            with gzip.open(tmp, "wt", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            os.replace(tmp, p)
        done_ids.update(str(r["doc_id"]) for r in rows)
    next_shard = 1 + max((int(p.name.split("-")[1].split(".")[0]) for p in shard_paths), default=-1)
    return done_ids, next_shard


class _ShardWriter:
    """Appends rows to ``shard-NNNNN.jsonl.gz`` files of ``shard_size`` rows each.

    The open shard stays open across batches and is flushed after each, so a kill loses at most
    the rows of the batch being written (``_resume`` repairs the torn end).
    """

    def __init__(self, out: Path, next_shard: int, shard_size: int) -> None:
        self.out = out
        self.next_shard = next_shard
        self.shard_size = shard_size
        self.cur: Any = None
        self.cur_rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            if self.cur is None:
                path = self.out / f"shard-{self.next_shard:05d}.jsonl.gz"
                self.next_shard += 1
                self.cur = gzip.open(path, "at", encoding="utf-8")  # noqa: SIM115 - kept open across batches
                self.cur_rows = 0
            self.cur.write(json.dumps(r, ensure_ascii=False) + "\n")
            self.cur_rows += 1
            if self.cur_rows >= self.shard_size:
                self.cur.close()
                self.cur = None
        if self.cur is not None:
            self.cur.flush()

    def close(self) -> None:
        if self.cur is not None:
            self.cur.close()
            self.cur = None


def _new_documents(
    docs: Iterable[Document | dict[str, Any]],
    done_ids: set[str],
    cfg: JobConfig,
    stats: JobStats,
    limit: int | None,
) -> Iterator[Document]:
    """The documents still to label, in order; skips are counted in ``stats`` by reason."""
    seen = 0
    for raw in docs:
        if limit is not None and seen >= limit:
            break
        seen += 1
        try:
            d = _as_document(raw)
        except (TypeError, ValueError):
            stats.skipped["malformed"] = stats.skipped.get("malformed", 0) + 1
            continue
        if d.doc_id in done_ids:
            stats.skipped_existing += 1
            continue
        words = segment_words(d.text) if isinstance(d.text, str) else None
        why = check_document(d.text, cfg, words)
        if why is not None:
            stats.skipped[why] = stats.skipped.get(why, 0) + 1
            continue
        done_ids.add(d.doc_id)
        yield d


def _run_batch(
    batch: list[Document], teacher: Teacher, stats: JobStats, *, teacher_id: str, seed: int
) -> list[dict[str, Any]]:
    """Label one batch (one document at a time if the batch fails) and build its shard rows."""
    t0 = time.perf_counter()
    try:
        labels = teacher.label_batch(batch)
        results: list[tuple[Document, np.ndarray | None]] = list(zip(batch, labels, strict=True))
    except Exception as e:  # noqa: BLE001 - isolate the failing document
        logger.warning("teacher failed on a batch (%s); retrying one by one", e)
        results = []
        for d in batch:
            try:
                results.append((d, teacher.label_batch([d])[0]))
            except Exception as e2:  # noqa: BLE001
                logger.warning("teacher failed on doc %s: %s", d.doc_id, e2)
                stats.errors += 1
                stats.error_ids.append(d.doc_id)
                results.append((d, None))
    stats.seconds_teacher += time.perf_counter() - t0
    rows = []
    for d, lab in results:
        if lab is None:
            continue
        row: dict[str, Any] = {
            "doc_id": d.doc_id,
            "source": d.source,
            "text": d.text,
            "labels": lab.astype(int).tolist(),
            "teacher": teacher_id,
            "seed": seed,
        }
        if d.units is not None:
            row["unit_spans"] = spans_from_units(d.units)
        rows.append(row)
        stats.done += 1
        stats.words += int(lab.shape[0])
        stats.kept_words += int((lab == 1).sum())
    return rows


def _as_document(raw: Document | dict[str, Any]) -> Document:
    """A ``Document`` from a corpus row; ValueError/TypeError for a row that is not one."""
    if isinstance(raw, Document):
        return raw
    if not isinstance(raw, dict) or "doc_id" not in raw:
        raise ValueError("a document must be an object with a doc_id")
    units = None
    if "units" in raw and raw["units"] is not None:
        units = np.asarray(raw["units"], dtype=np.int64)
    elif "unit_spans" in raw:
        n = len(segment_words(raw.get("text") or ""))
        units = units_from_spans(n, [tuple(s) for s in raw["unit_spans"]])
    return Document(
        doc_id=str(raw["doc_id"]),
        text=raw.get("text") or "",
        source=str(raw.get("source", "")),
        units=units,
    )


def read_documents(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Stream documents from a JSONL or gzip JSONL corpus file (a bad line names ``path:line``)."""
    yield from iter_jsonl(Path(path), strict=True)


def keep_rate(labels: Iterable[Sequence[int]]) -> float:
    """Share of labelled words that are keep (ignores -1)."""
    k = t = 0
    for lab in labels:
        a = np.asarray(lab)
        k += int((a == 1).sum())
        t += int((a >= 0).sum())
    return k / t if t else math.nan
