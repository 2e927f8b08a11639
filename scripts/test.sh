#!/usr/bin/env bash
# One command to set up and run every test (unit, real weights + ASR, API, browser), slow ones
# included. Extra arguments go to pytest. Artifacts (screenshots, logs, audio) land in test-output/; the
# 25 slowest steps (setup, call, teardown) are listed at the end. The files run on TEST_WORKERS (2)
# pytest-xdist workers, each file whole on one, the slowest files first (tests/conftest.py: SLOWEST_FIRST):
# much of a browser test is waiting for audio to play in real time, so two workers take about half the time
# even on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest -ra --durations=25 -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
