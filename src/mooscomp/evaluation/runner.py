"""Methods × rates × tasks: compress, read, score, summarise — resumable per item.

Two append-only JSON-lines files in ``out_dir`` make a run resumable:

* ``compressions.jsonl`` — one line per (method, rate, item): the compressed context and its
  cl100k token counts (a prepared file made elsewhere, e.g. on a CPU machine, can be copied in);
* ``results.jsonl`` — one line per (method, rate, item): the reader's answer and scores, or the
  failure (error, timeout, garbage) that replaced them.

Finished keys are skipped on restart. :func:`summarize` (in :mod:`.report`) turns
``results.jsonl`` into the report dict written as ``quality.json``:
``summary[task][rate_label][method] = score``.
"""

from __future__ import annotations

import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mooscomp._util import check_int, open_append, read_jsonl
from mooscomp.evaluation.methods import joined
from mooscomp.evaluation.metrics import answer_survival, score_item
from mooscomp.evaluation.reader import MAX_NEW_TOKENS, build_prompt
from mooscomp.evaluation.report import (
    FULL_RATE,
    METHODS,
    RATES,
    TASK_RATES,
    format_table,
    plot_report,
    rate_label,
    rates_of_task,
    summarize,
)
from mooscomp.evaluation.tasks import EvalItem

__all__ = [
    "FULL_RATE", "METHODS", "RATES", "TASK_RATES", "RunConfig", "Runner", "compression_row",
    "format_table", "is_garbage", "row_key",
    "plot_report", "rate_label", "summarize",
]


def row_key(method: str, rate: float, item_id: str) -> str:
    """A results or compressions row's key (one per method, rate and item)."""
    return f"{method}|{rate:.4f}|{item_id}"


def compression_row(
    method: str, rate: float, item_id: str, text: str, origin_tokens: int,
    compressed_tokens: int, seconds: float,
) -> dict[str, Any]:
    """One line of ``compressions.jsonl`` (token counts in cl100k; ``seconds`` per item)."""
    return {
        "key": row_key(method, rate, item_id),
        "method": method,
        "rate": rate,
        "item_id": item_id,
        "text": text,
        "origin_tokens": int(origin_tokens),
        "compressed_tokens": int(compressed_tokens),
        "seconds": seconds,
    }


def is_garbage(text: str) -> bool:
    """Empty, or mostly non-printable / replacement characters."""
    s = text.strip()
    if not s:
        return True
    bad = sum(1 for ch in s if ch == "\ufffd" or (not ch.isprintable() and ch not in "\n\t"))
    return bad > 0.5 * len(s)


@dataclass(frozen=True)
class RunConfig:
    """Which methods and rates run, and how work is grouped.

    Attributes:
        rates: compression rates (kept/original cl100k tokens) besides the full context.
        task_rates: tasks whose rates replace ``rates`` (default :data:`TASK_RATES`:
            ``hotpotqa_long`` at 4x and 10x only).
        methods: method names to run, in report order (those no Method provides are skipped).
        compress_group: items per ``compress_many`` call (one append per group).
        read_group: prompts per reader call (results appended after each).
        bootstrap: bootstrap resamples for the CIs.
        seed: bootstrap seed.
    """

    rates: tuple[float, ...] = tuple(RATES.values())
    task_rates: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(TASK_RATES))
    methods: tuple[str, ...] = METHODS
    compress_group: int = 64
    read_group: int = 512
    bootstrap: int = 1000
    seed: int = 0
    max_new_tokens: dict[str, int] = field(default_factory=lambda: dict(MAX_NEW_TOKENS))

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(
            self, "task_rates",
            {t: tuple(float(r) for r in rs) for t, rs in dict(self.task_rates).items()},
        )
        every = [*self.rates, *(r for rs in self.task_rates.values() for r in rs)]
        if not all(0.0 < r < 1.0 for r in every):
            raise ValueError(f"rates must be in (0, 1), got {self.rates} / {self.task_rates}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown methods {bad}; known: {METHODS}")
        for name in ("compress_group", "read_group", "bootstrap"):
            check_int(name, getattr(self, name), 1, 10**9)


class Runner:
    """Runs the evaluation into ``out_dir`` (see the module docstring)."""

    def __init__(
        self,
        items: Sequence[EvalItem],
        methods: Sequence[Any],
        out_dir: str | Path,
        *,
        config: RunConfig | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.items = list(items)
        self.by_id = {it.item_id: it for it in self.items}
        if len(self.by_id) != len(self.items):
            raise ValueError("item ids must be unique")
        self.methods = list(methods)
        self.config = config or RunConfig()
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.comp_path = self.out / "compressions.jsonl"
        self.res_path = self.out / "results.jsonl"
        self.progress = progress  # optional callable(str) for scripts; the library never prints
        self.timings: dict[str, float] = defaultdict(float)

    def _say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def _rates_of(self, name: str, task: str) -> tuple[float, ...]:
        if name == "full":
            return (FULL_RATE,)
        return rates_of_task(task, self.config.rates, self.config.task_rates)

    # ------------------------------------------------------------------ compression stage

    def compress(self) -> int:
        """Compress every missing (method, rate, item); returns how many were added."""
        done = {r["key"] for r in read_jsonl(self.comp_path)}
        added = 0
        for m in self.methods:
            names = [n for n in m.names if n in self.config.methods]
            if not names:
                continue
            by_rates: dict[tuple[float, ...], list[EvalItem]] = defaultdict(list)
            for it in self.items:
                rates = self._rates_of(names[0], it.task)
                if any(row_key(n, r, it.item_id) not in done for n in names for r in rates):
                    by_rates[rates].append(it)
            for rates, todo in by_rates.items():
                for g in range(0, len(todo), self.config.compress_group):
                    group = todo[g : g + self.config.compress_group]
                    added += self._compress_group(m, names, rates, group, done)
                    self._say(
                        f"compressed {'+'.join(names)}: {g + len(group)}/{len(todo)} items"
                        f" at {'/'.join(rate_label(r) for r in rates)}"
                    )
        return added

    def _compress_group(
        self, m: Any, names: list[str], rates: tuple[float, ...], group: list[EvalItem],
        done: set[str],
    ) -> int:
        from mooscomp.counting import cl100k_count_many

        t0 = time.perf_counter()
        out = m.compress_many(group, rates)
        dt = time.perf_counter() - t0
        self.timings[f"compress:{'+'.join(names)}"] += dt
        origin = cl100k_count_many([joined(it) for it in group])
        added = 0
        with open_append(self.comp_path) as f:
            for n in names:
                for ri, r in enumerate(rates):
                    texts = out[n][ri]
                    counts = cl100k_count_many(texts)
                    for it, text, o, c in zip(group, texts, origin, counts, strict=True):
                        k = row_key(n, r, it.item_id)
                        if k in done:
                            continue
                        row = compression_row(
                            n, r, it.item_id, text, o, c, dt / max(len(group), 1)
                        )
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                        done.add(k)
                        added += 1
        return added

    # ------------------------------------------------------------------ reading stage

    def _pending(self) -> list[dict[str, Any]]:
        comps = {r["key"]: r for r in read_jsonl(self.comp_path)}
        done = {r["key"] for r in read_jsonl(self.res_path)}
        wanted = set(self.config.methods)
        return [
            r
            for k, r in comps.items()
            if k not in done and r["item_id"] in self.by_id and r["method"] in wanted
        ]

    def missing_results(self) -> int:
        """Compressions of the wanted methods and items that have no result yet."""
        return len(self._pending())

    def read(self, reader: Any, *, deadline: float | None = None) -> int:
        """Answer every compressed prompt that has no result yet; returns how many were added.

        ``deadline``: a :func:`time.monotonic` time after which no new reader group starts (the
        results so far stay in ``results.jsonl``; :meth:`missing_results` says what is left).
        """
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in self._pending():
            by_kind[self.by_id[r["item_id"]].kind].append(r)
        added = 0
        for kind, rows in by_kind.items():
            rows.sort(key=lambda r: -len(r["text"]))
            max_new = int(self.config.max_new_tokens.get(kind, 32))
            for g in range(0, len(rows), self.config.read_group):
                if deadline is not None and time.monotonic() > deadline:
                    self._say(f"time budget spent: {added} results added, the rest left")
                    return added
                group = rows[g : g + self.config.read_group]
                prompts = [
                    build_prompt(kind, r["text"], self.by_id[r["item_id"]].question) for r in group
                ]
                t0 = time.perf_counter()
                answers = self._generate_safely(reader, prompts, max_new)
                self.timings["read"] += time.perf_counter() - t0
                with open_append(self.res_path) as f:
                    for r, ans in zip(group, answers, strict=True):
                        f.write(json.dumps(self._result_row(r, ans), ensure_ascii=False) + "\n")
                added += len(group)
                self._say(f"read {kind}: {g + len(group)}/{len(rows)}")
        return added

    def _generate_safely(
        self, reader: Any, prompts: list[str], max_new: int
    ) -> list[str | Exception]:
        try:
            got = reader.generate(prompts, max_new_tokens=max_new)
            if len(got) != len(prompts):
                raise RuntimeError(f"reader returned {len(got)} answers for {len(prompts)} prompts")
            return list(got)
        except Exception:  # noqa: BLE001 - retry one by one to pin the failure on items
            out: list[str | Exception] = []
            for p in prompts:
                try:
                    one = reader.generate([p], max_new_tokens=max_new)
                    out.append(str(one[0]) if one else RuntimeError("no answer"))
                except Exception as e:  # noqa: BLE001
                    out.append(e)
            return out

    def _result_row(self, comp: dict[str, Any], answer: str | Exception) -> dict[str, Any]:
        it = self.by_id[comp["item_id"]]
        row: dict[str, Any] = {
            "key": comp["key"],
            "method": comp["method"],
            "rate": comp["rate"],
            "item_id": it.item_id,
            "task": it.task,
            "origin_tokens": comp["origin_tokens"],
            "compressed_tokens": comp["compressed_tokens"],
        }
        if it.metric in ("qa", "needle"):
            row["survival"] = answer_survival(comp["text"], it.answers)
        if isinstance(answer, Exception):
            kind = "timeout" if isinstance(answer, TimeoutError) else "error"
            row.update(
                failure=f"{kind}: {type(answer).__name__}: {answer}"[:300], answer=None, score=0.0
            )
            return row
        row["answer"] = answer
        if is_garbage(answer):
            row.update(failure="garbage", score=0.0)
            return row
        row.update(score_item(it.metric, answer, it.answers, it.meta))
        row["failure"] = None
        return row

    # ------------------------------------------------------------------ report

    def summarize(self, *, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
        report = summarize(
            read_jsonl(self.res_path),
            self.items,
            methods=self.config.methods,
            rates=self.config.rates,
            task_rates=self.config.task_rates,
            n_boot=self.config.bootstrap,
            seed=self.config.seed,
        )
        report["runtime"] = {
            **(runtime or {}),
            "stage_seconds": {k: round(v, 2) for k, v in self.timings.items()},
            "python": platform.python_version(),
            "host": platform.node(),
            "platform": platform.platform(),
        }
        return report
