"""The Output section and the Batch tab's entry point: settings from the controls, one-sentence errors."""

from __future__ import annotations

import gradio as gr
import pytest

from engines.base import InputError
from ui.batch_tab import batch_render
from ui.output import output_controls, settings_from


def test_settings_come_from_the_controls_values():
    fmt, settings = settings_from("MP3", "-16", False, True, False, True)
    assert fmt == "mp3" and settings.lufs == -16.0 and settings.trim and settings.fade and not settings.denoise
    assert settings_from("opus", "Off")[1].lufs is None
    assert settings_from(None, "-18.5")[1].lufs == -18.5  # a custom value typed into the dropdown


def test_the_output_accordion_offers_the_four_formats_and_the_loudness_presets():
    with gr.Blocks():
        fmt, loudness, *toggles = output_controls("t")
    assert [c[1] for c in fmt.choices] == ["wav", "flac", "mp3", "opus"]
    assert [c[1] for c in loudness.choices] == ["Off", "-23", "-16", "-14"] and loudness.allow_custom_value
    assert [t.label.split(" (")[0] for t in toggles] == ["Peak normalize", "Trim silence", "Reduce noise",
                                                         "Fade in and out"]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "aiff"}, "Unknown audio format 'aiff'"),
        ({"loudness": "-60"}, "between -40 and -5 LUFS"),
    ],
)
def test_bad_output_settings_are_one_sentence(kwargs, message):
    with pytest.raises(InputError, match=message):
        settings_from(**kwargs)


def test_the_batch_tab_says_what_is_wrong_without_rendering(tmp_path):
    with pytest.raises(gr.Error, match="Upload a .txt or .csv batch file first."):
        batch_render(None)
    empty = tmp_path / "lines.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(gr.Error, match="nothing to speak"):
        batch_render(str(empty), "kokoro", "jm_kumo")
    no_text = tmp_path / "rows.csv"
    no_text.write_text("words,voice\nHi.,jm_kumo\n", encoding="utf-8")
    with pytest.raises(gr.Error, match="no 'text' column"):
        batch_render(str(no_text), "kokoro", "jm_kumo", "wav", "-16")
