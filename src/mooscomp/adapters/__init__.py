"""Framework adapters, each in its own module so that importing one never imports the others.

- :mod:`mooscomp.adapters.llmlingua`: ``PromptCompressor``, a drop-in for llmlingua's (no
  framework needed).
- :mod:`mooscomp.adapters.langchain`: ``MoosCompDocumentCompressor`` (LangChain
  ``BaseDocumentCompressor``), needs ``langchain-core``; LangChain 1.x's
  ``ContextualCompressionRetriever`` is in ``langchain-classic`` (``langchain_classic.retrievers``).
- :mod:`mooscomp.adapters.llamaindex`: ``MoosCompNodePostprocessor`` (LlamaIndex
  ``BaseNodePostprocessor``), needs ``llama-index-core``.

The framework packages come with the ``adapters`` extra: ``bash scripts/setup.sh adapters`` (or
``.venv/bin/pip install -e '.[adapters]'``) in the checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AdapterOptions:
    """How an adapter compresses each document or node.

    Attributes:
        rate: compressed/original token ratio in (0, 1]; exclusive with ``target_tokens``.
        target_tokens: compressed token count per document (> 0).
        force_tokens: strings that are always kept.
        use_query: pass the retriever's query as ``question`` (question-aware selection:
            :meth:`mooscomp.Compressor.compress`); a document whose budget is smaller than the
            query is compressed without it.
        min_chars: documents shorter than this are passed through unchanged.
        format: ``auto`` (default: Markdown, JSON and code keep their structure, plain prose is
            compressed as ``raw``), ``raw``, ``text``, ``markdown``, ``json`` or ``code``
            (:meth:`mooscomp.Compressor.compress`). A document whose target was missed gets
            ``mooscomp_target_missed`` in its metadata.
    """

    rate: float | None = 0.5
    target_tokens: int | None = None
    force_tokens: tuple[str, ...] = ()
    use_query: bool = True
    min_chars: int = 1
    format: str = "auto"

    def __post_init__(self) -> None:
        rate, tt = self.rate, self.target_tokens
        if tt is not None and rate is not None:
            raise ValueError("give only one of rate or target_tokens")
        if tt is None and rate is None:
            raise ValueError("give one of rate (in (0, 1]) or target_tokens (> 0)")
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0
        ):
            raise ValueError(f"rate must be a number in (0, 1], got {rate!r}")
        if tt is not None and (isinstance(tt, bool) or not isinstance(tt, int) or tt <= 0):
            raise ValueError(f"target_tokens must be a positive int, got {tt!r}")
        if isinstance(self.force_tokens, str):
            raise TypeError("force_tokens must be a sequence of str, not a str")
        object.__setattr__(self, "force_tokens", tuple(self.force_tokens))
        if not all(isinstance(t, str) for t in self.force_tokens):
            raise TypeError("force_tokens must contain only str")
        if not isinstance(self.use_query, bool):
            raise TypeError("use_query must be a bool")
        if isinstance(self.min_chars, bool) or not isinstance(self.min_chars, int) or self.min_chars < 0:
            raise ValueError(f"min_chars must be an int >= 0, got {self.min_chars!r}")
        from mooscomp.format_route import check_format

        check_format(self.format)


def _fits(compressor: Any, text: str, query: str, opts: AdapterOptions) -> bool:
    budget = opts.target_tokens if opts.target_tokens is not None else (opts.rate or 1.0) * compressor.count(text)
    return bool(compressor.count(query) <= budget)


def compress_texts(
    compressor: Any, texts: list[str], query: str | None, opts: AdapterOptions
) -> list[tuple[str, dict[str, Any]] | None]:
    """Compress each text on its own budget (one batched forward for the raw path; structured
    texts one by one); None = left unchanged. A missed target also raises a TargetMissedWarning."""
    todo = [i for i, t in enumerate(texts) if len(t.strip()) >= max(opts.min_chars, 1)]
    out: list[tuple[str, dict[str, Any]] | None] = [None] * len(texts)
    if not todo:
        return out
    question = query if opts.use_query and query and query.strip() else None
    # a query longer than a document's budget is an error for one call; here that document is
    # compressed without it, so one short document does not fail the whole retrieval
    with_q = [i for i in todo if question is not None and _fits(compressor, texts[i], question, opts)]
    asked = set(with_q)
    groups = [(with_q, question), ([i for i in todo if i not in asked], None)]
    results: dict[int, Any] = {}
    for idx, q in groups:
        if idx:
            done = compressor.compress_batch(
                [texts[i] for i in idx],
                rate=opts.rate if opts.target_tokens is None else None,
                target_tokens=opts.target_tokens,
                force_tokens=opts.force_tokens,
                question=q,
                format=opts.format,
            )
            results.update(zip(idx, done, strict=True))
    for i in todo:
        r = results[i]
        meta: dict[str, Any] = {
            "mooscomp_origin_tokens": r.origin_tokens,
            "mooscomp_compressed_tokens": r.compressed_tokens,
            "mooscomp_rate": r.rate,
        }
        if r.target_missed:
            meta["mooscomp_target_missed"] = True
        out[i] = (r.text, meta)
    return out
