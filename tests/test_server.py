"""HTTP service: good requests, every bad input -> 4xx JSON with a message, limits, docs."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from mooscomp.server import ServerOptions, create_app  # noqa: E402

LIMIT = 20_000


@pytest.fixture(scope="module")
def client(_tiny_compressor):
    app = create_app(_tiny_compressor, max_body_bytes=LIMIT, workers=2)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _err(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    return err


def test_compress_text(client, sample_text):
    r = client.post("/v1/compress", json={"text": sample_text, "rate": 0.33})
    assert r.status_code == 200, r.text
    d = r.json()
    assert 0 < d["compressed_tokens"] < d["origin_tokens"]
    assert d["compressed_prompt"] and "details" not in d
    assert abs(d["rate"] - 0.33) < 0.1


def test_compress_contexts_scores_question(client, sample_text):
    a, b = sample_text.split("\n\n")
    body = {
        "contexts": [a, b],
        "target_tokens": 60,
        "force_tokens": ["Normans"],
        "question": "Who was Rollo?",
        "return_scores": True,
    }
    r = client.post("/v1/compress", json=body)
    assert r.status_code == 200, r.text
    d = r.json()
    assert len(d["contexts"]) == 2 and len(d["details"]) == 2
    det = d["details"][0]
    n = len(det["words"])
    assert n > 0
    for key in ("kept", "keep_prob", "outlier_z", "score", "gaps"):
        assert len(det[key]) == n, key
    # the gaps and words rebuild the original context exactly
    assert "".join(g + w for g, w in zip(det["gaps"], det["words"])) == a.rstrip()
    kept = [w for w, k in zip(det["words"], det["kept"]) if k]
    assert "Normans" in kept


def test_same_as_library(client, _tiny_compressor, sample_text):
    r = client.post("/v1/compress", json={"text": sample_text, "rate": 0.5})
    lib = _tiny_compressor.compress(sample_text, rate=0.5)  # auto: the service's default too
    assert r.json()["compressed_prompt"] == lib.text
    r = client.post("/v1/compress", json={"text": sample_text, "rate": 0.5, "format": "raw"})
    raw = _tiny_compressor.compress(sample_text, rate=0.5, format="raw")
    assert r.json()["compressed_prompt"] == raw.text


def test_focus_same_as_library(client, _tiny_compressor, sample_text):
    body = {"text": sample_text, "rate": 0.3, "format": "raw", "focus": 4.0, "focus_spread": 1.0,
            "focus_per_paragraph": 1, "focus_first": 1}
    r = client.post("/v1/compress", json=body)
    cfg = _tiny_compressor.config.replace(focus=4.0, focus_spread=1.0, focus_per_paragraph=1, focus_first=1)
    lib = _tiny_compressor.compress(sample_text, rate=0.3, format="raw", config=cfg)
    assert r.json()["compressed_prompt"] == lib.text
    assert lib.text != _tiny_compressor.compress(sample_text, rate=0.3, format="raw").text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate": 0.5}, "text"),  # missing text/contexts
        ({"text": "Some words here."}, "rate"),  # missing budget
        ({"text": "Some words.", "rate": 0.5, "target_tokens": 3}, "rate"),  # both budgets
        ({"text": "a b", "contexts": ["a"], "rate": 0.5}, "text"),
        ({"text": 5, "rate": 0.5}, "text"),
        ({"text": ["a"], "rate": 0.5}, "text"),
        ({"text": "a b", "rate": "0.5"}, "rate"),
        ({"text": "a b", "rate": True}, "rate"),
        ({"text": "a b", "rate": 0}, "rate"),
        ({"text": "a b", "rate": -0.2}, "rate"),
        ({"text": "a b", "rate": 1.5}, "rate"),
        ({"text": "a b", "target_tokens": 0}, "target_tokens"),
        ({"text": "a b", "target_tokens": 2.5}, "target_tokens"),
        ({"text": "", "rate": 0.5}, "empty"),
        ({"text": "  \n ", "rate": 0.5}, "empty"),
        ({"contexts": [], "rate": 0.5}, "contexts"),
        ({"contexts": ["", " "], "rate": 0.5}, "contexts"),
        ({"contexts": ["a", 3], "rate": 0.5}, "contexts"),
        ({"text": "a b", "rate": 0.5, "force_tokens": "a"}, "force_tokens"),
        ({"text": "a b", "rate": 0.5, "force_tokens": [1]}, "force_tokens"),
        ({"text": "a b", "rate": 0.5, "force_tokens": ["x"] * 1001}, "force_tokens"),
        ({"text": "a b", "rate": 0.5, "question": 7}, "question"),
        ({"text": "a b", "rate": 0.5, "return_scores": "yes"}, "return_scores"),
        ({"text": "a b", "rate": 0.5, "speed": "fast"}, "speed"),  # unknown field
        ({"text": "a b", "rate": 0.5, "focus": -1}, "focus"),
        ({"text": "a b", "rate": 0.5, "focus": "1"}, "focus"),
        ({"text": "a b", "rate": 0.5, "focus_spread": 0}, "focus_spread"),
        ({"text": "a b", "rate": 0.5, "focus_per_paragraph": -1}, "focus_per_paragraph"),
        ({"text": "a b", "rate": 0.5, "focus_per_paragraph": 1.5}, "focus_per_paragraph"),
        ({"text": "a b", "rate": 0.5, "focus_first": -1}, "focus_first"),
    ],
)
def test_invalid_fields_422(client, body, field):
    err = _err(client.post("/v1/compress", json=body), 422)
    assert err["type"] == "invalid_request"
    assert field in err["message"]


@pytest.mark.parametrize("raw", [b"{bad", b'{"text": "a", "rate": 0.5', b"\xff\xfe", b"{} {}"])
def test_malformed_json_400(client, raw):
    r = client.post("/v1/compress", content=raw, headers={"content-type": "application/json"})
    assert _err(r, 400)["type"] == "malformed_json"


@pytest.mark.parametrize("raw", [b'{"text": "a b", "rate": NaN}', b'{"text": "a b", "rate": Infinity}'])
def test_non_finite_422(client, raw):
    r = client.post("/v1/compress", content=raw, headers={"content-type": "application/json"})
    assert "rate" in _err(r, 422)["message"]


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null", b"3"])
def test_not_an_object_422(client, body):
    r = client.post("/v1/compress", content=body, headers={"content-type": "application/json"})
    _err(r, 422)


def test_empty_body_422(client):
    r = client.post("/v1/compress", content=b"", headers={"content-type": "application/json"})
    assert "empty" in _err(r, 422)["message"]


def test_wrong_content_type_415(client):
    r = client.post("/v1/compress", content=b"text=hello", headers={"content-type": "text/plain"})
    assert _err(r, 415)["type"] == "unsupported_media_type"


def test_body_limit_413(client):
    big = {"text": "word " * (LIMIT // 5 + 10), "rate": 0.5}
    assert _err(client.post("/v1/compress", json=big), 413)["type"] == "body_too_large"

    def chunks():  # no Content-Length: the streamed size is counted
        for _ in range(LIMIT // 1000 + 2):
            yield b" " * 1000

    r = client.post("/v1/compress", content=chunks(), headers={"content-type": "application/json"})
    _err(r, 413)


def test_library_value_error_is_422(client):
    # passes the schema but not the library's limits (input over max_input_chars)
    from mooscomp.config import CompressionConfig

    app = create_app(_SmallInput(CompressionConfig(max_input_chars=10)))
    with TestClient(app) as c:
        err = _err(c.post("/v1/compress", json={"text": "x" * 50, "rate": 0.5}), 422)
    assert "max_input_chars" in err["message"]


class _SmallInput:
    def __init__(self, cfg):
        self.cfg = cfg

    def compress(self, text, **kw):
        raise ValueError(f"input has {len(text)} characters, over max_input_chars=10")


def test_internal_error_is_json_500(_tiny_compressor):
    class Boom:
        def compress(self, *a, **k):
            raise RuntimeError("bug")

    with TestClient(create_app(Boom()), raise_server_exceptions=False) as c:
        r = c.post("/v1/compress", json={"text": "a b", "rate": 0.5})
    err = _err(r, 500)
    assert err["type"] == "internal_error"


def test_overload_503(_tiny_compressor, sample_text):
    import threading

    gate = threading.Event()

    class Slow:
        def compress(self, *a, **k):
            gate.wait(5)
            return _tiny_compressor.compress(sample_text, rate=0.5)

    app = create_app(Slow(), max_pending=1)
    with TestClient(app) as c:
        first = threading.Thread(
            target=lambda: c.post("/v1/compress", json={"text": "a b", "rate": 0.5})
        )
        first.start()
        for _ in range(100):  # wait until the first request occupies the only slot
            if c.get("/healthz").json()["pending"] == 1:
                break
            threading.Event().wait(0.02)
        r = c.post("/v1/compress", json={"text": "a b", "rate": 0.5})
        assert c.get("/healthz").status_code == 200  # still answering meanwhile
        gate.set()
        first.join()
    assert _err(r, 503)["type"] == "overloaded"
    assert r.headers["retry-after"] == "1"


def test_healthz_and_unknown_routes(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["backend"] == "torch"  # the fixture's compressor has no onnxruntime scorer
    assert _err(client.get("/nope"), 404)["type"] == "not_found"
    assert _err(client.get("/v1/compress"), 405)["type"] == "method_not_allowed"


def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/compress" in spec["paths"] and "/healthz" in spec["paths"]
    props = spec["components"]["schemas"]["CompressRequest"]["properties"]
    assert {"text", "contexts", "rate", "target_tokens", "force_tokens", "question", "return_scores"} <= set(props)
    assert client.get("/docs").status_code == 200


def test_page_and_assets_are_local(client):
    html = client.get("/").text
    assert "<textarea" in html and "/static/app.js" in html
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and r.text
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_options_validated():
    with pytest.raises(ValueError, match="workers"):
        ServerOptions(workers=0)
    with pytest.raises(ValueError, match="max_body_bytes"):
        ServerOptions(max_body_bytes=True)
