"""Engines: how shards of rows reach loaded compressors. One function per engine in
:data:`ENGINES`; each takes the worker payload, the pending shards and the shard writer, and
returns an :class:`EngineRun`. Every engine cuts shards into the same groups of ``batch_rows``
rows (one ``compress_batch`` call each), so their outputs agree.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mooscomp.batch.rows import (
    ERR_FAILED,
    RowCompressor,
    groups,
    resolve_device,
    short,
    validate_rows,
)
from mooscomp.result import error_row

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.batch import DatasetJobConfig
    from mooscomp.batch.io import ShardWriter

Shard = tuple[int, int, list[dict[str, Any]]]  # (index, first row, rows)
# Private test hook: a worker that processes a group while the file this names does not exist
# creates it and dies (os._exit), once. Read in the driver, carried to workers in the payload.
_KILL_ONCE_ENV = "_MOOSCOMP_BATCH_KILL_ONCE"


@dataclass(frozen=True)
class EngineRun:
    """What an engine reports: workers used, worker restarts, engine-specific figures."""

    workers: int
    restarts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class WorkerPayload:
    """What a worker needs to build its RowCompressor (picklable)."""

    def __init__(self, config: DatasetJobConfig, device: str) -> None:
        self.config = config
        self.device = device
        self.kill_once = os.environ.get(_KILL_ONCE_ENV) or None

    def build(self) -> RowCompressor:
        return RowCompressor.load(self.config, device=self.device)


def _maybe_die(payload: WorkerPayload) -> None:
    """Test hook (see ``_KILL_ONCE_ENV``): kill this worker once."""
    path = payload.kill_once
    if not path:
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(17)


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------- single


def run_single(payload: WorkerPayload, pending: Iterator[Shard], writer: ShardWriter) -> EngineRun:
    """This process, no change to torch's thread settings."""
    rc: RowCompressor | None = None
    for k, _, rows in pending:
        if rc is None:
            rc = payload.build()
        out: list[dict[str, Any]] = []
        for g in groups(rows, payload.config.batch_rows):
            out.extend(rc.process_group(g))
        writer.write(k, out)
    return EngineRun(workers=1)


# ---------------------------------------------------------------------------- local pool

_WORKER: dict[str, Any] = {}


def _init_local_worker(payload: WorkerPayload, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["payload"] = payload
    try:
        _WORKER["rc"] = payload.build()
    except Exception as e:  # noqa: BLE001 - reported by the first task, not as a broken pool
        _WORKER["error"] = e


def _local_task(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if "error" in _WORKER:
        raise _WORKER["error"]
    rc: RowCompressor = _WORKER["rc"]
    out: list[dict[str, Any]] = []
    for g in groups(rows, rc.config.batch_rows):
        _maybe_die(_WORKER["payload"])
        out.extend(rc.process_group(g))
    return out


def run_local(payload: WorkerPayload, pending: Iterator[Shard], writer: ShardWriter) -> EngineRun:
    """Spawned process pool; a dead worker breaks the pool: its in-flight shards go to a new one."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    cfg = payload.config
    workers = cfg.workers or cpu_count()
    threads = cfg.threads_per_worker or max(1, cpu_count() // workers)
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
                    requeue(item, attempts, retry, cfg.max_retries)
                else:
                    writer.write(item[0], rows)
            if broken:
                for item in inflight.values():
                    requeue(item, attempts, retry, cfg.max_retries)
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
                restarts += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return EngineRun(workers=workers, restarts=restarts)


def requeue(item: Shard, attempts: Counter[int], retry: deque[Shard], max_retries: int) -> None:
    attempts[item[0]] += 1
    if attempts[item[0]] > max_retries:
        raise RuntimeError(
            f"shard {item[0]} (rows {item[1]}..{item[1] + len(item[2]) - 1}): its worker died "
            f"{attempts[item[0]]} times (max_retries={max_retries})"
        )
    retry.append(item)


# ---------------------------------------------------------------------------- pipeline


def run_pipeline(
    payload: WorkerPayload, pending: Iterator[Shard], writer: ShardWriter
) -> EngineRun:
    """All valid rows of all shards stream through one CompressionPipeline; shards are written
    in order as their last row comes back."""
    from mooscomp.pipeline import CompressionPipeline, PipelineConfig

    cfg = payload.config
    shards: deque[tuple[int, list[dict[str, Any]], list[int]]] = deque()  # (index, rows, todo)

    def texts() -> Iterator[str]:
        for k, _, rows in pending:
            out, todo = validate_rows(rows, cfg)
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
        cfg.model, device=resolve_device(payload.device), config=cfg.compression, pipeline=pcfg
    ) as pipe:
        t_ready = time.perf_counter()
        filled = 0
        for r in pipe.compress_many(
            texts(), rate=cfg.rate, target_tokens=cfg.target_tokens, force_tokens=cfg.force_tokens
        ):
            filled = flush_complete(filled)
            _, rows, todo = shards[0]
            rows[todo[filled]].update(_pipeline_row(r))
            filled += 1
        flush_complete(filled)
        timings = {"pipeline_startup_s": t_ready - t0, "pipeline_run_s": time.perf_counter() - t_ready,
                   "device_forward_s": pipe.forward_s}
        return EngineRun(workers=pcfg.n_workers(), extra=timings)


def _pipeline_row(r: dict[str, Any]) -> dict[str, Any]:
    if r["error"] is None:
        return {k: r[k] for k in error_row(None)}
    return error_row(f"{ERR_FAILED}: {short(r['error'])}")


# ---------------------------------------------------------------------------- registry


def _run_ray(payload: WorkerPayload, pending: Iterator[Shard], writer: ShardWriter) -> EngineRun:
    from mooscomp.batch._ray import run_ray

    return run_ray(payload, pending, writer)


EngineFn = Callable[[WorkerPayload, Iterator[Shard], "ShardWriter"], EngineRun]
# engine name -> function; a new engine is one function and one line here
ENGINES: dict[str, EngineFn] = {
    "local": run_local,
    "ray": _run_ray,
    "single": run_single,
    "pipeline": run_pipeline,
}
