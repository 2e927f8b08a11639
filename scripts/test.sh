#!/usr/bin/env bash
# One command to set up and run every test (unit, real weights + ASR, API, browser), slow ones
# included. Extra arguments go to pytest. Artifacts (screenshots, logs, audio) land in test-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest -ra "$@"
