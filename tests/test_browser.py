"""End to end: the demo page in headless Chromium against a live server on loopback.

Needs Debian's chromium (``scripts/install-browser.sh``) and playwright-python (the ``serve`` extra
brings fastapi/uvicorn; playwright is in ``dev``). Skips, with the reason, only when chromium is
absent and cannot be installed. Saves the page to ``docs/screenshot.png`` when that file is missing
or ``MOOSCOMP_UPDATE_SCREENSHOT=1`` (else to a temporary folder, so test runs leave the tree clean).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("playwright", reason="playwright (python) is not installed")

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "screenshot.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        script = ROOT / "scripts" / "install-browser.sh"
        try:
            subprocess.run(["bash", str(script)], check=True, timeout=600, capture_output=True)
        except (subprocess.SubprocessError, OSError) as e:
            pytest.skip(f"{CHROMIUM} is absent and could not be installed ({script}): {e}")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent after {shutil.which('apt-get') or 'no apt-get'}")
    return CHROMIUM


@pytest.fixture(scope="module")
def server_url(_tiny_compressor):
    import uvicorn

    from mooscomp.server import create_app

    app = create_app(_tiny_compressor)
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
    yield f"http://127.0.0.1:{port}"
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


def test_page_compresses_and_explains(server_url, tmp_path):
    from playwright.sync_api import sync_playwright

    exe = _chromium()
    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            outside: list[str] = []
            page.on(
                "request",
                lambda r: None if r.url.startswith(server_url) else outside.append(r.url),
            )
            page.goto(server_url + "/")
            page.fill("#text", TEXT)
            page.eval_on_selector("#rate", "el => { el.value = '0.4'; el.dispatchEvent(new Event('input')); }")
            assert page.inner_text("#rate-out") == "0.40"
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

            shot = SCREENSHOT
            if shot.exists() and os.environ.get("MOOSCOMP_UPDATE_SCREENSHOT") != "1":
                shot = tmp_path / "screenshot.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
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
            browser.close()
