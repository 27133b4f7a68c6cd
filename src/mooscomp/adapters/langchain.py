"""LangChain document compressor (needs ``langchain-core``; the ``adapters`` extra).

LangChain 1.x keeps ``ContextualCompressionRetriever`` in the ``langchain-classic`` package (it
left ``langchain.retrievers``); the compressor itself is a ``langchain_core`` document compressor
and can also be called directly: ``squeeze.compress_documents(docs, query)``.

Example:
    >>> from langchain_classic.retrievers import ContextualCompressionRetriever
    >>> from mooscomp import Compressor
    >>> from mooscomp.adapters.langchain import MoosCompDocumentCompressor
    >>> squeeze = MoosCompDocumentCompressor(compressor=Compressor.from_pretrained(), rate=0.33)
    >>> retriever = ContextualCompressionRetriever(base_compressor=squeeze, base_retriever=base)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mooscomp.adapters.langchain needs langchain-core: bash scripts/setup.sh adapters "
        "(or .venv/bin/pip install -e '.[adapters]') in the checkout"
    ) from e

from pydantic import ConfigDict, Field

from mooscomp.adapters import AdapterOptions, compress_texts


class MoosCompDocumentCompressor(BaseDocumentCompressor):
    """Compresses every retrieved document's ``page_content`` with a mooscomp ``Compressor``.

    The query is passed as ``question`` (unless ``use_query=False``): question-aware selection
    keeps the sentences relevant to it. Token counts go to the document's metadata
    (``mooscomp_origin_tokens``, ``mooscomp_compressed_tokens``, ``mooscomp_rate``). Input
    documents are not modified.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Any = Field(description="a mooscomp.Compressor")
    rate: float | None = 0.5
    target_tokens: int | None = None
    force_tokens: tuple[str, ...] = ()
    use_query: bool = True
    min_chars: int = 1
    format: str = "auto"  # auto | raw | text | markdown | json | code (AdapterOptions)

    def model_post_init(self, __context: Any) -> None:
        self._options()  # validate on construction

    def _options(self) -> AdapterOptions:
        return AdapterOptions(
            rate=None if self.target_tokens is not None else self.rate,
            target_tokens=self.target_tokens,
            force_tokens=tuple(self.force_tokens),
            use_query=self.use_query,
            min_chars=self.min_chars,
            format=self.format,
        )

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        docs = list(documents)
        done = compress_texts(self.compressor, [d.page_content for d in docs], query, self._options())
        out: list[Document] = []
        for d, r in zip(docs, done, strict=True):
            if r is None:
                out.append(d)
                continue
            text, meta = r
            out.append(d.model_copy(update={"page_content": text, "metadata": {**d.metadata, **meta}}))
        return out
