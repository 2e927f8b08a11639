"""The Script tab: a script with several speakers (`Name: line`, SSML inline) and a cast (speaker ->
engine and voice) rendered into one take; each line plays in the page's player as soon as it is rendered,
in order, the line being heard (speaker and text) highlighted under the player. The take is then a file,
the per-line files and `manifest.json` download as a zip, and the manifest shows as a table. The Gradio
API and MCP (`script`) get the same take without the player."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import gradio as gr

from engines.base import MAX_TEXT_CHARS
from engines.runtime import registry
from engines.script import MAX_SCRIPT_CHARS, NARRATOR, default_voice, parse, parse_cast, roles
from service import janitor
from service.janitor import output_dir
from service.script import DEFAULT_GAP_S, MAX_GAP_S, render_take, take_lines

from .caller import caller, signed_in_user
from .common import user_errors
from .page import COUNTED
from .player import StreamPlayer
from .stopping import stoppable

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


def _rows(entries: list[dict]) -> list[list]:
    dash = lambda v: "–" if v is None else v  # noqa: E731
    return [[e["index"], e["speaker"], registry.name(e["engine"]), e["voice"], dash(e["start"]), dash(e["end"]),
             e["text"], e["error"] or ""] for e in entries]  # fmt: skip


def _take(script_text: str, cast_json: str, request: gr.Request | None) -> tuple[list, dict, Path]:
    """The script's lines (a signed-in visitor's may be a chapter or a book), their cast, a new output folder."""
    lines = parse(script_text, MAX_SCRIPT_CHARS if signed_in_user(request) else MAX_TEXT_CHARS)
    cast = roles(lines, parse_cast(cast_json or {}))
    output_dir().mkdir(parents=True, exist_ok=True)
    return lines, cast, Path(tempfile.mkdtemp(prefix="script-", dir=output_dir()))


def _finished(manifest: dict, out_dir: Path) -> tuple[str, str, list[list], str]:
    """The take, the zip of the per-line files and manifest, the table, the status sentence."""
    archive = out_dir / "script.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.write(out_dir / "manifest.json", arcname="manifest.json")
        for entry in manifest["lines"]:
            if entry["file"]:
                bundle.write(out_dir / entry["file"], arcname=entry["file"])
    janitor.written()
    if not manifest["take"]:
        raise gr.Error(next((e["error"] for e in manifest["lines"] if e["error"]), "No line could be rendered."))
    rows = _rows(manifest["lines"])
    if manifest["failed"]:
        gr.Warning(f"{manifest['failed']} of {len(rows)} lines could not be rendered; the table says why.")
    said = f"{manifest['rendered']} lines, {manifest['duration_s']:.1f} s of audio."
    return str(out_dir / manifest["take"]), str(archive), rows, ("Stopped. " if manifest["stopped"] else "") + said


def heard_line(entry: dict) -> list[dict]:
    """A line as the player's read-along shows it: one span, "Speaker: text", timed in the take."""
    if entry["start"] is None:
        return []
    return [{"word": f"{entry['speaker']}: {entry['text']}", "start": entry["start"], "end": entry["end"]}]


def script_play(player: StreamPlayer):
    """The page's Script event: each line to the player as it is rendered, then the take and its files."""

    @user_errors
    def script_play(script_text: str, cast_json: str = "", gap_s: float = DEFAULT_GAP_S, owner_token: str = "",
                    request: gr.Request | None = None):  # fmt: skip
        lines, cast, out_dir = _take(script_text, cast_json, request)
        skip = gr.skip()
        yield player.start(), skip, skip, [], f"Rendering line 1 of {len(lines)}…"
        try:
            steps = take_lines(lines, cast, out_dir, "wav", gap_s, caller=caller(owner_token, request))
            entries = []
            while True:
                try:
                    heard = next(steps)
                except StopIteration as done:
                    manifest = done.value
                    break
                entries.append(heard.entry)
                more = f"; rendering line {len(entries) + 1}…" if len(entries) < len(lines) else "."
                status = f"Rendered {len(entries)} of {len(lines)} lines{more}"
                piece = player.piece(heard.audio, words=heard_line(heard.entry)) if heard.audio.size else skip
                yield piece, skip, skip, skip, status  # the table comes whole at the end
            take, archive, rows, said = _finished(manifest, out_dir)
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        yield player.end(), take, archive, rows, said  # every output's last value, whole

    return script_play


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
    lines, cast, out_dir = _take(script_text, cast_json, request)
    progress((0, len(lines)), desc="Rendering", unit="lines")
    try:
        manifest = render_take(
            lines, cast, out_dir, "wav", gap_s, caller=caller(owner_token, request),
            progress=lambda done, total, line: progress((done, total), desc=f"{line.speaker}", unit="lines"),
        )  # fmt: skip
        return _finished(manifest, out_dir)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


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
                player = StreamPlayer("script-player", "Each line as it is rendered")
                take = gr.Audio(label="The take", type="filepath", interactive=False, elem_id="script-take")
                archive = gr.File(
                    label="Per-line files and manifest.json (zip)", interactive=False, elem_id="script-zip"
                )
        status = gr.Markdown(elem_id="script-status")
        table = gr.Dataframe(headers=HEADERS, label="Lines", interactive=False, wrap=True, elem_id="script-table")
        go.click(None, None, status, js="() => ''", queue=False, show_progress="hidden", api_visibility="private")
        run = go.click(
            stoppable(script_play(player)), [text, cast, gap, owner], [player.output, take, archive, table, status],
            api_name="script_play", api_visibility="private", concurrency_id="script",
        )  # fmt: skip
        player.bind(go, stop, [run], [status])
        with gr.Row(visible=False):  # the Gradio API and MCP: the take, its files and the table, no player
            api_button = gr.Button()
        api_button.click(
            stoppable(script_render), [text, cast, gap, owner], [take, archive, table, status], api_name="script",
            concurrency_id="script",
        )  # fmt: skip
