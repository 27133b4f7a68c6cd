"""LlamaIndex node postprocessor (needs ``llama-index-core``; the ``adapters`` extra).

Example:
    >>> from mooscomp import Compressor
    >>> from mooscomp.adapters.llamaindex import MoosCompNodePostprocessor
    >>> post = MoosCompNodePostprocessor(compressor=Compressor.from_pretrained(), rate=0.33)
    >>> engine = index.as_query_engine(node_postprocessors=[post])
"""

from __future__ import annotations

from typing import Any

try:
    from llama_index.core.bridge.pydantic import ConfigDict, Field
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mooscomp.adapters.llamaindex needs llama-index-core: bash scripts/setup.sh adapters "
        "(or .venv/bin/pip install -e '.[adapters]') in the checkout"
    ) from e

from mooscomp.adapters import AdapterOptions, compress_texts


class MoosCompNodePostprocessor(BaseNodePostprocessor):
    """Compresses the text of every retrieved node with a mooscomp ``Compressor``.

    The query string is passed as ``question`` (unless ``use_query=False``). Returns new nodes
    (copies, scores kept) with the compressed text and token counts in their metadata; the input
    nodes are not modified. Nodes that are not text nodes pass through unchanged.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Any = Field(description="a mooscomp.Compressor")
    rate: float | None = 0.5
    target_tokens: int | None = None
    force_tokens: tuple[str, ...] = ()
    use_query: bool = True
    min_chars: int = 1
    format: str = "auto"  # auto | raw | text | markdown | json | code (AdapterOptions)

    @classmethod
    def class_name(cls) -> str:
        return "MoosCompNodePostprocessor"

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

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = query_bundle.query_str if query_bundle is not None else None
        texts = [
            n.node.get_content(metadata_mode=MetadataMode.NONE) if isinstance(n.node, TextNode) else ""
            for n in nodes
        ]
        done = compress_texts(self.compressor, texts, query, self._options())
        out: list[NodeWithScore] = []
        for n, r in zip(nodes, done, strict=True):
            if r is None or not isinstance(n.node, TextNode):
                out.append(n)
                continue
            text, meta = r
            node = n.node.model_copy(deep=False)
            node.metadata = {**n.node.metadata, **meta}
            # the counts are for the application, not for the LLM prompt or the embedding
            node.excluded_llm_metadata_keys = [*n.node.excluded_llm_metadata_keys, *meta]
            node.excluded_embed_metadata_keys = [*n.node.excluded_embed_metadata_keys, *meta]
            node.text = text
            out.append(NodeWithScore(node=node, score=n.score))
        return out
