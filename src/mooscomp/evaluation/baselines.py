"""Old home of the evaluation methods; they now live in :mod:`mooscomp.evaluation.methods` (one
module per method and a registry). Every name importable from here before still is."""

from __future__ import annotations

from mooscomp.evaluation.methods import make_methods
from mooscomp.evaluation.methods.base import (
    CONTEXT_SEP,
    Method,
    joined,
)
from mooscomp.evaluation.methods.base import keep_top as _keep_top
from mooscomp.evaluation.methods.base import rejoin as _rejoin
from mooscomp.evaluation.methods.base import token_costs as _token_costs
from mooscomp.evaluation.methods.base import words_with_gaps as _words_with_gaps
from mooscomp.evaluation.methods.caps_digits import CapsDigits
from mooscomp.evaluation.methods.llmlingua import (
    TIKTOKEN_CL100K_CACHE_NAME,
    LLMLinguaPackage,
    export_for_llmlingua,
    prepare_tiktoken_cache,
)
from mooscomp.evaluation.methods.mooscomp import MooscompMethod
from mooscomp.evaluation.methods.selective_context import (
    CausalLMScorer,
    SelectiveContext,
    add_phrase_units,
    load_spacy,
    phrase_units,
)
from mooscomp.evaluation.methods.simple import FullContext, RandomDrop, Truncate

__all__ = [
    "CONTEXT_SEP", "TIKTOKEN_CL100K_CACHE_NAME", "CapsDigits", "CausalLMScorer", "FullContext",
    "LLMLinguaPackage", "Method", "MooscompMethod", "RandomDrop", "SelectiveContext", "Truncate",
    "_keep_top", "_rejoin", "_token_costs", "_words_with_gaps", "add_phrase_units",
    "export_for_llmlingua", "joined", "load_spacy", "make_methods", "phrase_units",
    "prepare_tiktoken_cache",
]
