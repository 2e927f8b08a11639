"""First audio at the ear, in headless Chromium: what the page adds to the server's time to first audio.

Starts `app.py` on a loopback port the way the tests' `app_url` fixture does (offline: the packaged
Kokoro int8 ONNX, Qwen3-TTS on tiny random checkpoints) and drives its tabs with Playwright: per tab,
`--runs` clicks in a row, each timed by the page's own player (ui/player.js) from the click to the
moment the run's first sample reaches the audio output (`ear_ttfa_s`), next to the server's figure
(`server_ttfa_s`, from `engines.runtime.timing`); the page's share is their difference. The player also dates
when the run's start message and its first piece arrived, which splits the share into the event's
start (Gradio's queue and SSE), the first piece's trip, and the player itself.

Baseline, same run: the gr.Audio(streaming=True) HLS path the page used before, on a page this script
serves with the same Kokoro handler; a fresh page load per run (on Gradio 6.17.3 that player plays
only a page's first run), audible start = when the <audio> element's clock starts moving.

    python bench/browser_first_audio.py [--runs 5] [--out bench/results-browser-first-audio.json]
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
from pathlib import Path

from local_app import LocalApp, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
VOICE = "jm_kumo"


def start_app(folder: Path) -> LocalApp:
    """app.py offline on a free loopback port, Qwen3-TTS on tiny random checkpoints."""
    from qwen_tiny import build_one

    env = {
        "QWEN_CUSTOM_VOICE_MODEL": build_one(str(folder / "customvoice"), "custom_voice"),
        "QWEN_BASE_MODEL": build_one(str(folder / "base"), "base"), "TORCH_THREADS": "1",
        "VOICE_LIBRARY_DIR": str(folder / "library"), "ARENA_DB": str(folder / "votes.sqlite3"),
        "ARENA_SYSTEMS": "kokoro:jm_kumo kokoro:jf_alpha",
    }  # fmt: skip
    return LocalApp(folder / "app.log", env, timeout_s=180)


def baseline_page() -> str:
    """A page with the old player, a streamed gr.Audio (HLS), fed the Kokoro tab's pieces."""
    import gradio as gr

    from engines.audio import to_int16
    from engines.base import SAMPLE_RATE, SynthesisRequest
    from engines.runtime.timing import RunStats, timed_stream

    def speak(text):
        stats = RunStats(engine="kokoro")
        for chunk in timed_stream("kokoro", SynthesisRequest(text=text, voice=VOICE), stats):
            yield (SAMPLE_RATE, to_int16(chunk.audio)), f"ttfa={stats.ttfa_s:.4f}"

    with gr.Blocks() as demo:
        text = gr.Textbox(TEXT, elem_id="hls-text")
        go = gr.Button("Go", elem_id="hls-go")
        audio = gr.Audio(streaming=True, autoplay=True, interactive=False, elem_id="hls-audio")
        status = gr.Textbox(elem_id="hls-status")
        go.click(speak, text, [audio, status])
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/"


WATCH_HLS = """() => {
  window.hls = {click: null, audible: null};
  document.addEventListener('click', () => { window.hls.click = performance.now(); }, true);
  const poll = () => {
    const a = document.querySelector('#hls-audio audio');
    if (a && window.hls.click !== null && a.currentTime > 0 && window.hls.audible === null)
      window.hls.audible = performance.now() - a.currentTime * 1000;  // back to where its clock started
    if (window.hls.audible === null) setTimeout(poll, 5);
  };
  poll();
}"""


def hls_runs(browser, url: str, runs: int) -> list[dict]:
    out = []
    for _ in range(runs + 1):  # the first warms the engine up and is dropped
        page = browser.new_page()
        page.goto(url, wait_until="load", timeout=120_000)
        page.locator("#hls-go").wait_for(timeout=60_000)
        page.evaluate(WATCH_HLS)
        page.locator("#hls-go").click()
        page.wait_for_function("() => window.hls.audible !== null", timeout=120_000)
        page.wait_for_function(
            "() => (document.querySelector('#hls-status textarea')?.value || '').startsWith('ttfa=')", timeout=60_000
        )
        ear = page.evaluate("() => (window.hls.audible - window.hls.click) / 1000")
        server = float(page.locator("#hls-status textarea").input_value().split("=")[1])
        out.append({"ear_ttfa_s": ear, "server_ttfa_s": server, "stalls": None})
        page.close()
    return out[1:]


ENDED = "([id, n]) => { const p = window.ttsPlayers[id]; return p.runs.length >= n && p.runs[n - 1].closed; }"


def player_runs(page, elem_ids: list[str], go: str, runs: int, text_box: str | None, text: str) -> list[list[dict]]:
    """Each player's stats of `runs` clicks of `go` (after one warm-up click), waiting for every player's
    run to end before the next click."""
    if text_box:
        page.locator(f"{text_box} textarea").fill(text)
    for i in elem_ids:  # mounted (a tab's players mount when it is first shown)
        page.wait_for_function("id => window.ttsPlayers && window.ttsPlayers[id]", arg=i, timeout=60_000)
    done = [page.evaluate("id => window.ttsPlayers[id].runs.length", i) for i in elem_ids]
    out: list[list[dict]] = [[] for _ in elem_ids]
    for _ in range(runs + 1):
        page.locator(go).click()
        for k, elem_id in enumerate(elem_ids):
            done[k] += 1
            try:
                page.wait_for_function(ENDED, arg=[elem_id, done[k]], timeout=900_000)
            except Exception:
                page.screenshot(path=f"/tmp/bench-{elem_id}.png", full_page=True)
                for i in elem_ids:
                    print(i, page.evaluate("id => window.ttsPlayers[id].allStats()", i), file=sys.stderr)
                raise
            stats = "([id, n]) => window.ttsPlayers[id].stats(window.ttsPlayers[id].runs[n - 1])"
            out[k].append(page.evaluate(stats, [elem_id, done[k]]))
    return [o[1:] for o in out]  # the warm-up run is dropped


def quantile(values: list[float], q: float) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 3)


def summarise(runs: list[dict], share: bool = True) -> dict:
    """p50/p95 of the ear and server figures and of the page's share; `share=False` for a slot whose
    ear figure counts from another slot's end (Compare B)."""
    ear = [r["ear_ttfa_s"] for r in runs]
    server = [r["server_ttfa_s"] for r in runs]
    share = [e - s for e, s in zip(ear, server, strict=True) if e is not None and s is not None] if share else []
    summary = {
        "runs": len(runs),
        "ear_ttfa_s": {"p50": quantile(ear, 0.5), "p95": quantile(ear, 0.95)},
        "server_ttfa_s": {"p50": quantile(server, 0.5), "p95": quantile(server, 0.95)},
        "page_share_s": {"p50": quantile(share, 0.5), "p95": quantile(share, 0.95)},
        "stalls": None if runs[0].get("stalls") is None else sum(r["stalls"] for r in runs),
    }
    if share and runs[0].get("start_msg_s") is not None:  # where the page's share goes (medians)
        summary["split_p50_s"] = {
            "click_to_start_message": quantile([r["start_msg_s"] for r in runs], 0.5),
            "first_piece_trip": quantile(
                [r["first_piece_s"] - r["start_msg_s"] - r["server_ttfa_s"] for r in runs], 0.5
            ),
            "player": quantile([r["ear_ttfa_s"] - r["first_piece_s"] for r in runs], 0.5),
        }
    summary["each"] = [
        {k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in ("ear_ttfa_s", "server_ttfa_s", "stalls")}
        for r in runs
    ]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results-browser-first-audio.json")
    parser.add_argument("--tabs", default="kokoro,qwen_preset,compare,baseline", help="what to measure")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="bench-ear-"))
    app = start_app(folder)
    url = app.url
    results: dict = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url, wait_until="load", timeout=120_000)
            page.locator("#kokoro-text textarea").wait_for(timeout=120_000)
            tabs = args.tabs.split(",")
            if "kokoro" in tabs:
                (kokoro,) = player_runs(page, ["kokoro-player"], "#kokoro-generate", args.runs, "#kokoro-text", TEXT)
                results["kokoro"] = summarise(kokoro)
            if "qwen_preset" in tabs:
                page.get_by_role("tab", name="Qwen3-TTS").click()
                page.get_by_role("tab", name="Preset speakers").click()
                go, box = "#qwen-preset-generate", "#qwen-preset-text"
                (preset,) = player_runs(page, ["qwen-preset-player"], go, args.runs, box, "Hello there.")
                results["qwen_preset"] = summarise(preset)
            if "compare" in tabs:
                page.get_by_role("tab", name="Compare").click()
                choices = {"compare-a-voice": VOICE, "compare-b-engine": "Kokoro-82M", "compare-b-voice": "jf_alpha"}
                for elem_id, option in choices.items():
                    page.locator(f"#{elem_id} input").click()
                    page.get_by_role("option", name=option).first.click()
                ids = ["compare-a-player", "compare-b-player"]
                first, second = player_runs(page, ids, "#compare-go", args.runs, "#compare-text", TEXT)
                results["compare_a"] = summarise(first)
                results["compare_b_after_a"] = summarise(second, share=False)
            page.close()
            if "baseline" in tabs:
                results["baseline_hls_kokoro"] = summarise(hls_runs(browser, baseline_page(), args.runs))
            browser.close()
    finally:
        app.stop()
    out = {
        "bench": "browser_first_audio",
        "what": "click -> first sample at the audio output in headless Chromium, vs the server's time to first audio",
        "baseline": "gr.Audio(streaming=True) HLS (the page's player before), same Kokoro handler, fresh page per run",
        "text": TEXT,
        "voice": VOICE,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "results": results,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
