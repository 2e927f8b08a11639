"""A visitor's first five minutes, below the browser: Stop ends a run at once even while the engine is
inside a chunk, defaults come from what speaks here, figures read as words, a failed slot shows "–"."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from ui import charts, common, compare_tab, kokoro_tab
from ui.stopping import STOPPED, stoppable, stopped

OPERATOR_WORDS = re.compile(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+|/|\.py\b|back-end|onnx|G2P", re.IGNORECASE)


def _cancel_mid_step(run, started: threading.Event) -> float:
    """Start `run()` (an async generator or coroutine) as a task, cancel it once a step has begun; seconds
    the cancel took."""

    async def main() -> float:
        async def consume():
            result = run()
            if hasattr(result, "__anext__"):
                async for _ in result:
                    pass
            else:
                await result

        task = asyncio.ensure_future(consume())
        while not started.is_set():
            await asyncio.sleep(0.01)
        begun = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.perf_counter() - begun

    return asyncio.run(main())


def test_a_stopped_run_ends_at_once_and_its_generator_closes_after_the_chunk_in_progress():
    started, release, closed, seen = threading.Event(), threading.Event(), threading.Event(), []

    def run():
        try:
            yield "first"
            started.set()
            release.wait(5)  # the engine, inside a chunk
            seen.append(stopped())
            yield "second"
            seen.append("resumed")  # never: the generator is closed after this step
        finally:
            closed.set()

    took = _cancel_mid_step(stoppable(run), started)
    assert took < 1.0, took  # the engine's chunk (up to 5 s here) is not waited for
    assert not closed.is_set()  # still inside its step
    release.set()
    assert closed.wait(5)
    assert seen == [True]  # the step saw that the visitor stopped it; nothing ran after it


def test_a_stopped_plain_handler_returns_at_once_and_is_told_so_between_its_steps():
    started, steps = threading.Event(), []

    def render():
        started.set()
        for _ in range(50):
            if stopped():
                steps.append("stopped")
                return
            time.sleep(0.05)
            steps.append("clip")

    took = _cancel_mid_step(stoppable(render), started)
    assert took < 1.0, took
    deadline = time.time() + 5
    while "stopped" not in steps and time.time() < deadline:
        time.sleep(0.05)
    assert steps[-1] == "stopped" and steps.count("clip") < 50


def test_stoppable_keeps_the_handler_marks_and_signature_gradio_and_the_guard_read():
    import inspect

    @common.user_errors
    def handler(text: str, speed: float = 1.0):
        yield text

    wrapped = stoppable(handler)
    assert wrapped.starts_work is True
    assert list(inspect.signature(wrapped).parameters) == ["text", "speed"]
    assert inspect.isasyncgenfunction(wrapped)


def test_speed_reads_as_times_faster_or_slower_than_real_time():
    assert common.speed_words(0.25) == "**4.0×** faster than real time"
    assert common.speed_words(2.0) == "**2.0×** slower than real time"
    assert common.speed_words(None) == "speed **–**"


def test_a_failed_slot_shows_no_figures_and_speed_is_times_real_time():
    rows = charts.table(
        {"A": {"ttfa_s": 0.5, "total_s": 2.0, "rtf": 0.5, "duration_s": 4.0}, "B": {"total_s": 0, "error": "x"}}
    )
    by_label = {row[0]: row[1:] for row in rows}
    assert by_label["total time (s)"] == [2.0, "–"]
    assert by_label["duration (s)"] == [4.0, "–"]
    assert by_label["× faster than real time"] == [2.0, "–"]
    assert not any(re.search(r"\bttfa|rtf|error_rate|\bmos\b", label) for label in by_label)


@pytest.mark.usefixtures("offline_env")
def test_offline_the_header_says_what_each_engine_does_in_visitor_words():
    header = common.header()
    assert "Kokoro-82M" in header and "speaks with 5 of its 54 voices" in header
    assert "Qwen3-TTS" in header and "not available on this server" in header
    assert not OPERATOR_WORDS.search(header.replace("Text-to-speech", "")), header
    sentence = common.unavailable_sentence("qwen-custom")
    assert sentence.endswith("so Generate is off.") and not OPERATOR_WORDS.search(sentence)
    assert "QWEN_CUSTOM_VOICE_MODEL" in common.owner_details()  # the operator's words, in the owner's box


@pytest.mark.usefixtures("offline_env")
def test_offline_voices_that_speak_come_first_and_the_hints_name_only_them():
    choices, default = kokoro_tab.voice_choices()
    ready = {v.id for v in kokoro_tab.registry.info("kokoro").voices if v.available}
    assert {value for _, value in choices[: len(ready)]} == ready
    assert all("needs the model hub" in label for label, _ in choices[len(ready) :])
    assert default in ready
    blend = kokoro_tab.blend_placeholder()
    assert {part.split(":")[0] for part in blend.split(",")} <= ready and blend.startswith(default)
    hint = common.blend_hint()
    assert {p.split(":")[0] for p in hint.rsplit(" ", 1)[-1].split(",")} <= ready


@pytest.mark.usefixtures("offline_env")
def test_offline_compare_opens_with_two_slots_that_speak_here_with_two_voices():
    engines = compare_tab.default_engines()
    assert all(compare_tab.registry.info(e).available for e in engines)
    a, b = compare_tab.default_voices(engines)
    assert a and b and (engines[0] != engines[1] or a != b)


def test_stop_says_stopped_in_one_word():
    assert STOPPED == "Stopped."


@pytest.mark.slow
def test_a_stop_cuts_the_packaged_kokoro_chunk_in_progress_short(packaged_kokoro):
    """The engine's turn ends when its chunk returns: on ONNX Runtime a Stop ends the chunk itself."""
    import contextvars

    from engines.base import SynthesisRequest
    from engines.runtime import stop

    text = "The birch canoe slid on the smooth planks, and the sheet was glued to the dark blue background."
    planned = list(packaged_kokoro.front_end(SynthesisRequest(text=text * 3, voice="jm_kumo")))
    chunk = max(planned, key=lambda c: len(c.ids))  # the longest chunk: seconds of compute
    backend = packaged_kokoro._loaded()
    begun = time.perf_counter()
    audio, _ = backend.run(list(chunk.ids), chunk.style, 1.0)  # not stopped: all of it
    full_s = time.perf_counter() - begun
    assert len(audio) > 3 * 24_000

    outcome: dict = {}

    def stopped_run():
        scope = stop.enter()
        threading.Timer(full_s * 0.1, scope.stop).start()
        begun = time.perf_counter()
        try:
            backend.run(list(chunk.ids), chunk.style, 1.0)
            outcome["finished"] = True
        except Exception:  # ONNX Runtime: "Exiting due to terminate flag being set to true."
            outcome["cut_s"] = time.perf_counter() - begun

    thread = threading.Thread(target=contextvars.copy_context().run, args=(stopped_run,))
    thread.start()
    thread.join(full_s * 5)
    assert "cut_s" in outcome, outcome
    assert outcome["cut_s"] < full_s * 0.7, (outcome, full_s)  # the rest of the chunk was not computed
    assert not stop.stopped()  # outside the stopped run's context nothing is stopped


def test_the_sessions_stop_ends_its_run_as_a_finished_event_and_leaves_other_sessions_alone():
    """Stop (`bind_stop` -> `stop_runs`) ends the page session's run without a cancel: the event
    finishes normally (no "Error" badge on the page), another visitor's run of the same handler goes on."""
    from types import SimpleNamespace

    from gradio.context import LocalContext

    from ui.stopping import stop_runs

    begun = {"mine": threading.Event(), "theirs": threading.Event()}

    def run(who):
        yield f"{who} first"
        begun[who].set()
        time.sleep(3)  # the engine, inside a chunk
        yield f"{who} second"

    handler = stoppable(run)
    handler.stopped_at = (1, {0})  # one output, a status line (what `bind_stop` records)

    async def visit(who: str) -> list[str]:
        LocalContext.request.set(SimpleNamespace(session_hash=f"session-{who}"))
        return [item async for item in handler(who)]

    async def main():
        mine = asyncio.ensure_future(visit("mine"))
        theirs = asyncio.ensure_future(visit("theirs"))
        while not (begun["mine"].is_set() and begun["theirs"].is_set()):
            await asyncio.sleep(0.01)
        assert stop_runs([handler.stop_key], "session-mine") == 1
        clicked = time.perf_counter()
        got = await mine  # ends by itself: no CancelledError
        took = time.perf_counter() - clicked
        return got, took, await theirs

    mine, took, theirs = asyncio.run(main())
    assert mine == ["mine first", STOPPED] and took < 1.0, (mine, took)  # its own last word: "Stopped."
    assert theirs == ["theirs first", "theirs second"]


def test_a_refused_page_run_ends_calmly_with_its_sentence_and_an_api_run_still_raises():
    """A page run whose handler refuses the input (`gr.Error`) ends as a finished event with the sentence
    in its status line (no red badge on the page); without a status line (an API event), the error stays."""
    import gradio as gr

    def refuse(text):
        if not text.strip():
            raise gr.Error("Please enter some text to speak.")
        yield "spoken", "Finished"

    def refuse_plain(text):
        raise gr.Error("Upload a .txt or .csv batch file first.")

    page, api = stoppable(refuse), stoppable(refuse)
    page.stopped_at = (2, {1})  # the player, then the status line (what `bind_stop` records)
    plain = stoppable(refuse_plain, outputs=2)
    plain.stopped_at = (2, {0})

    async def run(handler, *args):
        return [item async for item in handler(*args)]

    with pytest.warns(UserWarning, match="enter some text"):  # gr.Warning outside an event: a Python warning
        shown = asyncio.run(run(page, "  "))
    assert len(shown) == 1 and shown[0][1] == "Please enter some text to speak."
    assert shown[0][0] == gr.skip()
    assert asyncio.run(run(page, "Hello.")) == [("spoken", "Finished")]  # the next run works
    with pytest.raises(gr.Error, match="enter some text"):
        asyncio.run(run(api, "  "))
    with pytest.warns(UserWarning, match="batch file first"):
        assert asyncio.run(plain(""))[0] == "Upload a .txt or .csv batch file first."


def test_a_voice_typo_is_refused_before_the_model_loads_with_examples_that_speak_here(monkeypatch):
    """The service asks the engine (`registry.check`) before it takes a place in line or loads a model:
    an unknown voice, a bad blend or a hub-only voice offline is refused at once; its examples speak here."""
    from engines.base import InputError, SynthesisRequest, UnavailableError
    from engines.kokoro.engine import KokoroEngine
    from engines.runtime import registry
    from engines.runtime.weights import PACKAGED_VOICES

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("KOKORO_MODEL", raising=False)
    monkeypatch.setattr(registry, "_instances", {})
    monkeypatch.setattr(KokoroEngine, "load", lambda self, device: pytest.fail("the model was loaded"))
    with pytest.raises(InputError, match=rf"\(e\.g\. {sorted(PACKAGED_VOICES)[0]}\)"):
        registry.check("kokoro", SynthesisRequest("Hi.", "zz_nobody"))
    with pytest.raises(InputError, match=rf"write it like {sorted(PACKAGED_VOICES)[0]}:0\.7"):
        registry.check("kokoro", SynthesisRequest("Hi.", "jm_kumo,,"))
    with pytest.raises(UnavailableError, match="needs the model hub"):
        registry.check("kokoro", SynthesisRequest("Hi.", "af_heart"))
    registry.check("kokoro", SynthesisRequest("Hi.", "jm_kumo:0.5,jf_alpha:0.5"))  # speaks here: no refusal
