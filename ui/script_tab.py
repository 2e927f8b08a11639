"""The Script tab: a script with several speakers (`Name: line`, SSML inline) and a cast (speaker ->
engine and voice) rendered into one take under a progress bar by line; the take plays in the page, the
per-line files and `manifest.json` download as a zip, and the manifest shows as a table."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import gradio as gr

from engines import registry
from engines.base import MAX_TEXT_CHARS
from engines.script import MAX_SCRIPT_CHARS, NARRATOR, default_voice, parse, parse_cast, roles
from service.script import DEFAULT_GAP_S, MAX_GAP_S, render_take

from . import janitor
from .caller import caller, signed_in_user
from .common import OUTPUT_DIR, user_errors
from .page import COUNTED
from .stopping import bind_stop, stoppable

HEADERS = ["#", "speaker", "engine", "voice", "start (s)", "end (s)", "text", "error"]
EXAMPLE = (
    "Ann: Welcome back to the show. Today we talk about open speech models.\n"
    'Bob: Thanks, Ann. <break time="500ms"/> It is good to be here.\n'
    "Ann: Let us begin with the news.\n"
    "The studio lights dimmed as they began."
)


def default_cast() -> dict:
    """Ann, Bob and the narrator, each with a voice that speaks here (the default engine's usable voices)."""
    engine = registry.default_engine()
    usable = [v.id for v in registry.info(engine).voices if v.available] or [default_voice(engine)]
    pick = lambda i: usable[i % len(usable)]  # noqa: E731
    return {
        "Ann": {"engine": engine, "voice": pick(0)},
        "Bob": {"engine": engine, "voice": pick(1)},
        NARRATOR: {"engine": engine, "voice": default_voice(engine)},
    }


@user_errors
def script_render(
    script_text: str,
    cast_json: str = "",
    gap_s: float = DEFAULT_GAP_S,
    owner_token: str = "",
    request: gr.Request | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's progress hook)
) -> tuple[str, str, list[list], str]:
    """Render a script with several speakers into one take.

    Args:
        script_text: One line per paragraph: "Name: what they say"; lines without a name go to the narrator.
            SSML may stand inline (<break time="500ms"/>, <prosody rate>, <say-as>, <phoneme>, <voice>, <sub>),
            or the whole script may be one <speak> document. Up to 5,000 characters (100,000 signed in).
        cast_json: JSON mapping each speaker to an engine and a voice, e.g.
            {"Ann": {"engine": "kokoro", "voice": "jf_alpha"}}; a narrator left out gets the default voice.
        gap_s: Seconds of silence between lines (0 to 5).
        owner_token: Your owner token (from /owner_token), for saved voices in the cast.

    Returns:
        the take (WAV)
        a zip of the per-line files and manifest.json
        the manifest as a table: line, speaker, engine, voice, start and end in the take, text, error.
        one sentence: how many lines and seconds were rendered (and whether the run was stopped).
    """
    # a long text (a chapter, a book) is for a signed-in visitor; anyone else gets a request's allowance
    lines = parse(script_text, MAX_SCRIPT_CHARS if signed_in_user(request) else MAX_TEXT_CHARS)
    cast = roles(lines, parse_cast(cast_json or {}))
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix="script-", dir=OUTPUT_DIR))
    progress((0, len(lines)), desc="Rendering", unit="lines")
    try:
        manifest = render_take(
            lines, cast, out_dir, "wav", gap_s, caller=caller(owner_token, request),
            progress=lambda done, total, line: progress((done, total), desc=f"{line.speaker}", unit="lines"),
        )  # fmt: skip
        archive = out_dir / "script.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            bundle.write(out_dir / "manifest.json", arcname="manifest.json")
            for entry in manifest["lines"]:
                if entry["file"]:
                    bundle.write(out_dir / entry["file"], arcname=entry["file"])
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    janitor.written()
    if not manifest["take"]:
        raise gr.Error(next((e["error"] for e in manifest["lines"] if e["error"]), "No line could be rendered."))
    dash = lambda v: "–" if v is None else v  # noqa: E731
    rows = [[e["index"], e["speaker"], registry.name(e["engine"]), e["voice"], dash(e["start"]), dash(e["end"]),
             e["text"], e["error"] or ""] for e in manifest["lines"]]  # fmt: skip
    if manifest["failed"]:
        gr.Warning(f"{manifest['failed']} of {len(rows)} lines could not be rendered; the table says why.")
    said = f"{manifest['rendered']} lines, {manifest['duration_s']:.1f} s of audio."
    return str(out_dir / manifest["take"]), str(archive), rows, ("Stopped. " if manifest["stopped"] else "") + said


def build_tab(owner: gr.Textbox) -> None:
    """The Script tab, inside the caller's gr.Blocks; `owner` holds the visitor's owner token."""
    with gr.Tab("Script", id="script"):
        gr.Markdown(
            "Write a dialogue, a podcast or a story: `Name: line` gives a line to a speaker, other lines go to "
            'the narrator. SSML works inline (`<break time="500ms"/>`, `<say-as interpret-as="characters">`, '
            '`<prosody rate="slow">`, `<phoneme ph="...">`). Each line is levelled to one loudness.'
        )
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(
                    EXAMPLE, lines=8, max_lines=30, label="Script", elem_id="script-text", elem_classes=[COUNTED]
                )
                cast = gr.Code(
                    json.dumps(default_cast(), indent=1), language="json", label="Cast (speaker → engine and voice)",
                    elem_id="script-cast",
                )  # fmt: skip
                gap = gr.Slider(0, MAX_GAP_S, value=DEFAULT_GAP_S, step=0.1, label="Gap between lines (s)")
                with gr.Row():
                    go = gr.Button("Render the take", variant="primary", elem_id="script-render")
                    stop = gr.Button("Stop", elem_id="script-stop")
            with gr.Column():
                take = gr.Audio(label="The take", type="filepath", interactive=False, elem_id="script-take")
                archive = gr.File(
                    label="Per-line files and manifest.json (zip)", interactive=False, elem_id="script-zip"
                )
        status = gr.Markdown(elem_id="script-status")
        table = gr.Dataframe(headers=HEADERS, label="Lines", interactive=False, wrap=True, elem_id="script-table")
        run = go.click(
            stoppable(script_render), [text, cast, gap, owner], [take, archive, table, status], api_name="script",
            concurrency_id="script",
        )  # fmt: skip
        bind_stop(stop, [run], [status])
