#!/usr/bin/env bash
# Set up .venv (dev + optional extras the tests exercise) and run lint + the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,eval,serve,onnx,adapters,label,ray
# Debian's chromium for the browser test (no-op when present; the test skips with a reason if absent)
bash scripts/install-browser.sh >/dev/null 2>&1 || echo "note: chromium could not be installed; the browser test will skip" >&2
.venv/bin/ruff check src tests
.venv/bin/python -m pytest -q "$@"
