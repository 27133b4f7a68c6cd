"""The llmlingua facade's ``format=`` extension: one context through ``Compressor.compress``
with a structured format, answered with llmlingua's keys plus ``format``, ``target_missed`` and
``warnings``."""

from __future__ import annotations

from typing import Any


def compress_formatted_prompt(
    comp: Any, contexts: list[str], fmt: str, question: str | None, config: Any,
    force: tuple[str, ...], a: dict[str, Any],
) -> dict[str, Any]:
    """One str context through ``Compressor.compress(format=fmt)``."""
    if len(contexts) != 1 or a["return_word_label"] or not a["use_token_level_filter"]:
        raise ValueError(f"format={fmt!r} takes one context (a str), without return_word_label "
                         "or use_token_level_filter=False; use format='raw' for those")
    from mooscomp.adapters.llmlingua import _budget, _row

    origin = int(comp.count(contexts[0]))
    res = comp.compress(contexts[0], force_tokens=force, question=question, config=config,
                        format=fmt, **_budget(a["rate"], a["target_token"], origin))
    out = _row([res.text], origin, [int(res.compressed_tokens)])
    out.update(format=res.format, target_missed=res.target_missed, warnings=list(res.warnings))
    return out
