"""Regenerate docs/screenshot.png: the demo page of `mooscomp serve` with the SHIPPED model.

Starts the service app on loopback (``Compressor.from_pretrained()``, the default backend), opens
the page in headless Debian Chromium (``bash scripts/install-browser.sh``), compresses the first
two paragraphs of ``examples/meeting.txt`` with a question (twice: the second, warm call
is shown), hovers one dropped word so the
tooltip shows, and writes the screenshot.

    .venv/bin/python scripts/docs_screenshot.py [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
RATE = "0.33"
QUESTION = "How much would the renovation cost?"


def serve(app):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (server.started and server.servers):
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def shoot(url: str, text: str, out: Path) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url + "/")
        page.fill("#text", text)
        page.eval_on_selector(
            "#rate", f"el => {{ el.value = '{RATE}'; el.dispatchEvent(new Event('input')); }}"
        )
        page.fill("#question", QUESTION)
        page.click("#submit")  # the first call builds the question path (and exports its graph)
        page.wait_for_selector("#result:not([hidden])", timeout=300_000)
        page.click("#submit")  # the screenshot shows a warm call's time
        page.wait_for_function("document.getElementById('status').textContent === 'Done.'",
                               timeout=120_000)
        words = page.locator("#original .w.dropped")
        words.nth(min(5, words.count() - 1)).hover()
        page.locator("#tip").wait_for(state="visible", timeout=5_000)
        page.eval_on_selector("#text", "el => { el.scrollTop = 0; }")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        compressed = page.inner_text("#compressed")
        browser.close()
    return compressed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: run bash scripts/install-browser.sh", file=sys.stderr)
        return 2
    from mooscomp import Compressor
    from mooscomp.server import create_app

    paragraphs = (ROOT / "examples" / "meeting.txt").read_text(encoding="utf-8").split("\n\n")
    text = "\n\n".join(p.replace("\n", " ") for p in paragraphs[:2])
    server, thread, url = serve(create_app(Compressor.from_pretrained()))
    try:
        compressed = shoot(url, text, args.out)
    finally:
        server.should_exit = True
        thread.join(10)
    print(f"wrote {args.out}\ncompressed: {compressed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
