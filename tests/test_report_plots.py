"""The report plots say what they show: quality.png names each panel's metric and marks incomplete
cells; training_ablation.png marks the shipped model (issue 17 item 13)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib", reason="the plots need matplotlib (dev extra)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mooscomp.evaluation.report import _plot_task, plot_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report() -> dict:
    cell = {"score": 0.5, "n": 10}
    return {
        "summary": {
            "squad": {"2x": {"full": 0.7, "mooscomp": 0.5}, "4x": {"full": 0.7, "mooscomp": 0.3}},
            "needle": {"2x": {"full": 1.0, "mooscomp": 0.9}, "4x": {"full": 1.0, "mooscomp": 0.8}},
        },
        "details": {
            "squad": {"2x": {"mooscomp": cell}, "4x": {"mooscomp": cell}},
            "needle": {"2x": {"mooscomp": {**cell, "n": 4}}, "4x": {"mooscomp": {**cell, "n": 3}}},
        },
        "items": {"squad": 10, "needle": 4},
        "rates": {"2x": 0.5, "4x": 0.25},
        "methods": ["full", "mooscomp"],
    }


def test_quality_panels_name_their_metric_and_mark_incomplete_cells() -> None:
    report = _report()
    colors = {"mooscomp": "C0"}
    fig, (a, b) = plt.subplots(1, 2)
    assert _plot_task(a, report, "squad", report["methods"], colors) is False
    assert _plot_task(b, report, "needle", report["methods"], colors) is True
    assert a.get_ylabel() == "F1"
    assert b.get_ylabel() == "accuracy (needle found)"
    assert "hollow: 3–3 items" in b.get_title() and "hollow" not in a.get_title()
    assert [t.get_text() for t in a.get_xticklabels()] == ["2x", "4x"]
    labels = a.get_legend_handles_labels()[1]
    assert labels == ["full context (no compression)", "mooscomp (default settings)"]
    plt.close(fig)


def test_quality_png_is_written(tmp_path: Path) -> None:
    out = plot_report(_report(), tmp_path / "q.png")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_training_ablation_plot_marks_the_shipped_model(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("train_ablation", ROOT / "benchmarks" / "train_ablation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    report = json.loads((ROOT / "reports" / "training_ablation.json").read_text())
    fig, ax = plt.subplots()
    rows = [r for r in report["summary"]["runs"] if r.get("layer_cos")]
    mod._plot_f1(ax, report, rows, sorted({mod._setting(r) for r in rows}))
    labels = ax.get_legend_handles_labels()[1]
    assert "shipped model" in labels
    assert any(t.get_text().startswith("shipped: 6 layers + head, word shapes") for t in ax.texts)
    plt.close(fig)
    assert mod.plot(report, tmp_path / "t.png") is True
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG_MAGIC
