"""The quality report: :func:`summarize` result rows into ``quality.json``'s dict, a plain-text
table and a PNG (matplotlib is imported only by :func:`plot_report`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp.evaluation.methods import REGISTRY
from mooscomp.evaluation.metrics import bootstrap_ci
from mooscomp.evaluation.tasks import EvalItem

RATES = {"2x": 0.5, "3x": 0.33, "4x": 0.25, "5x": 0.2}
METHODS: tuple[str, ...] = tuple(REGISTRY)
FULL_RATE = 1.0


def rate_label(rate: float) -> str:
    for label, r in RATES.items():
        if abs(r - rate) < 1e-9:
            return label
    return "1x" if rate >= 1.0 else f"{1 / rate:.2f}x"


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
