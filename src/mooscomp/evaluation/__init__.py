"""Evaluation harness: tasks, metrics, baselines, reader LLMs and the resumable runner.

Heavy dependencies (torch, transformers, llmlingua, spaCy, llama-cpp-python) load only when the
classes that need them are used.
"""

from __future__ import annotations

from mooscomp.evaluation.metrics import bootstrap_ci, qa_scores, rouge_scores
from mooscomp.evaluation.runner import METHODS, RATES, RunConfig, Runner, summarize
from mooscomp.evaluation.tasks import TASKS, EvalItem, TaskSizes, build_items

__all__ = [
    "METHODS",
    "RATES",
    "TASKS",
    "EvalItem",
    "RunConfig",
    "Runner",
    "TaskSizes",
    "bootstrap_ci",
    "build_items",
    "qa_scores",
    "rouge_scores",
    "summarize",
]
