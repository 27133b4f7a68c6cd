"""Teacher distillation: raw documents in, keep/drop labels per ``segment_words`` word out.

Two teachers are offered. ``SurprisalTeacher`` (``surprisal.py``) scores words by a causal LM's
surprisal (the LLMLingua / Selective-Context criterion) summed over lexical units (``units.py``),
so a multi-word name is kept or dropped whole. ``GenerativeTeacher`` (``generative.py``)
reproduces LLMLingua-2's own distillation: an instruct LLM compresses ≤512-token chunks and the
word-annotation algorithm maps the result back onto the original words. ``label_corpus``
(``job.py``) runs either over a corpus as a resumable job. Importing this package does not import
torch, transformers or spaCy.
"""

from __future__ import annotations

from mooscomp.labeling._chat import ChatBackend, EndpointBackend, EndpointConfig, LlamaCppBackend
from mooscomp.labeling.base import Document, Teacher
from mooscomp.labeling.generative import (
    SYSTEM_PROMPT,
    USER_PROMPT,
    Annotation,
    GenerativeConfig,
    GenerativeTeacher,
    annotate,
    chunk_text,
    quality_filter,
)
from mooscomp.labeling.job import (
    JobConfig,
    JobStats,
    check_document,
    keep_rate,
    label_corpus,
    read_documents,
)
from mooscomp.labeling.surprisal import (
    SurprisalConfig,
    SurprisalTeacher,
    select_units,
    token_word_map,
    windowed_nll,
)
from mooscomp.labeling.units import (
    lexical_units,
    load_spacy,
    rule_unit_spans,
    rule_unit_spans_attached,
    spacy_unit_spans,
    spans_from_units,
    units_from_spans,
)

__all__ = [
    "SYSTEM_PROMPT",
    "USER_PROMPT",
    "Annotation",
    "ChatBackend",
    "Document",
    "EndpointBackend",
    "EndpointConfig",
    "GenerativeConfig",
    "GenerativeTeacher",
    "JobConfig",
    "JobStats",
    "LlamaCppBackend",
    "SurprisalConfig",
    "SurprisalTeacher",
    "Teacher",
    "annotate",
    "check_document",
    "chunk_text",
    "keep_rate",
    "label_corpus",
    "lexical_units",
    "load_spacy",
    "quality_filter",
    "read_documents",
    "rule_unit_spans",
    "rule_unit_spans_attached",
    "select_units",
    "spacy_unit_spans",
    "spans_from_units",
    "token_word_map",
    "units_from_spans",
    "windowed_nll",
]
