"""``format=`` across the surfaces: library, CLI (``--format``), service, llmlingua facade, adapters.

The structured formats themselves are tested in tests/test_formats.py; here: routing, the result
type and its fields, the defaults of each surface, bad input, and missed targets being reported.
"""

from __future__ import annotations

import json
import warnings

import pytest

from mooscomp.format_route import FORMATS, route
from mooscomp.result import CompressionResult, TargetMissedWarning

PLAIN = (
    "The committee met on Tuesday to review the budget. After a long discussion, the members "
    "agreed that the new library would open in the spring, provided that the contractors "
    "finished the roof before the first heavy rains of the season."
)
PARAS = PLAIN + "\n\n" + (
    "Revenue grew strongly in every region this quarter, driven by new enterprise contracts and "
    "a recovery in consumer demand after the slow summer months of the year."
)
MD = """# Quarterly report

Revenue grew strongly in every region this quarter, driven by new enterprise contracts and a
recovery in consumer demand after the slow summer months.

| Region | Revenue | Comment |
|---|---|---|
| North America | 120.5 | strong enterprise demand from large banks and insurers |
| Europe | 80.2 | steady but the currency effects reduced the reported figure |

```python
def growth(a, b):
    return (b - a) / a
```
"""
JSON_DOC = json.dumps({
    "results": [
        {"title": "Eiffel Tower", "height_m": 330, "summary": "The wrought-iron lattice tower on "
         "the Champ de Mars in Paris was designed by the company of Gustave Eiffel."},
        {"title": "Tokyo Tower", "height_m": 333, "summary": "A communications and observation "
         "tower in the Shiba-koen district of Minato, Tokyo, built in 1958 after the Eiffel Tower."},
    ]
}, indent=2)
BAD_JSON = '{"results": [{"title": "Eiffel Tower", "height_m": 330,}]}'
# list markers and short items are structure: at rate 0.2 the structure alone is over the target
LIST_MD = "Agenda:\n- open the meeting\n- approve the minutes of 12 May\n- budget: 4,500 EUR\n"


def _shape(v):
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    return "" if isinstance(v, str) else v


# ---------------------------------------------------------------------------- library


def test_route():
    assert route(PLAIN, "auto") == "plain" and route(PARAS, "auto") == "text"
    assert route(MD, "auto") == "markdown" and route(JSON_DOC, "auto") == "json"
    assert route(BAD_JSON, "auto") == "plain"  # malformed JSON under auto is text
    assert route([PLAIN, PARAS], "auto") == "raw" and route(MD, "raw") == "raw"
    assert route("北京大学的学生在图书馆里学习。" * 3, "auto") == "text"  # no-space script: not raw
    with pytest.raises(ValueError, match="list of contexts"):
        route([PLAIN], "markdown")


def test_auto_is_the_library_default_and_raw_is_unchanged(tiny_compressor):
    a = tiny_compressor.compress(PARAS, rate=0.4)
    b = tiny_compressor.compress(PARAS, rate=0.4, format="auto")
    assert a.format == "text" and a.text.count("\n\n") == 1  # paragraph break kept
    assert a.to_dict(include_scores=True) == b.to_dict(include_scores=True)
    raw = tiny_compressor.compress(PARAS, rate=0.4, format="raw")
    assert raw.format == "raw" and not raw.target_missed and raw.warnings == ()
    assert "format" not in raw.to_dict() and "\n" not in raw.text and raw.details
    for x in (PLAIN, [PLAIN, PARAS]):  # one paragraph, a list: exactly as raw, by default
        d = tiny_compressor.compress(x, rate=0.4)
        r = tiny_compressor.compress(x, rate=0.4, format="raw")
        assert d.text == r.text and d.details[0].kept.tolist() == r.details[0].kept.tolist()


@pytest.mark.parametrize("rate", [0.2, 0.33, 0.5, 0.8])
def test_auto_plain_prose_is_raw(tiny_compressor, rate):
    raw = tiny_compressor.compress(PLAIN, rate=rate, format="raw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TargetMissedWarning)
        auto = tiny_compressor.compress(PLAIN, rate=rate, format="auto")
    assert auto.format == "text" and auto.text == raw.text
    assert auto.compressed_tokens == raw.compressed_tokens and len(auto.details) == 1
    d = auto.to_dict()
    assert d["format"] == "text" and d["target_missed"] == auto.target_missed


def test_text_keeps_paragraph_breaks(tiny_compressor):
    res = tiny_compressor.compress(PARAS, rate=0.5, format="auto")
    assert isinstance(res, CompressionResult) and res.format == "text"
    assert res.text.count("\n\n") == 1 and len(res.details) == 1
    words = res.details[0].words
    assert words.text == PARAS and sum(res.details[0].kept) < len(words)
    assert res.compressed_tokens == tiny_compressor.count(res.text)
    assert abs(res.compressed_tokens - 0.5 * res.origin_tokens) <= max(0.02 * 0.5 * res.origin_tokens, 1) \
        or res.target_missed


def test_markdown_and_json(tiny_compressor):
    md = tiny_compressor.compress(MD, rate=0.6, format="auto")
    assert md.format == "markdown" and md.text.startswith("# Quarterly report\n")
    assert "| North America |" in md.text and "def growth(a, b):\n    return (b - a) / a" in md.text
    js = tiny_compressor.compress(JSON_DOC, rate=0.6, format="json")
    assert js.format == "json" and _shape(json.loads(js.text)) == _shape(json.loads(JSON_DOC))
    assert "Tokyo Tower" in js.text
    assert js.to_dict()["compressed_prompt"] == js.text


def test_bad_input(tiny_compressor):
    with pytest.raises(ValueError, match="(?i)json"):
        tiny_compressor.compress(BAD_JSON, rate=0.5, format="json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TargetMissedWarning)
        assert tiny_compressor.compress(BAD_JSON, rate=0.5, format="raw").format == "raw"
        assert tiny_compressor.compress(BAD_JSON, rate=0.5).format == "text"
    with pytest.raises(ValueError, match="format must be one of"):
        tiny_compressor.compress(PLAIN, rate=0.5, format="yaml")
    with pytest.raises(ValueError, match="list of contexts"):
        tiny_compressor.compress([PLAIN, PLAIN], rate=0.5, format="markdown")
    with pytest.raises(ValueError, match="exactly one"):  # the request is checked first
        tiny_compressor.compress(MD, format="markdown")


def test_missed_target_is_a_warning_and_a_field(tiny_compressor):
    with pytest.warns(TargetMissedWarning, match="structure"):
        res = tiny_compressor.compress(LIST_MD, rate=0.2, format="markdown")
    assert res.target_missed and any("structure" in w for w in res.warnings)
    assert res.to_dict()["target_missed"] is True
    from mooscomp.formats import FormatOptions

    with pytest.raises(ValueError, match="structure"):
        tiny_compressor.compress(LIST_MD, rate=0.2, format="markdown",
                                 format_options=FormatOptions(over_budget="error"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetMissedWarning)  # raw checks nothing, warns nothing
        assert not tiny_compressor.compress(LIST_MD, rate=0.2, format="raw").target_missed


def test_format_options_reach_the_formatter(tiny_compressor):
    from mooscomp.formats import FormatOptions

    res = tiny_compressor.compress(MD, rate=0.6, format="markdown",
                                   format_options=FormatOptions(code_blocks="drop"))
    assert "def growth" not in res.text and "# Quarterly report" in res.text


def test_batch_mixes_paths_like_single_calls(tiny_compressor):
    inputs = [PLAIN, MD, [PLAIN, PARAS], JSON_DOC, PARAS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TargetMissedWarning)
        batch = tiny_compressor.compress_batch(inputs, rate=0.5, format="auto")
        one = [tiny_compressor.compress(x, rate=0.5, format="auto") for x in inputs]
    assert [r.format for r in batch] == ["text", "markdown", "raw", "json", "text"]
    assert [r.text for r in batch] == [r.text for r in one]


def test_batch_scores_structured_prose_in_the_shared_forward(tiny_compressor, monkeypatch):
    """One score() call: structured prompts' prose joins the raw chunks' shared forward batches."""
    inputs = [PLAIN, MD, PARAS, JSON_DOC, PARAS]
    calls = []
    real = tiny_compressor.score

    def counted(prepared, *a, **k):
        calls.append(len(prepared))
        return real(prepared, *a, **k)

    monkeypatch.setattr(tiny_compressor, "score", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TargetMissedWarning)
        batch = tiny_compressor.compress_batch(inputs, rate=0.5, format="auto")
    assert calls == [len(inputs)]  # every prompt's one context, in one call
    assert [r.format for r in batch] == ["text", "markdown", "text", "json", "text"]


def test_formats_constant_matches_surfaces():
    from mooscomp.cli.compress import _FORMATS
    from mooscomp.server import CompressRequest

    assert _FORMATS == FORMATS
    field = CompressRequest.model_fields["format"]
    assert set(FORMATS) <= set(str(field.annotation).replace("'", '"').split('"'))


# ---------------------------------------------------------------------------- CLI


@pytest.fixture()
def cli(tiny_model_dir, tmp_path, capsys):
    from mooscomp.cli import main

    def run(text: str, *argv: str) -> tuple[int, str, str]:
        f = tmp_path / "in.txt"
        f.write_text(text, encoding="utf-8")
        code = main(["compress", str(f), "--model", str(tiny_model_dir), "--backend", "torch",
                     *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_format(cli):
    code, out, err = cli(MD, "--rate", "0.6")  # auto by default
    assert code == 0 and out.startswith("# Quarterly report\n") and "| Europe |" in out
    code, out, _ = cli(MD, "--rate", "0.6", "--format", "raw")
    assert code == 0 and "\n" not in out.rstrip("\n")
    code, out, _ = cli(MD, "--rate", "0.6", "--json", "--code-blocks", "drop")
    d = json.loads(out)
    assert code == 0 and d["format"] == "markdown" and "def growth" not in d["compressed_prompt"]
    code, out, _ = cli(PLAIN, "--rate", "0.5", "--json")
    assert json.loads(out)["compressed_prompt"] == json.loads(cli(PLAIN, "--rate", "0.5", "--json",
                                                                  "--format", "raw")[1])["compressed_prompt"]


LIST_JSON = json.dumps({"results": [
    {"id": i, "text": "The committee met on Tuesday to review the budget of the new library "
     f"and agreed on point {i} after a long discussion about the roof and the rains."}
    for i in range(6)]})


def test_cli_and_service_json_item_rate(cli, client):
    code, out, err = cli(LIST_JSON, "--rate", "0.4", "--json-item-rate", "0.5")
    assert code == 0 and len(json.loads(out)["results"]) == 3 and "dropped 3" in err
    r = client.post("/v1/compress", json={"text": LIST_JSON, "rate": 0.4,
                                          "format_options": {"json_item_rate": 0.5}})
    d = r.json()
    assert r.status_code == 200 and len(json.loads(d["compressed_prompt"])["results"]) == 3
    assert any("dropped 3" in w for w in d["warnings"])
    r = client.post("/v1/compress", json={"text": LIST_JSON, "rate": 0.4,
                                          "format_options": {"json_item_rate": 0}})
    assert r.status_code == 422 and "json_item_rate" in r.json()["error"]["message"]


def test_cli_bad_input_and_missed_target(cli):
    code, out, err = cli(BAD_JSON, "--rate", "0.5", "--format", "json")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "JSON" in err
    code, out, err = cli(LIST_MD, "--rate", "0.2", "--format", "markdown")
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1 and lines[0].startswith("mooscomp compress: warning:")
    assert "structure" in lines[0] and "Warning" not in err  # no Python warning text


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--scores", "--format", "text"], "--scores"),
        (["--format", "raw", "--code-blocks", "drop"], "--code-blocks"),
        (["--format", "yaml"], "--format"),
        (["--code", "sometimes"], "--code"),
        (["--json-item-rate", "1.5"], "--json-item-rate"),
        (["--format", "raw", "--json-item-rate", "0.5"], "--json-item-rate"),
    ],
)
def test_cli_format_arguments_fail_before_loading(argv, needle, tmp_path, capsys, monkeypatch):
    from mooscomp.cli import main
    from mooscomp.compressor import Compressor

    monkeypatch.setattr(Compressor, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    f = tmp_path / "in.txt"
    f.write_text(PLAIN)
    code = main(["compress", str(f), "--rate", "0.5", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and needle in err, err


def test_cli_show_and_scores_in_every_format(cli):
    code, out, _ = cli(PARAS, "--rate", "0.5", "--show")
    assert code == 0 and "~~" in out and out.count("\n\n") == 1  # the original, drops marked
    code, out, _ = cli(MD, "--rate", "0.6", "--show")
    assert code == 0 and out.replace("~~", "") == MD + "\n" and "~~" in out
    code, out, _ = cli(JSON_DOC, "--rate", "0.6", "--json", "--scores")
    d = json.loads(out)
    assert code == 0 and d["format"] == "json" and len(d["details"]) == 1
    kept = [w for w, k in zip(d["details"][0]["words"], d["details"][0]["kept"]) if k]
    assert "".join(kept) == "".join(d["compressed_prompt"].split())


# ---------------------------------------------------------------------------- service


@pytest.fixture(scope="module")
def client(_tiny_compressor):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mooscomp.server import create_app

    with TestClient(create_app(_tiny_compressor), raise_server_exceptions=False) as c:
        yield c


def test_service_format(client):
    r = client.post("/v1/compress", json={"text": MD, "rate": 0.6})
    d = r.json()
    assert r.status_code == 200 and d["format"] == "markdown" and d["target_missed"] is False
    assert d["compressed_prompt"].startswith("# Quarterly report\n") and d["warnings"] == []
    r = client.post("/v1/compress", json={"text": MD, "rate": 0.6, "format": "raw"})
    assert r.status_code == 200 and r.json()["format"] == "raw"
    r = client.post("/v1/compress", json={"text": MD, "rate": 0.6, "return_scores": True})
    d = r.json()
    assert r.status_code == 200 and d["format"] == "markdown" and len(d["details"]) == 1
    det = d["details"][0]  # the original redrawn from words and gaps (the page does this)
    assert "".join(g + w for g, w in zip(det["gaps"], det["words"])) == MD.rstrip("\n")
    assert d["compressed_prompt"] == client.post(
        "/v1/compress", json={"text": MD, "rate": 0.6}).json()["compressed_prompt"]
    r = client.post("/v1/compress", json={"text": MD, "rate": 0.6,
                                          "format_options": {"code_blocks": "drop"}})
    assert r.status_code == 200 and "def growth" not in r.json()["compressed_prompt"]
    r = client.post("/v1/compress", json={"text": LIST_MD, "rate": 0.2, "format": "markdown"})
    assert r.status_code == 200 and r.json()["target_missed"] is True and r.json()["warnings"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"text": BAD_JSON, "rate": 0.5, "format": "json"}, "JSON"),
        ({"text": PLAIN, "rate": 0.5, "format": "yaml"}, "format"),
        ({"text": PLAIN, "rate": 0.5, "format": "raw", "format_options": {"code": "comments"}},
         "format_options"),
        ({"text": PLAIN, "rate": 0.5, "format_options": {"code": "sometimes"}}, "code"),
        ({"contexts": [PLAIN, PLAIN], "rate": 0.5, "format": "markdown"}, "contexts"),
        ({"text": LIST_MD, "rate": 0.2, "format": "markdown",
          "format_options": {"over_budget": "error"}}, "structure"),
    ],
)
def test_service_bad_format_requests(client, body, needle):
    r = client.post("/v1/compress", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]["message"]


# ---------------------------------------------------------------------------- facade, adapters


def test_llmlingua_facade_format(tiny_model_dir):
    from mooscomp.adapters.llmlingua import PromptCompressor

    pc = PromptCompressor(model_name=str(tiny_model_dir), backend="torch")
    plain = pc.compress_prompt(MD, rate=0.6)
    assert "format" not in plain and "\n" not in plain["compressed_prompt"]  # llmlingua's way
    out = pc.compress_prompt(MD, rate=0.6, format="auto")
    assert out["format"] == "markdown" and out["compressed_prompt"].startswith("# Quarterly")
    assert out["compressed_tokens"] == pc.compressor.count(out["compressed_prompt"])
    assert out["ratio"].endswith("x") and out["compressed_prompt_list"] == [out["compressed_prompt"]]
    js = pc.compress_prompt_llmlingua2(JSON_DOC, rate=0.6, format="json")
    assert _shape(json.loads(js["compressed_prompt"])) == _shape(json.loads(JSON_DOC))
    with pytest.raises(ValueError, match="one context"):
        pc.compress_prompt([PLAIN, PLAIN], rate=0.5, format="text")
    with pytest.raises(ValueError, match="(?i)json"):
        pc.compress_prompt(BAD_JSON, rate=0.5, format="json")
    with pytest.raises(ValueError, match="format must be one of"):
        pc.compress_prompt(PLAIN, rate=0.5, format="yaml")


def test_adapter_options_format(tiny_compressor):
    from mooscomp.adapters import AdapterOptions, compress_texts

    with pytest.raises(ValueError, match="format must be one of"):
        AdapterOptions(format="yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TargetMissedWarning)
        done = compress_texts(tiny_compressor, [MD, LIST_MD, PLAIN], None, AdapterOptions(rate=0.2))
    assert done[0] is not None and done[0][0].startswith("# Quarterly report")
    assert done[1] is not None and done[1][1].get("mooscomp_target_missed") is True
    raw = compress_texts(tiny_compressor, [MD], None, AdapterOptions(rate=0.2, format="raw"))
    assert raw[0] is not None and "\n" not in raw[0][0]


def test_langchain_and_llamaindex_take_format(tiny_compressor):
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    from mooscomp.adapters.langchain import MoosCompDocumentCompressor
    from mooscomp.adapters.llamaindex import MoosCompNodePostprocessor

    lc = MoosCompDocumentCompressor(compressor=tiny_compressor, rate=0.6)
    assert lc.format == "auto"
    out = lc.compress_documents([Document(page_content=MD)], "revenue")
    assert out[0].page_content.startswith("# Quarterly report")
    with pytest.raises(ValueError, match="format"):
        MoosCompDocumentCompressor(compressor=tiny_compressor, format="yaml")
    li = MoosCompNodePostprocessor(compressor=tiny_compressor, rate=0.6, format="raw")
    nodes = li.postprocess_nodes([NodeWithScore(node=TextNode(text=MD), score=1.0)],
                                 query_str="revenue")
    assert "\n" not in nodes[0].node.get_content()
