"""Owned voices on the real page: two visitors (two browser profiles, each with its own storage) in
Debian's Chromium. The first saves a voice, keeps it across a reload and is asked before replacing
it; the second cannot see, use or delete it."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slow

NOT_YOURS = "no saved voice called 'narrator' that you can use"


def visit(browser, app_url):
    """A new visitor (own cookies and localStorage) on the Voice cloning tab, once the page knows them."""
    page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
    open_cloning(page, app_url)
    return page


def open_cloning(page, app_url) -> None:
    page.goto(app_url, wait_until="load", timeout=120_000)
    page.get_by_role("tab", name="Qwen3-TTS").click(timeout=120_000)
    page.get_by_role("tab", name="Voice cloning").click()
    page.wait_for_function("() => localStorage.getItem('tts-compare-owner') !== null", timeout=60_000)


def saved_voices(page) -> list[str]:
    """The names the saved-voice dropdown offers (its options, opened and closed again)."""
    box = page.locator("#qwen-saved input")
    box.click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=10_000)
    names = [text.strip().splitlines()[-1].strip() for text in options.all_inner_texts() if text.strip()]  # no ✓
    page.keyboard.press("Escape")
    return [n for n in names if n and not n.startswith("(")]


def saved_voices_soon(page, expected: list[str], timeout_s: float = 30.0) -> list[str]:
    """The dropdown's names once they equal `expected` (the list arrives with events of its own), or
    as they are when `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    names = saved_voices(page)
    while names != expected and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        names = saved_voices(page)
    return names


def save(page, name: str, reference) -> None:
    page.locator("#qwen-ref input[type=file]").set_input_files(str(reference))
    page.get_by_label("x-vector only").check()
    page.locator("#qwen-save-name textarea, #qwen-save-name input").first.fill(name)
    page.locator("#qwen-save").click()


def dismiss_toasts(page) -> None:
    """Close every toast the page shows, as a visitor would with each one's ×, and wait until none is left."""
    for close in page.get_by_test_id("toast-close").all():
        if close.is_visible():
            close.click()
    page.get_by_test_id("toast-text").first.wait_for(state="detached", timeout=15_000)


def pick(page, name: str) -> None:
    box = page.locator("#qwen-saved input")
    box.fill(name)
    box.press("Enter")


def test_a_second_visitor_cannot_see_use_or_delete_the_first_visitors_voice(browser, app_url, artifacts, tmp_path):
    from test_qwen import wav_bytes

    reference = tmp_path / "me.wav"
    reference.write_bytes(wav_bytes(2.5))
    first = visit(browser, app_url)
    save(first, "Narrator", reference)
    first.get_by_text("Saved the voice as 'narrator'.").first.wait_for(timeout=120_000)
    assert saved_voices_soon(first, ["narrator"]) == ["narrator"]

    first.reload()  # the voice stays the visitor's: the token is kept in the browser
    open_cloning(first, app_url)
    first.wait_for_function(
        "() => document.querySelector('#qwen-saved input') !== null", timeout=30_000
    )  # the list arrives with the page's load event
    assert saved_voices_soon(first, ["narrator"]) == ["narrator"]

    save(first, "NARRATOR", reference)  # the same name in another case: the page asks first
    first.locator("#qwen-replace-row").get_by_text("You already have a voice called").wait_for(timeout=60_000)
    first.locator("#qwen-replace").click()
    first.get_by_text("Saved the voice as 'narrator'.").first.wait_for(timeout=120_000)
    first.screenshot(path=str(artifacts / "owned_voice_first_visitor.png"), full_page=True)

    second = visit(browser, app_url)
    assert second.evaluate("() => localStorage.getItem('tts-compare-owner')") != first.evaluate(
        "() => localStorage.getItem('tts-compare-owner')"
    )
    second.wait_for_timeout(1_000)
    box = second.locator("#qwen-saved input")
    box.click()
    assert [t for t in second.get_by_role("option").all_inner_texts() if "narrator" in t] == []  # cannot see
    second.keyboard.press("Escape")
    pick(second, "narrator")  # typed by hand: cannot use...
    second.locator("#qwen-clone-text textarea").fill("Hello.")
    second.locator("#qwen-clone-generate").click()
    second.get_by_text(NOT_YOURS).first.wait_for(timeout=60_000)
    dismiss_toasts(second)  # a toast goes after 10 s: the delete's own sentence is then looked for alone
    second.locator("#qwen-delete").click()  # ...nor delete
    second.get_by_text(NOT_YOURS).first.wait_for(timeout=60_000)
    second.screenshot(path=str(artifacts / "owned_voice_second_visitor.png"), full_page=True)

    assert saved_voices_soon(first, ["narrator"]) == ["narrator"]  # still there for its owner
    pick(first, "narrator")
    first.locator("#qwen-delete").click()
    first.get_by_text("Deleted the saved voice 'narrator'.").first.wait_for(timeout=60_000)
