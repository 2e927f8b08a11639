"""Parity of Kokoro in the browser (ONNX Runtime Web, WASM, headless Chromium) and on the server (the
registry's Kokoro: the packaged int8 ONNX on ONNX Runtime), on a few texts; prints JSON.

Per text and voice (`evaluation.parity.measure`): both durations and their difference in percent, the
log-mel distance after dynamic time warping (dB, mean per path step), and the baseline measured in the
same run: the same distance between the server's clip and the server's clip of the same text in
another packaged voice (`reference_distance`: what "a different voice" scores); the ASR round trip's
words of each, and whether they are the same. The browser's own figures (back-end, time to first audio,
real-time factor) come with each row.

    python bench/kokoro_parity.py [--out bench/results-kokoro-parity.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from local_app import LocalApp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.pop("KOKORO_MODEL", None)

CASES = [
    ("jm_kumo", "The birch canoe slid on the smooth planks."),
    ("jm_kumo", "Glue the sheet to the dark blue background. It is easy to tell the depth of a well."),
    ("jf_gongitsune", "These days a chicken leg is a rare dish, and rice is often served in round bowls."),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM
    from test_parity_browser import load_kokoro_in_browser, render_in_browser

    from evaluation import parity

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        app = LocalApp(Path(folder) / "app.log", {"TORCH_THREADS": "1"}, timeout_s=180)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                page = browser.new_page()
                load_kokoro_in_browser(page, app.url)
                for voice, text in CASES:
                    started = time.perf_counter()
                    clip, rate, figures = render_in_browser(page, text, voice)
                    server = parity.render(text, voice)
                    found = parity.measure(text, voice, server, clip, rate_b=rate)
                    keep = ("backend", "model_download_s", "ttfa_s", "rtf", "chunks")
                    rows.append({**found, "browser": {k: figures.get(k) for k in keep}})
                    rows[-1]["wall_s"] = round(time.perf_counter() - started, 1)
                    print(f"{voice}: {text[:40]}… done in {rows[-1]['wall_s']} s", file=sys.stderr, flush=True)
                    report(rows, args.out, final=False)
                browser.close()
        finally:
            app.stop()

    print(report(rows, args.out, final=True))


def report(rows: list[dict], out: Path | None, final: bool) -> str:
    """The JSON report of the rows so far (written to `out` after each row, so a cut run keeps them)."""
    summary = {
        "cases": len(rows),
        "max_duration_diff_pct": max(r["duration_diff_pct"] for r in rows),
        "max_mel_distance": max(r["mel_distance"] for r in rows),
        "min_reference_distance": min(r["reference_distance"] for r in rows),
        "below_reference": sum(r["below_reference"] for r in rows),
        "same_words": sum(r["same_words"] for r in rows),
    }
    found = {
        "complete": final,
        "what": "Kokoro int8: headless Chromium (onnxruntime-web, WASM) vs the server (onnxruntime)",
        "baseline": "reference_distance: the server's clip vs the same text in another packaged voice, same run",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_average_1m": round(os.getloadavg()[0], 1),  # other jobs on the machine while it ran
        "summary": summary,
        "rows": rows,
    }
    text = json.dumps(found, indent=1, ensure_ascii=False)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
