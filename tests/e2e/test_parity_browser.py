"""Parity of Kokoro in the browser and on the server, in Debian's Chromium (WASM), and Compare's
"Kokoro in this browser" slot.

The same text and voice are rendered by the registry's Kokoro in this process (the packaged int8 ONNX,
offline) and in headless Chromium through `window.kokoroBrowser` (ONNX Runtime Web, WASM) on the
running app's page; `evaluation.parity` compares them: duration within 2 %, a log-mel distance after
time alignment below the distance between two packaged voices saying the same text, and the same words
from the ASR round trip."""

from __future__ import annotations

import base64
import json
import urllib.request
from urllib.parse import urljoin

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# Not "The birch canoe slid…": Whisper tiny.en is on the edge with "canoe" in this voice ("can be slid" on
# the server, "canoes slid" in the browser in one run), which tests the ASR, not the parity.
TEXT = "Glue the sheet to the dark blue background."
VOICE = "jm_kumo"
MODULE = "kokoro/assets/kokoro_in_browser.js"

# Renders in the page and hands back the audio as base64 float32 (little-endian), with the browser's figures.
RENDER_JS = """async ([text, voice]) => {
  const out = await window.kokoroBrowser.render(text, voice, 1.0, {});
  const bytes = new Uint8Array(out.audio.buffer, out.audio.byteOffset, out.audio.byteLength);
  const b64 = await new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.readAsDataURL(new Blob([bytes]));
  });
  const { audio, ...figures } = out;
  return { ...figures, audio_b64: b64 };
}"""


def load_kokoro_in_browser(page, app_url: str) -> None:
    """The app's page with `window.kokoroBrowser` on it (the module the Kokoro tab and Compare load)."""
    page.goto(app_url, wait_until="load", timeout=120_000)
    page.add_script_tag(url=app_url + MODULE)
    page.wait_for_function("() => !!window.kokoroBrowser", timeout=60_000)


def render_in_browser(page, text: str, voice: str) -> tuple[np.ndarray, int, dict]:
    """(audio, sample rate, the browser's figures) of `text` in `voice`, rendered in the page."""
    out = page.evaluate(RENDER_JS, [text, voice])
    audio = np.frombuffer(base64.b64decode(out.pop("audio_b64")), dtype="<f4").astype(np.float32)
    return audio, int(out.get("sample_rate") or 24_000), out


@pytest.fixture(scope="module")
def server_kokoro():
    """The registry's Kokoro in this process, offline: the packaged int8 ONNX model."""
    from engines.runtime import registry

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
            mp.delenv(name, raising=False)
        registry.unload("kokoro")
        yield registry
        registry.unload("kokoro")


@pytest.fixture(scope="module")
def page(browser):
    return browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()


def test_the_browser_renders_what_the_server_renders(page, app_url, server_kokoro, artifacts):
    from engines import audio as audio_io
    from evaluation import parity

    load_kokoro_in_browser(page, app_url)
    browser, rate, figures = render_in_browser(page, TEXT, VOICE)
    assert figures["backend"] == "wasm" and not figures["stopped"]
    server = parity.render(TEXT, VOICE)
    found = parity.measure(TEXT, VOICE, server, browser, rate_b=rate)
    audio_io.write(artifacts / "parity_server.wav", server)
    audio_io.write(artifacts / "parity_browser.wav", browser, sample_rate=rate)
    (artifacts / "parity.json").write_text(json.dumps({**found, "browser": figures}, indent=1), encoding="utf-8")
    assert found["duration_diff_pct"] <= 2.0, found
    assert found["mel_distance"] < found["reference_distance"], found
    assert found["same_words"], found
    assert "background" in found["words_b"]


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).first.click()


def test_a_compare_slot_rendered_in_this_browser_is_measured_like_any_slot(page, app_url, artifacts):
    page.goto(app_url, wait_until="load", timeout=120_000)
    page.locator("#kokoro-text textarea").wait_for(timeout=120_000)
    page.get_by_role("tab", name="Compare").click(timeout=120_000)  # after the page's load events
    page.locator("#compare-text textarea").fill(TEXT)
    pick(page, "compare-a-voice", VOICE)
    pick(page, "compare-b-engine", "Kokoro in this browser")
    pick(page, "compare-b-voice", VOICE)
    page.locator("#compare-go").click()
    try:
        # the browser renders B first (WASM, slower than real time here), then the server speaks A, then B plays
        page.locator("#compare-b-status", has_text="in this browser").wait_for(timeout=600_000)
        page.locator("#compare-metrics", has_text="kokoro@browser:jm_kumo").wait_for(timeout=300_000)
        page.locator("#compare-metrics", has_text="predicted quality").wait_for(timeout=120_000)
    finally:
        page.screenshot(path=str(artifacts / "compare_browser_slot.png"), full_page=True)
    status = page.locator("#compare-b-status").inner_text()
    assert "measured in the browser" in status and "wasm" in status
    table = page.locator("#compare-metrics").inner_text()
    assert "kokoro:jm_kumo" in table and "dark blue background" in table.lower().replace("\n", " ")
    link = page.locator("a[href*='metrics-']").first
    with urllib.request.urlopen(urljoin(app_url, link.get_attribute("href")), timeout=30) as answer:
        summary = json.loads(answer.read())
    assert summary["b"]["rendered_in"] == "browser" and summary["b"]["browser"]["backend"] == "wasm"
    assert summary["b"]["duration_s"] > 1.0 and summary["b"]["error_rate"] is not None
    assert "rendered_in" not in summary["a"]  # the server's slot reads as before
