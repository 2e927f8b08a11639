"""A visitor's first five minutes, in Debian's Chromium, on the page as `bash scripts/run.sh` serves a fresh
clone offline (the packaged Kokoro with its five voices; Qwen3-TTS not installed; the default arena pool),
and on the shared test app (tiny Qwen3-TTS checkpoints) for the Qwen3-TTS flows.

What a new visitor does on each tab, asserted on what the page shows: the header and defaults, the
engines that cannot speak (Generate off, one sentence), the character counter and a text over the limit
(one sentence, nothing spoken), Stop then Generate within a second on every tab (a calm "Stopped.", no
red "Error" badge, the new run starts), figures in words, and a clean console throughout. A screenshot
per step goes to test-output/first_five/, at desktop and phone widths.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import ROOT, _free_port, choose_file

from engines.base import MAX_TEXT_CHARS

pytestmark = pytest.mark.slow

DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
THREE = " ".join(
    [
        "The birch canoe slid on the smooth planks, and the sheet was glued to the dark blue background.",
        "It is easy to tell the depth of a well, because these days a chicken leg is a rare dish.",
        "Rice is often served in round bowls, and the juice of lemons makes fine punch.",
    ]
)  # about 16 s of speech: still being made when Stop is clicked, short enough to play to its end in a test
LONG = " ".join([THREE] * 3)
BADGES = '[data-testid="status-tracker"] .error'  # Gradio's red "Error" badge on an output
OPERATOR = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|arena\.sqlite3|\(from the turn\)|\bG2P\b|real-time factor")


@pytest.fixture(scope="module")
def fresh_url(artifacts, tmp_path_factory):
    """`python app.py` as `scripts/run.sh` starts it on a fresh clone: offline, no Qwen3-TTS model, the
    default arena pool, on a free local port."""
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KOKORO_MODEL", "KOKORO_BACKEND", "QWEN_CUSTOM_VOICE_MODEL", "QWEN_BASE_MODEL", "ARENA_SYSTEMS")
    }
    env.update(
        HF_HUB_OFFLINE="1", GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), TORCH_THREADS="1",
        VOICE_LIBRARY_DIR=str(tmp_path_factory.mktemp("fresh-library")),
        ARENA_DB=str(tmp_path_factory.mktemp("fresh-arena") / "votes.sqlite3"),
        API_RATE_PER_MIN="100000", MAX_WAITING="16",
    )  # fmt: skip
    log = open(artifacts / "first_five_app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, f"app.py exited early; see {artifacts / 'first_five_app.log'}"
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app.py did not start within 180 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def shots(artifacts):
    folder = artifacts / "first_five"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Visit:
    """One visitor's page: its console's errors, and a screenshot per step."""

    def __init__(self, browser, url: str, viewport: dict, shots, name: str):
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.shots, self.name, self.step = shots, f"{name}-{viewport['width']}", 0
        self.page.goto(url, wait_until="load", timeout=120_000)
        self.page.locator("#kokoro-text textarea").wait_for(timeout=120_000)
        self.page.wait_for_function("() => window.ttsPlayers && window.ttsCounters", timeout=60_000)

    def shot(self, what: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(self.shots / f"{self.name}-{self.step:02d}-{what}.png"), full_page=True)

    def tab(self, name: str) -> None:
        """Open a tab as a visitor does: from the tab bar, or on a narrow screen from its "…" menu."""
        tab = self.page.get_by_role("tab", name=name, exact=True).first
        if tab.is_visible():
            tab.click()
            return
        # the tab bar that holds it: the page's own, or a tab's sub-tab bar (each has its own "…" menu)
        menus = self.page.locator(".overflow-menu:visible")
        for index in range(menus.count()):
            menu = menus.nth(index)
            menu.locator("> button").click()
            item = menu.locator(".overflow-dropdown button", has_text=name).first
            if item.count() and item.is_visible():
                item.click()
                return
            menu.locator("> button").click()  # not this bar's: close its menu again
        raise AssertionError(f"no tab called {name!r} on the page")

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def refused(self, status: str, sentence: str, what: str) -> None:
        """A refused run: `sentence` in the `status` line and in one warning toast, no red badge, a
        clean console."""
        self.page.locator(status, has_text=sentence).wait_for(timeout=60_000)
        toast = self.page.get_by_test_id("toast-text").filter(has_text=sentence)
        toast.first.wait_for(timeout=10_000)
        self.page.wait_for_timeout(500)  # the toast slides in
        self.shot(what)
        assert toast.count() == 1, self.page.get_by_test_id("toast-text").all_inner_texts()
        assert self.text(status).strip() == sentence
        self.calm()

    def dismiss(self) -> None:
        """Close the toasts, as a visitor does with each one's ×."""
        for close in self.page.get_by_test_id("toast-close").all():
            close.click()

    def calm(self) -> None:
        """No red "Error" badge anywhere, nothing on the console."""
        assert self.page.locator(BADGES).count() == 0, self.page.locator(BADGES).all_inner_texts()
        assert self.errors == [], self.errors

    def runs(self, player: str) -> list[dict]:
        return self.page.evaluate(
            f"() => window.ttsPlayers['{player}'] ? window.ttsPlayers['{player}'].allStats() : []"
        )

    def close(self) -> None:
        self.context.close()


def stop_then_go(visit: Visit, go: str, stop: str, statuses: list[str], started: str, what: str) -> float:
    """Click `go`, wait until `started` shows in the first status, Stop, then `go` again within a
    second: the statuses say "Stopped." with no badge, and the new run starts (a status leaves
    "Stopped." for a waiting or running line). Returns the seconds from the second click to that."""
    page = visit.page
    page.locator(go).click()
    page.locator(statuses[0], has_text=started).wait_for(timeout=300_000)
    visit.shot(f"{what}-running")
    page.locator(stop).click()
    for status in statuses:
        page.locator(status, has_text="Stopped.").wait_for(timeout=5_000)
    visit.shot(f"{what}-stopped")
    visit.calm()
    time.sleep(0.5)  # the visitor changes their mind within a second
    clicked = time.perf_counter()
    page.locator(go).click()
    page.wait_for_function(
        "(ids) => ids.some((id) => { const e = document.querySelector(id);"
        " return e && e.innerText.trim() && !e.innerText.includes('Stopped.'); })",
        arg=statuses,
        timeout=60_000,
    )
    took = time.perf_counter() - clicked
    visit.shot(f"{what}-again")
    visit.calm()
    return took


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_first_look_shows_what_speaks_here_with_defaults_that_work(browser, fresh_url, shots, viewport):
    visit = Visit(browser, fresh_url, viewport, shots, "look")
    page = visit.page
    try:
        visit.shot("load")
        header = visit.text("#engines-header")
        assert "Kokoro-82M: speaks with 5 of its 54 voices" in header
        assert "Qwen3-TTS CustomVoice: not available on this server" in header
        assert not OPERATOR.search(header), header
        assert not page.locator("#owner-details").get_by_text("QWEN_CUSTOM_VOICE_MODEL").is_visible()  # collapsed
        # Kokoro: a voice that speaks here, a blend of voices that speak here, the counter with the limit
        voice = page.locator("#kokoro-voice input").input_value()
        assert "jm_kumo" in voice and "needs the model hub" not in voice
        assert re.fullmatch(
            r"j[fm]_\w+:0\.7,j[fm]_\w+:0\.3",
            page.locator("#kokoro-blend textarea, #kokoro-blend input").first.get_attribute("placeholder"),
        )
        counter = page.locator("#kokoro-text .tts-count").inner_text()
        assert re.fullmatch(rf"\d+ / {MAX_TEXT_CHARS:,} characters", counter), counter
        page.get_by_role("button", name=re.compile("^You say tomato")).click()  # an example fills the text
        page.wait_for_function("() => document.querySelector('#kokoro-text textarea').value.startsWith('You say')")
        if viewport is PHONE:  # Generate sits under the text, above the options
            text_box = page.locator("#kokoro-text").bounding_box()
            go = page.locator("#kokoro-generate").bounding_box()
            voice_box = page.locator("#kokoro-voice").bounding_box()
            assert text_box["y"] < go["y"] < voice_box["y"], (text_box, go, voice_box)
            assert go["y"] - (text_box["y"] + text_box["height"]) < 400
        visit.shot("kokoro")
        # Qwen3-TTS is not installed: its Generate is off, with one sentence why, at once
        visit.tab("Qwen3-TTS")
        page.locator("#qwen-preset-off", has_text="so Generate is off").wait_for(timeout=10_000)
        assert page.locator("#qwen-preset-generate").is_disabled()
        assert not OPERATOR.search(visit.text("#qwen-preset-off"))
        visit.shot("qwen-preset")
        visit.tab("Voice cloning")
        page.locator("#qwen-clone-off", has_text="so Generate is off").wait_for(timeout=10_000)
        assert page.locator("#qwen-clone-generate").is_disabled()
        visit.shot("qwen-clone")
        # Compare opens with two slots that speak here, two different voices; cloning is off
        visit.tab("Compare")
        engines = [page.locator(f"#compare-{s}-engine input").input_value() for s in "ab"]
        voices = [page.locator(f"#compare-{s}-voice input").input_value() for s in "ab"]
        assert engines == ["Kokoro-82M", "Kokoro-82M"] and voices[0] != voices[1], (engines, voices)
        assert page.locator("#compare-clone").is_disabled()
        visit.shot("compare")
        visit.tab("Blind arena")
        assert "sqlite3" not in visit.text("#arena-db")
        visit.shot("arena")
        visit.tab("Batch")
        visit.shot("batch")
        visit.calm()
    finally:
        visit.close()


def test_a_text_over_the_limit_gets_one_sentence_and_nothing_is_spoken(browser, fresh_url, shots):
    visit = Visit(browser, fresh_url, DESKTOP, shots, "limit")
    page = visit.page
    try:
        words = ("The quick brown fox jumps over the lazy dog. " * 120)[: MAX_TEXT_CHARS + 1]
        page.locator("#kokoro-text textarea").fill(words)
        assert page.locator("#kokoro-text textarea").input_value() == words  # all of it kept: no silent cut
        page.locator("#kokoro-text .tts-count-over").wait_for(timeout=5_000)
        assert "over the limit by 1" in visit.text("#kokoro-text .tts-count")
        page.locator("#kokoro-generate").click()
        sentence = f"The text is {MAX_TEXT_CHARS + 1:,} characters long; the limit is {MAX_TEXT_CHARS:,}."
        visit.refused("#kokoro-status", sentence, "refused")
        assert all(run["samples"] == 0 for run in visit.runs("kokoro-player")), visit.runs("kokoro-player")
    finally:
        visit.close()


def test_blank_text_and_a_missing_file_get_one_calm_sentence_on_every_tab(browser, fresh_url, shots):
    """A bad input on the page is its status line's sentence and a warning toast, never Gradio's red
    "Error" badges (a page event's refusal: `ui.stopping`); the next run after it works."""
    visit = Visit(browser, fresh_url, DESKTOP, shots, "blank")
    page = visit.page
    try:
        page.locator("#kokoro-text textarea").fill("   ")
        page.locator("#kokoro-generate").click()
        visit.refused("#kokoro-status", "Please enter some text to speak.", "kokoro-blank")
        assert all(run["samples"] == 0 for run in visit.runs("kokoro-player")), visit.runs("kokoro-player")
        visit.dismiss()
        page.locator("#kokoro-text textarea").fill("Hello there.")
        page.locator("#kokoro-generate").click()
        page.locator("#kokoro-status", has_text="Finished").wait_for(timeout=300_000)
        visit.shot("kokoro-after")
        visit.calm()
        visit.tab("Compare")
        page.locator("#compare-text textarea").fill("")
        page.locator("#compare-go").click()
        visit.refused("#compare-a-status", "Please type some text to compare.", "compare-blank")
        visit.dismiss()
        visit.tab("Batch")
        page.locator("#batch-render").click()
        visit.refused("#batch-status", "Upload a .txt or .csv batch file first.", "batch-nofile")
    finally:
        visit.close()


def test_kokoro_stop_then_generate_starts_the_new_run_and_stops_calmly(browser, fresh_url, shots):
    visit = Visit(browser, fresh_url, DESKTOP, shots, "kokoro")
    page = visit.page
    try:
        page.locator("#kokoro-text textarea").fill(THREE)
        took = stop_then_go(visit, "#kokoro-generate", "#kokoro-stop", ["#kokoro-status"], "Streaming", "stop")
        print(f"Kokoro: the new run showed {took:.1f} s after Generate")
        page.locator("#kokoro-status", has_text="Finished").wait_for(timeout=600_000)
        status = visit.text("#kokoro-status")
        assert re.search(r"\d+\.\d× (faster|slower) than real time", status), status
        assert not OPERATOR.search(status), status
        line = page.locator(".tts-player").first.inner_text()
        assert line.count("after your click") <= 1 and "on the server" not in line, line
        assert not page.locator("#kokoro-words").is_visible()  # no word times on ONNX: no empty table
        visit.shot("finished")
        page.wait_for_function(  # the clip plays to its end in the browser
            "() => { const r = window.ttsPlayers['kokoro-player'].allStats(); return r.length && r.at(-1).ended; }",
            timeout=180_000,
        )
        runs = visit.runs("kokoro-player")
        assert runs[-1]["samples"] > 24_000 and not runs[-1]["stopped"], runs[-1]
        visit.calm()
    finally:
        visit.close()


def test_compare_and_arena_stop_then_start_again(browser, fresh_url, shots):
    visit = Visit(browser, fresh_url, DESKTOP, shots, "pairs")
    page = visit.page
    try:
        visit.tab("Compare")
        page.locator("#compare-text textarea").fill(LONG)
        stop_then_go(
            visit, "#compare-go", "#compare-stop", ["#compare-a-status", "#compare-b-status"], "Streaming", "compare"
        )
        page.locator("#compare-stop").click()
        page.locator("#compare-a-status", has_text="Stopped.").wait_for(timeout=5_000)
        visit.tab("Blind arena")
        stop_then_go(visit, "#arena-new", "#arena-stop", ["#arena-a-status", "#arena-b-status"], "A is", "arena")
        page.locator("#arena-stop").click()
        page.locator("#arena-a-status", has_text="Stopped.").wait_for(timeout=5_000)
    finally:
        visit.close()


def test_batch_stop_then_render_again(browser, fresh_url, shots, tmp_path):
    """A long batch, stopped after 3 s, then a short one: the short one's zip comes within the time of its
    own two lines (the long one's remaining lines are not rendered first), with both lines in it."""
    visit = Visit(browser, fresh_url, DESKTOP, shots, "batch")
    page = visit.page
    try:
        visit.tab("Batch")
        long_lines, short_lines = tmp_path / "long.txt", tmp_path / "short.txt"
        long_lines.write_text("\n".join([LONG[:400]] * 6) + "\n", encoding="utf-8")
        short_lines.write_text("Hello there.\nThe birch canoe slid on the smooth planks.\n", encoding="utf-8")
        choose_file(page, "batch-file", long_lines, page.locator("#batch-file", has_text=long_lines.name))
        page.locator("#batch-render").click()
        time.sleep(3)
        page.locator("#batch-stop").click()
        page.locator("#batch-status", has_text="Stopped.").wait_for(timeout=5_000)
        time.sleep(1)  # and it stays
        assert "Stopped." in page.locator("#batch-status").inner_text()
        visit.shot("batch-stopped")
        visit.calm()
        page.locator("#batch-file button[aria-label=Clear]").click()  # as a visitor: the file's ×, then another
        choose_file(page, "batch-file", short_lines, page.locator("#batch-file", has_text=short_lines.name))
        page.locator("#batch-render").click()  # the new batch runs to its zip
        # the new zip's link (Gradio shows its name as "batch" and ".zip" in two boxes)
        page.locator("#batch-zip a[href*='batch.zip']").wait_for(timeout=240_000)
        table = page.locator("#batch-table").inner_text()
        assert "Hello there." in table and "birch canoe" in table, table
        assert "It is easy" not in table, table  # the stopped batch's lines are not in it
        visit.shot("batch-again")
        visit.calm()
    finally:
        visit.close()


def test_qwen_preset_stop_then_generate(browser, app_url, shots):
    """On the shared test app, where Qwen3-TTS runs tiny random checkpoints."""
    visit = Visit(browser, app_url, DESKTOP, shots, "qwen")
    page = visit.page
    try:
        visit.tab("Qwen3-TTS")
        assert page.locator("#qwen-preset-generate").is_enabled()
        assert not page.locator("#qwen-preset-off").is_visible()
        page.locator("#qwen-preset-text textarea").fill(THREE[:150])
        stop_then_go(
            visit, "#qwen-preset-generate", "#qwen-preset-stop", ["#qwen-preset-status"], "Streaming", "preset"
        )
        page.locator("#qwen-preset-status", has_text="Finished").wait_for(timeout=600_000)
        visit.shot("finished")
        visit.calm()
    finally:
        visit.close()
