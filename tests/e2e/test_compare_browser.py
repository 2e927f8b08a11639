"""The Compare tab in Debian's Chromium: two packaged Kokoro voices, measured; slot A cloned by Qwen3-TTS.

The blind arena has its own test (test_arena_browser.py)."""

from __future__ import annotations

import pytest
from conftest import app_page
from test_browser import PLAYED

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = app_page(browser, app_url, height=1400, ready=None)
    page.get_by_role("tab", name="Compare").wait_for(timeout=120_000)
    return page


B_PLAYED = "() => window.ttsPlayers['compare-b-player'].playedSeconds() > 0.2"


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).first.click()


def test_compare_two_packaged_kokoro_voices(page, artifacts):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-text textarea").fill("The birch canoe slid on the smooth planks.")
    pick(page, "compare-a-voice", "jm_kumo")
    pick(page, "compare-b-engine", "Kokoro-82M")
    pick(page, "compare-b-voice", "jf_alpha")
    page.locator("#compare-go").click()
    try:
        page.locator("#compare-b-status", has_text="Finished").wait_for(timeout=180_000)
        page.locator("#compare-metrics", has_text="predicted MOS").wait_for(timeout=180_000)
        page.locator("#compare-notice", has_text="played at").wait_for(timeout=180_000)
    finally:
        page.screenshot(path=str(artifacts / "compare_tab.png"), full_page=True)
    table = page.locator("#compare-metrics").inner_text()
    assert "kokoro:jm_kumo" in table and "kokoro:jf_alpha" in table
    assert "smooth planks" in table.lower()  # the ASR transcripts
    assert page.locator("#compare-a-status").inner_text().startswith("Finished")
    assert page.evaluate(PLAYED) > 0.5
    # slot B starts by itself once slot A has played to its end
    page.wait_for_function(B_PLAYED, timeout=60_000)


def test_one_click_clones_the_kokoro_clip_with_qwen_and_scores_similarity(page, artifacts):
    page.locator("#compare-clone").click()
    try:
        page.locator("#compare-metrics", has_text="qwen-clone:reference").wait_for(timeout=240_000)
    finally:
        page.screenshot(path=str(artifacts / "compare_cross_clone.png"), full_page=True)
    lines = [x.strip() for x in page.locator("#compare-metrics").inner_text().replace("\t", "\n").split("\n")]
    at = lines.index("speaker similarity to the reference")
    a_cell, b_cell = [x for x in lines[at + 1 :] if x][:2]
    assert a_cell == "–", lines  # slot A has no reference
    assert -1.0 <= float(b_cell) <= 1.0  # tiny random Qwen weights: a number, not a good one
