"""The Kokoro tab's "Find a Kokoro voice": a clip in, a Kokoro voice that sounds like it out.

The search (`evaluation.voice_search`) runs in a worker thread under a progress bar that shows the best
similarity so far; Stop ends it early and keeps the best voice found by then. The voice is saved in the
visitor's library (`engines.kokoro.voices.save_found_voice`, safetensors in the official layout) and is
theirs alone: spoken here with "Try it", and by name on `/v1` and, for the operator's, the CLI. One
search runs at a time on this server (each holds the CPU for up to `MAX_BUDGET_S`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import gradio as gr

from engines.base import InputError, SynthesisRequest
from engines.kokoro.voices import list_found_voices, save_found_voice
from engines.reference import load_reference, read_upload
from engines.runtime import stop as stopping
from engines.voice_library import safe_name
from evaluation.voice_search import Found, Progress, VoiceSearch, searching_engine
from service import admission, speech, voices

from .caller import caller
from .common import clip_path, user_errors
from .stopping import bind_stop, stoppable

MAX_BUDGET_S = 300.0
_one_search = threading.Lock()


def _figures(slug: str, found: Found) -> str:
    held = found.held_out
    verb = "Stopped; kept the best so far" if found.stopped else "Found"
    wer = "–" if found.wer is None else f"{found.wer:.0%}"
    return (
        f"**{verb}: `{slug}`** after {found.evaluations} voices in {found.compute_s:.0f} s, starting from "
        f"`{found.start}`.\n\n| speaker similarity to your clip | on a held-out sentence |\n|---|---|\n"
        f"| the found voice | {held.get('found', 0):.3f} |\n"
        f"| its start (`{found.start}`) | {held.get('start', 0):.3f} |\n"
        f"| the nearest stock voice (`{found.nearest_stock}`) | {held.get('nearest_stock', 0):.3f} |\n\n"
        f"Word error rate of the found voice on your clip's words: {wer}."
    )


@user_errors
def find_kokoro_voice(
    clip: str | None,
    transcript: str,
    exclude: list[str] | None,
    budget_s: float,
    name: str,
    overwrite: bool = False,
    owner_token: str = "",
    request: gr.Request | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's progress hook)
) -> Iterator[tuple]:
    """Find a Kokoro voice that sounds like a clip, and save it as one of your voices.

    Args:
        clip: The voice to sound like: 3 to 30 s of one person speaking.
        transcript: The clip's exact words; empty to transcribe it automatically.
        exclude: Stock Kokoro voices not to start from (e.g. the voice that made the clip).
        budget_s: Compute time the search may take, 10 to 300 seconds.
        name: Name of the found voice (letters, digits, - and _), spoken later as the Kokoro voice NAME.
        overwrite: True to replace your found voice of the same name.
        owner_token: Your owner token (from /owner_token): the voice is yours alone.

    Returns:
        the search's progress, then its figures (speaker similarity on a held-out sentence of the found voice,
        its start and the nearest stock voice; word error rate)
        the figures as JSON.
    """
    who = caller(owner_token, request)
    owner = who.owner
    if owner is None:
        raise InputError("A found voice is saved as yours: reload the page, or pass your owner_token.")
    slug = safe_name(name)
    if not overwrite and slug in list_found_voices(owner):
        raise InputError(f"You already have a Kokoro voice called {slug!r}; choose another name.")
    if not clip:
        raise InputError("Upload or record the clip whose voice to find.")
    reference = load_reference(read_upload(clip, "clip"))
    text, _, notice = voices.settle(who, reference, transcript, False)
    if not text:
        raise InputError("No words could be heard in the clip; type its transcript.")
    if notice:
        gr.Info(notice)
    if not _one_search.acquire(blocking=False):
        raise InputError("Another voice search is running on this server; please try again in a few minutes.")
    budget = min(max(float(budget_s or 0), 10.0), MAX_BUDGET_S)
    try:  # the search spends up to its budget of compute: the caller's allowance pays for it first
        admission.admit(who, compute_s=budget)
    except BaseException:
        _one_search.release()
        raise
    stop, updates = threading.Event(), queue.Queue()
    scope = stopping.current()  # the page's Stop (`ui.stopping`): the search ends after its current voice
    halted = lambda: stop.is_set() or (scope is not None and scope.stopped)  # noqa: E731

    def work() -> None:
        try:
            search = VoiceSearch(reference.audio, text, exclude=tuple(exclude or ()), budget_s=budget)
            found = search.run(progress=updates.put, stop=halted)
            saved = save_found_voice(slug, found.table, owner, bool(overwrite), {"text": text, **found.summary()})
            updates.put((saved, found))
        except Exception as exc:  # shown as one sentence by `user_errors`
            updates.put(exc)
        finally:
            _one_search.release()

    threading.Thread(target=work, name="voice-search", daemon=True).start()
    try:
        while True:
            item = updates.get()
            if isinstance(item, Progress):
                share = min(item.elapsed_s / item.budget_s, 1.0)
                line = f"{item.stage}: {item.evaluations} voices tried, best similarity {item.best_similarity:.3f}"
                progress(share, desc=line)
                yield line, gr.skip()
            elif isinstance(item, Exception):
                raise item
            else:
                saved, found = item
                yield _figures(saved, found), {"voice": saved, **found.summary()}
                return
    finally:
        stop.set()  # Stop (the generator closed): the search ends after its current voice and keeps the best


@user_errors
def try_found_voice(name: str, text: str, owner_token: str = "", request: gr.Request | None = None) -> str:
    """Speak text with one of your found Kokoro voices; returns the clip's file.

    Args:
        name: Your found voice's name.
        text: What to say.
        owner_token: Your owner token (from /owner_token).

    Returns:
        the clip as a wav file.
    """
    who = caller(owner_token, request)
    owner = who.owner
    if not name or safe_name(name) not in list_found_voices(owner):
        raise InputError("Pick one of your found voices first (find one above).")
    audio, _, _ = speech.synthesize(who, searching_engine(), SynthesisRequest(text or "", safe_name(name), owner=owner))
    return clip_path(audio, "found-voice")


def build(owner: gr.Textbox, stock: list[str]):
    """The section, inside the Kokoro tab; `owner` holds the visitor's owner token, `stock` the voices usable
    here. Returns the search's event (the tab lists a voice it saved once it ends)."""
    with gr.Accordion("Find a Kokoro voice for any clip", open=False):
        gr.Markdown(
            "Kokoro cannot clone, but its voices are small style tables: this searches them for one that sounds "
            "like your clip (stock voices and their blends first, then an evolution strategy), scored by speaker "
            "similarity on your clip's words and on a second sentence. The voice is saved as yours."
        )
        with gr.Row():
            with gr.Column():
                clip = gr.Audio(
                    label="Clip (3–30 s of one voice)", sources=["upload", "microphone"], type="filepath",
                    elem_id="kokoro-find-clip",
                )  # fmt: skip
                transcript = gr.Textbox(
                    label="Its exact words (empty: transcribed)", lines=2, elem_id="kokoro-find-text"
                )
                exclude = gr.Dropdown(stock, multiselect=True, label="Stock voices not to start from")
            with gr.Column():
                budget = gr.Slider(
                    10, MAX_BUDGET_S, value=120, step=10, label="Search time (s)", elem_id="kokoro-find-budget"
                )
                name = gr.Textbox(label="Save as", placeholder="my-kokoro-voice", elem_id="kokoro-find-name")
                with gr.Row():
                    go = gr.Button("Find a voice", variant="primary", elem_id="kokoro-find")
                    halt = gr.Button("Stop", variant="stop", elem_id="kokoro-find-stop")
        status = gr.Markdown(elem_id="kokoro-find-status")
        figures = gr.JSON(visible=False)
        with gr.Row():
            try_text = gr.Textbox(label="Try it", value="This is the voice I found.", scale=3)
            try_go = gr.Button("Speak", scale=1)
        try_audio = gr.Audio(type="filepath", interactive=False, label="Found voice")
        with gr.Row(visible=False):
            overwrite = gr.Checkbox(False)
        inputs = [clip, transcript, exclude, budget, name, overwrite, owner]
        event = go.click(
            stoppable(find_kokoro_voice), inputs, [status, figures], api_visibility="private",
            concurrency_id="voice-search", concurrency_limit=1,
        )  # fmt: skip
        bind_stop(halt, [event], [status])  # a refusal shows in the status line (`ui.stopping`)
        with gr.Row(visible=False):  # the Gradio API and MCP: the same search; a refusal is their error
            api_button = gr.Button()
        api_button.click(
            stoppable(find_kokoro_voice), inputs, [status, figures], api_name="kokoro_find_voice",
            concurrency_id="voice-search", concurrency_limit=1,
        )  # fmt: skip
        try_go.click(try_found_voice, [name, try_text, owner], try_audio, api_name="kokoro_try_found_voice")
    return event
