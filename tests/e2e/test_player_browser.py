"""The page's own player (ui/player.js) in Debian's Chromium: every yield reaches it in order, and on
every streamed player of the app three runs in a row each become audible with that run's audio; Stop
silences at once. (The Arena's players, three blind pairs with the vote: test_arena_browser.py.)"""

from __future__ import annotations

import io
import re
import threading
import time
import urllib.request
from urllib.parse import urljoin

import pytest
import soundfile as sf
from conftest import _free_port, app_page

pytestmark = pytest.mark.slow

TEXTS = [
    "Hello there.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background. It is easy to tell the depth of a well.",
]
LONG = " ".join(["It is easy to tell the depth of a well. Four hours of steady work faced us."] * 4)


@pytest.fixture(scope="module")
def page(browser, app_url):
    return app_page(browser, app_url, height=1400)


def stats(page, elem_id: str) -> list[dict]:
    return page.evaluate("id => window.ttsPlayers[id] ? window.ttsPlayers[id].allStats() : []", elem_id)


def wait_run_ended(page, elem_id: str, count: int, timeout: int = 180_000) -> dict:
    """The player's `count`-th run (1-based) once it has played to its end."""
    try:
        page.wait_for_function(
            "([id, n]) => { const p = window.ttsPlayers[id]; return p && p.runs.length >= n && p.runs[n - 1].ended; }",
            arg=[elem_id, count],
            timeout=timeout,
        )
    except Exception:
        print(elem_id, stats(page, elem_id))  # what the player did instead
        raise
    return stats(page, elem_id)[count - 1]


def frames_of(page, app_url: str, link_selector: str, previous: str | None) -> tuple[int, str]:
    """The frame count of the clip the page offers for download (a new one, not `previous`)."""
    link = page.locator(link_selector)
    link.wait_for(timeout=60_000)
    try:
        page.wait_for_function(
            "([sel, old]) => { const a = document.querySelector(sel); return a && a.getAttribute('href') !== old; }",
            arg=[link_selector, previous],
            timeout=120_000,
        )
    except Exception:  # what the page showed instead: the status line and the link
        print(page.evaluate("s => [...document.querySelectorAll(s)].map(a => a.outerHTML)", link_selector))
        print(page.locator(".prose:visible").all_inner_texts()[-6:])
        raise
    href = link.get_attribute("href")
    with urllib.request.urlopen(urljoin(app_url, href), timeout=30) as answer:
        return sf.info(io.BytesIO(answer.read())).frames, href


def assert_audible_run(run: dict, runs_before: list[dict]) -> None:
    assert run["ear_ttfa_s"] is not None and run["ear_ttfa_s"] >= 0, run  # it became audible
    assert run["samples"] > 0 and run["rms"] > 1e-3, run  # and was not silence
    assert run["disorder"] == 0, run  # (stalls depend on the machine's load: the bench counts them)
    assert run["played_s"] == pytest.approx(run["scheduled_s"], abs=0.05), run  # all of it played
    assert run["run"] not in {r["run"] for r in runs_before}  # a new run, not a replay


# --- the transport, on a page of its own -------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_page(browser):
    """A page with only a player, fed 80 tiny pieces back to back (each a different constant value)."""
    import gradio as gr
    import numpy as np

    from ui.player import StreamPlayer

    def pieces(count):
        yield StreamPlayer.start()
        for i in range(int(count)):
            yield StreamPlayer.piece(np.full(120, i + 1, np.int16))
        yield StreamPlayer.end()

    with gr.Blocks() as demo:
        count = gr.Number(80, elem_id="count")
        go = gr.Button("Go", elem_id="go")
        player = StreamPlayer("bare-player", "Bare")
        go.click(pieces, count, player.output)
        player.bind(go)
    port = _free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=60_000)
    page.wait_for_function("() => window.ttsPlayers && window.ttsPlayers['bare-player']", timeout=60_000)
    yield page
    page.close()
    threading.Thread(target=demo.close, daemon=True).start()


def test_every_yield_reaches_the_player_once_and_in_order(bare_page):
    for n in (1, 2, 3):
        bare_page.locator("#go").click()
        wait_run_ended(bare_page, "bare-player", n, timeout=60_000)
        firsts = bare_page.evaluate(
            "n => window.ttsPlayers['bare-player'].runs[n - 1].buffers.map(b => Math.round(b.getChannelData(0)[0] * 32768))",  # noqa: E501
            n,
        )
        assert firsts == list(range(1, 81))
        run = stats(bare_page, "bare-player")[n - 1]
        assert run["samples"] == 80 * 120 and run["disorder"] == 0


# --- every streamed player of the app ----------------------------------------------------------------


def ids(prefix: str, *names: str) -> list[str]:
    return [f"#{prefix}-{name}" for name in names]


def three_runs(page, app_url, elem_id, text_box, go, download) -> list[dict]:
    runs, href = [], None
    for text in TEXTS:
        page.locator(f"{text_box} textarea").fill(text)
        page.locator(go).click()
        run = wait_run_ended(page, elem_id, len(runs) + 1)
        frames, href = frames_of(page, app_url, f"{download} a", href)
        assert_audible_run(run, runs)
        assert abs(run["samples"] - frames) <= 1, (run, frames)  # this run's clip, all of it
        runs.append(run)
    return runs


def test_kokoro_plays_three_runs_in_a_row(page, app_url, artifacts):
    try:
        three_runs(page, app_url, "kokoro-player", "#kokoro-text", "#kokoro-generate", "#kokoro-download")
    finally:
        page.screenshot(path=str(artifacts / "player_kokoro.png"), full_page=True)
    line = page.locator("#kokoro-player .tts-player").inner_text()
    assert re.search(r"heard \d+\.\d\d s after your click", line), line  # the ear figure, once
    status = page.locator("#kokoro-status").inner_text()  # the server's figure, once
    assert re.search(r"time to first audio \d+\.\d\d s on the server", status), status
    assert "on the server" not in line and "after your click" not in status


def test_stop_silences_the_kokoro_player_at_once(page, artifacts):
    page.get_by_role("tab", name="Kokoro", exact=True).click()
    page.locator("#kokoro-text textarea").fill(LONG)
    before = len(stats(page, "kokoro-player"))
    page.locator("#kokoro-generate").click()
    page.wait_for_function(
        "n => { const p = window.ttsPlayers['kokoro-player']; return p.runs.length > n && p.playedSeconds() > 0.3; }",
        arg=before,
        timeout=120_000,
    )
    # Stop ends the visitor's run at once (`ui.stopping`: no Gradio cancel to wait for), so the next
    # Generate is taken right after it
    page.locator("#kokoro-stop").click()
    page.wait_for_function("() => window.ttsPlayers['kokoro-player'].run.stopped", timeout=2_000)
    played = page.evaluate("() => window.ttsPlayers['kokoro-player'].playedSeconds()")
    page.wait_for_timeout(700)
    assert page.evaluate("() => window.ttsPlayers['kokoro-player'].playedSeconds()") == played  # no more sound
    assert page.evaluate("() => window.ttsPlayers['kokoro-player'].run.sources.size") == 0
    page.locator("#kokoro-status", has_text="Stopped.").wait_for(timeout=10_000)
    # and the next run plays
    page.locator("#kokoro-text textarea").fill(TEXTS[0])
    page.locator("#kokoro-generate").click()
    try:
        run = wait_run_ended(page, "kokoro-player", before + 2)
    finally:
        page.screenshot(path=str(artifacts / "player_kokoro_stop.png"), full_page=True)
    assert_audible_run(run, stats(page, "kokoro-player")[:-1])


def test_qwen_preset_plays_three_runs_in_a_row(page, app_url, artifacts):
    page.get_by_role("tab", name="Qwen3-TTS").click()
    page.get_by_role("tab", name="Preset speakers").click()
    try:
        three_runs(page, app_url, "qwen-preset-player", *ids("qwen-preset", "text", "generate", "download"))
    finally:
        page.screenshot(path=str(artifacts / "player_qwen_preset.png"), full_page=True)


def test_qwen_clone_plays_three_runs_in_a_row(page, app_url, artifacts, tmp_path):
    from test_qwen import wav_bytes

    reference = tmp_path / "reference.wav"
    reference.write_bytes(wav_bytes(3.0))
    page.get_by_role("tab", name="Qwen3-TTS").click()
    page.get_by_role("tab", name="Voice cloning").click()
    page.locator("#qwen-ref input[type=file]").set_input_files(str(reference))
    page.locator("#qwen-ref-notice", has_text="cloned").or_(
        page.locator("#qwen-ref-notice", has_text="Transcribed")
    ).wait_for(timeout=60_000)
    page.locator("#qwen-ref-text textarea").fill("This is the reference transcript.")
    try:
        three_runs(page, app_url, "qwen-clone-player", *ids("qwen-clone", "text", "generate", "download"))
    finally:
        page.screenshot(path=str(artifacts / "player_qwen_clone.png"), full_page=True)


def table_row(page, table: str, label: str) -> list[str]:
    cells = [x.strip() for x in page.locator(table).inner_text().replace("\t", "\n").split("\n")]
    at = cells.index(label)
    return [x for x in cells[at + 1 :] if x][:2]


def wait_for_table(page, durations: list[float], timeout_s: float = 120) -> dict[str, list[str]]:
    """The Compare table's rows once it shows this pair (its durations) with both ear figures."""
    labels = ("duration (s)", "first audio in your browser (s)")
    deadline = time.monotonic() + timeout_s
    while True:
        rows = {}
        try:
            rows = {label: table_row(page, "#compare-metrics", label) for label in labels}
            shown = [float(x) for x in rows["duration (s)"]]
            if shown == pytest.approx(durations, abs=0.02) and "–" not in rows[labels[1]]:
                return rows
        except ValueError:  # not there yet
            pass
        assert time.monotonic() < deadline, (rows, durations)
        page.wait_for_timeout(500)


def test_compare_plays_a_then_b_three_times_and_reports_the_ear(page, artifacts):
    page.get_by_role("tab", name="Compare").click()
    choices = {"compare-a-voice": "jm_kumo", "compare-b-engine": "Kokoro-82M", "compare-b-voice": "jf_alpha"}
    for elem_id, option in choices.items():
        page.locator(f"#{elem_id} input").click()
        page.get_by_role("option", name=option).first.click()
    runs = {"A": [], "B": []}
    try:
        for text in TEXTS:
            page.locator("#compare-text textarea").fill(text)
            page.locator("#compare-go").click()
            for name in "AB":
                run = wait_run_ended(page, f"compare-{name.lower()}-player", len(runs[name]) + 1, timeout=240_000)
                assert_audible_run(run, runs[name])
                runs[name].append(run)
            # each slot played its own clip (the table's durations), and the server got both ear figures
            table = wait_for_table(page, [runs[n][-1]["scheduled_s"] for n in "AB"])
            assert all(float(x) >= 0 for x in table["first audio in your browser (s)"]), table
    finally:
        page.screenshot(path=str(artifacts / "player_compare.png"), full_page=True)
    for a, b in zip(runs["A"], runs["B"], strict=True):  # B was heard only once A had played to its end
        assert b["start_ctx"] >= a["end_ctx"] and b["t0_ms"] >= a["end_at_ms"], (a, b)
