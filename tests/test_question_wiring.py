"""``question=`` is coarse-to-fine question-aware selection on every surface (issue 14 item 1).

The question path needs a model of the base sentence encoder's family (its tokenizer and shapes):
the untrained MiniLM compressor (base encoder + seeded head) with the torch backend, so no ONNX
export and no trained model. The tiny test model is of another family and keeps the word boost.
"""

from __future__ import annotations

import copy
import json

import pytest

from mooscomp import Compressor
from mooscomp.question import QuestionCompressor, for_compressor

CTXS = [
    "The Amazon river flows through Brazil, Peru and Colombia. It carries more water than any "
    "other river on Earth. Its basin covers about seven million square kilometres. Many fish "
    "species live in its waters, and the forest around it is the largest rainforest.",
    "Rollo was a Viking leader who swore fealty to King Charles III of West Francia in 911. "
    "In return he received lands around Rouen. His descendants became the Dukes of Normandy, "
    "and the Normans adopted the French language and Christianity within a few generations.",
    "Bread is made from flour, water, salt and yeast. The dough is kneaded, left to rise and "
    "baked in a hot oven. Sourdough uses a starter culture instead of commercial yeast, which "
    "gives it a sour taste and a longer shelf life.",
]
Q = "Who did Rollo swear fealty to?"


@pytest.fixture(scope="module")
def qcomp():
    """An untrained MiniLM compressor whose question path runs the torch shared forward."""
    comp = Compressor.untrained()
    QuestionCompressor(comp, backend="torch").attach()
    return comp


def test_library_question_path_is_the_question_compressor(qcomp):
    ref = QuestionCompressor(qcomp, backend="torch", sentence_encoder=for_compressor(qcomp).encoder)
    res = qcomp.compress(CTXS, rate=0.3, question=Q)
    assert res.text == ref.compress(CTXS, rate=0.3, question=Q).text
    # the allocation reaches the result: the selection scores are not the token scores alone
    plain = qcomp.compress(CTXS, rate=0.3)
    assert any((a.score != b.score).any() for a, b in zip(res.details, plain.details, strict=True))
    # budget exact as without a question (±2%)
    assert abs(res.compressed_tokens - 0.3 * res.origin_tokens) <= 0.02 * 0.3 * res.origin_tokens + 1
    # the batch API takes the same path
    (batched,) = qcomp.compress_batch([CTXS], rate=0.3, question=Q)
    assert batched.text == res.text
    # a large budget: whole input back, unchanged
    assert qcomp.compress(CTXS, rate=1.0, question=Q).contexts == tuple(CTXS)


def test_relevance_decides_what_survives_at_high_compression(qcomp):
    res = qcomp.compress(CTXS, rate=0.15, question=Q)
    assert "Charles" in res.text
    # ordering option through attach(): the most relevant context first
    from mooscomp.allocation import AllocationConfig

    comp = copy.copy(qcomp)
    comp.__dict__.pop("_question_compressor")
    qc = QuestionCompressor(comp, backend="torch", sentence_encoder=for_compressor(qcomp).encoder,
                            allocation=AllocationConfig(order="relevance")).attach()
    assert for_compressor(comp) is qc
    assert "Rollo" in comp.compress(CTXS, rate=0.5, question=Q).contexts[0]


def test_bad_questions(qcomp):
    plain = qcomp.compress(CTXS, rate=0.3).text
    for blank in ("", "   ", "\n\t"):
        assert qcomp.compress(CTXS, rate=0.3, question=blank).text == plain
    with pytest.raises(ValueError, match="question has .* tokens, more than the budget"):
        qcomp.compress(CTXS, target_tokens=5, question=Q)
    with pytest.raises(TypeError, match="question"):
        qcomp.compress(CTXS, rate=0.3, question=123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="question"):
        qcomp.compress(CTXS, rate=0.3, question=["a"])  # type: ignore[arg-type]


def test_tiny_model_keeps_the_word_boost(tiny_compressor):
    assert for_compressor(tiny_compressor) is None
    res = tiny_compressor.compress(CTXS, rate=0.3, question=Q)
    assert all(c.states is None for c in [tiny_compressor.prepare(CTXS[0])])
    assert res.compressed_tokens > 0


@pytest.fixture()
def cli_comp(qcomp, monkeypatch):
    monkeypatch.setattr(Compressor, "from_pretrained", classmethod(lambda cls, *a, **k: qcomp))
    return qcomp


def test_cli_question(cli_comp, tmp_path, capsys):
    from mooscomp.cli import main

    f = tmp_path / "in.txt"
    f.write_text(CTXS[1] + " " + CTXS[0], encoding="utf-8")
    base = ["compress", str(f), "--rate", "0.3", "--backend", "torch"]
    assert main([*base, "--question", Q]) == 0
    want = cli_comp.compress(f.read_text(encoding="utf-8"), rate=0.3, question=Q, format="auto").text
    assert capsys.readouterr().out.rstrip("\n") == want
    assert main([*base, "--question", "  "]) == 0
    blank = capsys.readouterr().out
    assert main(base) == 0
    assert capsys.readouterr().out == blank
    code = main(["compress", str(f), "--target-tokens", "4", "--backend", "torch", "--question", Q])
    err = capsys.readouterr().err
    assert code == 2 and "more than the budget" in err and len(err.strip().splitlines()) == 1


def test_service_question(qcomp):
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from mooscomp.server import create_app

    with TestClient(create_app(qcomp, workers=1), raise_server_exceptions=False) as c:
        r = c.post("/v1/compress", json={"contexts": CTXS, "rate": 0.3, "question": Q})
        assert r.status_code == 200
        assert r.json()["compressed_prompt"] == qcomp.compress(CTXS, rate=0.3, question=Q).text
        blank = c.post("/v1/compress", json={"contexts": CTXS, "rate": 0.3, "question": " "})
        none = c.post("/v1/compress", json={"contexts": CTXS, "rate": 0.3})
        assert blank.json()["compressed_prompt"] == none.json()["compressed_prompt"]
        r = c.post("/v1/compress", json={"contexts": CTXS, "target_tokens": 4, "question": Q})
        assert r.status_code == 422 and "budget" in json.dumps(r.json())
        r = c.post("/v1/compress", json={"contexts": CTXS, "rate": 0.3, "question": 5})
        assert r.status_code == 422


def test_compat_longllmlingua_maps_to_the_question_path(qcomp, monkeypatch):
    from mooscomp.adapters.llmlingua import PromptCompressor

    comp = copy.deepcopy(qcomp)
    monkeypatch.setattr(Compressor, "from_pretrained", classmethod(lambda cls, *a, **k: comp))
    pc = PromptCompressor(backend="torch")
    out = pc.compress_prompt(CTXS, question=Q, rate=0.3, rank_method="longllmlingua",
                             use_context_level_filter=False)
    cfg = comp.config.replace(chunk_end_chars=".\n")
    lib = comp.compress(CTXS, rate=0.3, question=Q, config=cfg)
    # llmlingua joins every context, dropped ones as empty strings
    assert out["compressed_prompt"] == "\n\n".join(lib.contexts)
    with pytest.raises(ValueError, match="needs a question"):
        pc.compress_prompt(CTXS, question="  ", rate=0.3, rank_method="longllmlingua")
    # llmlingua's default rank_method ignores the question, as llmlingua's LLMLingua-2 path does
    plain = pc.compress_prompt(CTXS, question=Q, rate=0.3, use_context_level_filter=False)
    assert plain == pc.compress_prompt(CTXS, rate=0.3, use_context_level_filter=False)
    # LongLLMLingua's recipe reorders by relevance: reorder_context="sort" -> context_order="relevance"
    out = pc.compress_prompt(CTXS, question=Q, rate=0.5, rank_method="longllmlingua",
                             use_context_level_filter=False, reorder_context="sort")
    lib = comp.compress(CTXS, rate=0.5, question=Q, config=cfg.replace(context_order="relevance"))
    assert out["compressed_prompt"] == "\n\n".join(lib.contexts) and "Rollo" in lib.contexts[0]
    for bad in ({"reorder_context": "two_stage", "rank_method": "longllmlingua"}, {"reorder_context": "sort"}):
        with pytest.raises(ValueError, match="reorder_context"):
            pc.compress_prompt(CTXS, question=Q, rate=0.5, **bad)


def test_adapters_pass_the_query(qcomp):
    from mooscomp.adapters import AdapterOptions, compress_texts

    texts = [" ".join(CTXS), "Short note."]
    done = compress_texts(qcomp, texts, Q, AdapterOptions(rate=0.3))
    assert done[0] is not None and done[0][0] == qcomp.compress(texts[0], rate=0.3, question=Q).text
    # the query is longer than the short text's budget: compressed without it, not an error
    assert done[1] is not None and done[1][0] == qcomp.compress(texts[1], rate=0.3).text
    off = compress_texts(qcomp, texts, Q, AdapterOptions(rate=0.3, use_query=False))
    assert off[0] is not None and off[0][0] == qcomp.compress(texts[0], rate=0.3).text


def test_langchain_and_llamaindex_pass_the_query(qcomp):
    pytest.importorskip("langchain_core", reason="langchain-core is not installed (adapters extra)")
    pytest.importorskip("llama_index.core", reason="llama-index-core is not installed")
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from mooscomp.adapters.langchain import MoosCompDocumentCompressor
    from mooscomp.adapters.llamaindex import MoosCompNodePostprocessor

    text = " ".join(CTXS)
    want = qcomp.compress(text, rate=0.3, question=Q, format="auto").text
    (doc,) = MoosCompDocumentCompressor(compressor=qcomp, rate=0.3).compress_documents(
        [Document(page_content=text)], query=Q)
    assert doc.page_content == want
    (node,) = MoosCompNodePostprocessor(compressor=qcomp, rate=0.3).postprocess_nodes(
        [NodeWithScore(node=TextNode(text=text), score=1.0)], query_bundle=QueryBundle(Q))
    assert node.node.get_content() == want


def test_structured_text_is_question_aware(qcomp, monkeypatch):
    qc = for_compressor(qcomp)
    calls = []
    real = qc.score
    monkeypatch.setattr(qc, "score", lambda prepared: calls.append(len(prepared)) or real(prepared))
    text = "\n\n".join(CTXS)  # paragraph breaks: format auto compresses it as text
    res = qcomp.compress(text, rate=0.3, question=Q, format="auto")
    assert calls  # the shared forward ran: the prose went through the question path
    plain = qcomp.compress(text, rate=0.3, format="auto")
    assert res.format == "text" and res.text != plain.text
    assert "Charles" in qcomp.compress(text, rate=0.2, question=Q, format="auto").text


def test_question_path_applies_only_its_unit_rules(qcomp, monkeypatch):
    """The question-free default's ``phrase`` rule stays out of the question path (tuned without it);
    a rule the config turns off stays off."""
    import mooscomp.question as question_mod
    from mooscomp.allocation import AllocationConfig

    seen: list[tuple[str, ...]] = []
    real = question_mod.select_exact

    def spy(*args, **kw):
        seen.append(tuple(kw["units"]))
        return real(*args, **kw)

    monkeypatch.setattr(question_mod, "select_exact", spy)
    cfg = qcomp.config.replace(units=("attached", "number", "phrase"))
    qcomp.compress(CTXS, rate=0.3, question=Q, config=cfg)
    assert seen[-1] == ("attached", "number")
    qc = QuestionCompressor(qcomp, backend="torch", sentence_encoder=for_compressor(qcomp).encoder,
                            allocation=AllocationConfig(units=("phrase", "number")))
    a = qc.analyse(CTXS, Q)
    qc.select(a, 0.3 * a.origin, config=cfg)
    assert seen[-1] == ("number", "phrase")
    with pytest.raises(ValueError, match="units"):
        AllocationConfig(units=("nouns",))
    assert AllocationConfig(units=["number"]).units == ("number",)  # as JSON gives it


def test_context_order_and_min_contexts_per_call(qcomp, cli_comp, tmp_path, capsys):
    """``context_order`` / ``min_contexts`` reach the question path from the library, the CLI and
    the service, the same way; without a question they change nothing."""
    from mooscomp.allocation import AllocationConfig
    from mooscomp.cli import main
    from mooscomp.config import CompressionConfig

    qc = for_compressor(qcomp)
    a = qc.analyse(CTXS, Q)
    want = qc.select(a, 0.5 * a.origin, allocation=AllocationConfig(order="relevance", min_contexts=2)).text
    cfg = qcomp.config.replace(context_order="relevance", min_contexts=2)
    got = qcomp.compress(CTXS, rate=0.5, question=Q, config=cfg)
    assert got.text == want
    assert "Rollo" in got.contexts[0]  # the most relevant context first
    assert qcomp.compress(CTXS, rate=0.5, config=cfg).text == qcomp.compress(CTXS, rate=0.5).text
    for bad in ({"context_order": "random"}, {"min_contexts": -1}):
        with pytest.raises(ValueError):
            CompressionConfig(**bad)

    f = tmp_path / "in.txt"
    f.write_text("\n\n".join(CTXS), encoding="utf-8")
    base = ["compress", str(f), "--rate", "0.5", "--backend", "torch", "--question", Q, "--format", "raw"]
    assert main([*base, "--order", "relevance", "--min-contexts", "2"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == qcomp.compress(
        "\n\n".join(CTXS), rate=0.5, question=Q, config=cfg, format="raw").text

    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from mooscomp.server import create_app

    with TestClient(create_app(qcomp, workers=1), raise_server_exceptions=False) as c:
        body = {"contexts": CTXS, "rate": 0.5, "question": Q, "context_order": "relevance", "min_contexts": 2}
        r = c.post("/v1/compress", json=body)
        assert r.status_code == 200 and r.json()["compressed_prompt"] == want
        for bad in ({"context_order": "random"}, {"min_contexts": -1}, {"min_contexts": "2x"}):
            assert c.post("/v1/compress", json={**body, **bad}).status_code == 422
