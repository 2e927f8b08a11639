"""The README is what a visitor reads (at most 250 lines, the Space card on top, links into the manual);
the manual in docs/ builds with `mkdocs build --strict` (no broken link or anchor, no page left out of the
navigation), and every section the long README had has a heading there."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
# The sections of the README before the manual moved to docs/ (2026-12): each keeps a heading in docs/.
OLD_SECTIONS = [
    "The Kokoro tab", "Render in: server or this browser", "The page's player", "The Qwen3-TTS tab",
    "Saved voices: whose they are", "Pronunciation lexicon", "Output (Kokoro, Qwen3-TTS and Batch tabs)",
    "The Batch tab", "Words checked: timestamps and captions", "The Compare tab", "The Blind arena tab",
    "Offline and with the hub", "What the packaged voices can speak, heard back", "Environment variables",
    "Hardware: CPU, a dedicated GPU, ZeroGPU", "Command line", "API", "OpenAI-compatible API",
    "Keys, rate limit, CORS", "MCP", "Bad input", "Benchmark", "First audio at the ear",
    "Kokoro in the browser: parity with the server", "Running it in public", "Load, measured",
    "Bounded over a week", "Faults survived", "Soak", "Beyond one machine", "Layout",
]  # fmt: skip


def headings(text: str) -> list[str]:
    """Markdown headings outside fenced code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.+)", line)):
            found.append(m.group(1).strip())
    return found


def test_the_readme_is_short_keeps_the_space_card_and_its_two_commands():
    assert len(README.splitlines()) <= 250
    card = README.split("---")[1]
    assert README.startswith("---\n") and "sdk: gradio" in card and "app_file: app.py" in card
    assert "bash scripts/run.sh" in README and "bash scripts/test.sh" in README


def test_every_link_from_the_readme_into_docs_names_a_page_that_exists():
    pages = re.findall(r"\]\((docs/[^)#]+)", README)
    assert len(set(pages)) >= 10, pages
    assert [page for page in pages if not (ROOT / page).is_file()] == []


def test_every_old_readme_section_has_a_home_in_docs():
    found = {h for page in (ROOT / "docs").glob("*.md") for h in headings(page.read_text(encoding="utf-8"))}
    assert [section for section in OLD_SECTIONS if section not in found] == []


def test_the_manual_builds_with_no_broken_link(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "api" / "index.html").is_file()
