"""Compression methods compared by the harness: one :class:`Method` protocol and a registry.

:data:`REGISTRY` maps each method name to the builder that makes it (``"module:function"`` in this
package, imported only when that method is wanted). A builder takes a :class:`BuildContext` and
returns a :class:`Method`, or None when its inputs (a model, an LM) are missing. Adding a baseline
is one file here with a class and a ``build`` function, plus one line in :data:`REGISTRY`. Several
names may share a builder (one object producing several variants from one scoring pass); the
builder then runs once.

Methods: ``full`` (no compression), ``mooscomp`` / ``mooscomp_no_outlier`` / ``llmlingua2_style``
(:mod:`.mooscomp`), ``llmlingua_pkg`` (:mod:`.llmlingua`), ``longllmlingua_pkg``
(:mod:`.longllmlingua`; transformers 4.x only: ``scripts/device/longllmlingua_job.py``), ``selective_context``
(:mod:`.selective_context`), ``truncate`` and ``random`` (:mod:`.simple`), ``caps_digits``
(:mod:`.caps_digits`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from mooscomp.evaluation.methods.base import (
    CONTEXT_SEP,
    BuildContext,
    Method,
    MethodOptions,
    joined,
    keep_top,
    token_costs,
)

__all__ = [
    "CONTEXT_SEP", "REGISTRY", "BuildContext", "Method", "MethodOptions", "build_methods",
    "joined", "keep_top", "make_methods", "token_costs",
]

# method name -> "module:builder" (report order)
REGISTRY: dict[str, str] = {
    "full": "simple:build_full",
    "mooscomp": "mooscomp:build_mooscomp",
    "mooscomp_no_outlier": "mooscomp:build_mooscomp",
    "llmlingua2_style": "mooscomp:build_llmlingua2_style",
    "llmlingua_pkg": "llmlingua:build",
    "longllmlingua_pkg": "longllmlingua:build",
    "selective_context": "selective_context:build",
    "truncate": "simple:build_truncate",
    "random": "simple:build_random",
    "caps_digits": "caps_digits:build",
    "mooscomp_question": "question:build",
    "mooscomp_question_relevance": "question:build",
    "sentence_rank": "question:build",
}


def builder(name: str) -> Callable[[BuildContext], Method | None]:
    """The builder registered for ``name`` (KeyError naming the known methods otherwise)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; known: {tuple(REGISTRY)}")
    module, fn = REGISTRY[name].split(":")
    fn_obj: Callable[[BuildContext], Method | None] = getattr(
        importlib.import_module(f"{__name__}.{module}"), fn
    )
    return fn_obj


def build_methods(
    wanted: Iterable[str], options: MethodOptions, *, reader: Any | None = None
) -> tuple[list[Method], dict[str, Any]]:
    """The wanted methods that the options can build, in registry order, and notes on them
    (models, versions) for the report. Unknown names raise KeyError."""
    want = frozenset(wanted)
    for name in want:
        builder(name)  # fail early on a typo
    ctx = BuildContext(wanted=want, options=options, reader=reader)
    methods: list[Method] = []
    done: set[str] = set()
    for name in REGISTRY:
        spec = REGISTRY[name]
        if name not in want or spec in done:
            continue
        done.add(spec)
        m = builder(name)(ctx)
        if m is not None:
            methods.append(m)
    return methods, ctx.notes


def make_methods(
    *,
    mooscomp: Any | None = None,
    llmlingua2_style: Any | None = None,
    llmlingua_pkg: Any | None = None,
    selective_context: Any | None = None,
    seed: int = 0,
    alpha_off_config: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """The standard method list from already built objects (missing ones are skipped); kept for
    scripts that build their own compressors. ``mooscomp`` and ``llmlingua2_style`` are
    :class:`mooscomp.Compressor` objects (see :mod:`.mooscomp` for the variants they yield)."""
    from mooscomp.evaluation.methods.mooscomp import MooscompMethod
    from mooscomp.evaluation.methods.simple import FullContext, RandomDrop, Truncate

    methods: list[Any] = [FullContext()]
    off = alpha_off_config or (lambda c: c.config.replace(outlier_alpha=0.0))
    if mooscomp is not None:
        methods.append(
            MooscompMethod(
                mooscomp, {"mooscomp": mooscomp.config, "mooscomp_no_outlier": off(mooscomp)}
            )
        )
    if llmlingua2_style is not None:
        cfg = off(llmlingua2_style).replace(budget="llmlingua2", units=())
        methods.append(MooscompMethod(llmlingua2_style, {"llmlingua2_style": cfg}))
    if llmlingua_pkg is not None:
        methods.append(llmlingua_pkg)
    if selective_context is not None:
        methods.append(selective_context)
    methods += [Truncate(), RandomDrop(seed=seed)]
    return methods
