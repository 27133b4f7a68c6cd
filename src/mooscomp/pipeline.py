"""Throughput engine for one accelerator: CPU workers prepare and select, the device scores.

On a GPU the encoder forward is cheap; what limits a single process is the CPU work around it
(tokenisation, word alignment, budget selection, output). Here ``workers`` processes do that work
(tokenisation is off the critical path), while this process merges the chunks of every group that
is ready into large length-sorted batches and scores them on the device (bf16 autocast on CUDA):

    texts -> groups -> worker: segment, tokenise, align, chunk  --ids-->  parent: batched forward
                       worker: word scores, budget, output text  <--p,z--

Both sides run the public stages (:mod:`mooscomp.stages`) with one validated
:class:`~mooscomp.config.Request`. Outputs equal :meth:`Compressor.compress` with
``format="raw"`` of each text up to the device's arithmetic (forward batches are formed
differently). Results come back in input order, as rows of :meth:`CompressionResult.to_row`.

Example:
    >>> with CompressionPipeline(device="cuda") as pipe:
    ...     for row in pipe.compress_many(texts, rate=0.33):
    ...         print(row["compressed_tokens"])
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp.config import CompressionConfig, Request

_POLL_S = 1.0


@dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline splits work.

    Attributes:
        workers: CPU worker processes; None = all cores but two (at least one): this process
            needs a core to drive the device, and measured throughput drops when it has none.
        group_docs: texts per work unit; a unit is prepared and selected by one worker.
        inflight: work units queued per worker (keeps workers busy while the device scores).
        start_method: multiprocessing start method; ``spawn`` is safe with CUDA in the parent.
        timeout_s: longest wait for any worker message before the job is declared stuck.
        batch_chunks: most chunks per device forward (the merged batch is also bounded by the
            compression config's ``max_batch_tokens``); replaces the config's ``batch_size``,
            which is sized for single-prompt calls. H100, MiniLM: 32 chunks 1.5M, 128 chunks
            3.5M, 512 chunks 3.8M encoder tokens/s (reports/speed_gpu.json).
    """

    workers: int | None = None
    group_docs: int = 32
    inflight: int = 3
    start_method: str = "spawn"
    timeout_s: float = 600.0
    batch_chunks: int = 512

    def __post_init__(self) -> None:
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ValueError(f"workers must be a positive int or None, got {self.workers!r}")
        for name in ("group_docs", "inflight", "batch_chunks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.start_method not in mp.get_all_start_methods():
            raise ValueError(
                f"start_method must be one of {mp.get_all_start_methods()}, got {self.start_method!r}"
            )
        if not isinstance(self.timeout_s, (int, float)) or isinstance(self.timeout_s, bool) or self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number, got {self.timeout_s!r}")

    def n_workers(self) -> int:
        return self.workers if self.workers is not None else max(1, (os.cpu_count() or 3) - 2)


class PipelineError(RuntimeError):
    """A worker failed or stopped answering."""


class CompressionPipeline:
    """Parent-side scorer plus a pool of CPU workers; use as a context manager."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "cuda",
        config: CompressionConfig | None = None,
        pipeline: PipelineConfig | None = None,
    ) -> None:
        self.pipeline = pipeline or PipelineConfig()
        # the parent's model is loaded in start(), while the workers start (both take seconds)
        self.compressor: Any = None
        # fields the caller gave, over the model's recorded defaults (as Compressor.from_pretrained)
        self.config = _model_defaults(model_path).merged(config)
        self._device = device
        self._score_config = dataclasses.replace(self.config, batch_size=self.pipeline.batch_chunks)
        self._model_path = None if model_path is None else str(model_path)
        self._ctx: Any = mp.get_context(self.pipeline.start_method)
        self._out: Any = self._ctx.Queue()
        self._inboxes: list[Any] = []
        self._procs: list[Any] = []
        self.forward_s = 0.0  # device time, for reports
        self.forward_tokens = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> CompressionPipeline:
        """Start the workers and wait until each has loaded its tokenizer."""
        if self._procs:
            return self
        for wid in range(self.pipeline.n_workers()):
            inbox = self._ctx.Queue()
            p = self._ctx.Process(
                target=_worker_main,
                args=(wid, self._model_path, self.config, inbox, self._out),
                daemon=True,
            )
            p.start()
            self._inboxes.append(inbox)
            self._procs.append(p)
        try:
            if self.compressor is None:
                from mooscomp.compressor import Compressor

                self.compressor = Compressor.from_pretrained(
                    self._model_path, device=self._device, config=self.config
                )
            self._warm_up()  # first-call device set-up (seconds on CUDA), also while workers start
        except BaseException:
            self.close()
            raise
        ready = 0
        while ready < len(self._procs):
            kind, wid, _, payload = self._get()
            if kind == "error":
                self.close()
                raise PipelineError(f"worker {wid} failed to start: {payload}")
            ready += kind == "ready"
        return self

    def _warm_up(self) -> None:
        """Run every batch shape a corpus will meet at full width once (CUDA: rows in steps of
        16 up to ``batch_chunks``, ~4M tokens, ~1 s on an H100) so that kernel selection is not
        paid during the job; on a CPU one small forward."""
        comp = self.compressor
        n = max(1, comp.max_len - 2)
        ids = np.full(n, comp.tokenizer.unk_token_id or 0, dtype=np.int64)
        on_gpu = next(comp.model.parameters()).device.type == "cuda"
        sizes = range(16, self.pipeline.batch_chunks + 16, 16) if on_gpu else [2]
        for k in sizes:
            comp.score_chunks([ids] * k, self._score_config)

    def close(self) -> None:
        for inbox in self._inboxes:
            with contextlib.suppress(OSError, ValueError):
                inbox.put(None)
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self._procs, self._inboxes = [], []

    def __enter__(self) -> CompressionPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ work

    def compress_many(
        self,
        texts: Iterable[str],
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
        force_tokens: Sequence[str] = (),
        question: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Compress every text; yields, in input order, one row per text
        (:meth:`CompressionResult.to_row`: ``compressed_prompt``, ``origin_tokens``,
        ``compressed_tokens``, ``rate``, ``ratio``, ``error``: None, or why this text failed, the
        other values then None)."""
        request = Request(rate, target_tokens, force_tokens, question)  # type: ignore[arg-type]
        self.start()
        groups = _groups(texts, self.pipeline.group_docs)
        inflight = [0] * len(self._procs)
        done: dict[int, list[dict[str, Any]]] = {}
        next_out = 0
        sent = 0
        exhausted = False
        while True:
            # keep every worker's queue full
            while not exhausted and min(inflight) < self.pipeline.inflight:
                try:
                    group = next(groups)
                except StopIteration:
                    exhausted = True
                    break
                wid = int(np.argmin(inflight))
                self._inboxes[wid].put(("prep", sent, group, request))
                inflight[wid] += 1
                sent += 1
            if exhausted and next_out == sent:
                return
            msgs = [self._get()]
            while True:  # drain whatever else is ready, to score it in one merged pass
                try:
                    msgs.append(self._out.get_nowait())
                except queue.Empty:
                    break
            chunk_msgs = []
            for kind, wid, gid, payload in msgs:
                if kind == "error":
                    raise PipelineError(f"worker {wid}, group {gid}: {payload}")
                if kind == "chunks":
                    chunk_msgs.append((wid, gid, payload))
                elif kind == "done":
                    done[gid] = payload
                    inflight[wid] -= 1
            if chunk_msgs:
                self._score_and_return(chunk_msgs)
            while next_out in done:
                yield from done.pop(next_out)
                next_out += 1

    def _score_and_return(self, chunk_msgs: list[tuple[int, int, Any]]) -> None:
        chunks: list[np.ndarray] = []
        bounds = [0]
        for _, _, (ids, lengths) in chunk_msgs:
            chunks.extend(np.split(ids.astype(np.int64), np.cumsum(lengths)[:-1]) if len(lengths) else [])
            bounds.append(len(chunks))
        t0 = time.perf_counter()
        scored = self.compressor.score_chunks(chunks, self._score_config)
        self.forward_s += time.perf_counter() - t0
        self.forward_tokens += int(sum(c.shape[0] for c in chunks))
        for i, (wid, gid, _) in enumerate(chunk_msgs):
            part = scored[bounds[i] : bounds[i + 1]]
            p = np.concatenate([a for a, _ in part]) if part else np.zeros(0, np.float32)
            z = np.concatenate([b for _, b in part]) if part else np.zeros(0, np.float32)
            self._inboxes[wid].put(("select", gid, (p, z), None))

    def _get(self) -> tuple[str, int, int, Any]:
        waited = 0.0
        while True:
            try:
                msg: tuple[str, int, int, Any] = self._out.get(timeout=_POLL_S)
                return msg
            except queue.Empty:
                waited += _POLL_S
                dead = [i for i, p in enumerate(self._procs) if not p.is_alive()]
                if dead:
                    raise PipelineError(f"worker(s) {dead} died") from None
                if waited >= self.pipeline.timeout_s:
                    raise PipelineError(f"no worker answered for {waited:.0f} s") from None


def _model_defaults(model_path: str | Path | None) -> CompressionConfig:
    """The compression defaults recorded with a model (as ``Compressor.from_pretrained``)."""
    from mooscomp.compressor import model_defaults

    return model_defaults(model_path)


def _groups(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    group: list[str] = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        group.append(t)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _worker_main(
    wid: int, model_path: str | None, config: CompressionConfig, inbox: Any, out: Any
) -> None:
    """Worker loop: ``prep`` -> send chunk ids; ``select`` (scores) -> send result rows."""
    try:
        import torch

        torch.set_num_threads(1)  # this process owns one core; the model here never runs
        from mooscomp.compressor import Compressor

        comp = Compressor.from_pretrained(model_path, device="cpu", config=config, backend="torch")
    except Exception as e:  # report instead of dying silently
        out.put(("error", wid, -1, f"{type(e).__name__}: {e}"))
        return
    out.put(("ready", wid, -1, None))
    pending: dict[int, tuple[list[Any], list[str | None], Request]] = {}
    while True:
        msg = inbox.get()
        if msg is None:
            return
        kind, gid, payload, request = msg
        try:
            if kind == "prep":
                ctxs, errors = _prepare_all(comp, config, payload)
                pending[gid] = (ctxs, errors, request)
                chunks = [ch for c in ctxs if c is not None for ch in c.chunks()]
                lengths = np.asarray([len(c) for c in chunks], dtype=np.int32)
                ids = np.concatenate(chunks).astype(np.int32) if chunks else np.zeros(0, np.int32)
                out.put(("chunks", wid, gid, (ids, lengths)))
            else:
                ctxs, errors, request = pending.pop(gid)
                out.put(("done", wid, gid, _select_all(comp, config, ctxs, errors, payload, request)))
        except Exception as e:
            out.put(("error", wid, gid, f"{type(e).__name__}: {e}"))


def _prepare_all(
    comp: Any, config: CompressionConfig, texts: list[str]
) -> tuple[list[Any], list[str | None]]:
    """Prepared context (or None) and error (or None) per text: one bad text must not take its
    group down."""
    from mooscomp.stages import as_contexts

    ctxs: list[Any] = []
    errors: list[str | None] = []
    for t in texts:
        try:
            (text,) = as_contexts(t, config.max_input_chars)  # size limit, surrogates
            ctxs.append(comp.prepare(text, config))
            errors.append(None)
        except Exception as e:
            ctxs.append(None)
            errors.append(f"{type(e).__name__}: {e}")
    return ctxs, errors


def _select_all(
    comp: Any,
    config: CompressionConfig,
    ctxs: list[Any],
    errors: list[str | None],
    scores: tuple[np.ndarray, np.ndarray],
    request: Request,
) -> list[dict[str, Any]]:
    """Hand each prepared text its token scores, then select; per-text errors become rows."""
    from mooscomp.result import error_row
    from mooscomp.stages import set_token_scores

    set_token_scores([c for c in ctxs if c is not None], *scores)
    rows: list[dict[str, Any]] = []
    for c, err in zip(ctxs, errors, strict=True):
        row = error_row(err)
        if c is not None:
            try:
                row = comp.select([c], config, request).to_row()
            except Exception as e:
                row = error_row(f"{type(e).__name__}: {e}")
        rows.append(row)
    return rows
