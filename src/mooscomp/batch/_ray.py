"""The Ray Data engine: ``map_batches`` over an actor pool (one model per actor; GPU actors when
the cluster has GPUs), on the cluster at ``ray_address`` or a local one started for the job.

Groups travel between the driver and the actors of one job as pickled bytes (Arrow blocks cannot
hold rows whose columns differ); they are never read from a file or from user-supplied bytes.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mooscomp.batch.engines import EngineRun, Shard, WorkerPayload, _maybe_die
from mooscomp.batch.rows import RowCompressor, groups

if TYPE_CHECKING:  # pragma: no cover
    from mooscomp.batch import DatasetJobConfig
    from mooscomp.batch.io import ShardWriter


class RayCompressActor:
    """Ray Data actor: loads the model once; one call = one group of rows (pickled)."""

    def __init__(self, payload: bytes, threads: int, device: str) -> None:
        import torch

        p: WorkerPayload = pickle.loads(payload)
        if device == "cpu":
            torch.set_num_threads(threads)
        self.payload = p
        self.config = p.config
        self.rc = RowCompressor.load(p.config, device=device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        outs = []
        for blob in batch["rows"]:
            _maybe_die(self.payload)
            outs.append(pickle.dumps(self.rc.process_group(pickle.loads(blob))))
        return {
            "shard": np.asarray(batch["shard"]),
            "group": np.asarray(batch["group"]),
            "rows": np.asarray(outs, dtype=object),
        }


def _placement(cfg: DatasetJobConfig, resources: dict[str, float]) -> tuple[str, int, int, dict[str, Any]]:
    """(device, actors, threads per actor, Ray resource arguments) for the cluster."""
    n_gpu = float(resources.get("GPU", 0.0))
    n_cpu = float(resources.get("CPU", 1.0))
    gpa = 1.0 if cfg.ray_gpus_per_actor is None else float(cfg.ray_gpus_per_actor)
    threads = cfg.threads_per_worker or 1
    if n_gpu > 0 and gpa > 0:
        device = "cuda" if cfg.device == "auto" else cfg.device
        return device, cfg.workers or max(1, int(n_gpu // gpa)), threads, {
            "num_gpus": gpa, "num_cpus": threads}
    device = "cpu" if cfg.device == "auto" else cfg.device
    return device, cfg.workers or max(1, int(n_cpu // threads)), threads, {"num_cpus": threads}


def _collect(ds: Any, expected: dict[int, int], writer: ShardWriter) -> int:
    """Write shards as their groups come back; returns the duplicate groups dropped."""
    buf: dict[int, dict[int, list[dict[str, Any]]]] = {}
    duplicates = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for k, g, blob in zip(batch["shard"], batch["group"], batch["rows"], strict=True):
            k, g = int(k), int(g)
            got = buf.setdefault(k, {})
            if g in got or k in writer.written:
                duplicates += 1
                continue
            got[g] = pickle.loads(blob)
            if len(got) == expected[k]:
                writer.write(k, [r for i in range(expected[k]) for r in got[i]])
                del buf[k]
    missing = sorted(set(expected) - writer.written)
    if missing:
        raise RuntimeError(f"Ray returned no output for shards {missing[:10]}")
    return duplicates


def run_ray(payload: WorkerPayload, pending: Iterator[Shard], writer: ShardWriter) -> EngineRun:
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
        device, workers, threads, res_args = _placement(cfg, ray.cluster_resources())
        items: list[dict[str, Any]] = []
        expected: dict[int, int] = {}
        for k, _, rows in pending:
            gs = groups(rows, cfg.batch_rows)
            expected[k] = len(gs)
            items += [{"shard": k, "group": g, "rows": pickle.dumps(grp)} for g, grp in enumerate(gs)]
        extra: dict[str, Any] = {"ray_actors": workers, "ray_device": device, "ray_resources": res_args}
        if not items:
            return EngineRun(workers=workers, extra=extra)
        ray.data.DataContext.get_current().enable_progress_bars = False
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
        extra["duplicates_dropped"] = _collect(ds, expected, writer)
        # actor restarts and task retries are Ray's own and not visible here
        return EngineRun(workers=workers, extra=extra)
    finally:
        if started:
            ray.shutdown()
