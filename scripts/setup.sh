#!/usr/bin/env bash
# Sets up a fresh Debian machine with Python 3.11 for this project: Debian packages, then a virtual
# environment in .venv with requirements.txt (or requirements-dev.txt with --dev, plus Chromium for
# the browser tests), and the npm packages the page serves itself (package-lock.json: ONNX Runtime Web,
# for Kokoro in the visitor's browser) into node_modules/. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

debs=$(grep -v '^\s*#' packages.txt | xargs)
debs="$debs python3-venv"
[ $dev = 1 ] && debs="$debs chromium chromium-driver fonts-noto-color-emoji"
missing=""
for d in $debs; do
  case $d in  # a NodeSource nodejs already brings npm (and conflicts with Debian's npm package)
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"
done
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
# No wheel cache: the PyTorch CUDA wheels alone are ~3.5 GB and a cached copy only adds to the disk use
# (a CI run once died with "No space left on device").
pip="--no-cache-dir -q"
.venv/bin/python -m pip install $pip --upgrade pip
if [ $dev = 1 ]; then
  .venv/bin/python -m pip install $pip -r requirements-dev.txt
else
  .venv/bin/python -m pip install $pip -r requirements.txt
fi
# npm ci again only when the lockfile is newer than what node_modules/ holds
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
fi
