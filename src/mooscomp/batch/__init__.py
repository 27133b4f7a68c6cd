"""Corpus-scale batch compression of JSONL / Parquet datasets.

One row in, one row out, in input order: the input row's columns are carried through and the
compression columns :data:`RESULT_COLUMNS` are added (``error`` is None for rows that were
compressed; bad rows are passed through with an error message and counted, they never abort the
job).

Rows are cut into *shards* of ``shard_rows`` consecutive rows, and shards into *groups* of
``batch_rows`` rows; a group is one :meth:`Compressor.compress_batch` call. Every engine uses the
same groups, so the single-process, local multi-process and Ray engines give identical outputs.

Resumable: each finished shard is written atomically to ``<OUT>.parts/part-NNNNNN.<fmt>`` and then
recorded in ``<OUT>.parts/done.jsonl``; a rerun skips recorded shards, and a shard whose worker
died is recomputed whole, so no row is lost or duplicated. When all shards are done they are merged
into ``OUT`` and the parts folder is removed.

Engines (:data:`ENGINES`, see :mod:`mooscomp.batch.engines`):
    ``single``: this process (no change to torch's thread settings).
    ``local``: a pool of spawned processes, each loading the model once and using
        ``threads_per_worker`` torch threads; a dead worker's shards are resubmitted to a new pool.
    ``ray``: Ray Data ``map_batches`` over an actor pool (one model per actor; GPU actors when the
        cluster has GPUs), on the cluster at ``ray_address`` or a local one started for the job.
    ``pipeline``: one accelerator in this process, CPU workers tokenise and select.

Example:
    >>> from mooscomp.batch import DatasetJobConfig, compress_dataset
    >>> report = compress_dataset("docs.jsonl", "docs.out.jsonl", DatasetJobConfig(rate=0.33))
    >>> report.rows, report.error_rows
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mooscomp._util import check_choice, check_float, check_int
from mooscomp.batch.engines import ENGINES, EngineRun, WorkerPayload
from mooscomp.batch.io import (
    FORMATS,
    PARTS_SUFFIX,
    Format,
    ShardWriter,
    Tracker,
    count_rows,
    fingerprint,
    input_format,
    iter_shards,
    merge,
    open_parts,
    output_format,
    parse_rows,
    read_rows,
)
from mooscomp.batch.rows import (
    ERR_BAD_ROW,
    ERR_EMPTY,
    ERR_FAILED,
    ERR_MISSING,
    ERR_NOT_STRING,
    ERR_OVERSIZED,
    RESULT_COLUMNS,
    RowCompressor,
    resolve_device,
)
from mooscomp.config import Request

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.config import CompressionConfig

__all__ = [
    "ENGINES", "ERR_BAD_ROW", "ERR_EMPTY", "ERR_FAILED", "ERR_MISSING", "ERR_NOT_STRING",
    "ERR_OVERSIZED", "FORMATS", "RESULT_COLUMNS", "DatasetJobConfig", "DatasetReport", "Engine",
    "Format", "Progress", "ProgressFn", "RayCompressActor", "RowCompressor", "compress_dataset",
    "count_rows", "input_format", "read_rows", "resolve_device",
]

Engine = Literal["local", "ray", "single", "pipeline"]
# upper bounds of the integer options (far above any real use; they only catch typos)
_BOUNDS = {
    "workers": 4096, "threads_per_worker": 1024, "ray_num_cpus": 1_000_000,
    "shard_rows": 100_000_000, "batch_rows": 1_000_000, "max_chars": 2**40, "max_retries": 1000,
}


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
        output_format: ``"jsonl"`` or ``"parquet"``; None = from OUT's suffix (no suffix: jsonl;
            another suffix such as ``.csv`` is refused).
        ray_address: Ray cluster to connect to; None = a running one (RAY_ADDRESS) or a new
            local one.
        ray_num_cpus: CPUs of a local Ray cluster started for the job (None = all).
        ray_gpus_per_actor: GPUs per actor on a GPU cluster (None = 1; 0 = CPU actors).
        max_retries: times a shard (local) or a task (ray) is retried after its worker died.
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

    def __post_init__(self) -> None:
        if not isinstance(self.text_column, str) or not self.text_column:
            raise ValueError("text_column must be a non-empty str")
        if isinstance(self.force_tokens, str) or not all(
            isinstance(t, str) for t in self.force_tokens
        ):
            raise TypeError("force_tokens must be a sequence of str")
        object.__setattr__(self, "force_tokens", tuple(self.force_tokens))
        Request(rate=self.rate, target_tokens=self.target_tokens, force_tokens=self.force_tokens)
        if self.model is not None and not isinstance(self.model, (str, os.PathLike)):
            raise TypeError("model must be a path or None")
        if self.model is not None:
            object.__setattr__(self, "model", os.fspath(self.model))
        if not isinstance(self.device, str) or not self.device:
            raise ValueError("device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        check_choice("engine", self.engine, ENGINES)
        if self.output_format is not None:
            check_choice("output_format", self.output_format, FORMATS)
        for name, high in _BOUNDS.items():
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 0 if name == "max_retries" else 1, high)
        if self.ray_gpus_per_actor is not None:
            check_float("ray_gpus_per_actor", self.ray_gpus_per_actor, 0.0, 1024.0)
        if self.compression is not None:
            from mooscomp.config import CompressionConfig

            if not isinstance(self.compression, CompressionConfig):
                raise TypeError("compression must be a CompressionConfig or None")

    @property
    def request(self) -> Request:
        """The per-row call options, validated once."""
        return Request(rate=self.rate, target_tokens=self.target_tokens,
                       force_tokens=self.force_tokens)


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

    @property
    def error_rate(self) -> float:
        """Share of rows that got an error (0.0 for an empty input)."""
        return self.error_rows / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[Progress], None]


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
        ValueError: unknown input or output format, or the parts folder belongs to another job.
        RuntimeError: a shard's worker died more than ``max_retries`` times.
    """
    if not isinstance(config, DatasetJobConfig):
        raise TypeError("config must be a DatasetJobConfig")
    t0 = time.perf_counter()
    src, out = Path(input_path), Path(output_path)
    if not src.is_file():
        raise FileNotFoundError(f"no such input file: {src}")
    in_fmt = input_format(src)
    out_fmt = output_format(out, config.output_format)
    if config.model is not None and not Path(config.model).exists():
        raise FileNotFoundError(f"no such model directory: {config.model}")
    parts = out.with_name(out.name + PARTS_SUFFIX)
    if out.exists() and not parts.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True / --overwrite to replace it)")
    if out_fmt == "parquet" or in_fmt == "parquet":
        _require_pyarrow()

    rows_total = count_rows(src, in_fmt)
    n_shards = max(1, math.ceil(rows_total / config.shard_rows)) if rows_total else 0
    done = open_parts(parts, fingerprint(src, config, out_fmt, rows_total))
    tracker = Tracker(n_shards, rows_total, progress, t0)
    for k in sorted(done):
        tracker.add(done[k])
    writer = ShardWriter(parts, out_fmt, tracker, config.text_column)
    pending = (
        (k, start, parse_rows(raw, in_fmt))
        for k, start, raw in iter_shards(src, in_fmt, config.shard_rows)
        if k not in done
    )
    run: EngineRun = ENGINES[config.engine](WorkerPayload(config, config.device), pending, writer)
    merge(parts, out, out_fmt, n_shards)
    s = tracker.stats
    return DatasetReport(
        output=str(out),
        engine=config.engine,
        workers=run.workers,
        rows=s["rows"],
        ok_rows=s["rows"] - s["error_rows"],
        error_rows=s["error_rows"],
        errors=dict(sorted(tracker.errors.items())),
        shards=n_shards,
        shards_skipped=len(done),
        worker_restarts=run.restarts,
        origin_tokens=s["origin_tokens"],
        compressed_tokens=s["compressed_tokens"],
        elapsed_s=time.perf_counter() - t0,
        extra=run.extra,
    )


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError(
            "Parquet needs pyarrow: install the extra from the checkout with "
            "pip install -e '.[ray]' (or bash scripts/setup.sh ray)"
        ) from None


def __getattr__(name: str) -> Any:
    if name == "RayCompressActor":  # imports nothing heavy, but keeps pickle out of this module
        from mooscomp.batch._ray import RayCompressActor

        return RayCompressActor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
