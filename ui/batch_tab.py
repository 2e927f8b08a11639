"""The Batch tab: upload a .txt (one line per clip) or a CSV (text, engine, voice, language), render every
item with the chosen defaults and Output settings under a progress bar, download a zip of the clips
and `manifest.json`, and see the manifest as a table (bad rows show their error there); "Check the words"
aligns each clip to its text (`evaluation.alignment`: `words` in the manifest, captions in the zip).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import gradio as gr

from engines import language as languages
from engines.base import InputError
from engines.batch_files import parse, zip_folder
from engines.kokoro.voices import list_found_voices
from engines.lexicon import load as load_lexicon
from engines.reference import read_upload
from engines.runtime import registry
from engines.voice_library import list_voices
from evaluation.alignment import align_manifest
from service import batch, janitor
from service.janitor import output_dir

from .caller import caller
from .common import user_errors
from .output import output_controls, settings_from
from .owner import owner_of
from .page import HIDE_EMPTY
from .stopping import STOPPED, bind_stop, stoppable, stopped

HEADERS = ["#", "text", "engine", "voice", "language", "file", "duration (s)", "LUFS", "error"]
COLUMN_WIDTHS = ["4%", "25%", "8%", "8%", "7%", "17%", "7%", "6%", "18%"]
TABLE_CHARS = 80  # a cell shows this much (a click shows all): a 5,000-character line must not fill the page


def engine_choices() -> list[tuple[str, str]]:
    """(name, id) of every engine, those that cannot speak here marked so (a batch file may name any)."""
    return [
        (info.name if info.available else f"{info.name} (not available here)", engine_id)
        for engine_id, info in ((e, registry.info(e)) for e in registry.ENGINES)
    ]


def voices_for(engine_id: str, owner: str | None = None) -> list[str]:
    """The voice ids usable now with an engine: its own, then (where it keeps them) `owner`'s saved voices."""
    if engine_id not in registry.ENGINES:
        return []
    own = [v.id for v in registry.info(engine_id).voices if v.available]
    capabilities = registry.capabilities(engine_id)
    found = list_found_voices(owner) if capabilities.found_voices else []
    return own + (list_voices(owner) if capabilities.saved_voices else []) + found


def default_voice(engine_id: str, choices: list[str]) -> str:
    """The engine's preferred default among `choices` (its capabilities), else the first choice."""
    preferred = registry.capabilities(engine_id).preferred_voice(choices) if engine_id in registry.ENGINES else None
    return preferred or next(iter(choices), "")


def _voice_update(engine_id: str, owner: str | None = None) -> dict:
    choices = voices_for(engine_id, owner)
    return gr.update(choices=choices, value=default_voice(engine_id, choices))


@user_errors
def _step(progress: gr.Progress, done: int, total: int) -> None:
    """Between clips: the progress bar, and the end of the batch once the visitor pressed Stop."""
    if stopped():
        raise InputError(STOPPED)
    progress((done, total), unit="clips")


@user_errors
def batch_render(
    file: str | None,
    engine: str = registry.default_engine(),
    voice: str = "",
    fmt: str = "wav",
    loudness: str = "Off",
    peak_normalize: bool = False,
    trim: bool = False,
    denoise: bool = False,
    fade: bool = False,
    owner_token: str = "",
    align: bool = False,
    request: gr.Request | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's progress hook)
) -> tuple[str, list[list]]:
    """Render a batch file into one clip per line or CSV row; returns a zip of the clips with manifest.json.

    Args:
        file: A .txt (one text per line) or .csv (columns text, engine, voice, optional language); up to 200 items.
        engine: Default engine for lines and for rows that leave it blank: kokoro, qwen-custom or qwen-clone.
        voice: Default voice: a Kokoro voice id such as jm_kumo, a Qwen3-TTS speaker such as Ryan, or a saved voice.
        fmt: File format of the clips: wav, flac, mp3, ogg (Ogg Vorbis) or opus (Ogg Opus).
        loudness: Loudness target: Off, -23, -16, -14, or a number of LUFS from -40 to -5 (true peak at most -1 dBFS).
        peak_normalize: True to bring each clip's true peak to -1 dBFS (used when there is no loudness target).
        trim: True to cut the silence at both ends of each clip.
        denoise: True to reduce background noise in each clip.
        fade: True for short fades at both ends of each clip.
        owner_token: Your owner token (from /owner_token), needed for rows that name one of your saved voices
            and to speak with your pronunciation lexicon.
        align: True to check each clip's words with the speech recogniser: the manifest gets `words` per item
            (each input word's times and ok/substituted/dropped) and the zip a .srt and .vtt per clip.

    Returns:
        a zip file with the numbered clips (001-<words>.<format>) and manifest.json
        the manifest as a table: index, text, engine, voice, language, file, duration, LUFS, and a bad row's error.
    """
    if not file:
        raise InputError("Upload a .txt or .csv batch file first.")
    fmt, settings = settings_from(fmt, loudness, peak_normalize, trim, denoise, fade)
    upload = Path(file)  # a temp file Gradio stored for the upload; only its bytes and suffix are used
    items = parse(read_upload(upload, "batch file"), upload.suffix, engine or registry.default_engine(), voice or "")
    output_dir().mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix="batch-", dir=output_dir()))
    progress((0, len(items)), desc="Rendering", unit="clips")
    try:
        owner = owner_of(owner_token, request)
        manifest = batch.render(
            caller(owner_token, request), items, out_dir / "clips", fmt, settings, lexicon=load_lexicon(owner),
            progress=lambda done, total: _step(progress, done, total),
        )  # fmt: skip
        if align:
            progress(None, desc="Checking the words")
            manifest = align_manifest(out_dir / "clips", manifest)
        archive = zip_folder(out_dir / "clips", out_dir / "batch.zip")
    except BaseException:  # a full disk, a stopped run: no half-written folder is left behind
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    janitor.written()
    rows = [
        [
            i["index"],
            i["text"],
            i["engine"],
            i["voice"],
            languages.label(i["language"]),
            i["file"],
            i["duration_s"],
            i["lufs"],
            i["error"] or "",
        ]
        for i in manifest["items"]
    ]
    if manifest["failed"]:
        gr.Warning(f"{manifest['failed']} of {len(rows)} items could not be rendered; the table says why.")
    return str(archive), rows


@functools.wraps(batch_render)  # the same inputs, for Gradio to fill in (request and progress included)
def batch_on_page(*args, **kwargs) -> tuple[str, list[list], str]:
    """The page's Render: `batch_render`, and an empty status line (the page's Stop writes "Stopped." there,
    a refusal its sentence: `ui.stopping`)."""
    return (*batch_render(*args, **kwargs), "")


def build_tab(owner: gr.Textbox) -> None:
    """The Batch tab, inside the caller's gr.Blocks, listing every engine of the registry; `owner` holds
    the visitor's owner token."""
    with gr.Tab("Batch", id="batch"):
        gr.Markdown(
            "Upload a **.txt** (one clip per line) or a **.csv** with the columns `text, engine, voice` "
            "and optionally `language` (blank engine or voice: the defaults below). "
            "A bad row is reported in the manifest; the others render."
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Batch file (.txt or .csv)", file_types=[".txt", ".csv"], elem_id="batch-file")
                first = registry.default_engine()
                engine = gr.Dropdown(engine_choices(), value=first, label="Default engine", elem_id="batch-engine")
                choices = voices_for(first)
                voice = gr.Dropdown(
                    choices,
                    value=default_voice(first, choices),
                    label="Default voice",
                    allow_custom_value=True,
                )
                output = output_controls("batch")
                align = gr.Checkbox(
                    False, label="Check the words (speech recogniser: words in the manifest, .srt/.vtt per clip)"
                )
                with gr.Row():
                    go = gr.Button("Render", variant="primary", elem_id="batch-render")
                    stop = gr.Button("Stop", variant="stop", elem_id="batch-stop")
            with gr.Column():
                archive = gr.File(
                    label="Clips and manifest.json (zip)",
                    interactive=False,
                    elem_id="batch-zip",
                    elem_classes=HIDE_EMPTY,
                )
        # full width below: eight columns, the error last, must not hide behind a horizontal scroll
        status = gr.Markdown(elem_id="batch-status")
        table = gr.Dataframe(
            headers=HEADERS,
            label="Manifest",
            interactive=False,
            wrap=True,
            max_chars=TABLE_CHARS,
            column_widths=COLUMN_WIDTHS,
            elem_id="batch-table",
        )

        def on_engine(engine_id: str, owner_token: str, request: gr.Request) -> dict:
            return _voice_update(engine_id, owner_of(owner_token, request))

        engine.change(on_engine, [engine, owner], voice, api_visibility="private", show_progress="hidden")
        # No "Stopped." left from the last batch: cleared in the page at the click, before the batch's own
        # request (a server-side clear came after that request's answer, which on a busy server arrived
        # after a quick Stop, and wiped its "Stopped.")
        go.click(None, None, status, js="() => ''", queue=False, show_progress="hidden", api_visibility="private")
        inputs = [upload, engine, voice, *output, owner, align]
        event = go.click(
            stoppable(batch_on_page, outputs=3), inputs, [archive, table, status],
            api_visibility="private", concurrency_id="batch",
        )  # fmt: skip
        bind_stop(stop, [event], [status])
        with gr.Row(visible=False):  # the Gradio API and MCP: the same render; a refusal is their error
            api_button = gr.Button()
        api_button.click(
            stoppable(batch_render, outputs=2), inputs, [archive, table], api_name="batch", concurrency_id="batch"
        )
