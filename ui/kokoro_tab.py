"""The Kokoro tab: 54 preset voices (five offline) and blends, streamed into the browser while the
rest is generated, with phonemes, word timings and the shared Output section.

UI only: every model call goes through the engine registry, every figure shown comes from
`engines.runtime.timing`; errors reach the user as one sentence.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from engines.audio import join
from engines.base import MAX_SPEED, MIN_SPEED, SAMPLE_RATE, SynthesisRequest
from engines.kokoro.voices import LANGUAGES
from engines.language import AUTO
from engines.runtime import registry
from engines.runtime.timing import RunStats
from service import speech

from . import kokoro_in_browser, lexicon_panel, voice_search_panel
from .caller import caller, owner_of
from .common import found_voice_choices, header, needs_ffmpeg, status_line, user_errors
from .output import finish, output_controls, settings_from
from .page import COUNTED, HIDE_EMPTY, example_buttons
from .player import StreamPlayer
from .readalong import CHECK_LABEL, CheckedRun, captions_box, spoken
from .stopping import stoppable
from .streaming import levelled_run, played

EXAMPLES = [
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.",
    "Kokoro is an open-weight text-to-speech model with eighty-two million parameters. "
    "Despite its small size, it delivers quality comparable to much larger models, "
    "and it is fast enough to speak while it is still reading the rest of your text.",
    "You say tomato, I say [tomato](/təmˈɑTO/). Let's call the whole thing off!",
    "On the 3rd of May, 2024, the temperature reached 31°C; nobody expected that.",
]
MARKUP_HELP = (
    "Pronunciation markup: a word in square brackets, then its phonemes between slashes in parentheses (third example)."
)
FLAGS = {"a": "🇺🇸", "b": "🇬🇧", "e": "🇪🇸", "f": "🇫🇷", "h": "🇮🇳", "i": "🇮🇹", "p": "🇧🇷", "j": "🇯🇵", "z": "🇨🇳"}


def voice_choices(owner: str | None = None) -> tuple[list[tuple[str, str]], str]:
    """Dropdown (label, id) pairs: the voices that speak here first, then `owner`'s found voices
    ("Find a Kokoro voice"), then the others (each group by language), those marked "needs the model
    hub"; and the default voice."""
    info = registry.info("kokoro")
    voices = sorted(info.voices, key=lambda v: (not v.available, list(FLAGS).index(v.id[0]), v.id))
    choices = []
    for v in voices:
        grade = f"grade {v.grade}" if v.grade else "ungraded"
        where = "" if v.available else " · needs the model hub"
        choices.append((f"{FLAGS[v.id[0]]} {v.language} · {v.name} ({v.id}) · {v.gender} · {grade}{where}", v.id))
    ready = sum(1 for v in voices if v.available)
    choices[ready:ready] = found_voice_choices(owner)
    available = {v.id for v in voices if v.available}
    capabilities = registry.capabilities("kokoro")  # its default voices, with the hub and offline
    default = capabilities.preferred_voice(available) or next(iter(sorted(available)), capabilities.default_voice)
    return choices, default


def on_owner(owner_token: str, current: str, request: gr.Request):
    """The voice list once the page knows its visitor (and after a search saved a voice): their found
    voices join it; the chosen voice stays."""
    choices, default = voice_choices(owner_of(owner_token, request))
    return gr.update(choices=choices, value=current if current in {v for _, v in choices} else default)


def available_voices() -> list[str]:
    """Ids of the Kokoro voices that speak here now, best first (the default voice leads)."""
    choices, default = voice_choices()
    ready = [v.id for v in registry.info("kokoro").voices if v.available]
    return sorted(ready, key=lambda v: (v != default, [c[1] for c in choices].index(v)))


def blend_placeholder(choices: list[tuple[str, str]] | None = None) -> str:
    """An example blend of two voices that speak here (one voice alone when only one does)."""
    ready = available_voices()
    if len(ready) >= 2:
        return f"{ready[0]}:0.7,{ready[1]}:0.3"
    return f"{ready[0]}:1.0" if ready else ""


def _request(text: str, voice: str, blend: str, speed: float, language: str, owner: str | None) -> SynthesisRequest:
    return SynthesisRequest(
        text=text or "",
        voice=(blend or "").strip() or voice or "",
        speed=speed,
        language=language,  # "Auto" and blanks mean automatic (engines.language)
        owner=owner,  # whose found voices it may speak
    )


@needs_ffmpeg
@user_errors
def kokoro_stream(
    text: str,
    voice: str,
    blend: str,
    speed: float,
    language: str,
    fmt: str = "wav",
    loudness: str = "Off",
    peak_normalize: bool = False,
    trim: bool = False,
    denoise: bool = False,
    fade: bool = False,
) -> Iterator[tuple]:
    """Speak text with Kokoro-82M, streamed chunk by chunk while the rest is still being generated.

    Args:
        text: What to say, up to 5,000 characters; `[word](/phonemes/)` sets a word's pronunciation.
        voice: A Kokoro voice id such as af_heart or jm_kumo (offline, only the five packaged voices work).
        blend: Optional weighted voice blend that overrides `voice`, like af_heart:0.7,af_bella:0.3; empty for none.
        speed: Speaking rate from 0.5 to 2.0 (1.0 is normal).
        language: Language of the text for the phonemizer, such as American English, or Auto to follow the voice.
        fmt: File format of the whole clip: wav, flac, mp3, ogg (Ogg Vorbis) or opus (Ogg Opus).
        loudness: Loudness target: Off, -23, -16, -14, or a number of LUFS from -40 to -5 (true peak at most -1 dBFS).
        peak_normalize: True to bring the true peak to -1 dBFS (used when there is no loudness target).
        trim: True to cut the silence at both ends of the file.
        denoise: True to reduce background noise in the file.
        fade: True for short fades at both ends of the file.

    Returns:
        the audio, streamed chunk by chunk (at the loudness target when one is set)
        the phonemes spoken, one line per chunk
        the word timings (PyTorch back-end only)
        a status line with time to first audio and real-time factor
        the whole clip as a file in the chosen format, post-processed.
    """
    for sound, phonemes, words, status, path, _ in _run(
        text, voice, blend, speed, language, fmt, loudness, peak_normalize, trim, denoise, fade
    ):
        yield (SAMPLE_RATE, sound) if sound is not None else gr.skip(), phonemes, words, status, path


def _run(
    text, voice, blend, speed, language, fmt, loudness, peak_normalize, trim, denoise, fade, chunks=None, owner=None
) -> Iterator[tuple]:
    """One run's updates: (int16 piece or None, phonemes, words, status, file, stats); gr.skip() for
    what did not change. `chunks`: the list the run's chunks are appended to; `owner`: whose found voices
    it may speak."""
    request = _request(text, voice, blend, speed, language, owner)
    fmt, settings = settings_from(fmt, loudness, peak_normalize, trim, denoise, fade)
    stats = RunStats(engine="kokoro")
    chunks = [] if chunks is None else chunks
    phonemes, words = [], []
    for step in levelled_run("kokoro", request, settings, stats, chunks):
        if step.waiting is not None:  # no audio yet
            yield None, gr.skip(), gr.skip(), step.waiting, gr.skip(), None
        elif not step.done:
            phonemes.append(step.chunk.phonemes)
            at = sum(c.duration_s for c in chunks[:-1])
            words += [[w.word, w.phonemes, round(at + w.start_s, 2), round(at + w.end_s, 2)] for w in step.chunk.words]
            yield step.sound, "\n".join(phonemes), words, status_line("kokoro", stats), gr.skip(), stats
        else:
            path, notes = finish(join(chunks), "kokoro", fmt, settings)
            done = " · ".join([status_line("kokoro", stats, done=True), *notes])
            yield step.sound, gr.skip(), gr.skip(), done, path, stats


def _shown(updates: Iterator[tuple]) -> Iterator[tuple]:
    """The page's view of a run's updates: the word-timing table shown only once there are word times
    (the ONNX back-end gives none: an empty table with numbered headers would say nothing)."""
    for sound, phonemes, words, *rest in updates:
        if isinstance(words, list):
            words = gr.update(value=words, visible=True) if words else gr.update(visible=False)
        yield (sound, phonemes, words, *rest)


def page_stream(player: StreamPlayer):
    """The page's Generate: the same run as `kokoro_stream`, its audio as the player's messages (with
    the model's word times where it gives them), then, with "Check the words", the words aligned, the
    error rate and the captions (`ui.readalong`)."""

    @user_errors
    def stream(*args) -> Iterator[tuple]:
        *inputs, check = args
        text, voice, blend, _, language = inputs[:5]
        chunks: list = []
        spoken_in = spoken("kokoro", (blend or "").strip() or voice, language, text or "")
        outputs = CheckedRun(_shown(_run(*inputs, chunks=chunks, owner=lexicon_panel.visitor())), status_at=3)
        after = outputs.after(chunks, text or "", spoken_in, bool(check), "kokoro")
        yield from played(player, outputs, outputs=6, chunks=chunks, after=after)

    return stream


@user_errors
def kokoro_synthesize(
    text: str,
    voice: str,
    speed: float = 1.0,
    language: str = "Auto",
    fmt: str = "wav",
    loudness: str = "Off",
    peak_normalize: bool = False,
    trim: bool = False,
    denoise: bool = False,
    fade: bool = False,
) -> tuple[str, dict]:
    """Speak text with Kokoro-82M and return the whole clip as a file (not streamed).

    Args:
        text: What to say, up to 5,000 characters; `[word](/phonemes/)` sets a word's pronunciation.
        voice: A Kokoro voice id such as af_heart or jm_kumo (offline, only the five packaged voices work).
        speed: Speaking rate from 0.5 to 2.0 (1.0 is normal).
        language: Language of the text for the phonemizer, such as American English, or Auto to follow the voice.
        fmt: File format of the whole clip: wav, flac, mp3, ogg (Ogg Vorbis) or opus (Ogg Opus).
        loudness: Loudness target: Off, -23, -16, -14, or a number of LUFS from -40 to -5 (true peak at most -1 dBFS).
        peak_normalize: True to bring the true peak to -1 dBFS (used when there is no loudness target).
        trim: True to cut the silence at both ends of the file.
        denoise: True to reduce background noise in the file.
        fade: True for short fades at both ends of the file.

    Returns:
        the whole clip as a file in the chosen format (WAV by default), post-processed
        the run's measured figures (audio_s, total_s, ttfa_s, rtf, chunks), the phonemes spoken and notes.
    """
    fmt, settings = settings_from(fmt, loudness, peak_normalize, trim, denoise, fade)
    audio, chunks, stats = speech.synthesize(caller(), "kokoro", _request(text, voice, "", speed, language, None))
    path, notes = finish(audio, "kokoro", fmt, settings)
    summary = {**stats.summary(), "phonemes": [c.phonemes for c in chunks], "notes": notes}
    return path, summary


def engine_banner() -> str:
    """The page's header (`app.py` shows it above the tabs): what each engine can do here, refreshed
    after a run (the engine may have loaded or failed)."""
    return header()


def build_tab(banner: gr.Markdown, owner: gr.Textbox | None = None) -> str:
    """The Kokoro tab, inside the caller's gr.Blocks; `banner` is refreshed after each run (the engine
    may have loaded or failed); `owner` (the visitor's owner token) adds "Find a Kokoro voice". Returns
    the default voice, for the other tabs."""
    choices, default_voice = voice_choices()
    with gr.Tab("Kokoro", id="kokoro"):
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(
                    label="Text",
                    lines=6,
                    value=EXAMPLES[0],
                    elem_id="kokoro-text",
                    elem_classes=[COUNTED],
                    info=MARKUP_HELP,
                )
                example_buttons(EXAMPLES, text)
                with gr.Row():  # right under the text, also on a phone
                    generate = gr.Button("Generate", variant="primary", elem_id="kokoro-generate")
                    stop = gr.Button("Stop", variant="stop", elem_id="kokoro-stop")
            with gr.Column(scale=2):
                voice = gr.Dropdown(
                    choices,
                    value=default_voice,
                    label="Voice",
                    elem_id="kokoro-voice",
                    info="Voices that speak here come first; grades from upstream VOICES.md.",
                )
                blend = gr.Textbox(
                    label="Blend (optional, overrides the voice)",
                    placeholder=blend_placeholder(),
                    elem_id="kokoro-blend",
                )
                language = gr.Dropdown([AUTO, *LANGUAGES.values()], value=AUTO, label="Language of the text")
                speed = gr.Slider(MIN_SPEED, MAX_SPEED, value=1.0, step=0.05, label="Speed")
                check = gr.Checkbox(False, label=CHECK_LABEL, elem_id="kokoro-check")
                render_in = kokoro_in_browser.render_in()
                output = output_controls("kokoro")
        player = StreamPlayer("kokoro-player", "Speech")
        status = gr.Markdown(elem_id="kokoro-status")
        in_browser = kokoro_in_browser.bind(render_in, generate, player, [text, voice, blend, speed, language], owner)
        with gr.Row():
            download = gr.File(
                label="Download the whole clip", interactive=False, elem_id="kokoro-download", elem_classes=HIDE_EMPTY
            )
            captions = captions_box("kokoro", check)
        # a run in this browser is not the server's last run: its status line and files go
        in_browser.click(
            lambda: ("", None, None), None, [status, download, captions], queue=False, api_visibility="private"
        )
        with gr.Accordion("Phonemes and word timings", open=False):
            phonemes = gr.Textbox(label="Phonemes, one line per streamed chunk", lines=4, interactive=False)
            words = gr.Dataframe(
                headers=["word", "phonemes", "start (s)", "end (s)"],
                label="Word timings",
                interactive=False,
                visible=False,  # shown once a run has word times (the ONNX back-end gives none)
                elem_id="kokoro-words",
            )
        lexicon_panel.build("kokoro")  # the visitor's pronunciations: edited, tried, applied to every run
        if owner is not None:
            search = voice_search_panel.build(
                owner, sorted(v.id for v in registry.info("kokoro").voices if v.available)
            )
            owner.change(on_owner, [owner, voice], voice, api_visibility="private")
            search.then(on_owner, [owner, voice], voice, api_visibility="private")  # a voice it saved is listed
        inputs = [text, voice, blend, speed, language, *output]
        event = generate.click(
            stoppable(page_stream(player)), [*inputs, check],
            [player.output, phonemes, words, status, download, captions],
            api_name="kokoro_play", api_visibility="private", concurrency_id="kokoro",
            concurrency_limit=None,  # admitted and ordered by the work queue
        )  # fmt: skip
        player.bind(generate, stop, [event], [status])
        event.then(engine_banner, None, banner, api_visibility="private")
        with gr.Row(visible=False):  # the Gradio API and MCP: the stream as a streamed gr.Audio
            api_audio = gr.Audio(streaming=True, autoplay=False, interactive=False)
            api_stream = gr.Button()
        api_stream.click(
            kokoro_stream, inputs, [api_audio, phonemes, words, status, download],
            api_name="stream", concurrency_id="kokoro", concurrency_limit=None,
        )  # fmt: skip
        with gr.Row(visible=False):
            api_file = gr.Audio(type="filepath")
            api_info = gr.JSON()
            api_button = gr.Button()
        api_button.click(
            kokoro_synthesize,
            [text, voice, speed, language, *output],
            [api_file, api_info],
            api_name="synthesize",
            concurrency_id="kokoro",
            concurrency_limit=None,  # admitted and ordered by the work queue
        )
    return default_voice
