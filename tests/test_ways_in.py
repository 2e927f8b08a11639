"""The table "Every way in, metered" (`scripts/ways_in.py`) decides every route and event the app has."""

from __future__ import annotations

import importlib.util

import gradio as gr
import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("ways_in", ROOT / "scripts" / "ways_in.py")
ways_in = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ways_in)


@pytest.mark.slow
def test_every_route_and_event_of_the_app_has_a_metering_decision(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import app

    demo = app.build()
    assert ways_in.undecided(demo) == []
    table = ways_in.table(demo)
    assert "| `POST /v1/audio/speech` | `service.speech` (with `voices`: `service.script`) |" in table
    assert "undecided" not in table
    assert "Gradio event `compare` (API, MCP) | `service.pair`" in table
    written = (ROOT / "docs" / "public.md").read_text(encoding="utf-8")
    body = table[table.index("\n") :].strip()  # docs/public.md has it under a heading one level down
    assert body in written, "docs/public.md: paste the output of `python scripts/ways_in.py` again"


def test_a_new_event_or_route_without_a_decision_is_reported(monkeypatch):
    def brand_new_work(text: str) -> str:
        return text

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(brand_new_work, box, box, api_name="brand_new")
        box.change(lambda text: text, box, box)  # a UI update: decided as free
    assert ways_in.undecided(demo) == ["event brand_new (brand_new_work)"]
    monkeypatch.setattr(ways_in, "routes", lambda: ["POST /v1/audio/new"])
    assert ways_in.undecided(demo)[0] == "route POST /v1/audio/new"
