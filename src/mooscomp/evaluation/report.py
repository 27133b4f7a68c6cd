"""The quality report: :func:`summarize` result rows into ``quality.json``'s dict, a plain-text
table and a PNG (matplotlib is imported only by :func:`plot_report`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp.evaluation.items import TASK_METRIC
from mooscomp.evaluation.methods import REGISTRY
from mooscomp.evaluation.metrics import bootstrap_ci
from mooscomp.evaluation.tasks import EvalItem

RATES = {"2x": 0.5, "3x": 0.33, "4x": 0.25, "5x": 0.2}  # the default rates of every task
# Every named rate (labels of report keys); 10x is run only where TASK_RATES asks for it.
RATE_LABELS = {**RATES, "10x": 0.1}
# Tasks whose rates replace the run's rates (the long multi-document task at 4x and 10x).
TASK_RATES: dict[str, tuple[float, ...]] = {"hotpotqa_long": (0.25, 0.1)}
METHODS: tuple[str, ...] = tuple(REGISTRY)
FULL_RATE = 1.0


def rate_label(rate: float) -> str:
    for label, r in RATE_LABELS.items():
        if abs(r - rate) < 1e-9:
            return label
    return "1x" if rate >= 1.0 else f"{1 / rate:.2f}x"


def rates_of_task(
    task: str,
    rates: Sequence[float],
    task_rates: Mapping[str, Sequence[float]] | None = None,
) -> tuple[float, ...]:
    """The rates ``task`` runs at: its :data:`TASK_RATES` entry (or ``task_rates``'s) when it
    has one, else ``rates``."""
    table = TASK_RATES if task_rates is None else task_rates
    return tuple(float(r) for r in table.get(task, rates))


def summarize(
    rows: Iterable[dict[str, Any]],
    items: Sequence[EvalItem],
    *,
    methods: Sequence[str] = METHODS,
    rates: Sequence[float] = tuple(RATES.values()),
    task_rates: Mapping[str, Sequence[float]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Aggregate result rows into ``{"summary", "details", "failures", "items", "paired", ...}``.

    Failed items count as score 0 (and are counted); the full context appears under every rate
    label so each table row is complete. A task runs at :func:`rates_of_task` (``task_rates``,
    default :data:`TASK_RATES`: ``hotpotqa_long`` at 4x and 10x), every other at ``rates``.
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
    all_rates: dict[str, float] = {}
    for task in tasks:
        summary[task], details[task] = {}, {}
        t_rates = rates_of_task(task, rates, task_rates)
        all_rates.update((rate_label(r), r) for r in t_rates)
        for rate in t_rates:
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
            for rate in (*t_rates, FULL_RATE):
                failures[m] += sum(
                    1 for x in cells.get((task, m, float(rate)), []) if x.get("failure")
                )
    return {
        "summary": summary,
        "details": details,
        "failures": {"total": int(sum(failures.values())), "by_method": dict(failures)},
        "items": {t: sum(1 for it in items if it.task == t) for t in tasks},
        "rates": all_rates or {rate_label(r): r for r in rates},
        "methods": list(methods),
        "paired": paired_deltas(cells, PAIRS, n_boot=n_boot, seed=seed),
    }


# (method, baseline): mean per-item score difference with a paired bootstrap 95% CI
PAIRS = (("mooscomp", "truncate"), ("mooscomp", "llmlingua2_style"), ("mooscomp_question", "longllmlingua_pkg"),
         ("mooscomp_question_relevance", "longllmlingua_pkg"))


def paired_deltas(
    cells: Mapping[tuple[str, str, float], list[dict[str, Any]]],
    pairs: Sequence[tuple[str, str]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    label: Callable[[float], str] = rate_label,
) -> dict[str, Any]:
    """``{"a - b": {task: {label(rate): {delta, ci95, n}}}}`` over the items both methods have;
    the interval is that of the mean difference, so it is narrower than the two cells' CIs."""
    out: dict[str, Any] = {}
    for (task, m, rate), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], -kv[0][2])):
        for a, b in pairs:
            if m != a or (task, b, rate) not in cells:
                continue
            base = {x["item_id"]: float(x.get("score") or 0.0) for x in cells[(task, b, rate)]}
            d = [float(x.get("score") or 0.0) - base[x["item_id"]] for x in cell if x["item_id"] in base]
            if d:
                lo, hi = bootstrap_ci(d, n_resamples=n_boot, seed=seed)
                out.setdefault(f"{a} - {b}", {}).setdefault(task, {})[label(rate)] = {
                    "delta": round(float(np.mean(d)), 4), "ci95": [round(lo, 4), round(hi, 4)], "n": len(d)}
    return out


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


# Plain-words names for the plot (report keys stay the method/task ids).
METHOD_LABELS = {
    "full": "full context (no compression)",
    "mooscomp": "mooscomp (default settings)",
    "mooscomp_no_outlier": "mooscomp without outlier scores (α = 0)",
    "llmlingua2_style": "LLMLingua-2-style model (β = 0, α = 0)",
    "llmlingua_pkg": "llmlingua 0.2.2 package, same weights",
    "longllmlingua_pkg": "LongLLMLingua (llmlingua 0.2.2, question-aware)",
    "selective_context": "Selective-Context (self-information)",
    "truncate": "truncate (keep the beginning)",
    "random": "random words",
    "caps_digits": "keep capitalised words and numbers",
    "mooscomp_question": "mooscomp with the question",
    "mooscomp_question_relevance": "mooscomp with the question, contexts by relevance",
    "sentence_rank": "sentences ranked by relevance (no token pruning)",
}
TASK_TITLES = {
    "squad": "SQuAD v2 questions",
    "hotpotqa": "HotpotQA questions",
    "hotpotqa_long": "HotpotQA, 20+ documents, 8k+ tokens",
    "xsum": "XSum summaries",
    "bbh": "BIG-Bench Hard (few-shot)",
    "needle": "needle in a haystack",
}
# y-axis name of each scoring family (metrics.score_item's headline number)
METRIC_NAMES = {
    "qa": "F1",
    "rouge": "ROUGE-L",
    "choice": "accuracy",
    "needle": "accuracy (needle found)",
    "survival": "answer survival",
}


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """PNG: one panel per task (grid), score vs compression ratio, one line per method.

    A hollow marker is an incomplete cell (fewer items than the task has; ``n`` in the details).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["summary"])
    ncols = min(3, len(tasks) + 1) if tasks else 1
    nrows = -(-(len(tasks) + 1) // ncols)  # one free cell for the legend
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.5 * nrows), squeeze=False)
    flat = list(axes.flat)
    methods = list(report.get("methods", METHODS))
    # tab20's dark shades first: 10 distinct colours, then the light ones (13+ methods)
    shades = [plt.get_cmap("tab20")(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
    colors = {m: shades[i % 20] for i, m in enumerate(x for x in methods if x != "full")}
    incomplete = False
    for ax, task in zip(flat, tasks, strict=False):
        incomplete |= _plot_task(ax, report, task, methods, colors)
    for ax in flat[len(tasks) :]:
        ax.axis("off")
    handles, labels = _legend_entries(flat[: len(tasks)])
    if incomplete:
        handles.append(
            plt.Line2D([], [], color="grey", marker="o", mfc="white", ls="none")  # type: ignore[attr-defined]
        )
        labels.append("incomplete cell (fewer than N items run; n per cell in the JSON)")
    flat[len(tasks)].legend(handles, labels, loc="center", fontsize=9, frameon=False)
    fig.suptitle("Task score after compression (same reader for every method)", fontsize=11)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_task(
    ax: Any, report: dict[str, Any], task: str, methods: list[str], colors: dict[str, Any]
) -> bool:
    """Draw one task's panel; True when a cell there is incomplete."""
    by_rate = report["summary"][task]
    details = report.get("details", {}).get(task, {})
    n_items = report.get("items", {}).get(task)
    labels = list(by_rate)
    xs = [1.0 / report["rates"][lab] for lab in labels]
    counts: list[int] = []
    for m in methods:
        ys = [by_rate[lab].get(m) for lab in labels]
        if all(y is None for y in ys):
            continue
        name = METHOD_LABELS.get(m, m)
        if m == "full":
            ax.axhline(
                next(y for y in ys if y is not None), color="black", ls="--", lw=1, label=name
            )
            continue
        pts = [(x, y, lab) for x, y, lab in zip(xs, ys, labels, strict=True) if y is not None]
        ours = m.startswith("mooscomp")
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            color=colors[m],
            marker="o",
            lw=2.2 if m == "mooscomp" else 1.3,
            ls="-" if ours else ":",
            label=name,
        )
        for x, y, lab in pts:
            n = details.get(lab, {}).get(m, {}).get("n")
            if n is not None and n_items and n < n_items:
                counts.append(n)
                ax.plot([x], [y], marker="o", mfc="white", color=colors[m], ls="none", zorder=3)
    family = TASK_METRIC.get(task, "")
    ax.set_xlabel("compression ratio (original / compressed tokens)", fontsize=8)
    ax.set_ylabel(METRIC_NAMES.get(family, "score"))
    ax.set_xticks(xs, [f"{x:.0f}x" if abs(x - round(x)) < 0.05 else f"{x:.1f}x" for x in xs])
    ax.grid(alpha=0.3)
    note = f"; hollow: {min(counts)}–{max(counts)} items" if counts else ""
    ax.set_title(f"{TASK_TITLES.get(task, task)} (N = {n_items or '?'}{note})", fontsize=10)
    return bool(counts)


def _legend_entries(axes: list[Any]) -> tuple[list[Any], list[str]]:
    """Handles and labels of every panel, each label once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen)
