"""Evaluation harness: tasks, metrics, methods (a registry), reader LLMs, the resumable runner, the
report and the one-call quality benchmark (:func:`mooscomp.evaluation.quality.run_quality`).

Heavy dependencies (torch, transformers, llmlingua, spaCy, llama-cpp-python, matplotlib) load
only when the classes that need them are used.
"""

from __future__ import annotations

from mooscomp.evaluation.methods import REGISTRY, Method, MethodOptions, build_methods
from mooscomp.evaluation.metrics import bootstrap_ci, qa_scores, rouge_scores
from mooscomp.evaluation.report import format_table, plot_report
from mooscomp.evaluation.runner import METHODS, RATES, RunConfig, Runner, summarize
from mooscomp.evaluation.tasks import TASKS, EvalItem, TaskSizes, build_items

__all__ = [
    "METHODS",
    "RATES",
    "REGISTRY",
    "TASKS",
    "EvalItem",
    "Method",
    "MethodOptions",
    "RunConfig",
    "Runner",
    "TaskSizes",
    "bootstrap_ci",
    "build_items",
    "build_methods",
    "format_table",
    "plot_report",
    "qa_scores",
    "rouge_scores",
    "summarize",
]
