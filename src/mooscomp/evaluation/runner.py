"""Methods × rates × tasks: compress, read, score, summarise — resumable per item.

Two append-only JSON-lines files in ``out_dir`` make a run resumable:

* ``compressions.jsonl`` — one line per (method, rate, item): the compressed context and its
  cl100k token counts (a prepared file made elsewhere, e.g. on a CPU machine, can be copied in);
* ``results.jsonl`` — one line per (method, rate, item): the reader's answer and scores, or the
  failure (error, timeout, garbage) that replaced them.

Finished keys are skipped on restart. :func:`summarize` turns ``results.jsonl`` into the report
dict written as ``quality.json``: ``summary[task][rate_label][method] = score``.
"""

from __future__ import annotations

import json
import platform
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp.evaluation.baselines import joined
from mooscomp.evaluation.metrics import answer_survival, bootstrap_ci, score_item
from mooscomp.evaluation.reader import MAX_NEW_TOKENS, build_prompt
from mooscomp.evaluation.tasks import EvalItem

RATES = {"2x": 0.5, "3x": 0.33, "4x": 0.25, "5x": 0.2}
METHODS = (
    "full",
    "mooscomp",
    "mooscomp_no_outlier",
    "llmlingua2_style",
    "llmlingua_pkg",
    "selective_context",
    "truncate",
    "random",
)
FULL_RATE = 1.0


def rate_label(rate: float) -> str:
    for label, r in RATES.items():
        if abs(r - rate) < 1e-9:
            return label
    return "1x" if rate >= 1.0 else f"{1 / rate:.2f}x"


def _key(method: str, rate: float, item_id: str) -> str:
    return f"{method}|{rate:.4f}|{item_id}"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by an interruption: redo that item
                continue
    return rows


def _open_append(path: Path) -> Any:
    """Open for appending, first ending a line torn by an interrupted write."""
    if path.is_file() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            f.seek(-1, 2)
            torn = f.read(1) != b"\n"
        if torn:
            with open(path, "a", encoding="utf-8") as f:
                f.write("\n")
    return open(path, "a", encoding="utf-8")


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
        methods: method names to run, in report order (those no Method provides are skipped).
        compress_group: items per ``compress_many`` call (one append per group).
        read_group: prompts per reader call (results appended after each).
        bootstrap: bootstrap resamples for the CIs.
        seed: bootstrap seed.
    """

    rates: tuple[float, ...] = tuple(RATES.values())
    methods: tuple[str, ...] = METHODS
    compress_group: int = 64
    read_group: int = 512
    bootstrap: int = 1000
    seed: int = 0
    max_new_tokens: dict[str, int] = field(default_factory=lambda: dict(MAX_NEW_TOKENS))

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        object.__setattr__(self, "methods", tuple(self.methods))
        if not all(0.0 < r < 1.0 for r in self.rates):
            raise ValueError(f"rates must be in (0, 1), got {self.rates}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown methods {bad}; known: {METHODS}")
        for name in ("compress_group", "read_group", "bootstrap"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")


class Runner:
    """Runs the evaluation into ``out_dir`` (see the module docstring)."""

    def __init__(
        self,
        items: Sequence[EvalItem],
        methods: Sequence[Any],
        out_dir: str | Path,
        *,
        config: RunConfig | None = None,
        progress: Any | None = None,
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

    def _rates_of(self, name: str) -> tuple[float, ...]:
        return (FULL_RATE,) if name == "full" else self.config.rates

    # ------------------------------------------------------------------ compression stage

    def compress(self) -> int:
        """Compress every missing (method, rate, item); returns how many were added."""
        from mooscomp.counting import cl100k_count_many

        done = {r["key"] for r in _read_jsonl(self.comp_path)}
        added = 0
        for m in self.methods:
            names = [n for n in m.names if n in self.config.methods]
            if not names:
                continue
            rates = self._rates_of(names[0])
            todo = [
                it
                for it in self.items
                if any(_key(n, r, it.item_id) not in done for n in names for r in rates)
            ]
            for g in range(0, len(todo), self.config.compress_group):
                group = todo[g : g + self.config.compress_group]
                t0 = time.perf_counter()
                out = m.compress_many(group, rates)
                dt = time.perf_counter() - t0
                self.timings[f"compress:{'+'.join(names)}"] += dt
                origin = cl100k_count_many([joined(it) for it in group])
                with _open_append(self.comp_path) as f:
                    for n in names:
                        for ri, r in enumerate(rates):
                            texts = out[n][ri]
                            counts = cl100k_count_many(texts)
                            for it, text, o, c in zip(group, texts, origin, counts, strict=True):
                                k = _key(n, r, it.item_id)
                                if k in done:
                                    continue
                                row = {
                                    "key": k,
                                    "method": n,
                                    "rate": r,
                                    "item_id": it.item_id,
                                    "text": text,
                                    "origin_tokens": int(o),
                                    "compressed_tokens": int(c),
                                    "seconds": dt / max(len(group), 1),
                                }
                                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                                done.add(k)
                                added += 1
                self._say(f"compressed {'+'.join(names)}: {g + len(group)}/{len(todo)} items")
        return added

    # ------------------------------------------------------------------ reading stage

    def read(self, reader: Any) -> int:
        """Answer every compressed prompt that has no result yet; returns how many were added."""
        comps = {r["key"]: r for r in _read_jsonl(self.comp_path)}
        done = {r["key"] for r in _read_jsonl(self.res_path)}
        wanted = set(self.config.methods)
        pending = [
            r
            for k, r in comps.items()
            if k not in done and r["item_id"] in self.by_id and r["method"] in wanted
        ]
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in pending:
            by_kind[self.by_id[r["item_id"]].kind].append(r)
        added = 0
        for kind, rows in by_kind.items():
            rows.sort(key=lambda r: -len(r["text"]))
            max_new = int(self.config.max_new_tokens.get(kind, 32))
            for g in range(0, len(rows), self.config.read_group):
                group = rows[g : g + self.config.read_group]
                prompts = [
                    build_prompt(kind, r["text"], self.by_id[r["item_id"]].question) for r in group
                ]
                t0 = time.perf_counter()
                answers = self._generate_safely(reader, prompts, max_new)
                self.timings["read"] += time.perf_counter() - t0
                with _open_append(self.res_path) as f:
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
            _read_jsonl(self.res_path),
            self.items,
            methods=self.config.methods,
            rates=self.config.rates,
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


def summarize(
    rows: Iterable[dict[str, Any]],
    items: Sequence[EvalItem],
    *,
    methods: Sequence[str] = METHODS,
    rates: Sequence[float] = tuple(RATES.values()),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Aggregate result rows into ``{"summary", "details", "failures", "items"}``.

    Failed items count as score 0 (and are counted); the full context appears under every rate
    label so each table row is complete.
    """
    tasks = list(dict.fromkeys(it.task for it in items))
    cells: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for r in rows:
        if r["key"] in seen:
            continue
        seen.add(r["key"])
        cells[(r["task"], r["method"], float(r["rate"]))].append(r)
    summary: dict[str, Any] = {}
    details: dict[str, Any] = {}
    failures: dict[str, int] = defaultdict(int)
    for task in tasks:
        summary[task], details[task] = {}, {}
        for rate in rates:
            label = rate_label(rate)
            summary[task][label], details[task][label] = {}, {}
            for m in methods:
                cell = cells.get((task, m, FULL_RATE if m == "full" else float(rate)), [])
                if not cell:
                    continue
                d = _cell_stats(cell, n_boot=n_boot, seed=seed)
                summary[task][label][m] = d["score"]
                details[task][label][m] = d
        for m in methods:
            for rate in (*rates, FULL_RATE):
                failures[m] += sum(
                    1 for x in cells.get((task, m, float(rate)), []) if x.get("failure")
                )
    return {
        "summary": summary,
        "details": details,
        "failures": {"total": int(sum(failures.values())), "by_method": dict(failures)},
        "items": {t: sum(1 for it in items if it.task == t) for t in tasks},
        "rates": {rate_label(r): r for r in rates},
        "methods": list(methods),
    }


def _cell_stats(cell: list[dict[str, Any]], *, n_boot: int, seed: int) -> dict[str, Any]:
    scores = np.array([float(x.get("score") or 0.0) for x in cell])
    lo, hi = bootstrap_ci(scores, n_resamples=n_boot, seed=seed)
    origin = np.array([x["origin_tokens"] for x in cell], dtype=np.float64)
    comp = np.array([x["compressed_tokens"] for x in cell], dtype=np.float64)
    d: dict[str, Any] = {
        "score": round(float(scores.mean()), 4),
        "ci95": [round(lo, 4), round(hi, 4)],
        "n": len(cell),
        "failures": sum(1 for x in cell if x.get("failure")),
        "origin_tokens": round(float(origin.mean()), 1),
        "compressed_tokens": round(float(comp.mean()), 1),
        "achieved_rate": round(float(comp.sum() / max(origin.sum(), 1.0)), 4),
    }
    surv = [x["survival"] for x in cell if x.get("survival") is not None]
    if surv:
        d["answer_survival"] = round(float(np.mean(surv)), 4)
    for k in ("em", "f1", "contains", "rouge1", "rouge2", "rougeL", "accuracy"):
        vals = [
            float(x[k]) if x.get(k) is not None else 0.0
            for x in cell
            if not x.get("failure") or k in x
        ]
        if any(k in x for x in cell):
            d[k] = round(float(np.mean(vals)), 4)
    return d


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: one block per task, methods × rate labels."""
    lines = []
    for task, by_rate in report["summary"].items():
        labels = list(by_rate)
        lines.append(f"{task} (n={report.get('items', {}).get(task, '?')})")
        lines.append(f"  {'method':<20}" + "".join(f"{lab:>8}" for lab in labels))
        for m in report.get("methods", METHODS):
            vals = [by_rate[lab].get(m) for lab in labels]
            if all(v is None for v in vals):
                continue
            lines.append(
                f"  {m:<20}" + "".join(f"{v:8.3f}" if v is not None else f"{'-':>8}" for v in vals)
            )
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """PNG: score vs compression ratio, one panel per task, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["summary"])
    fig, axes = plt.subplots(
        1, max(len(tasks), 1), figsize=(4.2 * max(len(tasks), 1), 3.6), squeeze=False
    )
    for ax, task in zip(axes[0], tasks, strict=False):
        by_rate = report["summary"][task]
        labels = list(by_rate)
        xs = [1.0 / report["rates"][lab] for lab in labels]
        for m in report.get("methods", METHODS):
            ys = [by_rate[lab].get(m) for lab in labels]
            if all(y is None for y in ys):
                continue
            if m == "full":
                ax.axhline(
                    next(y for y in ys if y is not None), color="black", ls="--", lw=1, label="full"
                )
                continue
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                lw=1.5,
                label=m,
                ls="-" if m.startswith("mooscomp") else ":",
            )
        ax.set_title(f"{task} (n={report.get('items', {}).get(task, '?')})")
        ax.set_xlabel("compression ratio (x)")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
