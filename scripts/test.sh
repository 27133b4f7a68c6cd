#!/usr/bin/env bash
# Set up .venv (with the dev extras) and run lint + the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check src tests
.venv/bin/python -m pytest -q "$@"
