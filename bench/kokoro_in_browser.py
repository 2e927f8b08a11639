"""Kokoro rendered in headless Chromium (WASM) against the same text on the server, same run; prints JSON.

Starts `app.py` on a loopback port (offline: the packaged int8 Kokoro), opens the page in Debian's
Chromium and calls `window.kokoroBrowser.render` (the Kokoro tab's "this browser" path: the server's
plan, ONNX Runtime Web in a Web Worker) `--runs` times; the first run is cold (model download and
session creation, reported apart), the others warm. Baseline, alternated with it: the server's own
path on the same text and voice (`POST /v1/audio/speech`, whole file; its measured `X-Time-To-First-
Audio` and `X-Real-Time-Factor`). Figures: time to first audio and real-time factor (compute seconds
per audio second), medians of the warm runs, with the machine's load average at the start and end.

    python bench/kokoro_in_browser.py [--runs 3] [--out bench/results-kokoro-in-browser.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from local_app import LocalApp

HERE = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
VOICE = "jm_kumo"
RENDER = """async ([text, voice]) => {
  const r = await window.kokoroBrowser.render(text, voice, 1, {});
  return {backend: r.backend, model_download_s: r.model_download_s, session_s: r.session_s, ttfa_s: r.ttfa_s,
          rtf: r.rtf, audio_s: r.audio_s, chunks: r.chunks, total_s: r.total_s};
}"""


def server_run(url: str) -> dict:
    body = json.dumps({"model": "kokoro", "input": TEXT, "voice": VOICE, "response_format": "wav"}).encode()
    request = urllib.request.Request(url + "v1/audio/speech", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as answer:
        answer.read()
        headers = answer.headers
    return {
        "ttfa_s": float(headers["X-Time-To-First-Audio"]),
        "rtf": float(headers["X-Real-Time-Factor"]),
        "audio_s": float(headers["X-Audio-Seconds"]),
    }


def median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        app = LocalApp(folder / "app.log", {"VOICE_LIBRARY_DIR": str(folder / "lib"), "API_RATE_PER_MIN": "100000"})
        try:
            server_run(app.url)  # the engine loaded and warm before anything is timed
            browser_rows, server_rows = [], []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                page = browser.new_page()
                page.goto(app.url, wait_until="load", timeout=180_000)
                page.wait_for_function("() => window.kokoroBrowser", timeout=180_000)
                for _ in range(args.runs + 1):  # the first browser run is cold
                    start = time.perf_counter()
                    row = page.evaluate(RENDER, [TEXT, VOICE])
                    row["wall_s"] = round(time.perf_counter() - start, 3)
                    browser_rows.append(row)
                    server_rows.append(server_run(app.url))
                    print(json.dumps({"browser": row, "server": server_rows[-1]}), file=sys.stderr)
                browser.close()
        finally:
            app.stop()
    cold, warm = browser_rows[0], browser_rows[1:]
    result = {
        "bench": "kokoro_in_browser",
        "text": TEXT,
        "voice": VOICE,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "browser": "Debian chromium"},
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "browser_wasm": {
            "backend": cold["backend"],
            "cold": {k: cold[k] for k in ("model_download_s", "session_s", "ttfa_s", "rtf")},
            "ttfa_s": median(warm, "ttfa_s"),
            "rtf": median(warm, "rtf"),
            "runs": browser_rows,
        },
        "baseline_server_onnx": {
            "ttfa_s": median(server_rows[1:], "ttfa_s"),
            "rtf": median(server_rows[1:], "rtf"),
            "runs": server_rows,
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
