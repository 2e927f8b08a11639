"""The pronunciation lexicon on the real page: two visitors (two browser profiles, each with its own
storage) in Debian's Chromium. The first saves an entry in the Kokoro tab's Pronunciation accordion and
their next Generate says the entry's phonemes; the second sees no entry and hears the word as usual."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slow

TRAIN, HOUSE = "tɹˈAn", "hˈWs"  # misaki's phonemes for "train" and "house"


def visit(browser, app_url):
    """A new visitor on the Kokoro tab with its Pronunciation accordion open, once the page knows them."""
    page = browser.new_context(viewport={"width": 1280, "height": 1600}).new_page()
    page.goto(app_url, wait_until="load", timeout=120_000)
    page.wait_for_function("() => localStorage.getItem('tts-compare-owner') !== null", timeout=60_000)
    page.locator("#kokoro-lexicon").get_by_text("Pronunciation").first.click()
    page.locator("#kokoro-lexicon-word").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # the page's owner reaches the server (the token's change event)
    return page


def table_shows(page, text: str, timeout_ms: int = 60_000) -> None:
    """Wait until the visitor's lexicon table holds `text`."""
    page.wait_for_function(
        "t => (document.querySelector('#kokoro-lexicon-table')?.textContent || '').includes(t)", arg=text,
        timeout=timeout_ms,
    )  # fmt: skip


def table_text(page) -> str:
    return page.evaluate("() => document.querySelector('#kokoro-lexicon-table')?.textContent || ''")


def field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def spoken_phonemes(page, text: str, timeout_s: float = 240.0) -> str:
    """Generate `text` on the Kokoro tab and read the phonemes it said."""
    field(page, "kokoro-text").fill(text)
    page.locator("#kokoro-generate").click()
    page.get_by_text("Phonemes and word timings").first.click()
    box = page.get_by_label("Phonemes, one line per streamed chunk")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        said = box.input_value()
        if said.strip():
            return said
        page.wait_for_timeout(500)
    raise AssertionError("Kokoro said nothing")


def test_a_visitors_entry_changes_what_kokoro_says_for_them_and_no_one_else(browser, app_url, artifacts):
    alice = visit(browser, app_url)
    field(alice, "kokoro-lexicon-word").fill("house")
    field(alice, "kokoro-lexicon-phonemes").fill(TRAIN)
    alice.locator("#kokoro-lexicon-save").click()
    table_shows(alice, TRAIN)
    said = spoken_phonemes(alice, "I saw a house today.")
    alice.screenshot(path=str(artifacts / "lexicon-alice.png"), full_page=True)
    assert TRAIN in said and HOUSE not in said, said

    bob = visit(browser, app_url)
    bob.wait_for_timeout(1500)
    assert TRAIN not in table_text(bob)  # not his entry
    said = spoken_phonemes(bob, "I saw a house today.")
    assert HOUSE in said and TRAIN not in said, said

    field(bob, "kokoro-lexicon-word").fill("house")
    bob.locator("#kokoro-lexicon-delete").click()  # nothing of his to delete: alice's entry stays
    bob.get_by_text("no entry for 'house'").first.wait_for(timeout=30_000)
    alice.reload(wait_until="load")
    alice.locator("#kokoro-lexicon").get_by_text("Pronunciation").first.click()
    table_shows(alice, TRAIN)  # kept, and shown again after a reload


def test_rendered_in_the_browser_the_plan_speaks_the_visitors_entry(browser, app_url):
    """Kokoro in this browser: the page sends the visitor's entries with the text, so the plan the
    browser renders holds the entry's phonemes (the render itself is the browser tests' business)."""
    carol = visit(browser, app_url)
    field(carol, "kokoro-lexicon-word").fill("house")
    field(carol, "kokoro-lexicon-phonemes").fill(TRAIN)
    carol.locator("#kokoro-lexicon-save").click()
    table_shows(carol, TRAIN)
    carol.locator("#kokoro-render-in").get_by_label("this browser").check()
    carol.wait_for_function("() => window.kokoroRenderIn === 'this browser'", timeout=30_000)
    field(carol, "kokoro-text").fill("I saw a house today.")
    with carol.expect_response(lambda answer: "/kokoro/plan" in answer.url, timeout=120_000) as planned:
        carol.locator("#kokoro-generate").click()
    said = " ".join(chunk["phonemes"] for chunk in planned.value.json()["chunks"])
    carol.locator("#kokoro-stop").click()
    assert TRAIN in said and HOUSE not in said, said
