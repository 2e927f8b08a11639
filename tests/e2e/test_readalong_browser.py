"""Read-along in Debian's Chromium: a Kokoro clip with "Check the words" on (the real tab, the real
speech recogniser) shows its words under the player, the highlight moves from word to word on replay,
the .srt/.vtt downloads appear and parse; pieces fed in the page with the model's word times highlight
live, and a word the audio never says ends marked dropped (a substituted one: titled with what was heard)."""

from __future__ import annotations

import re
import urllib.request
from urllib.parse import urljoin

import pytest
from conftest import app_page

pytestmark = pytest.mark.slow

TEXT = "The birch canoe slid on the smooth planks."
SRT_CUE = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+)\n")
VTT_CUE = re.compile(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)\n(.+)\n")

# Samples the highlighted word's index every 20 ms while the player plays (live) or replays; the
# sequence of different indices seen, in order.
FOLLOW = """async ([id, live]) => {
  const p = window.ttsPlayers[id];
  const playing = () => live ? (p.run && !p.run.closed) : !!p.replaying;
  const seen = [];
  const until = performance.now() + 60000;
  while (playing() && performance.now() < until) {
    const now = document.querySelector(`#${id} .tts-word-now`);
    if (now && seen[seen.length - 1] !== Number(now.dataset.i)) seen.push(Number(now.dataset.i));
    await new Promise((r) => setTimeout(r, 20));
  }
  return seen;
}"""


@pytest.fixture(scope="module")
def page(browser, app_url):
    return app_page(browser, app_url, height=1400)


def words_of(page, elem_id: str) -> list[dict]:
    """The player's word spans as shown: text, classes, title."""
    return page.evaluate(
        """id => [...document.querySelectorAll(`#${id} .tts-words .tts-word`)].map(s => (
             {text: s.textContent, classes: [...s.classList], title: s.getAttribute('title')}))""",
        elem_id,
    )


def fetch(app_url: str, href: str) -> str:
    with urllib.request.urlopen(urljoin(app_url, href), timeout=30) as answer:
        return answer.read().decode("utf-8")


def test_checked_kokoro_clip_highlights_word_by_word_on_replay_and_offers_captions(page, app_url, artifacts):
    page.get_by_role("tab", name="Kokoro", exact=True).click()
    page.locator("#kokoro-text textarea").fill(TEXT)
    page.locator("#kokoro-check input").check()
    page.locator("#kokoro-generate").click()
    try:
        page.wait_for_function(
            "() => { const p = window.ttsPlayers['kokoro-player']; return p && p.run && p.run.ended"
            " && p.run.wordsFinal; }",
            timeout=300_000,
        )
        page.locator("#kokoro-captions a").first.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=str(artifacts / "readalong_kokoro.png"), full_page=True)
    shown = words_of(page, "kokoro-player")
    assert [w["text"] for w in shown] == TEXT.rstrip(".").split()
    assert page.evaluate("() => document.querySelector('#kokoro-player .tts-words').dataset.source") == "asr"
    status = page.locator("#kokoro-status").inner_text()
    assert "Word error rate" in status and "speech recogniser's alignment" in status

    # the downloads: one .srt and one .vtt from the alignment, whose cues hold the text's words in order
    links = {a.get_attribute("href") for a in page.locator("#kokoro-captions a").all()} - {None}
    srt_link = next(h for h in links if h.endswith(".asr.srt"))
    vtt_link = next(h for h in links if h.endswith(".asr.vtt"))
    cues = SRT_CUE.findall(fetch(app_url, srt_link))
    assert cues and [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    assert all(start <= end for _, start, end, _ in cues)
    spoken = " ".join(c[3] for c in cues).lower().split()
    assert spoken and set(spoken) <= {w.lower() for w in TEXT.rstrip(".").split()}
    vtt = fetch(app_url, vtt_link)
    assert vtt.startswith("WEBVTT") and len(VTT_CUE.findall(vtt)) == len(cues)

    # replay: the highlight follows the audio across the words, forward only
    page.locator("#kokoro-player .tts-replay").click()
    seen = page.evaluate(FOLLOW, ["kokoro-player", False])
    assert len(set(seen)) >= 2, seen
    assert seen == sorted(seen), seen
    assert page.locator("#kokoro-player .tts-word-now").count() == 0  # cleared once the replay ended


def test_fed_pieces_highlight_live_and_a_word_never_said_ends_marked_dropped(page, artifacts):
    page.get_by_role("tab", name="Kokoro", exact=True).click()
    page.wait_for_function("() => window.ttsPlayers && window.ttsPlayers['kokoro-player']", timeout=60_000)
    # what a script (the in-browser renderer) feeds: float samples and the model's words, in two pieces
    page.evaluate(
        """() => {
          const p = window.ttsPlayers['kokoro-player'];
          const tone = (s) => Float32Array.from({length: Math.round(24000 * s)}, (_, i) => 0.1 * Math.sin(i / 8));
          p.feed({k: 'start', run: 'crafted'});
          p.feed({k: 'piece', run: 'crafted', sr: 24000, pcm: tone(1.0),
                  words: [{word: 'one', start: 0.1, end: 0.4}, {word: 'two', start: 0.5, end: 0.9}]});
          p.feed({k: 'piece', run: 'crafted', sr: 24000, pcm: tone(0.8),
                  words: [{word: 'three', start: 1.1, end: 1.6}]});
          p.feed({k: 'end'});
        }"""
    )
    seen = page.evaluate(FOLLOW, ["kokoro-player", True])
    assert len(set(seen)) >= 2 and seen == sorted(seen), seen  # live, from the pieces' word times
    assert [w["text"] for w in words_of(page, "kokoro-player")] == ["one", "two", "three"]
    # after the audio, the alignment: "zebra" was never said, "two" was heard as "too"
    page.evaluate(
        """() => window.ttsPlayers['kokoro-player'].feed(JSON.stringify({k: 'words', run: 'crafted', source: 'asr',
          words: [{word: 'one', start: 0.1, end: 0.4, status: 'ok', heard: 'one'},
                  {word: 'zebra', start: null, end: null, status: 'dropped', heard: null},
                  {word: 'two', start: 0.5, end: 0.9, status: 'substituted', heard: 'too'},
                  {word: 'three', start: 1.1, end: 1.6, status: 'ok', heard: 'three'}]}))"""
    )
    page.wait_for_function("() => window.ttsPlayers['kokoro-player'].run.ended", timeout=30_000)
    page.screenshot(path=str(artifacts / "readalong_marked.png"), full_page=True)
    shown = {w["text"]: w for w in words_of(page, "kokoro-player")}
    assert list(shown) == ["one", "zebra", "two", "three"]
    assert "tts-word-dropped" in shown["zebra"]["classes"]
    assert "tts-word-substituted" in shown["two"]["classes"] and shown["two"]["title"] == "too"
    assert not {"tts-word-dropped", "tts-word-substituted"} & set(shown["one"]["classes"] + shown["three"]["classes"])
    # replay skips the dropped word: it has no time
    page.locator("#kokoro-player .tts-replay").click()
    seen = page.evaluate(FOLLOW, ["kokoro-player", False])
    assert 1 not in seen and len(set(seen)) >= 2, seen


def test_qwen_preset_check_the_words_reports_an_error_rate_and_marks_its_words(page, artifacts):
    page.get_by_role("tab", name="Qwen3-TTS").click()
    page.get_by_role("tab", name="Preset speakers").click()
    page.locator("#qwen-preset-text textarea").fill("Hello there, my friend.")
    page.locator("#qwen-preset-check input").check()
    page.locator("#qwen-preset-generate").click()
    try:
        page.wait_for_function(
            "() => { const p = window.ttsPlayers['qwen-preset-player']; return p && p.run && p.run.ended; }",
            timeout=300_000,
        )
        page.locator("#qwen-preset-status", has_text="error rate").wait_for(timeout=120_000)
    finally:
        page.screenshot(path=str(artifacts / "readalong_qwen.png"), full_page=True)
    # the tiny random checkpoint makes noise: whatever was heard, each word of the text is shown and judged
    shown = words_of(page, "qwen-preset-player")
    assert [w["text"] for w in shown] == ["Hello", "there", "my", "friend"]


def test_compare_players_get_their_slots_words_and_replay_them(page, artifacts):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-text textarea").fill(TEXT)
    page.locator("#compare-go").click()  # slot A: Kokoro, slot B: the tiny Qwen3-TTS (the defaults)
    try:
        page.wait_for_function(
            """() => ['compare-a-player', 'compare-b-player'].every(id => {
                 const p = window.ttsPlayers[id]; return p && p.run && p.run.ended && p.run.wordsFinal; })""",
            timeout=400_000,
        )
    finally:
        page.screenshot(path=str(artifacts / "readalong_compare.png"), full_page=True)
    for elem_id in ("compare-a-player", "compare-b-player"):
        assert [w["text"] for w in words_of(page, elem_id)] == TEXT.rstrip(".").split()
    page.locator("#compare-a-player .tts-replay").click()
    seen = page.evaluate(FOLLOW, ["compare-a-player", False])
    assert len(set(seen)) >= 2 and seen == sorted(seen), seen
