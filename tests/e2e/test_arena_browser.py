"""The blind Arena in Debian's Chromium, with packaged Kokoro voices and a tiny Qwen3-TTS voice in the pool,
three pairs on one page: before the vote nothing on the tab or in the event stream names a system or shows a
figure (the players' messages carry audio only); both slots of every pair play, B once A has ended; the vote
is refused before three seconds of each clip were heard and opens once they were; after it, the systems are
revealed with each clip's figures next to the outcome and a second vote on the pair is refused. A prompt
category drawn from the picker fills the text; each vote carries a reason tag, counted on the board, and a
category board holds only its category's votes."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from test_player_browser import TEXTS, assert_audible_run, stats, wait_run_ended

from engines.qwen.engine import FRAMES_PER_SECOND, token_cap
from evaluation.prompts import prompts

pytestmark = pytest.mark.slow

MOS = re.compile(r"\d\.\d\d")
# the reveal table's "predicted MOS" cell of each clip
MOS_CELLS = """() => {
  const table = document.querySelector('#arena-reveal table');
  if (!table) return [];
  const heads = [...table.querySelectorAll('th')].map(h => h.innerText.trim());
  const at = heads.indexOf('predicted MOS');
  return at < 0 ? [] : [...table.querySelectorAll('tbody tr')].map(r => (r.children[at] || {}).innerText || '');
}"""
SYSTEMS = ("kokoro:jm_kumo", "qwen-custom:Ryan")  # tests/conftest.py app_url's ARENA_SYSTEMS: every pair has both
MIN_LISTEN_S, END_SLACK_S = 3.0, 0.25  # evaluation/ballot.py: what the vote needs of each clip
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
# The stream so far, up to its last complete line (the rest stays for the next call), and the joins
TAKE_SSE = """() => {
  const text = window.__sse.join('');
  const cut = text.lastIndexOf('\\n') + 1;
  window.__sse = [text.slice(cut)];
  const joins = window.__joins;
  window.__joins = [];
  return [text.slice(0, cut), joins];
}"""
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
# The page's audio clock held (nothing plays, so nothing can be reported heard) or let run
HOLD = "async () => { const c = window.ttsAudioContext(); await c.resume(); await c.suspend(); return c.state; }"
PLAY = "async () => { const c = window.ttsAudioContext(); await c.resume(); return c.state; }"
VOTE_OPEN = "() => !document.querySelector('#arena-vote-tie').disabled"


def arena_events(app_url: str) -> set[int]:
    """The ids of the events a component of the Arena tab triggers (from the page's config)."""
    with urllib.request.urlopen(app_url + "config", timeout=30) as response:
        config = json.load(response)
    arena = {c["id"] for c in config["components"] if str(c.get("props", {}).get("elem_id", "")).startswith("arena-")}
    return {d["id"] for d in config["dependencies"] if any(target[0] in arena for target in d["targets"])}


def stream_messages(page, events: set[int], joins: set) -> list[dict]:
    """The event-stream messages of the Arena's events since the last call (`joins` gathers their ids)."""
    text, joined = page.evaluate(TAKE_SSE)
    joins |= {event_id for fn_index, event_id in joined if fn_index in events}
    messages = []
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                message = json.loads(line[5:])
            except ValueError:
                continue
            if message.get("event_id") in joins:
                messages.append(message)
    return messages


def player_message(value: str) -> dict | None:
    """A player's message (ui/player.py: JSON with "k" start, piece or end), or None for any other string."""
    try:
        message = json.loads(value)
    except ValueError:
        return None
    return message if isinstance(message, dict) and message.get("k") in ("start", "piece", "end") else None


def leaks(value, key: str = "") -> list[str]:
    """Strings in an event payload that name a system or show a figure (file paths and URLs: names only;
    a player's message: any figure it carries, and its fields but the audio)."""
    if isinstance(value, dict):
        return [leak for k, v in value.items() for leak in leaks(v, k)]
    if isinstance(value, list):
        return [leak for v in value for leak in leaks(v, key)]
    if not isinstance(value, str):
        return []
    if key in ("path", "url", "orig_name"):
        return [value] if WORDS.search(value) else []
    message = player_message(value)
    if message is not None:
        figures = [f"{name}: {message[name]}" for name in ("ttfa", "ear", "stats", "system") if name in message]
        return figures + leaks({k: v for k, v in message.items() if k != "pcm"})
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


def player_messages(messages: list[dict]) -> list[dict]:
    """The players' messages among the payloads (whole values or Gradio's diffs of them)."""

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, list | tuple):
            for v in value:
                yield from strings(v)

    return [
        m
        for message in messages
        for s in strings((message.get("output") or {}).get("data"))
        if (m := player_message(s))
    ]


def force_vote(page, key: str = "a") -> None:
    """Click a vote button as a script would, disabled or not (and leave it as it was)."""
    page.evaluate(
        f"() => {{ const b = document.querySelector('#arena-vote-{key}'); const was = b.disabled;"
        " b.disabled = false; b.click(); b.disabled = was; }"
    )


def pick(page, elem_id: str, option: str) -> None:
    """Choose a dropdown's option as a visitor does."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    assert page.locator(f"#{elem_id} input").input_value() == option


REASONS = ("pacing", "naturalness", "artefacts")  # one tag per pair, ticked before its vote


def test_three_blind_pairs_play_name_nothing_before_the_vote_and_need_listening(browser, app_url, artifacts):
    events = arena_events(app_url)
    assert len(events) >= 4  # new pair, the votes, the playback reports
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.add_init_script(CAPTURE_SSE)
    page.goto(app_url, wait_until="load", timeout=120_000)
    page.get_by_role("tab", name="Blind arena").click()
    page.locator("#arena-new").wait_for(timeout=120_000)
    page.wait_for_function("() => window.ttsPlayers && window.ttsPlayers['arena-b-player']", timeout=60_000)
    runs = {"A": [], "B": []}
    measured_mos = False
    durations = {s: [] for s in SYSTEMS}
    joins: set = set()
    names = {p.text for p in prompts("names")}
    try:
        pick(page, "arena-category", "Names")  # a built-in prompt of the category fills the text
        page.wait_for_function(
            "(names) => names.includes(document.querySelector('#arena-text textarea').value)", arg=sorted(names)
        )
        page.locator("#arena-prompt-kind", has_text="Names · English").wait_for(timeout=30_000)
        drawn = page.locator("#arena-text textarea").input_value()
        page.locator("#arena-draw").click()  # another one, not the same
        page.wait_for_function(
            "([names, drawn]) => { const v = document.querySelector('#arena-text textarea').value;"
            " return names.includes(v) && v !== drawn; }",
            arg=[sorted(names), drawn],
        )
        pick(page, "arena-board-prompts", "Typed texts")  # typed texts have a board of their own
        for number, text in enumerate(TEXTS):  # longer and longer texts, one page: each pair plays afresh
            stream_messages(page, events, joins)  # what the previous pair sent after its vote: not looked at
            page.locator("#arena-text textarea").fill(text)
            page.locator("#arena-new").click()
            assert page.evaluate(HOLD) == "suspended"  # nothing is heard until the early vote was tried
            page.locator("#arena-reveal", has_text="which one sounds better").wait_for(timeout=300_000)
            page.locator("#arena-prompt-kind", has_text="Short · English").wait_for(timeout=30_000)  # typed: classified
            for key in ("a", "b", "tie", "both_bad"):
                assert page.locator(f"#arena-vote-{key}").is_disabled()  # nothing has been heard
            force_vote(page, "both_bad")  # as a script would: the server refuses
            page.locator("#arena-reveal", has_text="Listen to at least three seconds").wait_for(timeout=30_000)
            assert page.evaluate(PLAY) == "running"
            page.wait_for_function(VOTE_OPEN, timeout=240_000)  # both clips heard: the vote opens
            played = {name: stats(page, f"arena-{name.lower()}-player")[-1] for name in "AB"}
            for name in "AB":  # at least three seconds of each (or all of a shorter one), B after A
                run = wait_run_ended(page, f"arena-{name.lower()}-player", len(runs[name]) + 1, timeout=240_000)
                assert_audible_run(run, runs[name])
                runs[name].append(run)
                assert played[name]["played_s"] >= min(MIN_LISTEN_S, run["scheduled_s"] - END_SLACK_S), played
            a, b = runs["A"][-1], runs["B"][-1]
            assert b["start_ctx"] >= a["end_ctx"] and b["t0_ms"] >= a["end_at_ms"], (a, b)
            text_now, html = page.evaluate(TAB_TEXT), page.evaluate(TAB_HTML)
            messages = stream_messages(page, events, joins)
            page.screenshot(path=str(artifacts / f"arena_pair_{number}.png"), full_page=True)
            sent = player_messages(messages)
            assert {m["k"] for m in sent} == {"start", "piece", "end"}, "no player messages were captured"
            assert all(set(m) <= {"k", "seq", "run", "sr", "pcm"} for m in sent), sent  # audio only, no ttfa
            assert not WORDS.search(text_now) and not FIGURES.search(text_now), text_now
            assert not WORDS.search(html), WORDS.findall(html)
            assert not payload_leaks(messages), payload_leaks(messages)
            lines = page.locator("#arena-tab .tts-player").all_inner_texts()
            assert len(lines) == 2 and not any("first audio" in line for line in lines), lines
            assert "A is ready." in page.locator("#arena-a-status").inner_text()
            assert page.locator("#arena-reasons input:checked").count() == 0  # the last pair's tag is cleared
            page.locator("#arena-reasons").get_by_text(REASONS[number], exact=True).click()
            page.locator(f"#arena-vote-{'a' if number % 2 else 'b'}").click()
            page.locator("#arena-reveal", has_text="Vote stored").wait_for(timeout=30_000)
            reveal = page.locator("#arena-reveal").inner_text()
            assert f"Why: {REASONS[number]}." in reveal, reveal
            outcome = page.locator("#arena-reveal table").inner_text()  # each clip's figures by the outcome
            cells = page.evaluate(MOS_CELLS)  # whether this vote had both clips' MOS, and they differed
            numbers = len(cells) == 2 and all(MOS.match(c.strip()) for c in cells)
            measured_mos = measured_mos or (numbers and any("better" in c for c in cells))
            for column in ("error rate", "predicted MOS", "duration", "first audio", "chosen", "not chosen"):
                assert column in outcome, outcome
            assert re.search(r"\d+\.\d s", outcome), outcome
            page.screenshot(path=str(artifacts / f"arena_vote_{number}.png"), full_page=True)
            shown = {s for s in SYSTEMS if s in reveal}
            assert len(shown) == 2, reveal
            for name in "AB":  # which system spoke in each slot, for the durations below
                system = re.search(rf"{name} was (\S+)", reveal).group(1).strip("*,.")
                durations[system].append(runs[name][-1]["scheduled_s"])
            assert page.locator("#arena-pair table:visible").count() == 1  # the figures, in the reveal's table only
            assert "time to first audio" in page.locator("#arena-a-status").inner_text()  # figures after the vote
            for key in ("a", "b"):
                assert page.locator(f"#arena-vote-{key}").is_disabled()  # one vote per pair
            force_vote(page, "b")
            page.locator("#arena-reveal", has_text="already voted on this pair").wait_for(timeout=30_000)
            board = page.locator("#arena-leaderboard").inner_text()
            assert all(s in board for s in shown) and "preliminary" in board
            assert f"{REASONS[number]} 1" in board  # the tag, counted for the winner and the loser
            agreed = page.locator("#arena-agreement").inner_text()
            assert "lower error rate" in agreed
            # predicted MOS is measured in the background as each clip ends, and a vote is stored with the
            # figures it had when cast: on a busy machine both clips' MOS showed in the reveal while the
            # stored vote had none (the board then has no MOS row), so only a row, once there, is checked
            if "higher predicted MOS" in agreed:
                assert measured_mos, (cells, agreed)
            assert page.locator("text=Traceback").count() == 0
        pick(page, "arena-board-category", "Short")  # the board of the category the typed texts fell into
        page.locator("#arena-board-name", has_text="typed texts, category short · 3 votes").wait_for(timeout=30_000)
        page.locator("#arena-leaderboard", has_text="category short").wait_for(timeout=30_000)
        pick(page, "arena-board-category", "Names")  # no vote was cast on a names prompt
        page.locator("#arena-board-name", has_text="category names · 0 votes").wait_for(timeout=30_000)
        page.wait_for_function("() => !document.querySelector('#arena-leaderboard').innerText.includes('jm_kumo')")
        pick(page, "arena-board-prompts", "Built-in prompts (the main board)")  # typed texts never count there
        pick(page, "arena-board-category", "Short")
        page.locator("#arena-board-name", has_text="category short · 0 votes counted").wait_for(timeout=30_000)
    finally:
        page.screenshot(path=str(artifacts / "arena_end.png"), full_page=True)
        page.close()
    # Longer texts, longer clips: each pair played its own text. Kokoro's length follows the text; the tiny
    # random-weight Qwen stops wherever its sampled end token falls, so only its bound is checked: never
    # longer than `engines.qwen.engine.token_cap` allows for the text it was given.
    kokoro = durations["kokoro:jm_kumo"]
    assert kokoro == sorted(kokoro) and len(set(kokoro)) == len(TEXTS), kokoro
    for text, seconds in zip(TEXTS, durations["qwen-custom:Ryan"], strict=True):
        assert 0 < seconds <= token_cap(text, None) / FRAMES_PER_SECOND + 0.5, (text, seconds)
