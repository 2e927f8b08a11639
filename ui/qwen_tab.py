"""The Qwen3-TTS tab: preset speakers, voice cloning (with a saved-voice library) and voice design, streamed.

Built only from the engine registry: speakers and languages come from the loaded model (or
voices/qwen.json before loading); the instruction box is live only for a model that follows
instructions; a model that cannot be found offline makes the tab say so in one sentence. Saved
voices are the visitor's own (`ui.owner`): listed, spoken, replaced and deleted only by their owner.
The "Voice design" sub-tab appears for an engine that designs voices (`Capabilities.designs_voices`):
a voice from a description, and "Keep this voice", which clones the designed clip with its text into
the visitor's saved voices (the engine that keeps them: `Capabilities.saved_voices`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gradio as gr

from engines.audio import OutputSettings, join
from engines.base import MAX_INSTRUCT_CHARS, SAMPLE_RATE, InputError, SynthesisRequest
from engines.language import AUTO
from engines.qwen.design import PRESETS
from engines.qwen.engine import catalogue
from engines.reference import Reference, load_reference, read_upload
from engines.runtime import registry
from engines.runtime.timing import RunStats
from engines.voice_library import list_voices, safe_name, voice_exists
from service import voices

from . import lexicon_panel
from .caller import caller
from .common import can_do, needs_ffmpeg, off_notice, status_line, user_errors
from .output import finish, output_controls, settings_from
from .owner import owner_of
from .page import COUNTED, HIDE_EMPTY
from .player import StreamPlayer
from .readalong import CHECK_LABEL, CheckedRun, captions_box, spoken
from .stopping import stoppable
from .streaming import levelled_run, played

LIBRARY_NONE = "(use the reference above)"
INSTRUCT_OFF = "Off: only the 1.7B CustomVoice model follows instructions (the 0.6B one drops them)."


def _reference(path: str | None) -> Reference | None:
    """Decode the clip Gradio stored for an upload or recording (a server-side temp file)."""
    return load_reference(read_upload(path, "reference clip")) if path else None


def _speak(
    engine_id: str, request: SynthesisRequest, prefix: str, fmt: str, settings: OutputSettings, chunks=None
) -> Iterator[tuple]:
    """One run's updates: (int16 piece or None, status line, file or gr.skip(), stats); `chunks`: the list
    the run's chunks are appended to."""
    stats, chunks = RunStats(engine=engine_id), ([] if chunks is None else chunks)
    for step in levelled_run(engine_id, request, settings, stats, chunks):
        if step.waiting is not None:
            yield None, step.waiting, gr.skip(), None
        elif not step.done:
            yield step.sound, status_line(engine_id, stats), gr.skip(), stats
        else:
            path, notes = finish(join(chunks), prefix, fmt, settings)
            done = " · ".join([status_line(engine_id, stats, done=True), *notes])
            yield step.sound, done, path, stats


def _as_audio(updates: Iterator[tuple]) -> Iterator[tuple]:
    """A run's updates for the Gradio API: the pieces as a streamed gr.Audio."""
    for sound, status, path, _ in updates:
        yield (SAMPLE_RATE, sound) if sound is not None else gr.skip(), status, path


def _played(
    player: StreamPlayer, run: Callable, engine_id: str, voice: str, text: str, language: str, check: bool, prefix: str
):
    """A run (`run(chunks)`) as the player's messages, then, with "Check the words", its words aligned,
    the error rate and the captions (`ui.readalong`; named `<prefix>.asr.srt`, like the clip's file)."""
    chunks: list = []
    updates = CheckedRun(run(chunks), status_at=1)
    after = updates.after(chunks, text or "", spoken(engine_id, voice, language, text or ""), bool(check), prefix)
    yield from played(player, updates, outputs=4, chunks=chunks, after=after)


def _for_player(player: StreamPlayer, run) -> Callable:
    """The page's preset event: the same run, its audio as the player's messages."""

    @user_errors
    def stream(*args) -> Iterator[tuple]:
        *inputs, check = args
        text, speaker, language = inputs[:3]
        run_with = lambda chunks: run(*inputs, chunks=chunks)  # noqa: E731
        yield from _played(player, run_with, "qwen-custom", speaker, text, language, check, "qwen-preset")

    return stream


def _clone_for_player(player: StreamPlayer) -> Callable:
    """The page's cloning event (it needs the visitor's request to know whose saved voices it may use)."""

    @user_errors
    def stream(
        path,
        transcript,
        x_vector_only,
        text,
        language,
        saved,
        fmt,
        loudness,
        peak_normalize,
        trim,
        denoise,
        fade,
        check: bool = False,
        owner_token: str = "",
        request: gr.Request = None,
    ) -> Iterator[tuple]:
        run = lambda chunks: _clone(  # noqa: E731
            path, transcript, x_vector_only, text, language, saved, fmt, loudness, peak_normalize, trim, denoise,
            fade, owner_token, request, chunks=chunks,
        )  # fmt: skip
        yield from _played(player, run, "qwen-clone", "", text, language, check, "qwen-clone")

    return stream


@needs_ffmpeg
@user_errors
def preset_stream(
    text: str,
    speaker: str,
    language: str,
    instruct: str,
    fmt: str = "wav",
    loudness: str = "Off",
    peak_normalize: bool = False,
    trim: bool = False,
    denoise: bool = False,
    fade: bool = False,
) -> Iterator[tuple]:
    """Speak text with a Qwen3-TTS preset speaker (CustomVoice model), streamed sentence by sentence.

    Args:
        text: What to say, up to 5,000 characters.
        speaker: One of the nine preset speakers: Vivian, Serena, Uncle_Fu, Dylan, Eric, Ryan, Aiden, Ono_Anna, Sohee.
        language: Language of the text: Auto, Chinese, English, Japanese, Korean, German, French, Russian, etc.
        instruct: Optional style instruction (only the 1.7B model follows it; leave it empty for the 0.6B model).
        fmt: File format of the whole clip: wav, flac, mp3, ogg (Ogg Vorbis) or opus (Ogg Opus).
        loudness: Loudness target: Off, -23, -16, -14, or a number of LUFS from -40 to -5 (true peak at most -1 dBFS).
        peak_normalize: True to bring the true peak to -1 dBFS (used when there is no loudness target).
        trim: True to cut the silence at both ends of the file.
        denoise: True to reduce background noise in the file.
        fade: True for short fades at both ends of the file.

    Returns:
        the audio, streamed sentence by sentence
        a status line with time to first audio and real-time factor
        the whole clip as a file in the chosen format, post-processed.
    """
    yield from _as_audio(_preset(text, speaker, language, instruct, fmt, loudness, peak_normalize, trim, denoise, fade))


def _preset(
    text, speaker, language, instruct, fmt, loudness, peak_normalize, trim, denoise, fade, chunks=None
) -> Iterator[tuple]:
    request = SynthesisRequest(text=text or "", voice=speaker or "", language=language, instruct=instruct or None)
    fmt, settings = settings_from(fmt, loudness, peak_normalize, trim, denoise, fade)
    yield from _speak("qwen-custom", request, "qwen-preset", fmt, settings, chunks)


@user_errors
def transcribe_reference(path: str | None) -> tuple[str, str]:
    """Fill the transcript box from the reference clip (ASR), for the user to correct."""
    reference = _reference(path)
    if reference is None:
        return "", ""
    return voices.transcribe(caller(), reference)


@needs_ffmpeg
@user_errors
def clone_stream(
    path: str | None,
    transcript: str,
    x_vector_only: bool,
    text: str,
    language: str,
    saved: str,
    fmt: str = "wav",
    loudness: str = "Off",
    peak_normalize: bool = False,
    trim: bool = False,
    denoise: bool = False,
    fade: bool = False,
    owner_token: str = "",
    request: gr.Request | None = None,
):
    """Speak text in a cloned voice (Qwen3-TTS Base model), from a reference clip or a saved voice, streamed.

    Args:
        path: Reference clip of the voice to clone (1 to 60 s of speech); not needed when `saved` names a voice.
        transcript: Exact words spoken in the reference clip; empty to transcribe it automatically.
        x_vector_only: True to clone the timbre only (no transcript needed, lower likeness).
        text: What to say in the cloned voice, up to 5,000 characters.
        language: Language of the text: Auto, Chinese, English, Japanese, Korean, German, French, Russian, etc.
        saved: Name of a voice saved with qwen_save_voice, or "(use the reference above)" to clone from `path`.
        fmt: File format of the whole clip: wav, flac, mp3, ogg (Ogg Vorbis) or opus (Ogg Opus).
        loudness: Loudness target: Off, -23, -16, -14, or a number of LUFS from -40 to -5 (true peak at most -1 dBFS).
        peak_normalize: True to bring the true peak to -1 dBFS (used when there is no loudness target).
        trim: True to cut the silence at both ends of the file.
        denoise: True to reduce background noise in the file.
        fade: True for short fades at both ends of the file.
        owner_token: Your owner token (from /owner_token), needed to speak one of your saved voices.

    Returns:
        the audio, streamed sentence by sentence
        a status line with time to first audio and real-time factor
        the whole clip as a file in the chosen format, post-processed.
    """
    yield from _as_audio(
        _clone(
            path,
            transcript,
            x_vector_only,
            text,
            language,
            saved,
            fmt,
            loudness,
            peak_normalize,
            trim,
            denoise,
            fade,
            owner_token,
            request,
        )
    )


def _clone(
    path,
    transcript,
    x_vector_only,
    text,
    language,
    saved,
    fmt,
    loudness,
    peak_normalize,
    trim,
    denoise,
    fade,
    owner_token: str = "",
    request: gr.Request | None = None,
    chunks=None,
) -> Iterator[tuple]:
    fmt, settings = settings_from(fmt, loudness, peak_normalize, trim, denoise, fade)
    if saved and saved != LIBRARY_NONE:
        owner = owner_of(owner_token, request)
        wanted = SynthesisRequest(text=text or "", voice=saved, language=language, owner=owner)
        yield from _speak("qwen-clone", wanted, "qwen-clone", fmt, settings, chunks)
        return
    reference = _reference(path)
    if reference is None:
        raise InputError("Upload or record a reference clip, or pick a saved voice.")
    who = caller(owner_token, request)
    transcript, x_vector_only, notice = voices.settle(who, reference, transcript, x_vector_only)
    if notice:
        gr.Info(notice)
    wanted = SynthesisRequest(
        text=text or "", voice="", language=language, reference=reference,
        reference_text=transcript, x_vector_only=x_vector_only,
    )  # fmt: skip
    yield from _speak("qwen-clone", wanted, "qwen-clone", fmt, settings, chunks)


def _designer() -> str:
    """The engine that designs voices from a description (`Capabilities.designs_voices`)."""
    found = registry.engines_that("designs_voices")
    if not found:
        raise InputError("No voice-design model is configured on this server.")
    return found[0]


def _design_for_player(player: StreamPlayer) -> Callable:
    """The page's design event: the run as the player's messages."""

    @user_errors
    def stream(*args) -> Iterator[tuple]:
        *inputs, check = args
        text, description, language = inputs[:3]
        run = lambda chunks: _design(*inputs, chunks=chunks)  # noqa: E731
        voice = registry.capabilities(_designer()).default_voice
        yield from _played(player, run, _designer(), voice, text, language, check, "qwen-design")

    return stream


@needs_ffmpeg
@user_errors
def design_stream(
    text: str,
    description: str,
    language: str,
    fmt: str = "wav",
    loudness: str = "Off",
    peak_normalize: bool = False,
    trim: bool = False,
    denoise: bool = False,
    fade: bool = False,
) -> Iterator[tuple]:
    """Speak text in a voice designed from a description (Qwen3-TTS VoiceDesign model), streamed sentence by sentence.

    Args:
        text: What to say, up to 5,000 characters.
        description: The voice in words, up to 500 characters: who speaks, timbre, pace, mood (e.g. "A warm,
            low-pitched narrator in his sixties, slow and calm"); empty for the default described voice.
        language: Language of the text: Auto, Chinese, English, Japanese, Korean, German, French, Russian, etc.
        fmt: File format of the whole clip: wav, flac, mp3, ogg (Ogg Vorbis) or opus (Ogg Opus).
        loudness: Loudness target: Off, -23, -16, -14, or a number of LUFS from -40 to -5 (true peak at most -1 dBFS).
        peak_normalize: True to bring the true peak to -1 dBFS (used when there is no loudness target).
        trim: True to cut the silence at both ends of the file.
        denoise: True to reduce background noise in the file.
        fade: True for short fades at both ends of the file.

    Returns:
        the audio, streamed sentence by sentence
        a status line with time to first audio and real-time factor
        the whole clip as a file in the chosen format (keep it as a saved voice with qwen_keep_designed_voice).
    """
    yield from _as_audio(_design(text, description, language, fmt, loudness, peak_normalize, trim, denoise, fade))


def _design(
    text, description, language, fmt, loudness, peak_normalize, trim, denoise, fade, chunks=None
) -> Iterator[tuple]:
    engine_id = _designer()
    voice = registry.capabilities(engine_id).default_voice  # a described voice; the description replaces it
    request = SynthesisRequest(
        text=text or "", voice=voice, language=language, instruct=(description or "").strip() or None
    )
    fmt, settings = settings_from(fmt, loudness, peak_normalize, trim, denoise, fade)
    yield from _speak(engine_id, request, "qwen-design", fmt, settings, chunks)


@user_errors
def keep_designed(
    clip: str | None,
    text: str,
    name: str,
    overwrite: bool = False,
    share_in_arena: bool = False,
    owner_token: str = "",
    request: gr.Request | None = None,
):
    """Keep a designed voice: clone a clip made by qwen_design_stream, with the text it speaks, into your saved voices.

    A designed voice changes a little from one generation to the next; a saved voice sounds the same in every
    line, tab, /v1 request and CLI call (speak it with the cloning model, as `saved`).

    Args:
        clip: The whole clip that qwen_design_stream returned (its file).
        text: Exactly the text that clip speaks (the cloning model learns the voice from both).
        name: Name of the saved voice (letters, digits, - and _; any case: "Bob" is "bob").
        overwrite: True to replace your voice of the same name; without it, a name you already use is refused.
        share_in_arena: True to let the blind Arena draw this voice for everyone's votes.
        owner_token: Your owner token (from /owner_token): only this token lists, uses or deletes the voice.

    Returns:
        your saved-voice list, with the kept voice selected.
    """
    if not clip:
        raise InputError("Generate a clip in a designed voice first, then keep it.")
    if not (text or "").strip():
        raise InputError("Keeping a designed voice needs the text its clip speaks.")
    return save_reference(clip, text, False, name, overwrite, share_in_arena, owner_token, request)


def _library(owner: str | None, value: str = LIBRARY_NONE):
    """The saved-voice dropdown: the owner's voices only."""
    return gr.update(choices=[LIBRARY_NONE, *list_voices(owner)], value=value)


@user_errors
def save_reference(
    path: str | None,
    transcript: str,
    x_vector_only: bool,
    name: str,
    overwrite: bool = False,
    share_in_arena: bool = False,
    owner_token: str = "",
    request: gr.Request | None = None,
):
    """Save a reference clip as one of your named voices, to speak with later (it survives restarts).

    Args:
        path: Reference clip of the voice to save (1 to 60 s of speech).
        transcript: Exact words spoken in the reference clip; empty to transcribe it automatically.
        x_vector_only: True to keep the timbre only (no transcript needed, lower likeness).
        name: Name of the saved voice (letters, digits, - and _; other characters become -; any case: "Bob" is "bob").
        overwrite: True to replace your voice of the same name; without it, a name you already use is refused.
        share_in_arena: True to let the blind Arena draw this voice for everyone's votes.
        owner_token: Your owner token (from /owner_token): only this token lists, uses or deletes the voice.

    Returns:
        your saved-voice list, with the new voice (under its safe name) selected.
    """
    who = caller(owner_token, request)
    reference = _reference(path)
    if reference is None:
        raise InputError("Upload or record a reference clip before saving it.")
    if not overwrite and voice_exists(name, who.owner):  # before the model runs; save_voice checks again
        raise InputError(f"You already have a voice called {safe_name(name)!r}; pass overwrite to replace it.")
    # qwen-clone's capabilities: clones, keeps saved voices (`clone_prompt`)
    saved = voices.save(who, "qwen-clone", name, reference, transcript, x_vector_only, overwrite, share_in_arena)
    gr.Info(f"Saved the voice as {saved.slug!r}.")
    return _library(who.owner, saved.slug)


@user_errors
def save_from_page(path, transcript, x_vector_only, name, share_in_arena, owner_token, request: gr.Request):
    """The page's Save: a name the visitor already uses asks first (the Replace row) instead of saving."""
    if name and voice_exists(name, owner_of(owner_token, request)):
        question = f"You already have a voice called **{safe_name(name)}**. Replace it with this clip?"
        return gr.skip(), gr.update(visible=True), question
    return save_reference(path, transcript, x_vector_only, name, False, share_in_arena, owner_token, request), *_asked()


@user_errors
def replace_from_page(path, transcript, x_vector_only, name, share_in_arena, owner_token, request: gr.Request):
    """The page's Replace (after Save asked): save over the visitor's voice of that name."""
    return save_reference(path, transcript, x_vector_only, name, True, share_in_arena, owner_token, request), *_asked()


def _asked() -> tuple:
    """The Replace row hidden again, its question cleared."""
    return gr.update(visible=False), ""


@user_errors
def delete_saved(name: str, owner_token: str = "", request: gr.Request | None = None):
    """Delete one of your saved voices.

    Args:
        name: Name of your saved voice to delete.
        owner_token: Your owner token (from /owner_token); only the voice's owner can delete it.

    Returns:
        your saved-voice list without that voice.
    """
    if not name or name == LIBRARY_NONE:
        raise InputError("Pick a saved voice to delete.")
    who = caller(owner_token, request)
    voices.delete(who, name)
    gr.Info(f"Deleted the saved voice {name!r}.")
    return _library(who.owner)


def my_library(owner_token: str, request: gr.Request):
    """The visitor's saved voices, when the page learns who they are (on load)."""
    return _library(owner_of(owner_token, request)), owner_token


def _api_stream(fn: Callable, inputs: list, outputs: list, api_name: str) -> None:
    """A hidden event for the Gradio API and MCP: the stream as a streamed gr.Audio."""
    with gr.Row(visible=False):
        audio = gr.Audio(streaming=True, autoplay=False, interactive=False)
        button = gr.Button()
    button.click(
        fn, inputs, [audio, *outputs], api_name=api_name, concurrency_id="qwen",
        concurrency_limit=None,  # admitted and ordered by the work queue
    )  # fmt: skip


def build_tab(owner: gr.Textbox) -> None:
    """The Qwen3-TTS tab, inside the caller's gr.Blocks; `owner` holds the visitor's owner token."""
    speakers = [
        (f"{s['id'].replace('_', ' ')} · {s['native_language']} · {s['description']}", s["id"])
        for s in catalogue()["speakers"]
    ]
    languages = catalogue()["languages"]
    with gr.Tab("Qwen3-TTS", id="qwen"):
        with gr.Tab("Preset speakers", id="qwen-preset"):
            gr.Markdown(can_do("qwen-custom"))
            custom = registry.info("qwen-custom")
            follows = custom.available and custom.follows_instructions
            with gr.Row():
                with gr.Column(scale=3):
                    p_text = gr.Textbox(
                        label="Text",
                        lines=5,
                        value="Hello! This is one of Qwen3-TTS's preset speakers.",
                        elem_id="qwen-preset-text",
                        elem_classes=[COUNTED],
                    )
                    off_notice("qwen-custom", "qwen-preset-off")
                    with gr.Row():  # right under the text, also on a phone
                        p_go = gr.Button(
                            "Generate", variant="primary", elem_id="qwen-preset-generate", interactive=custom.available
                        )
                        p_stop = gr.Button("Stop", variant="stop", elem_id="qwen-preset-stop")
                with gr.Column(scale=2):
                    p_speaker = gr.Dropdown(speakers, value="Ryan", label="Speaker")
                    p_language = gr.Dropdown(languages, value=AUTO, label="Language")
                    p_instruct = gr.Textbox(
                        label="Instruction", interactive=follows, info=None if follows else INSTRUCT_OFF
                    )
                    p_check = gr.Checkbox(False, label=CHECK_LABEL, elem_id="qwen-preset-check")
                    p_output = output_controls("qwen-preset")
            p_player = StreamPlayer("qwen-preset-player", "Speech")
            p_status = gr.Markdown(elem_id="qwen-preset-status")
            p_file = gr.File(
                label="Download the whole clip",
                interactive=False,
                elem_id="qwen-preset-download",
                elem_classes=HIDE_EMPTY,
            )
            p_captions = captions_box("qwen-preset", p_check)
            p_inputs = [p_text, p_speaker, p_language, p_instruct, *p_output]
            p_event = p_go.click(
                stoppable(_for_player(p_player, _preset)), [*p_inputs, p_check],
                [p_player.output, p_status, p_file, p_captions],
                api_name="qwen_preset_play", api_visibility="private", concurrency_id="qwen", concurrency_limit=None,
            )  # fmt: skip
            p_player.bind(p_go, p_stop, [p_event], [p_status])
            _api_stream(preset_stream, p_inputs, [p_status, p_file], "qwen_preset_stream")

        with gr.Tab("Voice cloning", id="qwen-clone"):
            gr.Markdown(can_do("qwen-clone"))
            off_notice("qwen-clone", "qwen-clone-off")
            with gr.Row():
                with gr.Column():
                    c_ref = gr.Audio(
                        label="Reference clip (3–30 s of speech)",
                        sources=["upload", "microphone"],
                        type="filepath",
                        elem_id="qwen-ref",
                    )
                    c_transcript = gr.Textbox(
                        label="Transcript of the reference (filled by ASR; correct it)",
                        lines=2,
                        elem_id="qwen-ref-text",
                    )
                    c_notice = gr.Markdown(elem_id="qwen-ref-notice")
                    c_xvec = gr.Checkbox(label="x-vector only (timbre only; no transcript needed)")
                    with gr.Row():
                        c_name = gr.Textbox(label="Save as", placeholder="my-voice", scale=3, elem_id="qwen-save-name")
                        c_save = gr.Button("Save to library", scale=1, elem_id="qwen-save")
                    c_share = gr.Checkbox(
                        label="Share in the arena (anyone may hear it in blind pairs; its name shows after a vote)"
                    )
                    with gr.Row(visible=False, elem_id="qwen-replace-row") as c_ask:
                        c_question = gr.Markdown()
                        c_replace = gr.Button("Replace it", variant="stop", scale=0, elem_id="qwen-replace")
                        c_keep = gr.Button("Cancel", scale=0)
                    with gr.Row():
                        c_saved = gr.Dropdown(
                            [LIBRARY_NONE], value=LIBRARY_NONE, label="Your saved voices", scale=3,
                            elem_id="qwen-saved", allow_custom_value=True,  # API callers name theirs
                        )  # fmt: skip
                        c_delete = gr.Button("Delete", scale=1, elem_id="qwen-delete")
                    with gr.Accordion("Your saved voices from scripts", open=False):
                        gr.Markdown(
                            "Your voices are yours alone. To use them through the Gradio API or MCP, pass this "
                            "key as `owner_token`; keep it secret (whoever has it can use and delete them)."
                        )
                        c_key = gr.Textbox(label="Owner token", type="password", interactive=False, buttons=["copy"])
                with gr.Column():
                    c_text = gr.Textbox(
                        label="Text to say in the cloned voice",
                        lines=5,
                        value="This is my cloned voice speaking.",
                        elem_id="qwen-clone-text",
                        elem_classes=[COUNTED],
                    )
                    c_language = gr.Dropdown(languages, value=AUTO, label="Language")
                    c_check = gr.Checkbox(False, label=CHECK_LABEL, elem_id="qwen-clone-check")
                    c_output = output_controls("qwen-clone")
                    with gr.Row():
                        c_go = gr.Button(
                            "Generate",
                            variant="primary",
                            elem_id="qwen-clone-generate",
                            interactive=registry.info("qwen-clone").available,
                        )
                        c_stop = gr.Button("Stop", variant="stop", elem_id="qwen-clone-stop")
                    c_player = StreamPlayer("qwen-clone-player", "Speech")
                    c_status = gr.Markdown(elem_id="qwen-clone-status")
                    c_file = gr.File(
                        label="Download the whole clip",
                        interactive=False,
                        elem_id="qwen-clone-download",
                        elem_classes=HIDE_EMPTY,
                    )
                    c_captions = captions_box("qwen-clone", c_check)
            c_ref.upload(transcribe_reference, c_ref, [c_transcript, c_notice], api_visibility="private")
            c_ref.stop_recording(transcribe_reference, c_ref, [c_transcript, c_notice], api_visibility="private")
            c_inputs = [c_ref, c_transcript, c_xvec, c_text, c_language, c_saved, *c_output]
            c_event = c_go.click(
                stoppable(_clone_for_player(c_player)), [*c_inputs, c_check, owner],
                [c_player.output, c_status, c_file, c_captions],
                api_name="qwen_clone_play", api_visibility="private", concurrency_id="qwen", concurrency_limit=None,
            )  # fmt: skip
            c_player.bind(c_go, c_stop, [c_event], [c_status])
            _api_stream(clone_stream, [*c_inputs, owner], [c_status, c_file], "qwen_clone_stream")
            asking = [c_ref, c_transcript, c_xvec, c_name, c_share, owner]
            c_save.click(save_from_page, asking, [c_saved, c_ask, c_question], api_visibility="private")
            c_replace.click(replace_from_page, asking, [c_saved, c_ask, c_question], api_visibility="private")
            c_keep.click(_asked, None, [c_ask, c_question], api_visibility="private")
            c_delete.click(delete_saved, [c_saved, owner], c_saved, api_name="qwen_delete_voice")
            owner.change(
                my_library, owner, [c_saved, c_key], api_visibility="private", show_progress="hidden", queue=False
            )
            with gr.Row(visible=False):  # the API's save: no question asked, `overwrite` says it
                api_overwrite, api_save = gr.Checkbox(False), gr.Button()
            api_save.click(
                save_reference, [c_ref, c_transcript, c_xvec, c_name, api_overwrite, c_share, owner], c_saved,
                api_name="qwen_save_voice",
            )  # fmt: skip
        for designer in registry.engines_that("designs_voices"):  # normally one: Qwen3-TTS VoiceDesign
            _design_tab(designer, languages, owner, c_saved)
        lexicon_panel.build("qwen-custom", owner)  # the visitor's pronunciations, under every sub-tab


def _design_tab(engine_id: str, languages: list[str], owner: gr.Textbox, saved: gr.Dropdown) -> None:
    """The "Voice design" sub-tab: a voice from a description, streamed; "Keep this voice" clones the clip
    with its text into the visitor's saved voices (`saved`: the cloning sub-tab's list, updated)."""
    described = {v.id: v.name for v in registry.info(engine_id).voices}
    default = registry.capabilities(engine_id).default_voice
    with gr.Tab("Voice design", id="qwen-design"):
        gr.Markdown(can_do(engine_id))
        available = registry.info(engine_id).available
        with gr.Row():
            with gr.Column(scale=3):
                d_text = gr.Textbox(
                    label="Text", lines=5, value="Hello! This voice was designed from a few words.",
                    elem_id="qwen-design-text", elem_classes=[COUNTED],
                )  # fmt: skip
                d_description = gr.Textbox(
                    label="Describe the voice (who speaks, timbre, pace, mood)", lines=3,
                    value=PRESETS.get(default, ("", ""))[1], info=f"Up to {MAX_INSTRUCT_CHARS} characters.",
                    elem_id="qwen-design-description",
                )  # fmt: skip
                off_notice(engine_id, "qwen-design-off")
                with gr.Row():  # right under the text, also on a phone
                    d_go = gr.Button(
                        "Generate", variant="primary", elem_id="qwen-design-generate", interactive=available
                    )
                    d_stop = gr.Button("Stop", variant="stop", elem_id="qwen-design-stop")
            with gr.Column(scale=2):
                d_start = gr.Dropdown(
                    [(name, voice) for voice, name in described.items()], value=default,
                    label="Start from a described voice", elem_id="qwen-design-start",
                )  # fmt: skip
                d_language = gr.Dropdown(languages, value=AUTO, label="Language")
                d_check = gr.Checkbox(False, label=CHECK_LABEL, elem_id="qwen-design-check")
                d_output = output_controls("qwen-design")
        d_player = StreamPlayer("qwen-design-player", "Speech")
        d_status = gr.Markdown(elem_id="qwen-design-status")
        d_file = gr.File(
            label="Download the whole clip", interactive=False, elem_id="qwen-design-download", elem_classes=HIDE_EMPTY
        )
        d_captions = captions_box("qwen-design", d_check)
        gr.Markdown(
            "A designed voice changes a little with every generation. **Keep this voice** clones the clip above, "
            "with its text, into your saved voices: then it sounds the same in every line, tab, `/v1` and the CLI."
        )
        with gr.Row():
            d_name = gr.Textbox(label="Keep as", placeholder="my-narrator", scale=3, elem_id="qwen-design-name")
            d_keep = gr.Button("Keep this voice", scale=1, elem_id="qwen-design-keep", interactive=available)
        d_share = gr.Checkbox(
            label="Share in the arena (anyone may hear it in blind pairs; its name shows after a vote)"
        )
        # the text of the clip being made, its transcript when it is kept (a textbox: an API parameter too)
        d_spoken = gr.Textbox(visible=False)
        d_start.change(lambda voice: PRESETS.get(voice, ("", ""))[1], d_start, d_description, api_visibility="private")
        d_inputs = [d_text, d_description, d_language, *d_output]
        d_go.click(lambda text: text, d_text, d_spoken, api_visibility="private", show_progress="hidden")
        d_event = d_go.click(
            stoppable(_design_for_player(d_player)), [*d_inputs, d_check],
            [d_player.output, d_status, d_file, d_captions],
            api_name="qwen_design_play", api_visibility="private", concurrency_id="qwen", concurrency_limit=None,
        )  # fmt: skip
        d_player.bind(d_go, d_stop, [d_event], [d_status])
        _api_stream(design_stream, d_inputs, [d_status, d_file], "qwen_design_stream")
        with gr.Row(visible=False):  # the API's keep: `overwrite` says whether a name may be reused
            d_overwrite = gr.Checkbox(False)
        d_keep.click(
            keep_designed, [d_file, d_spoken, d_name, d_overwrite, d_share, owner], saved,
            api_name="qwen_keep_designed_voice",
        )  # fmt: skip
