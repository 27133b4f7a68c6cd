"""Corpus-scale batch compression of JSONL / Parquet datasets.

One row in, one row out, in input order: the input row's columns are carried through and the
compression columns :data:`RESULT_COLUMNS` are added (``error`` is None for rows that were
compressed; bad rows are passed through with an error message and counted, they never abort the
job).

Rows are cut into *shards* of ``shard_rows`` consecutive rows, and shards into *groups* of
``batch_rows`` rows; a group is one :meth:`Compressor.compress_batch` call. Every engine uses the
same groups, so the single-process, local multi-process and Ray engines give identical outputs.

Resumable: each finished shard is written atomically to ``<OUT>.parts/part-NNNNN.<fmt>`` and then
recorded in ``<OUT>.parts/done.jsonl``; a rerun skips recorded shards, and a shard whose worker
died is recomputed whole, so no row is lost or duplicated. When all shards are done they are merged
into ``OUT`` and the parts folder is removed.

Engines:
    ``single``: this process (no change to torch's thread settings).
    ``local``: a pool of spawned processes, each loading the model once and using
        ``threads_per_worker`` torch threads; a dead worker's shards are resubmitted to a new pool.
    ``ray``: Ray Data ``map_batches`` over an actor pool (one model per actor; GPU actors when the
        cluster has GPUs), on the cluster at ``ray_address`` or a local one started for the job.

Example:
    >>> from mooscomp.batch import DatasetJobConfig, compress_dataset
    >>> report = compress_dataset("docs.jsonl", "docs.out.jsonl", DatasetJobConfig(rate=0.33))
    >>> report.rows, report.error_rows
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import os
import pickle
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.compressor import Compressor
    from mooscomp.config import CompressionConfig

Engine = Literal["local", "ray", "single", "pipeline"]
Format = Literal["jsonl", "parquet"]
ENGINES: tuple[str, ...] = ("local", "ray", "single", "pipeline")
FORMATS: tuple[str, ...] = ("jsonl", "parquet")
# Columns added to every output row.
RESULT_COLUMNS = (
    "compressed_prompt",
    "origin_tokens",
    "compressed_tokens",
    "rate",
    "ratio",
    "error",
)
# Error kinds (the prefix of the ``error`` column, and the keys of DatasetReport.errors).
ERR_MISSING = "missing_text"
ERR_NOT_STRING = "non_string_text"
ERR_EMPTY = "empty_text"
ERR_OVERSIZED = "oversized_text"
ERR_BAD_ROW = "invalid_row"
ERR_FAILED = "compression_failed"
_INVALID_COLUMN = "_invalid_row"  # raw text of a JSONL line that is not a JSON object
_PARTS_SUFFIX = ".parts"
_DONE = "done.jsonl"
_MANIFEST = "manifest.json"


@dataclass(frozen=True, kw_only=True)
class DatasetJobConfig:
    """What to compress and how to run it.

    Attributes:
        text_column: column holding the text to compress.
        rate: wanted compressed/original token ratio in (0, 1]; exclusive with ``target_tokens``.
        target_tokens: wanted compressed token count per row (> 0).
        force_tokens: strings always kept.
        model: model directory; None = the shipped default model.
        device: torch device of the workers; ``"auto"`` = CUDA when available, else CPU.
        compression: compression config; None = the model's defaults.
        engine: ``"local"`` (process pool), ``"ray"`` (Ray Data), ``"single"`` (this process) or
            ``"pipeline"`` (one accelerator: this process scores, CPU workers tokenise and select;
            see :mod:`mooscomp.pipeline`). The pipeline forms forward batches across groups, so
            on a GPU its outputs can differ from the others in bf16 rounding of borderline words;
            it does not restart dead workers (the job stops; a rerun resumes from its shards).
        workers: processes (local) or actors (ray); None = one per CPU (per GPU on a GPU cluster).
        threads_per_worker: torch threads per worker/actor; None = CPUs // workers (>= 1).
        shard_rows: rows per output shard (the unit of resumption and of a local task).
        batch_rows: rows per ``compress_batch`` call (the unit of a Ray task).
        max_chars: rows whose text is longer are passed through as oversized.
        output_format: ``"jsonl"`` or ``"parquet"``; None = from OUT's suffix (default jsonl).
        ray_address: Ray cluster to connect to; None = a running one (RAY_ADDRESS) or a new
            local one.
        ray_num_cpus: CPUs of a local Ray cluster started for the job (None = all).
        ray_gpus_per_actor: GPUs per actor on a GPU cluster (None = 1; 0 = CPU actors).
        max_retries: times a shard (local) or a task (ray) is retried after its worker died.
        fault_kill_once: testing hook: the first worker to process a group while this file does
            not exist creates it and dies (os._exit); never set it in production.
    """

    text_column: str = "text"
    rate: float | None = None
    target_tokens: int | None = None
    force_tokens: tuple[str, ...] = ()
    model: str | None = None
    device: str = "auto"
    compression: CompressionConfig | None = None
    engine: Engine = "local"
    workers: int | None = None
    threads_per_worker: int | None = None
    shard_rows: int = 1024
    batch_rows: int = 32
    max_chars: int = 1_000_000
    output_format: Format | None = None
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    ray_gpus_per_actor: float | None = None
    max_retries: int = 3
    fault_kill_once: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text_column, str) or not self.text_column:
            raise ValueError("text_column must be a non-empty str")
        if (self.rate is None) == (self.target_tokens is None):
            raise ValueError("give exactly one of rate and target_tokens")
        if self.rate is not None:
            if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)):
                raise TypeError(f"rate must be a number, got {type(self.rate).__name__}")
            if not (math.isfinite(self.rate) and 0.0 < self.rate <= 1.0):
                raise ValueError(f"rate must be in (0, 1], got {self.rate!r}")
        if self.target_tokens is not None:
            _check_int("target_tokens", self.target_tokens, 1)
        if isinstance(self.force_tokens, str) or not all(
            isinstance(t, str) for t in self.force_tokens
        ):
            raise TypeError("force_tokens must be a sequence of str")
        object.__setattr__(self, "force_tokens", tuple(self.force_tokens))
        if self.model is not None and not isinstance(self.model, (str, os.PathLike)):
            raise TypeError("model must be a path or None")
        if self.model is not None:
            object.__setattr__(self, "model", os.fspath(self.model))
        if not isinstance(self.device, str) or not self.device:
            raise ValueError("device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.output_format is not None and self.output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {FORMATS}, got {self.output_format!r}")
        for name in ("workers", "threads_per_worker", "ray_num_cpus"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        _check_int("shard_rows", self.shard_rows, 1)
        _check_int("batch_rows", self.batch_rows, 1)
        _check_int("max_chars", self.max_chars, 1)
        _check_int("max_retries", self.max_retries, 0)
        if self.ray_gpus_per_actor is not None and not (
            isinstance(self.ray_gpus_per_actor, (int, float)) and 0 <= self.ray_gpus_per_actor
        ):
            raise ValueError("ray_gpus_per_actor must be a number >= 0")
        if self.compression is not None:
            from mooscomp.config import CompressionConfig

            if not isinstance(self.compression, CompressionConfig):
                raise TypeError("compression must be a CompressionConfig or None")


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback after each finished (or skipped) shard."""

    shards_done: int
    shards_total: int
    rows_done: int
    rows_total: int
    error_rows: int
    elapsed_s: float


@dataclass(frozen=True)
class DatasetReport:
    """Outcome of :func:`compress_dataset` (counts cover skipped, already-done shards too)."""

    output: str
    engine: str
    workers: int
    rows: int
    ok_rows: int
    error_rows: int
    errors: dict[str, int]
    shards: int
    shards_skipped: int
    worker_restarts: int
    origin_tokens: int
    compressed_tokens: int
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[Progress], None]


# ---------------------------------------------------------------------------- public entry


def compress_dataset(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    config: DatasetJobConfig,
    *,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
) -> DatasetReport:
    """Compress the text column of every row of a JSONL/Parquet file into OUT.

    Args:
        input_path: ``.jsonl`` / ``.ndjson`` / ``.json`` (one object a line, ``.gz`` allowed) or
            ``.parquet``.
        output_path: output file; its shards live in ``<OUT>.parts/`` until the job completes.
        config: the job.
        progress: called after every shard.
        overwrite: replace an existing OUT (an unfinished job's parts are always resumed).
    Raises:
        FileNotFoundError: no input or model.
        FileExistsError: OUT exists and ``overwrite`` is False.
        ValueError: unknown format, or the parts folder belongs to a different job.
        RuntimeError: a shard's worker died more than ``max_retries`` times.
    """
    if not isinstance(config, DatasetJobConfig):
        raise TypeError("config must be a DatasetJobConfig")
    t0 = time.perf_counter()
    src = Path(input_path)
    out = Path(output_path)
    if not src.is_file():
        raise FileNotFoundError(f"no such input file: {src}")
    in_fmt = input_format(src)
    out_fmt = config.output_format or _format_from_suffix(out) or "jsonl"
    if config.model is not None and not Path(config.model).exists():
        raise FileNotFoundError(f"no such model directory: {config.model}")
    parts = out.with_name(out.name + _PARTS_SUFFIX)
    if out.exists() and not parts.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True / --overwrite to replace it)")
    if out_fmt == "parquet" or in_fmt == "parquet":
        _require_pyarrow()

    rows_total = count_rows(src, in_fmt)
    n_shards = max(1, math.ceil(rows_total / config.shard_rows)) if rows_total else 0
    done = _open_parts(parts, _fingerprint(src, config, out_fmt, rows_total))
    done = {k: v for k, v in done.items() if (parts / _part_name(k, out_fmt)).exists()}
    tracker = _Tracker(n_shards, rows_total, progress, t0)
    for k in sorted(done):
        tracker.add(done[k])

    writer = _ShardWriter(parts, out_fmt, tracker)
    pending = (
        (k, start, _parse_rows(raw, in_fmt))
        for k, start, raw in _iter_shards(src, in_fmt, config.shard_rows)
        if k not in done
    )
    payload = _WorkerPayload(config, config.device)
    extra: dict[str, Any] = {}
    if config.engine == "single":
        workers, restarts = 1, 0
        _run_single(payload, pending, writer)
    elif config.engine == "local":
        workers = config.workers or _cpu_count()
        restarts = _run_local(payload, pending, writer, workers)
    elif config.engine == "pipeline":
        workers, extra = _run_pipeline(payload, pending, writer)
        restarts = 0
    else:
        workers, restarts, extra = _run_ray(payload, pending, writer)

    _merge(parts, out, out_fmt, n_shards)
    shutil.rmtree(parts, ignore_errors=True)
    s = tracker.stats
    return DatasetReport(
        output=str(out),
        engine=config.engine,
        workers=workers,
        rows=s["rows"],
        ok_rows=s["rows"] - s["error_rows"],
        error_rows=s["error_rows"],
        errors=dict(sorted(tracker.errors.items())),
        shards=n_shards,
        shards_skipped=len(done),
        worker_restarts=restarts,
        origin_tokens=s["origin_tokens"],
        compressed_tokens=s["compressed_tokens"],
        elapsed_s=time.perf_counter() - t0,
        extra=extra,
    )


def input_format(path: str | os.PathLike[str]) -> Format:
    """``"jsonl"`` or ``"parquet"`` from a file name; ValueError for anything else."""
    fmt = _format_from_suffix(Path(path))
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path}: use .jsonl, .ndjson, .json or .parquet")
    return fmt


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
    for _, _, raw in _iter_shards(p, fmt, 4096):
        rows.extend(_parse_rows(raw, fmt))
    return rows


# ---------------------------------------------------------------------------- row processing


class RowCompressor:
    """Turns input rows into output rows with one loaded compressor (one per worker)."""

    def __init__(self, config: DatasetJobConfig, compressor: Compressor) -> None:
        self.config = config
        self.compressor = compressor

    @classmethod
    def load(cls, config: DatasetJobConfig, *, device: str | None = None) -> RowCompressor:
        from mooscomp.compressor import Compressor

        dev = resolve_device(device or config.device)
        comp = Compressor.from_pretrained(config.model, device=dev)
        return cls(config, comp)

    def process_group(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One ``compress_batch`` over the valid rows; invalid rows get an error."""
        cfg = self.config
        out, todo = _validate_rows(rows, cfg)
        if not todo:
            return out
        texts = [out[i][cfg.text_column] for i in todo]
        results: list[dict[str, Any] | str]
        try:
            results = list(self._compress(texts))
        except Exception:  # noqa: BLE001 - isolate the failing row below
            results = []
            for t in texts:
                try:
                    results.append(self._compress([t])[0])
                except Exception as e:  # noqa: BLE001 - a bad row never aborts the job
                    results.append(f"{ERR_FAILED}: {type(e).__name__}: {_short(str(e))}")
        for i, r in zip(todo, results, strict=True):
            out[i].update(r if isinstance(r, dict) else _empty_result(r))
        return out

    def _compress(self, texts: list[str]) -> list[dict[str, Any]]:
        cfg = self.config
        res = self.compressor.compress_batch(
            texts,
            rate=cfg.rate,
            target_tokens=cfg.target_tokens,
            force_tokens=cfg.force_tokens,
            config=cfg.compression,
        )
        return [
            {
                "compressed_prompt": r.text,
                "origin_tokens": int(r.origin_tokens),
                "compressed_tokens": int(r.compressed_tokens),
                "rate": float(r.rate),
                "ratio": float(r.ratio),
                "error": None,
            }
            for r in res
        ]


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _validate_rows(
    rows: Sequence[dict[str, Any]], cfg: DatasetJobConfig
) -> tuple[list[dict[str, Any]], list[int]]:
    """Output rows (input columns + empty result, with the error of an invalid row) and the
    indices of the rows to compress."""
    out: list[dict[str, Any]] = []
    todo: list[int] = []
    for row in rows:
        o = dict(row)
        err = _row_error(row, cfg.text_column, cfg.max_chars)
        o.update(_empty_result(err))
        if err is None:
            todo.append(len(out))
        out.append(o)
    return out, todo


def _row_error(row: dict[str, Any], column: str, max_chars: int) -> str | None:
    if _INVALID_COLUMN in row and len(row) == 1:
        return f"{ERR_BAD_ROW}: not a JSON object"
    if column not in row or row[column] is None:
        return f"{ERR_MISSING}: no {column!r} value"
    text = row[column]
    if not isinstance(text, str):
        return f"{ERR_NOT_STRING}: {column!r} is {type(text).__name__}"
    if not text.strip():
        return f"{ERR_EMPTY}: {column!r} is empty"
    if len(text) > max_chars:
        return f"{ERR_OVERSIZED}: {len(text)} chars > max_chars {max_chars}"
    return None


def _empty_result(error: str | None) -> dict[str, Any]:
    return {
        "compressed_prompt": None,
        "origin_tokens": None,
        "compressed_tokens": None,
        "rate": None,
        "ratio": None,
        "error": error,
    }


def _groups(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


class _WorkerPayload:
    """What a worker needs to build its RowCompressor (picklable)."""

    def __init__(self, config: DatasetJobConfig, device: str) -> None:
        self.config = config
        self.device = device

    def build(self) -> RowCompressor:
        return RowCompressor.load(self.config, device=self.device)


def _maybe_die(config: DatasetJobConfig) -> None:
    """Testing hook: kill this worker once (see DatasetJobConfig.fault_kill_once)."""
    path = config.fault_kill_once
    if not path:
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(17)


# ---------------------------------------------------------------------------- engines


Shard = tuple[int, int, list[dict[str, Any]]]  # (index, first row, rows)


def _run_single(payload: _WorkerPayload, pending: Iterator[Shard], writer: _ShardWriter) -> None:
    rc: RowCompressor | None = None
    for k, _, rows in pending:
        if rc is None:
            rc = payload.build()
        out: list[dict[str, Any]] = []
        for g in _groups(rows, payload.config.batch_rows):
            out.extend(rc.process_group(g))
        writer.write(k, out)


_WORKER: dict[str, Any] = {}


def _init_local_worker(payload: _WorkerPayload, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        _WORKER["rc"] = payload.build()
    except Exception as e:  # noqa: BLE001 - reported by the first task, not as a broken pool
        _WORKER["error"] = e


def _local_task(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if "error" in _WORKER:
        raise _WORKER["error"]
    rc: RowCompressor = _WORKER["rc"]
    out: list[dict[str, Any]] = []
    for g in _groups(rows, rc.config.batch_rows):
        _maybe_die(rc.config)
        out.extend(rc.process_group(g))
    return out


def _run_local(
    payload: _WorkerPayload, pending: Iterator[Shard], writer: _ShardWriter, workers: int
) -> int:
    """Process pool; a dead worker breaks the pool: its in-flight shards go to a new one."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    cfg = payload.config
    threads = cfg.threads_per_worker or max(1, _cpu_count() // workers)
    ctx = mp.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_local_worker, initargs=(payload, threads)
        )

    retry: deque[Shard] = deque()
    attempts: Counter[int] = Counter()
    inflight: dict[Future[list[dict[str, Any]]], Shard] = {}
    restarts = 0
    pool = new_pool()
    exhausted = False
    try:
        while True:
            while len(inflight) < 2 * workers:
                item = retry.popleft() if retry else None
                if item is None and not exhausted:
                    item = next(pending, None)
                    exhausted = item is None
                if item is None:
                    break
                inflight[pool.submit(_local_task, item[2])] = item
            if not inflight:
                break
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                item = inflight.pop(fut)
                try:
                    rows = fut.result()
                except BrokenProcessPool:
                    broken = True
                    _requeue(item, attempts, retry, cfg.max_retries)
                else:
                    writer.write(item[0], rows)
            if broken:
                for item in inflight.values():
                    _requeue(item, attempts, retry, cfg.max_retries)
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
                restarts += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return restarts


def _run_pipeline(
    payload: _WorkerPayload, pending: Iterator[Shard], writer: _ShardWriter
) -> tuple[int, dict[str, Any]]:
    """All valid rows of all shards stream through one CompressionPipeline; shards are written
    in order as their last row comes back. Returns (CPU workers, timings)."""
    from mooscomp.pipeline import CompressionPipeline, PipelineConfig

    cfg = payload.config
    shards: deque[tuple[int, list[dict[str, Any]], list[int]]] = deque()  # (index, rows, todo)

    def texts() -> Iterator[str]:
        for k, _, rows in pending:
            out, todo = _validate_rows(rows, cfg)
            shards.append((k, out, todo))
            for i in todo:
                yield out[i][cfg.text_column]

    def flush_complete(filled: int) -> int:
        """Write leading shards whose rows are all back; returns the head shard's fill count."""
        while shards and filled == len(shards[0][2]):
            k, rows, _ = shards.popleft()
            writer.write(k, rows)
            filled = 0
        return filled

    pcfg = PipelineConfig(workers=cfg.workers, group_docs=cfg.batch_rows)
    t0 = time.perf_counter()
    with CompressionPipeline(
        cfg.model, device=payload.device if payload.device != "auto" else resolve_device("auto"),
        config=cfg.compression, pipeline=pcfg,
    ) as pipe:
        t_ready = time.perf_counter()
        filled = 0
        for r in pipe.compress_many(
            texts(), rate=cfg.rate, target_tokens=cfg.target_tokens, force_tokens=cfg.force_tokens
        ):
            filled = flush_complete(filled)
            _, rows, todo = shards[0]
            row = rows[todo[filled]]
            if r["error"] is None:
                row.update(compressed_prompt=r["text"], origin_tokens=r["origin_tokens"],
                           compressed_tokens=r["compressed_tokens"], rate=r["rate"], ratio=r["ratio"])
            else:
                row.update(_empty_result(f"{ERR_FAILED}: {_short(r['error'])}"))
            filled += 1
        flush_complete(filled)
        timings = {"pipeline_startup_s": t_ready - t0, "pipeline_run_s": time.perf_counter() - t_ready,
                   "device_forward_s": pipe.forward_s}
        return pcfg.n_workers(), timings


def _requeue(item: Shard, attempts: Counter[int], retry: deque[Shard], max_retries: int) -> None:
    attempts[item[0]] += 1
    if attempts[item[0]] > max_retries:
        raise RuntimeError(
            f"shard {item[0]} (rows {item[1]}..{item[1] + len(item[2]) - 1}): its worker died "
            f"{attempts[item[0]]} times (max_retries={max_retries})"
        )
    retry.append(item)


class RayCompressActor:
    """Ray Data actor: loads the model once; one call = one group of rows (pickled)."""

    def __init__(self, payload: bytes, threads: int, device: str) -> None:
        import torch

        p: _WorkerPayload = pickle.loads(payload)
        if device == "cpu":
            torch.set_num_threads(threads)
        self.config = p.config
        self.rc = RowCompressor.load(p.config, device=device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        outs = []
        for blob in batch["rows"]:
            _maybe_die(self.config)
            outs.append(pickle.dumps(self.rc.process_group(pickle.loads(blob))))
        return {
            "shard": np.asarray(batch["shard"]),
            "group": np.asarray(batch["group"]),
            "rows": np.asarray(outs, dtype=object),
        }


def _run_ray(
    payload: _WorkerPayload, pending: Iterator[Shard], writer: _ShardWriter
) -> tuple[int, int, dict[str, Any]]:
    import logging

    import ray

    cfg = payload.config
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if cfg.ray_address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs["num_cpus"] = cfg.ray_num_cpus
        ray.init(address=cfg.ray_address, **kwargs)
        started = True
    try:
        resources = ray.cluster_resources()
        n_gpu = float(resources.get("GPU", 0.0))
        n_cpu = float(resources.get("CPU", 1.0))
        gpa = 1.0 if cfg.ray_gpus_per_actor is None else float(cfg.ray_gpus_per_actor)
        if n_gpu > 0 and gpa > 0:
            device = "cuda" if cfg.device == "auto" else cfg.device
            workers = cfg.workers or max(1, int(n_gpu // gpa))
            threads = cfg.threads_per_worker or 1
            res_args: dict[str, Any] = {"num_gpus": gpa, "num_cpus": threads}
        else:
            device = "cpu" if cfg.device == "auto" else cfg.device
            threads = cfg.threads_per_worker or 1
            workers = cfg.workers or max(1, int(n_cpu // threads))
            res_args = {"num_cpus": threads}

        items: list[dict[str, Any]] = []
        expected: dict[int, int] = {}
        starts: dict[int, int] = {}
        for k, start, rows in pending:
            gs = _groups(rows, cfg.batch_rows)
            expected[k] = len(gs)
            starts[k] = start
            for g, grp in enumerate(gs):
                items.append({"shard": k, "group": g, "rows": pickle.dumps(grp)})
        extra = {"ray_actors": workers, "ray_device": device, "ray_resources": res_args}
        if not items:
            return workers, 0, extra
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds: Any = ray.data.from_items(items, override_num_blocks=min(len(items), 8 * workers))
        ds = ds.map_batches(
            RayCompressActor,
            fn_constructor_args=(pickle.dumps(payload), threads, device),
            batch_size=1,
            concurrency=workers,
            max_restarts=cfg.max_retries,
            max_task_retries=cfg.max_retries,
            **res_args,
        )
        buf: dict[int, dict[int, list[dict[str, Any]]]] = {}
        duplicates = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for k, g, blob in zip(batch["shard"], batch["group"], batch["rows"], strict=True):
                k, g = int(k), int(g)
                parts = buf.setdefault(k, {})
                if g in parts or k in writer.written:
                    duplicates += 1
                    continue
                parts[g] = pickle.loads(blob)
                if len(parts) == expected[k]:
                    writer.write(k, [r for i in range(expected[k]) for r in parts[i]])
                    del buf[k]
        missing = sorted(set(expected) - writer.written)
        if missing:
            raise RuntimeError(f"Ray returned no output for shards {missing[:10]}")
        extra["duplicates_dropped"] = duplicates
        # actor restarts and task retries are Ray's own and not visible here
        return workers, 0, extra
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------- I/O


def _format_from_suffix(path: Path) -> Format | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes:
        return None
    if suffixes[-1] in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    return None


def _open_text(path: Path) -> Any:
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


def _iter_shards(path: Path, fmt: Format, shard_rows: int) -> Iterator[tuple[int, int, list[Any]]]:
    buf: list[Any] = []
    k = start = 0
    for raw in _iter_raw(path, fmt):
        buf.append(raw)
        if len(buf) == shard_rows:
            yield k, start, buf
            k, start, buf = k + 1, start + shard_rows, []
    if buf:
        yield k, start, buf


def _parse_rows(raw: list[Any], fmt: Format) -> list[dict[str, Any]]:
    if fmt == "parquet":
        return raw
    rows: list[dict[str, Any]] = []
    for line in raw:
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
            rows.append({_INVALID_COLUMN: _short(line.rstrip("\n"), 1000)})
            continue
        rows.append(obj if isinstance(obj, dict) else {_INVALID_COLUMN: _short(line.strip(), 1000)})
    return rows


def _part_name(k: int, fmt: str) -> str:
    return f"part-{k:06d}.{fmt}"


def _fingerprint(src: Path, cfg: DatasetJobConfig, out_fmt: str, rows: int) -> dict[str, Any]:
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


def _open_parts(parts: Path, fingerprint: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Create or reopen the parts folder; returns the done record {shard: stats}."""
    manifest = parts / _MANIFEST
    if parts.exists() and manifest.exists():
        old = json.loads(manifest.read_text(encoding="utf-8"))
        if old != json.loads(json.dumps(fingerprint)):
            diff = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
            raise ValueError(
                f"{parts} belongs to a different job (differs in {diff}); delete it to start over"
            )
    else:
        parts.mkdir(parents=True, exist_ok=True)
        _atomic_write(manifest, json.dumps(fingerprint, indent=1).encode())
    done: dict[int, dict[str, Any]] = {}
    record = parts / _DONE
    if record.exists():
        for line in record.read_text(encoding="utf-8").splitlines():
            try:
                d = json.loads(line)
                done[int(d["shard"])] = d
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from an interrupted run
    return done


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Tracker:
    def __init__(self, shards: int, rows: int, progress: ProgressFn | None, t0: float) -> None:
        self.shards_total = shards
        self.rows_total = rows
        self.progress = progress
        self.t0 = t0
        self.shards_done = 0
        self.stats: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, rec: dict[str, Any]) -> None:
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


class _ShardWriter:
    """Writes a finished shard atomically, then records it in done.jsonl."""

    def __init__(self, parts: Path, fmt: Format, tracker: _Tracker) -> None:
        self.parts = parts
        self.fmt = fmt
        self.tracker = tracker
        self.written: set[int] = set()

    def write(self, k: int, rows: list[dict[str, Any]]) -> None:
        if self.fmt == "parquet":
            data = _parquet_bytes(rows)
        else:
            data = "".join(_json_line(r) for r in rows).encode("utf-8")
        _atomic_write(self.parts / _part_name(k, self.fmt), data)
        errors = Counter(str(r["error"]).split(":", 1)[0] for r in rows if r.get("error"))
        rec = {
            "shard": k,
            "rows": len(rows),
            "error_rows": sum(errors.values()),
            "errors": dict(errors),
            "origin_tokens": sum(int(r["origin_tokens"] or 0) for r in rows),
            "compressed_tokens": sum(int(r["compressed_tokens"] or 0) for r in rows),
        }
        with open(self.parts / _DONE, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.written.add(k)
        self.tracker.add(rec)


def _json_default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(bytes(o)).decode("ascii")
    if isinstance(o, (_dt.datetime, _dt.date, _dt.time)):
        return o.isoformat()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=_json_default) + "\n"


_RESULT_TYPES = {
    "compressed_prompt": "string",
    "origin_tokens": "int64",
    "compressed_tokens": "int64",
    "rate": "float64",
    "ratio": "float64",
    "error": "string",
}


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, list[Any]] = {}
    for r in rows:
        for c in r:
            cols.setdefault(c, [])
    arrays, names = [], []
    for c in cols:
        values = [r.get(c) for r in rows]
        if c in _RESULT_TYPES:
            arr = pa.array(values, type=pa.type_for_alias(_RESULT_TYPES[c]))
        else:
            try:
                arr = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep as JSON text
                arr = pa.array(
                    [None if v is None else json.dumps(v, default=_json_default) for v in values]
                )
        arrays.append(arr)
        names.append(c)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), sink)
    return bytes(sink.getvalue().to_pybytes())


def _merge(parts: Path, out: Path, fmt: Format, n_shards: int) -> None:
    files = [parts / _part_name(k, fmt) for k in range(n_shards)]
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
        import pyarrow as pa
        import pyarrow.parquet as pq

        if files:
            schemas = [pq.read_schema(str(f)) for f in files]
            schema = pa.unify_schemas(schemas, promote_options="permissive")
            with pq.ParquetWriter(str(tmp), schema) as w:
                for f in files:
                    t = pq.read_table(str(f))
                    for name in schema.names:
                        if name not in t.column_names:
                            t = t.append_column(name, pa.nulls(len(t), schema.field(name).type))
                    w.write_table(t.select(schema.names).cast(schema))
        else:
            pq.write_table(pa.table({c: pa.array([], type=pa.string()) for c in RESULT_COLUMNS}),
                           str(tmp))
    os.replace(tmp, out)


# ---------------------------------------------------------------------------- helpers


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError("Parquet needs pyarrow: pip install 'mooscomp[ray]'") from None


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _short(s: str, n: int = 300) -> str:
    return s if len(s) <= n else s[:n] + "..."
