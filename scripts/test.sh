#!/usr/bin/env bash
# One command to set up and run every test (unit, real weights + ASR, API, browser), slow ones
# included. Extra arguments go to pytest. Artifacts (screenshots, logs, audio) land in test-output/; the
# 25 slowest steps (setup, call, teardown) are listed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest -ra --durations=25 "$@"
