"""Delivery in Debian's Chromium: the Output section (an MP3 at -16 LUFS from the Kokoro tab) and the
Batch tab (a bad upload is one sentence; a .txt with a bad line renders the good ones into a zip with
manifest.json, in Ogg Vorbis). Files are fetched the way a user gets them: the page's download link."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import soundfile as sf
from conftest import app_page, choose_file

from engines.audio import integrated_loudness
from engines.base import MAX_TEXT_CHARS, SAMPLE_RATE

pytestmark = pytest.mark.slow

TWO_SENTENCES = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
GOOD_LINES = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background."]
TOO_LONG = "Too long. " * (MAX_TEXT_CHARS // 10 + 1)  # over the per-text limit: a bad row, the others render


@pytest.fixture(scope="module")
def page(browser, app_url):
    return app_page(browser, app_url, accept_downloads=True)


def open_output(page, prefix: str) -> None:
    """Open a tab's Output accordion (once)."""
    if not page.locator(f"#{prefix}-format").is_visible():
        page.locator(f"#{prefix}-output").get_by_text("Output", exact=True).first.click()
    page.locator(f"#{prefix}-format input").wait_for(timeout=10_000)


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    assert page.locator(f"#{elem_id} input").input_value() == option


def download(page, link) -> tuple[str, bytes]:
    """Click a download link the page shows; the file's suggested name and bytes, as the browser saved them."""
    with page.expect_download(timeout=60_000) as info:
        link.click()
    saved = info.value
    assert saved.failure() is None
    with open(saved.path(), "rb") as f:
        return saved.suggested_filename, f.read()


def test_kokoro_mp3_at_minus_16_lufs_downloads_at_that_loudness(page, artifacts):
    page.get_by_role("tab", name="Kokoro", exact=True).click()
    assert "jm_kumo" in page.locator("#kokoro-voice input").input_value()  # a packaged voice, offline
    page.locator("#kokoro-text textarea").fill(TWO_SENTENCES)
    open_output(page, "kokoro")
    pick(page, "kokoro-format", "MP3")
    pick(page, "kokoro-lufs", "-16 LUFS (podcasts)")
    page.locator("#kokoro-generate").click()
    link = page.locator("#kokoro-download a[download$='.mp3']")
    try:
        page.locator("#kokoro-status", has_text="Finished").wait_for(timeout=300_000)  # the model may still load
        link.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=str(artifacts / "delivery_kokoro_mp3.png"), full_page=True)
    name, data = download(page, link)
    (artifacts / "delivery_kokoro.mp3").write_bytes(data)
    assert name.endswith(".mp3")
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert sf.info(io.BytesIO(data)).format == "MP3"
    assert rate == SAMPLE_RATE
    assert 1.5 < len(audio) / rate < 15.0
    assert integrated_loudness(audio, rate) == pytest.approx(-16.0, abs=0.5)
    assert "Peak guard" not in page.locator("#kokoro-status").inner_text()  # the target was reached
    assert page.locator("text=Traceback").count() == 0


def clear_upload(page) -> None:
    clear = page.locator("#batch-file button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator("#batch-file input[type=file]").wait_for(state="attached", timeout=10_000)


def upload(page, path) -> None:
    """Choose `path` in the Batch tab's file component and wait until the component shows it."""
    choose_file(page, "batch-file", path, page.locator("#batch-file", has_text=path.name))


def test_a_batch_file_with_nothing_to_speak_is_one_sentence(page, artifacts, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n", encoding="utf-8")
    page.get_by_role("tab", name="Batch", exact=True).click()
    clear_upload(page)
    upload(page, blank)
    page.locator("#batch-render").click()
    toast = page.get_by_test_id("toast-text").filter(has_text="nothing to speak")
    try:
        toast.first.wait_for(timeout=30_000)
    finally:
        page.wait_for_timeout(500)  # the toast slides in
        page.screenshot(path=str(artifacts / "delivery_batch_error.png"))  # the viewport: the toast is fixed
    assert toast.first.inner_text().strip() == "The batch file has nothing to speak: it has no non-empty lines."
    assert page.locator("#batch-zip a[download]").count() == 0
    assert page.locator("text=Traceback").count() == 0


def test_a_batch_renders_the_good_lines_into_a_zip_with_the_manifest(page, artifacts, tmp_path):
    lines = [GOOD_LINES[0], TOO_LONG.strip(), GOOD_LINES[1]]
    rows = tmp_path / "lines.txt"
    rows.write_text("\n".join(lines) + "\n", encoding="utf-8")
    page.get_by_role("tab", name="Batch", exact=True).click()
    voice = page.get_by_label("Default voice", exact=True).input_value()
    clear_upload(page)  # after the bad upload of the test before: a following good batch still works
    upload(page, rows)
    open_output(page, "batch")
    pick(page, "batch-format", "Ogg Vorbis")
    page.locator("#batch-render").click()
    link = page.locator("#batch-zip a[download$='.zip']")
    try:
        link.wait_for(timeout=240_000)  # the progress bar gives way to the zip
        page.locator("#batch-table", has_text=GOOD_LINES[1]).wait_for(timeout=30_000)
    finally:
        page.screenshot(path=str(artifacts / "delivery_batch.png"), full_page=True)

    name, data = download(page, link)
    (artifacts / "delivery_batch.zip").write_bytes(data)
    assert name.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    items = manifest["items"]
    assert manifest["format"] == "ogg" and manifest["rendered"] == 2 and manifest["failed"] == 1
    assert [i["index"] for i in items] == [1, 2, 3] and [i["text"] for i in items] == lines
    assert all(i["engine"] == "kokoro" and i["voice"] == voice for i in items)
    good, bad = [items[0], items[2]], items[1]
    assert sorted(archive.namelist()) == sorted([i["file"] for i in good] + ["manifest.json"])
    for item in good:
        assert item["error"] is None and item["file"].startswith(f"{item['index']:03d}-")
        assert item["file"].endswith(".ogg") and item["duration_s"] > 0
        clip = archive.read(item["file"])
        assert (sf.info(io.BytesIO(clip)).format, sf.info(io.BytesIO(clip)).subtype) == ("OGG", "VORBIS")
        audio, rate = sf.read(io.BytesIO(clip), dtype="float32")
        assert rate == SAMPLE_RATE and abs(len(audio) / rate - item["duration_s"]) < 0.1
    assert bad["file"] is None and bad["duration_s"] is None
    assert bad["error"] == f"The text is {len(lines[1]):,} characters long; the limit is {MAX_TEXT_CHARS:,}."

    table = page.locator("#batch-table").inner_text()
    for item in good:
        assert item["text"] in table and item["file"] in table and f"{item['duration_s']:g}" in table
    assert bad["error"] in table and "Too long. Too long." in table
    assert page.locator("text=Traceback").count() == 0
