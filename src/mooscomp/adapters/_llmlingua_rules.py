"""llmlingua 0.2.2's LLMLingua-2 argument rules, as the drop-in facade applies them: which values
each option accepts (errors name llmlingua's argument) and how the context filter's level and
kept contexts are derived from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mooscomp._util import check_float, check_int


def check_options(a: dict[str, Any], max_force_token: int) -> None:
    """The LLMLingua-2 options, each checked here so that an error names llmlingua's argument."""
    check_float("rate", a["rate"], 0.0, 1.0, low_open=True)
    check_float("target_token", a["target_token"], -1e18, 1e18)
    if 0 <= a["target_token"] < 1:
        raise ValueError(f"target_token must be >= 1 (or -1 for none), got {a['target_token']!r}")
    for name in ("target_context", "context_level_target_token"):
        check_int(name, a[name], -(10**18), 10**18)
    check_float("context_level_rate", a["context_level_rate"], 0.0, 1.0, low_open=True)
    ids = a["force_context_ids"]
    if ids is not None and (isinstance(ids, (str, bytes)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        raise TypeError("force_context_ids must be a list of int context indices (or None)")
    ft = a["force_tokens"]
    if isinstance(ft, str):
        raise TypeError("force_tokens must be a list of str, not a str")
    if len(ft) > max_force_token:
        raise ValueError(f"force_tokens: {len(ft)} tokens, more than max_force_token="
                         f"{max_force_token} (llmlingua2_config)")
    ends = a["chunk_end_tokens"]
    if isinstance(ends, str) or not all(isinstance(t, str) and len(t) == 1 for t in ends):
        raise ValueError(f"chunk_end_tokens must be single characters, got {ends!r}")
    for name in ("word_sep", "label_sep"):
        if not isinstance(a[name], str):
            raise TypeError(f"{name} must be a str")
    for name in ("use_context_level_filter", "use_token_level_filter", "return_word_label"):
        if not isinstance(a[name], bool):
            raise TypeError(f"{name} must be a bool, got {type(a[name]).__name__}")


def context_level(a: dict[str, Any], n_contexts: int, origin: int) -> float:
    """Share of contexts the context filter keeps, derived exactly as llmlingua 0.2.2 does."""
    level = float(a["context_level_rate"])
    level_tokens = int(a["context_level_target_token"])
    rate, target = float(a["rate"]), float(a["target_token"])
    token_filter = a["use_token_level_filter"]
    if a["target_context"] <= 0 and level >= 1.0 and level_tokens <= 0:
        if target < 0 and rate < 1.0:
            level = (rate + 1.0) / 2 if token_filter else rate
        if target >= 0:
            level_tokens = int(target * 2 if token_filter else target)
    if a["target_context"] >= 0:
        level = min(a["target_context"] / n_contexts, 1.0)
    if level_tokens >= 0:
        level = min(level_tokens / max(origin, 1), 1.0)
    return level


def filter_contexts(probs: list[float], level: float, force_ids: Sequence[int] | None) -> list[bool]:
    """Keep contexts whose mean keep-probability clears llmlingua's percentile, plus forced ones."""
    threshold = np.percentile(np.asarray(probs), int(100 * (1 - level)))
    forced = set(force_ids or ())
    return [p >= threshold or i in forced for i, p in enumerate(probs)]
