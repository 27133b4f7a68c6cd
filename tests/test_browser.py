"""End to end: the demo page and the API docs in headless Chromium against a live loopback server.

Needs Debian's chromium (``bash scripts/install-browser.sh``; ``scripts/test.sh`` runs it) and
playwright-python (``dev`` extra). The test never installs anything itself: without chromium it
skips with the reason. The browser is cut off from everything but this server (host resolver
rules map every name elsewhere to nothing, and any request to another address is aborted and
recorded), so the pages are shown to work offline. Screenshots go to a temporary folder
(``docs/screenshot.png`` shows the shipped model: ``scripts/docs_screenshot.py`` makes it).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("playwright", reason="playwright (python) is not installed")

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no network but loopback
]


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: run `bash scripts/install-browser.sh` (scripts/test.sh does)")
    return CHROMIUM


def _serve(app):
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and server.servers):
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    exe = _chromium()
    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _offline_page(browser, base_url, outside):
    """A page whose requests anywhere but ``base_url`` are aborted and recorded."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})

    def route(r):
        if r.request.url.startswith(base_url):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page


@pytest.fixture(scope="module")
def server_url(_tiny_compressor):
    from mooscomp.server import create_app

    server, thread, url = _serve(create_app(_tiny_compressor))
    yield url
    server.should_exit = True
    thread.join(10)


TEXT = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
    "a region in France. They were descended from Norse raiders and pirates from Denmark, Iceland "
    "and Norway who, under their leader Rollo, agreed to swear fealty to King Charles III of West "
    "Francia.\n\nThrough generations of assimilation and mixing with the native Frankish and "
    "Roman-Gaulish populations, their descendants would gradually merge with the "
    "Carolingian-based cultures of West Francia."
)


def test_page_compresses_and_explains(browser, server_url, tmp_path):
    outside: list[str] = []
    page = _offline_page(browser, server_url, outside)
    try:
        page.goto(server_url + "/")
        page.fill("#text", TEXT)
        page.eval_on_selector("#rate", "el => { el.value = '0.4'; el.dispatchEvent(new Event('input')); }")
        assert page.inner_text("#rate-out") == "0.40"
        assert not page.is_visible("#apikey")  # no key asked for by an open service
        page.click("#submit")
        page.wait_for_selector("#result:not([hidden])", timeout=20_000)
        assert page.inner_text("#status") == "Done."

        compressed = page.inner_text("#compressed")
        assert 0 < len(compressed.split()) < len(TEXT.split())
        kept = page.locator("#original .w.kept")
        dropped = page.locator("#original .w.dropped")
        assert kept.count() > 0 and dropped.count() > 0
        assert kept.count() + dropped.count() == len(page.locator("#original .w").all())
        # the struck-through words are exactly the ones missing from the compressed text
        style = dropped.first.evaluate("el => getComputedStyle(el).textDecorationLine")
        assert "line-through" in style
        kept_words = "".join(w.strip() for w in kept.all_inner_texts())
        assert kept_words == "".join(compressed.split())
        # the original is redrawn with its own spacing and paragraph break
        assert page.inner_text("#original").replace("\u00a0", " ") == TEXT
        assert page.locator("[data-stat=tokens] b").inner_text().count("→") == 1

        # hover: per-word keep-prob and outlier z
        dropped.nth(1).hover()
        tip = page.locator("#tip")
        tip.wait_for(state="visible", timeout=5_000)
        text = tip.inner_text()
        assert "keep-prob" in text and "outlier z" in text and "dropped" in text
        p = float(dropped.nth(1).get_attribute("data-p") or "nan")
        assert 0.0 <= p <= 1.0

        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        # a bad request shows the service's message and the page keeps working
        page.fill("#text", "   ")
        page.click("#submit")
        page.wait_for_selector("#status.error", timeout=10_000)
        assert "empty" in page.inner_text("#status")
        page.fill("#text", TEXT)
        page.click("#submit")
        page.wait_for_selector("#status:not(.error)", timeout=20_000)
        page.wait_for_function("document.getElementById('status').textContent === 'Done.'")
        assert outside == [], f"the page fetched non-local assets: {outside}"
    finally:
        page.close()


def test_api_docs_render_offline(browser, server_url, tmp_path):
    outside: list[str] = []
    page = _offline_page(browser, server_url, outside)
    try:
        page.goto(server_url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
        assert "mooscomp" in page.inner_text(".swagger-ui .info .title")
        op = page.locator(".opblock-summary-path", has_text="/v1/compress")
        op.first.wait_for(state="visible", timeout=10_000)
        op.first.click()  # expands: the request body schema is rendered from /openapi.json
        page.wait_for_selector(".opblock-body", timeout=10_000)
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        assert (tmp_path / "docs.png").stat().st_size > 10_000
        assert outside == [], f"/docs fetched non-local assets: {outside}"
    finally:
        page.close()


def test_page_asks_for_the_api_key(browser, _tiny_compressor):
    from mooscomp.server import create_app

    server, thread, url = _serve(create_app(_tiny_compressor, api_key="page-test-key"))
    outside: list[str] = []
    page = _offline_page(browser, url, outside)
    try:
        page.goto(url + "/")
        page.fill("#text", TEXT)
        page.click("#submit")
        page.wait_for_selector("#apikey", state="visible", timeout=10_000)
        assert "API key" in page.inner_text("#status")
        page.fill("#apikey", "page-test-key")
        page.click("#submit")
        page.wait_for_function("document.getElementById('status').textContent === 'Done.'",
                               timeout=20_000)
        assert page.inner_text("#compressed").strip() and outside == []
    finally:
        page.close()
        server.should_exit = True
        thread.join(10)
