#!/usr/bin/env bash
# Set up .venv and compress the example document to a third of its tokens with the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/mooscomp compress examples/meeting.txt --rate 0.33 --stats
