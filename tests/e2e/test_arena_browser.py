"""The blind Arena in Debian's Chromium, with packaged Kokoro voices and a tiny Qwen3-TTS voice in the pool:
before the vote nothing on the tab or in the event stream names a system or shows a figure; the vote
is refused before three seconds of each clip were heard; after it, the systems are revealed."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from test_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.slow

PAIRS = 3
SYSTEMS = ("kokoro:jm_kumo", "qwen-custom:Ryan")  # tests/conftest.py app_url's ARENA_SYSTEMS: every pair has both
# What would tell a listener which system spoke (engine, voice, back-end, device, weights) ...
WORDS = re.compile(
    r"kokoro|qwen|82m|0\.6b|1\.7b|\bonnx|torch|cuda|\bcpu\b|int8|weights|packaged|back-?end|jm_kumo|jf_alpha"
    r"|\bryan\b|vivian|\bhub\b|local folder|\bwer\b|\bmos\b|lufs|similarity|real-time|first audio|transcript",
    re.IGNORECASE,
)
# ... or how it performed (seconds, milliseconds, percentages, factors).
FIGURES = re.compile(r"\d+(\.\d+)?\s*(s|ms|sec|seconds|%|x)\b", re.IGNORECASE)
# Every body of Gradio's event stream as it arrives (the page reads it with fetch), and the id of every
# event the page started (so that events started before the Arena was used can be told apart).
CAPTURE_SSE = """(() => {
  window.__sse = [];
  window.__joins = [];
  const original = window.fetch;
  window.fetch = async (...args) => {
    const response = await original(...args);
    const url = String(args[0] && args[0].url || args[0]);
    if (url.includes('/queue/join')) {
      let fn = null;
      try { fn = JSON.parse(args[1].body).fn_index; } catch (e) {}
      response.clone().json().then(j => window.__joins.push([fn, j.event_id])).catch(() => {});
      return response;
    }
    if (!url.includes('/queue/data') || !response.body) return response;
    const [mine, theirs] = response.body.tee();
    (async () => {
      const reader = mine.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) { const {done, value} = await reader.read(); if (done) break; window.__sse.push(value); }
    })();
    return new Response(theirs, {status: response.status, statusText: response.statusText, headers: response.headers});
  };
})();"""
# The Arena tab's text, leaderboard left out (it names systems and their figures, not this pair's)
TAB_TEXT = """() => {
  const tab = document.querySelector('#arena-tab').cloneNode(true);
  tab.querySelector('#arena-board')?.remove();
  return tab.textContent;
}"""
TAB_HTML = """() => {
  const tab = document.querySelector('#arena-tab').cloneNode(true);
  tab.querySelector('#arena-board')?.remove();
  return tab.innerHTML;
}"""


def arena_events(app_url: str) -> set[int]:
    """The ids of the events a component of the Arena tab triggers (from the page's config)."""
    with urllib.request.urlopen(app_url + "config", timeout=30) as response:
        config = json.load(response)
    arena = {c["id"] for c in config["components"] if str(c.get("props", {}).get("elem_id", "")).startswith("arena-")}
    return {d["id"] for d in config["dependencies"] if any(target[0] in arena for target in d["targets"])}


def stream_messages(page, events: set[int]) -> list[dict]:
    """The event-stream messages of the Arena's events since the last call (and forget them)."""
    chunks, joined = page.evaluate(
        "() => { const got = [window.__sse, window.__joins]; window.__sse = []; window.__joins = []; return got; }"
    )
    joins = {event_id for fn_index, event_id in joined if fn_index in events}
    messages = []
    for line in "".join(chunks).splitlines():
        if line.startswith("data:"):
            try:
                message = json.loads(line[5:])
            except ValueError:
                continue
            if message.get("event_id") in joins:
                messages.append(message)
    return messages


def leaks(value, key: str = "") -> list[str]:
    """Strings in an event payload that name a system or show a figure (file paths and URLs: names only)."""
    if isinstance(value, dict):
        return [leak for k, v in value.items() for leak in leaks(v, k)]
    if isinstance(value, list):
        return [leak for v in value for leak in leaks(v, key)]
    if not isinstance(value, str):
        return []
    if key in ("path", "url", "orig_name"):
        return [value] if WORDS.search(value) else []
    return [value] if WORDS.search(value) or FIGURES.search(value) else []


def payload_leaks(messages: list[dict]) -> list[str]:
    """What the visitor's browser received: outputs, errors and notices (not Gradio's own queue timings)."""
    found = []
    for message in messages:
        output = message.get("output") or {}
        found += leaks(output.get("data")) + leaks(output.get("error"))
        if message.get("msg") == "log":
            found += leaks(message.get("log")) + leaks(message.get("title"))
        if message.get("msg") == "process_completed" and not message.get("success"):
            found += leaks(message.get("title")) + leaks(output)
    return found


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def open_arena(browser, app_url):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.add_init_script(CAPTURE_SSE)
    page.goto(app_url, wait_until="load", timeout=120_000)
    page.get_by_role("tab", name="Blind arena").click()
    page.locator("#arena-new").wait_for(timeout=120_000)
    page.locator("#arena-text textarea").fill("The birch canoe slid on the smooth planks.")
    return page


def force_vote(page, key: str = "a") -> None:
    """Click a vote button as a script would, disabled or not."""
    page.evaluate(f"() => {{ const b = document.querySelector('#arena-vote-{key}'); b.disabled = false; b.click(); }}")


def test_several_blind_pairs_name_nothing_before_the_vote_and_need_listening(browser, app_url, artifacts):
    events = arena_events(app_url)
    assert len(events) >= 4  # new pair, the votes, the playback reports
    for number in range(PAIRS):
        # a fresh page per pair: Gradio 6.17.3's streamed gr.Audio never plays a second run (FACTS.md)
        page = open_arena(browser, app_url)
        try:
            page.locator("#arena-new").click()
            page.locator("#arena-reveal", has_text="which one sounds better").wait_for(timeout=300_000)
            for key in ("a", "b", "tie", "both_bad"):
                assert page.locator(f"#arena-vote-{key}").is_disabled()  # B has not been played
            force_vote(page, "both_bad")  # as a script would: the server refuses
            page.get_by_text("Listen to at least three seconds").first.wait_for(timeout=30_000)
            assert "Vote stored" not in page.locator("#arena-reveal").inner_text()
            page.evaluate("() => document.querySelector('#arena-b-audio audio').play().catch(() => {})")
            page.wait_for_function(
                "() => !document.querySelector('#arena-vote-tie').disabled", timeout=120_000
            )  # both clips heard: the vote opens
            text, html = page.evaluate(TAB_TEXT), page.evaluate(TAB_HTML)
            messages = stream_messages(page, events)
            page.screenshot(path=str(artifacts / f"arena_pair_{number}.png"), full_page=True)
            assert any(m.get("msg") == "process_generating" for m in messages), "no event payloads were captured"
            assert not WORDS.search(text) and not FIGURES.search(text), text
            assert not WORDS.search(html), WORDS.findall(html)
            assert not payload_leaks(messages), payload_leaks(messages)
            assert "A is ready." in page.locator("#arena-a-status").inner_text()
            page.locator(f"#arena-vote-{'a' if number % 2 else 'b'}").click()
            page.locator("#arena-reveal", has_text="Vote stored").wait_for(timeout=30_000)
            reveal = page.locator("#arena-reveal").inner_text()
            shown = {s for s in SYSTEMS if s in reveal}
            assert len(shown) == 2, reveal
            page.locator("#arena-metrics", has_text="predicted MOS").wait_for(timeout=30_000)
            assert "time to first audio" in page.locator("#arena-a-status").inner_text()  # figures after the vote
            for key in ("a", "b"):
                assert page.locator(f"#arena-vote-{key}").is_disabled()  # one vote per pair
            force_vote(page, "b")
            page.get_by_text("already voted on this pair").first.wait_for(timeout=30_000)
            board = page.locator("#arena-leaderboard").inner_text()
            assert all(s in board for s in shown) and "preliminary" in board
            assert page.locator("text=Traceback").count() == 0
        finally:
            page.screenshot(path=str(artifacts / f"arena_pair_{number}_end.png"), full_page=True)
            page.close()
