"""Service: optional bearer-token auth, CORS off unless asked, local API docs, `serve` start-up."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from mooscomp.cli import main  # noqa: E402
from mooscomp.server import ServerOptions, create_app  # noqa: E402

KEY = "k3y-Only-For-Tests"
BODY = {"text": "The Normans gave their name to Normandy, a region in France.", "rate": 0.5}


@pytest.fixture(scope="module")
def locked(_tiny_compressor):
    with TestClient(create_app(_tiny_compressor, api_key=KEY, max_body_bytes=5000)) as c:
        yield c


@pytest.fixture(scope="module")
def open_app(_tiny_compressor):
    with TestClient(create_app(_tiny_compressor)) as c:
        yield c


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
     {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer "}],
)
def test_401_without_the_key(locked, headers):
    r = locked.post("/v1/compress", json=BODY, headers=headers)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["type"] == "unauthorized" and r.json()["error"]["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert KEY not in r.text and KEY not in str(r.headers)


def test_key_accepted_and_open_paths_stay_open(locked):
    for scheme in ("Bearer", "bearer"):
        r = locked.post("/v1/compress", json=BODY, headers={"Authorization": f"{scheme} {KEY}"})
        assert r.status_code == 200, r.text
    for path in ("/", "/healthz", "/docs", "/openapi.json", "/static/app.js"):
        assert locked.get(path).status_code == 200, path
    assert locked.get("/healthz").json()["auth"] is True


def test_auth_runs_before_the_body_limit(locked):
    r = locked.post("/v1/compress", content=b"x" * 10_000, headers={"content-type": "application/json"})
    assert r.status_code == 401  # an anonymous client cannot make the service read a big body


def test_constant_time_compare_and_key_never_shown(locked, monkeypatch):
    import mooscomp._asgi as asgi

    calls = []
    real = asgi.hmac.compare_digest
    monkeypatch.setattr(asgi.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    locked.post("/v1/compress", json=BODY, headers={"Authorization": "Bearer nope"})
    assert calls
    assert KEY not in repr(ServerOptions(api_key=KEY))
    for bad in ("", "has space", "tab\there", "é"):
        with pytest.raises(ValueError, match="api_key"):
            ServerOptions(api_key=bad)


def test_cors_off_by_default(open_app):
    pre = open_app.options("/v1/compress", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    r = open_app.post("/v1/compress", json=BODY, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_when_asked(_tiny_compressor):
    app = create_app(_tiny_compressor, api_key=KEY, cors_origins=["https://app.example"])
    with TestClient(app) as c:
        pre = c.options("/v1/compress", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200  # preflights carry no key and must not get 401
        assert pre.headers["access-control-allow-origin"] == "https://app.example"
        r = c.post("/v1/compress", json=BODY, headers={"Origin": "https://app.example"})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://app.example"
        other = c.options("/v1/compress", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers
    with pytest.raises(ValueError, match="CORS origin"):
        ServerOptions(cors_origins=("app.example",))


def test_docs_are_served_locally(open_app):
    for path, asset in (("/docs", "/docs-assets/swagger-ui-bundle.js"),
                        ("/redoc", "/docs-assets/redoc.standalone.js")):
        html = open_app.get(path).text
        assert asset in html and "cdn.jsdelivr" not in html and "fonts.googleapis" not in html
        r = open_app.get(asset)
        assert r.status_code == 200 and len(r.content) > 100_000
    assert open_app.get("/docs-assets/swagger-ui.css").status_code == 200


# ---------------------------------------------------------------------- mooscomp serve


@pytest.fixture()
def fake_run(monkeypatch, _tiny_compressor):
    """`serve` up to the point where uvicorn would run: loads the tiny model, records the app."""
    import uvicorn

    import mooscomp.cli.serve as serve

    seen: dict = {}
    monkeypatch.setattr(serve, "_load", lambda args: _tiny_compressor)

    def run(self, sockets=None):
        seen["app"], seen["sockets"] = self.config.app, sockets
        for s in sockets or ():
            s.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return seen


def test_busy_port_is_one_line_before_loading(monkeypatch, capsys):
    import mooscomp.cli.serve as serve

    monkeypatch.setattr(serve, "_load", lambda args: pytest.fail("loaded a model"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "--port", str(port)])
    out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "in use" in err and str(port) in err and "serving on" not in err


def test_env_key_no_warning_and_never_printed(fake_run, monkeypatch, capsys):
    monkeypatch.setenv("MOOSCOMP_API_KEY", KEY)
    assert main(["serve", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "serving on http://127.0.0.1:" in err and "API key required" in err
    assert KEY not in err and "warning" not in err
    with TestClient(fake_run["app"]) as c:
        assert c.post("/v1/compress", json=BODY).status_code == 401


def test_warning_for_non_loopback_without_key(fake_run, monkeypatch, capsys):
    monkeypatch.delenv("MOOSCOMP_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "without an API key" in err
    assert err.index("warning") < err.index("serving on")
    assert main(["serve", "--host", "0.0.0.0", "--port", "0", "--api-key", KEY]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and KEY not in err
    assert main(["serve", "--port", "0", "--cors-origin", "ftp://x"]) == 2
