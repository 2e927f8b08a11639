#!/usr/bin/env bash
# One command to set up and start the app on http://localhost:7860 (offline it speaks with the
# packaged Kokoro ONNX model; with hub access it uses the PyTorch model and all 54 voices).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py
