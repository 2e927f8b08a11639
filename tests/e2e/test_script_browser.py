"""The Script tab in Debian's Chromium: a script with three speakers plays line by line in the page's
player as the lines are rendered, in order, the line being heard highlighted with its speaker; the take
it leaves is as long as what was played."""

from __future__ import annotations

import re

import pytest
from conftest import app_page
from test_readalong_browser import FOLLOW, words_of

from engines.script import NARRATOR

pytestmark = pytest.mark.slow

SCRIPT = (
    "Ann: Welcome back to the show.\n"
    "Bob: Thanks, Ann. It is good to be here.\n"
    "The studio lights dimmed as they began.\n"
    "Ann: Let us begin with the news."
)
SPEAKERS = ["Ann", "Bob", NARRATOR, "Ann"]


@pytest.fixture(scope="module")
def page(browser, app_url):
    return app_page(browser, app_url, height=1400)


def test_a_three_speaker_script_plays_line_by_line_in_order_with_the_speaker_shown(page, artifacts):
    page.get_by_role("tab", name="Script", exact=True).click()
    page.locator("#script-text textarea").fill(SCRIPT)
    page.wait_for_function("() => window.ttsPlayers && window.ttsPlayers['script-player']", timeout=60_000)
    page.locator("#script-render").click()
    page.wait_for_function(
        "() => { const p = window.ttsPlayers['script-player']; return p.run && p.run.segments.length; }",
        timeout=120_000,
    )
    first_heard = page.locator("#script-status").inner_text()  # the first line plays while the rest renders
    seen = page.evaluate(FOLLOW, ["script-player", True])  # the highlighted line, sampled while it plays
    status = page.locator("#script-status", has_text="lines,")
    try:
        page.wait_for_function("() => window.ttsPlayers['script-player'].run.ended", timeout=180_000)
        status.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=str(artifacts / "script_played.png"), full_page=True)
    run = page.evaluate("() => window.ttsPlayers['script-player'].allStats()")[-1]
    times = page.evaluate("() => window.ttsPlayers['script-player'].run.words")
    assert "rendering line" in first_heard, first_heard
    # the highlight follows the lines in order (a sample may miss a line when the page's thread is held)
    assert seen == sorted(set(seen)) and len(seen) >= 2, (seen, run, times)
    starts = [w["start"] for w in times]
    assert starts == sorted(starts) and all(w["end"] <= run["played_s"] + 0.05 for w in times), times
    shown = [w["text"] for w in words_of(page, "script-player")]
    assert [line.split(":", 1)[0] for line in shown] == SPEAKERS, shown
    assert shown[1] == "Bob: Thanks, Ann. It is good to be here."
    assert run["samples"] > 0 and run["rms"] > 1e-3 and run["disorder"] == 0, run
    assert run["played_s"] == pytest.approx(run["scheduled_s"], abs=0.05), run  # all of it played
    take_s = float(re.search(r"(\d+(?:\.\d+)?) s of audio", status.inner_text()).group(1))
    assert run["played_s"] == pytest.approx(take_s, abs=0.1), (run, take_s)  # what played is the take
    table = page.locator("#script-table").inner_text()
    assert all(speaker in table for speaker in set(SPEAKERS)) and "Welcome back to the show." in table
    assert page.locator("text=Traceback").count() == 0
