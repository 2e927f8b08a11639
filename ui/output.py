"""The "Output" section every tab shares: file format and post-processing controls, turned into
`OutputSettings`, applied to the downloadable clip and, through a `StreamLeveler`, to the streamed
chunks.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from engines.audio import LUFS_RANGE, OutputSettings, process
from engines.base import InputError

from .common import clip_path

# (label, format) for the menu: every format of `engines.audio.FORMATS` a browser or a desktop player
# opens. Raw "pcm" (headerless s16le) is left out: nothing plays it without being told its rate and
# sample format, and WAV carries the same samples behind a 44-byte header; the OpenAI-compatible
# /v1/audio/speech endpoint still serves it for programs that want it.
FORMAT_CHOICES = [
    ("WAV (16-bit, uncompressed)", "wav"),
    ("FLAC (lossless)", "flac"),
    ("MP3", "mp3"),
    ("Ogg Vorbis", "ogg"),
    ("Opus (Ogg)", "opus"),
]
MENU_FORMATS = tuple(fmt for _, fmt in FORMAT_CHOICES)
LOUDNESS_CHOICES = [
    ("Off", "Off"),
    ("-23 LUFS (broadcast, EBU R 128)", "-23"),
    ("-16 LUFS (podcasts)", "-16"),
    ("-14 LUFS (streaming services)", "-14"),
]
OUTPUT_HELP = (
    f"Loudness: a preset or type a number from {LUFS_RANGE[0]:g} to {LUFS_RANGE[1]:g}; true peaks stay at -1 dBFS "
    "at most. The streamed audio follows the same level; trim, noise reduction and fades apply to the file."
)


def output_controls(prefix: str) -> list[gr.components.Component]:
    """Build the Output accordion inside the caller's layout; returns, in order, the components
    `settings_from` takes: format, loudness target, peak normalize, trim, denoise, fade."""
    with gr.Accordion("Output", open=False, elem_id=f"{prefix}-output"):
        gr.Markdown(OUTPUT_HELP)
        with gr.Row():
            fmt = gr.Dropdown(FORMAT_CHOICES, value="wav", label="File format", elem_id=f"{prefix}-format")
            loudness = gr.Dropdown(
                LOUDNESS_CHOICES,
                value="Off",
                label="Loudness target (LUFS)",
                allow_custom_value=True,
                elem_id=f"{prefix}-lufs",
            )
        with gr.Row():
            peak = gr.Checkbox(label="Peak normalize (-1 dBFS, when no loudness target)")
            trim = gr.Checkbox(label="Trim silence")
            denoise = gr.Checkbox(label="Reduce noise")
            fade = gr.Checkbox(label="Fade in and out")
    return [fmt, loudness, peak, trim, denoise, fade]


def settings_from(
    fmt: str | None = "wav",
    loudness: str | float | None = "Off",
    peak_normalize: bool = False,
    trim: bool = False,
    denoise: bool = False,
    fade: bool = False,
) -> tuple[str, OutputSettings]:
    """The file format and the validated `OutputSettings` from the Output controls' values."""
    fmt = (fmt or "wav").strip().lower()
    if fmt not in MENU_FORMATS:
        raise InputError(f"Unknown audio format {fmt!r}; choose one of: {', '.join(MENU_FORMATS)}.")
    return fmt, OutputSettings(lufs=loudness, peak_normalize=peak_normalize, trim=trim, denoise=denoise, fade=fade)


def finish(audio: np.ndarray, prefix: str, fmt: str, settings: OutputSettings) -> tuple[str, list[str]]:
    """Post-process the whole clip and write it for download; returns its path and the notes."""
    processed, notes = process(audio, settings=settings)
    return clip_path(processed, prefix, fmt), notes
