"""The quality benchmark as one library call: :func:`run_quality` (compress what is missing, read
with a reader LLM, score, summarise) and :func:`run_compression` (the compression stage alone, e.g.
on a CPU machine, to carry to a GPU machine). ``mooscomp bench`` is a thin wrapper around them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mooscomp._util import atomic_write_text, check_float, check_int, open_text
from mooscomp.evaluation.items import EvalItem, load_items
from mooscomp.evaluation.methods import REGISTRY, MethodOptions, build_methods
from mooscomp.evaluation.report import METHODS, RATES, TASK_RATES, plot_report
from mooscomp.evaluation.runner import RunConfig, Runner

__all__ = ["QualityConfig", "build_methods", "load_reader", "run_compression", "run_quality"]

Progress = Callable[[str], None]
_PACKAGES = ("mooscomp", "torch", "transformers", "llmlingua", "spacy", "gguf")


@dataclass(frozen=True, kw_only=True)
class QualityConfig:
    """One quality run.

    Attributes:
        items: items file (``mooscomp bench prepare``).
        work: resumable run folder (compressions.jsonl, results.jsonl).
        methods: method names (see :data:`mooscomp.evaluation.methods.REGISTRY`).
        rates: compression rates besides the full context.
        task_rates: tasks whose own rates replace ``rates`` (default: ``hotpotqa_long`` at 4x and
            10x, see :data:`mooscomp.evaluation.report.TASK_RATES`).
        tasks: tasks to keep (empty = all).
        limit: at most this many items per task (0 = all).
        method_options: models and LMs the methods are built from.
        reader: reader LLM, a .gguf file or a model folder ("" = none: compression only).
        reader_tokenizer: tokenizer folder ("" = the reader's).
        reader_device / reader_dtype: where and in which dtype the reader runs.
        batch_size / max_batch_tokens / max_input_tokens: reader batching and prompt limits.
        seed: bootstrap seed.
        prepared: compressions files (.jsonl[.gz]) made elsewhere, merged in first.
        results: results files of an earlier run, merged in first (resume).
        time_budget_s: stop starting reader groups this many seconds after the call (0 = none).
        report: where to write quality.json (None = not written).
        plot: where to write the PNG (None = not drawn).
    """

    items: Path
    work: Path
    methods: tuple[str, ...] = METHODS
    rates: tuple[float, ...] = tuple(RATES.values())
    task_rates: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(TASK_RATES))
    tasks: tuple[str, ...] = ()
    limit: int = 0
    method_options: MethodOptions = field(default_factory=MethodOptions)
    reader: str = ""
    reader_tokenizer: str = ""
    reader_device: str = "cpu"
    reader_dtype: str | None = None
    batch_size: int = 128
    max_batch_tokens: int = 200_000
    max_input_tokens: int = 32_000
    seed: int = 0
    prepared: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    time_budget_s: float = 0.0
    report: Path | None = None
    plot: Path | None = None

    def __post_init__(self) -> None:
        for name in ("items", "work"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        for name in ("methods", "rates", "tasks", "prepared", "results"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [m for m in self.methods if m not in REGISTRY]
        if bad:
            raise ValueError(f"unknown methods {bad}; known: {tuple(REGISTRY)}")
        check_int("limit", self.limit, 0, 10**9)
        for name in ("batch_size", "max_batch_tokens", "max_input_tokens"):
            check_int(name, getattr(self, name), 1, 10**12)
        check_float("time_budget_s", self.time_budget_s, 0.0, 1e9)

    @property
    def wanted(self) -> frozenset[str]:
        return frozenset(self.methods)


def select_items(cfg: QualityConfig) -> list[EvalItem]:
    """The items file, restricted to ``tasks`` and ``limit`` items per task."""
    items = load_items(cfg.items)
    if cfg.tasks:
        items = [it for it in items if it.task in set(cfg.tasks)]
    if cfg.limit:
        count: dict[str, int] = {}
        out = []
        for it in items:
            count[it.task] = count.get(it.task, 0) + 1
            if count[it.task] <= cfg.limit:
                out.append(it)
        items = out
    return items


def copy_jsonl(srcs: tuple[str, ...], dst: Path) -> None:
    """Append (gzipped) JSON-lines files into ``dst``; the runner skips keys it has already seen,
    so merging the same file twice is harmless."""
    for src in srcs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open_text(src) as f, open(dst, "a", encoding="utf-8") as g:
            shutil.copyfileobj(f, g)
            g.write("\n")


def load_reader(cfg: QualityConfig) -> Any:
    from mooscomp.evaluation.reader import TransformersReader

    return TransformersReader.load(
        cfg.reader,
        device=cfg.reader_device,
        dtype=cfg.reader_dtype,
        tokenizer_path=cfg.reader_tokenizer or None,
        max_batch_size=cfg.batch_size,
        max_batch_tokens=cfg.max_batch_tokens,
        max_input_tokens=cfg.max_input_tokens,
    )


def _runner(
    cfg: QualityConfig, *, read: bool, progress: Progress | None
) -> tuple[Runner, Any, dict[str, Any]]:
    """Merge carried files, load the reader when needed, build the methods: (runner, reader,
    notes on the methods)."""
    say = progress or (lambda _msg: None)
    items = select_items(cfg)
    copy_jsonl(cfg.prepared, cfg.work / "compressions.jsonl")
    copy_jsonl(cfg.results, cfg.work / "results.jsonl")
    reader = None
    sc_on_reader = "selective_context" in cfg.wanted and cfg.method_options.sc_lm == "reader"
    if cfg.reader and (read or sc_on_reader):
        t0 = time.perf_counter()
        reader = load_reader(cfg)
        say(f"reader {reader.name} loaded in {time.perf_counter() - t0:.0f}s")
    methods, notes = build_methods(cfg.wanted, cfg.method_options, reader=reader)
    missing = sorted(cfg.wanted - {n for m in methods for n in m.names})
    if missing:
        say(f"methods not available with these arguments (only prepared rows used): {missing}")
    run_cfg = RunConfig(
        rates=cfg.rates, task_rates=cfg.task_rates,
        methods=tuple(m for m in METHODS if m in cfg.wanted), seed=cfg.seed,
    )
    return Runner(items, methods, cfg.work, config=run_cfg, progress=progress), reader, notes


def run_compression(cfg: QualityConfig, *, progress: Progress | None = None) -> int:
    """The compression stage only; returns how many compressions were added."""
    runner, _, _ = _runner(cfg, read=False, progress=progress)
    return runner.compress()


def run_quality(
    cfg: QualityConfig,
    *,
    progress: Progress | None = None,
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compress what is missing, read, score; the report dict (also written to ``cfg.report``
    and drawn to ``cfg.plot`` when set). ``report["complete"]`` is False when the time budget
    left results unread (rerun with the same work folder to finish)."""
    if not cfg.reader:
        raise ValueError("a reader is required for the quality run")
    t_start = time.monotonic()
    runner, reader, notes = _runner(cfg, read=True, progress=progress)
    n_c = runner.compress()
    if progress is not None:
        progress(f"compression stage: {n_c} new rows")
    deadline = t_start + cfg.time_budget_s if cfg.time_budget_s else None
    runner.read(reader, deadline=deadline)
    info = {
        "reader": reader.info(),
        "methods": notes,
        "wall_seconds": round(time.monotonic() - t_start, 1),
        **(runtime or {}),
        "packages": {p: _version(p) for p in _PACKAGES},
    }
    report = runner.summarize(runtime=info)
    report["complete"] = runner.missing_results() == 0
    if cfg.report is not None:
        atomic_write_text(cfg.report, json.dumps(report, indent=1))
    if cfg.plot is not None:
        plot_report(report, cfg.plot)
    return report


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"
