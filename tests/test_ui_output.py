"""The Output section and the Batch tab's entry point: settings from the controls, one-sentence errors."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from engines.audio import FORMATS, integrated_loudness
from engines.base import SAMPLE_RATE, InputError
from ui.batch_tab import batch_render
from ui.output import MENU_FORMATS, finish, output_controls, settings_from


def test_settings_come_from_the_controls_values():
    fmt, settings = settings_from("MP3", "-16", False, True, False, True)
    assert fmt == "mp3" and settings.lufs == -16.0 and settings.trim and settings.fade and not settings.denoise
    assert settings_from("opus", "Off")[1].lufs is None
    assert settings_from(None, "-18.5")[1].lufs == -18.5  # a custom value typed into the dropdown


def test_the_output_accordion_offers_the_playable_formats_and_the_loudness_presets():
    with gr.Blocks():
        fmt, loudness, *toggles = output_controls("t")
    assert [c[1] for c in fmt.choices] == ["wav", "flac", "mp3", "ogg", "opus"]
    labels = {value: label for label, value in fmt.choices}
    assert labels["ogg"] == "Ogg Vorbis" and labels["opus"] == "Opus (Ogg)"
    assert set(MENU_FORMATS) == set(FORMATS) - {"pcm"}  # raw headerless PCM: API only, no player opens it
    assert [c[1] for c in loudness.choices] == ["Off", "-23", "-16", "-14"] and loudness.allow_custom_value
    assert [t.label.split(" (")[0] for t in toggles] == ["Peak normalize", "Trim silence", "Reduce noise",
                                                         "Fade in and out"]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "aiff"}, "Unknown audio format 'aiff'"),
        ({"fmt": "pcm"}, "choose one of: wav, flac, mp3, ogg, opus"),
        ({"loudness": "-60"}, "between -40 and -5 LUFS"),
    ],
)
def test_bad_output_settings_are_one_sentence(kwargs, message):
    with pytest.raises(InputError, match=message):
        settings_from(**kwargs)


@pytest.mark.parametrize(
    ("fmt", "container", "codec"),
    [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("mp3", "MP3", "MPEG_LAYER_III"), ("ogg", "OGG", "VORBIS"),
     ("opus", "OGG", "OPUS")],
)  # fmt: skip
def test_each_menu_format_is_written_with_its_extension_and_reads_back_at_24_khz(fmt, container, codec, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    monkeypatch.setenv("TTS_OUTPUT_DIR", str(tmp_path))
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    path, notes = finish(tone, "kokoro", *settings_from(fmt, "-16"))
    assert path.endswith(f".{fmt}") and path.startswith(str(tmp_path / "kokoro-")) and notes == []
    info = sf.info(path)
    assert (info.format, info.subtype) == (container, codec) and info.samplerate == SAMPLE_RATE and info.channels == 1
    audio, rate = sf.read(path, dtype="float32")
    assert abs(len(audio) / rate - 1.5) < 0.1
    assert integrated_loudness(audio, rate) == pytest.approx(-16, abs=0.5)


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
