"""The real page in Debian's Chromium, driven by Playwright: type, Generate, hear it play."""

from __future__ import annotations

import pytest
from conftest import app_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(browser, app_url):
    return app_page(browser, app_url)


# seconds the page's players (ui/player.js) have played of their current runs, the most of any
PLAYED = """() => Math.max(0, ...Object.values(window.ttsPlayers || {}).map(p => p.playedSeconds()))"""


def test_generate_streams_audio_that_plays(page, artifacts):
    page.locator("#kokoro-text textarea").fill(
        "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
        "It is easy to tell the depth of a well."
    )
    page.locator("#kokoro-generate").click()
    page.wait_for_function(f"({PLAYED})() > 1.0", timeout=90_000)
    page.locator("#kokoro-status", has_text="Finished").wait_for(timeout=120_000)
    page.screenshot(path=str(artifacts / "kokoro_tab.png"), full_page=True)
    assert page.evaluate(PLAYED) > 1.0


def test_bad_input_shows_one_sentence_and_the_page_still_works(page, artifacts):
    page.locator("#kokoro-text textarea").fill("   ")
    page.locator("#kokoro-generate").click()
    try:
        page.get_by_text("Please enter some text to speak.").first.wait_for(timeout=30_000)
    finally:
        page.screenshot(path=str(artifacts / "kokoro_error.png"))
    page.screenshot(path=str(artifacts / "kokoro_error.png"))
    assert page.locator("text=Traceback").count() == 0


def test_clone_mode_uploads_a_reference_and_gets_audio_back(page, artifacts, tmp_path):
    from test_qwen import wav_bytes

    reference = tmp_path / "reference.wav"
    reference.write_bytes(wav_bytes(3.0))
    page.get_by_role("tab", name="Qwen3-TTS").click()
    page.get_by_role("tab", name="Voice cloning").click()
    page.locator("#qwen-ref input[type=file]").set_input_files(str(reference))
    page.locator("#qwen-ref-notice", has_text="cloned").or_(
        page.locator("#qwen-ref-notice", has_text="Transcribed")
    ).wait_for(timeout=60_000)  # the ASR has filled the transcript box; now overwrite it
    page.locator("#qwen-ref-text textarea").fill("This is the reference transcript.")
    page.locator("#qwen-clone-text textarea").fill("Hello.")
    page.locator("#qwen-clone-generate").click()
    # a liveness bound, not a timing: the tiny random model runs to its token cap, its runaway guard may
    # render the sentence twice, and the first clone loads the model (CI's slower machine, beside another
    # worker's Ray cluster, once took over 120 s)
    page.locator("#qwen-clone-status", has_text="Finished").wait_for(timeout=300_000)
    page.screenshot(path=str(artifacts / "qwen_clone_tab.png"), full_page=True)
    assert "time to first audio" in page.locator("#qwen-clone-status").inner_text()
    page.wait_for_function("() => window.ttsPlayers['qwen-clone-player'].stats()?.samples > 0", timeout=30_000)
