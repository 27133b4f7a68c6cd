"""LangChain and LlamaIndex adapters against the real packages (skipped when not installed)."""

from __future__ import annotations

import pytest


def test_adapter_modules_import_lazily():
    import sys

    import mooscomp.adapters  # noqa: F401

    assert "langchain_core" not in sys.modules or "mooscomp.adapters.langchain" in sys.modules
    from mooscomp.adapters import AdapterOptions

    with pytest.raises(ValueError, match="rate"):
        AdapterOptions(rate=0)
    with pytest.raises(ValueError, match="only one"):
        AdapterOptions(rate=0.5, target_tokens=3)
    with pytest.raises(TypeError, match="force_tokens"):
        AdapterOptions(force_tokens="abc")


def test_langchain_document_compressor(tiny_compressor, sample_text):
    pytest.importorskip("langchain_core", reason="langchain-core is not installed (adapters extra)")
    from langchain_core.documents import BaseDocumentCompressor, Document

    from mooscomp.adapters.langchain import MoosCompDocumentCompressor

    a, b = sample_text.split("\n\n")
    docs = [
        Document(page_content=a, metadata={"source": "a"}),
        Document(page_content=b, metadata={"source": "b"}),
        Document(page_content="", metadata={"source": "empty"}),
    ]
    squeeze = MoosCompDocumentCompressor(compressor=tiny_compressor, rate=0.4, force_tokens=("Rollo",))
    assert isinstance(squeeze, BaseDocumentCompressor)
    out = squeeze.compress_documents(docs, query="Who was Rollo?")
    assert len(out) == 3
    for d, src in zip(out[:2], docs[:2]):
        assert d.metadata["source"] == src.metadata["source"]
        assert 0 < d.metadata["mooscomp_compressed_tokens"] < d.metadata["mooscomp_origin_tokens"]
        assert len(d.page_content) < len(src.page_content)
    assert "Rollo" in out[0].page_content
    assert out[2].page_content == "" and "mooscomp_rate" not in out[2].metadata
    assert docs[0].page_content == a and "mooscomp_rate" not in docs[0].metadata  # not mutated
    # same result as the library with the query as question
    lib = tiny_compressor.compress(a, rate=0.4, force_tokens=("Rollo",), question="Who was Rollo?")
    assert out[0].page_content == lib.text

    tt = MoosCompDocumentCompressor(compressor=tiny_compressor, target_tokens=20, rate=None)
    (d,) = tt.compress_documents([docs[0]], query="")
    assert d.metadata["mooscomp_compressed_tokens"] <= 24
    with pytest.raises(ValueError):
        MoosCompDocumentCompressor(compressor=tiny_compressor, rate=2.0)


async def _acompress(squeeze, docs):
    return await squeeze.acompress_documents(docs, query="Normandy")


def test_langchain_async(tiny_compressor, sample_text):
    pytest.importorskip("langchain_core", reason="langchain-core is not installed (adapters extra)")
    import asyncio

    from langchain_core.documents import Document

    from mooscomp.adapters.langchain import MoosCompDocumentCompressor

    squeeze = MoosCompDocumentCompressor(compressor=tiny_compressor, rate=0.5)
    out = asyncio.run(_acompress(squeeze, [Document(page_content=sample_text)]))
    assert out[0].metadata["mooscomp_rate"] < 0.7


def test_llamaindex_node_postprocessor(tiny_compressor, sample_text):
    pytest.importorskip("llama_index.core", reason="llama-index-core is not installed (adapters extra)")
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

    from mooscomp.adapters.llamaindex import MoosCompNodePostprocessor

    a, b = sample_text.split("\n\n")
    nodes = [
        NodeWithScore(node=TextNode(text=a, metadata={"doc": "a"}), score=0.9),
        NodeWithScore(node=TextNode(text=b, metadata={"doc": "b"}), score=0.5),
    ]
    post = MoosCompNodePostprocessor(compressor=tiny_compressor, rate=0.4)
    assert isinstance(post, BaseNodePostprocessor)
    out = post.postprocess_nodes(nodes, query_bundle=QueryBundle("Who was Rollo?"))
    assert [n.score for n in out] == [0.9, 0.5]
    for n, src in zip(out, nodes):
        assert n.node.metadata["doc"] == src.node.metadata["doc"]
        assert len(n.node.get_content()) < len(src.node.get_content())
        # the token counts never reach the LLM prompt
        assert "mooscomp" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
    assert nodes[0].node.get_content() == a  # inputs untouched
    lib = tiny_compressor.compress(a, rate=0.4, question="Who was Rollo?")
    assert out[0].node.get_content() == lib.text
    # without a query bundle
    out2 = post.postprocess_nodes(nodes)
    assert out2[0].node.get_content() == tiny_compressor.compress(a, rate=0.4).text


def _doc_block(path, heading: str, needle: str) -> str:
    """The first ```python block under ``heading`` in a markdown file that contains ``needle``."""
    import re

    text = path.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        if needle in block:
            return block
    raise AssertionError(f"no python block with {needle!r} under {heading!r} in {path}")


def test_documented_langchain_snippet_runs(tiny_compressor, sample_text, monkeypatch):
    """docs/service.md's LangChain block, run as written (with a small in-memory retriever)."""
    pytest.importorskip("langchain_core", reason="langchain-core is not installed (adapters extra)")
    pytest.importorskip("langchain_classic",
                        reason="langchain-classic is not installed (adapters extra; scripts/test.sh installs it)")
    from pathlib import Path

    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from mooscomp.compressor import Compressor

    class Fixed(BaseRetriever):
        docs: list

        def _get_relevant_documents(self, query, *, run_manager=None):
            return list(self.docs)

    a, b = sample_text.split("\n\n")
    monkeypatch.setattr(Compressor, "from_pretrained", classmethod(lambda cls, *a, **k: tiny_compressor))
    code = _doc_block(Path(__file__).resolve().parents[1] / "docs" / "service.md", "## LangChain",
                      "ContextualCompressionRetriever")
    ns = {"my_retriever": Fixed(docs=[Document(page_content=a), Document(page_content=b)])}
    exec(compile(code, "docs/service.md#langchain", "exec"), ns)  # noqa: S102 - the docs' own code
    docs = ns["docs"]
    assert len(docs) == 2
    for d, src in zip(docs, (a, b)):
        assert 0 < d.metadata["mooscomp_compressed_tokens"] < d.metadata["mooscomp_origin_tokens"]
        assert len(d.page_content) < len(src)
    via_retriever = ns["retriever"].invoke("Who was Rollo?")
    assert [d.page_content for d in via_retriever] == [d.page_content for d in docs]
