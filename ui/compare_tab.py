"""The Compare tab: one text, two slots (any engine and voice), streamed at matched loudness, measured.

Slot A streams, then slot B (or both at once when `runs_together`: two models loaded on a GPU);
each is levelled to `MATCH_LUFS` while it streams. A clip's metrics (ASR, DNSMOS, similarity) are
computed in a worker thread once it finishes, so they never hold up the other slot's stream. A
slot that fails shows its error in its own status line; the other still plays. Finished runs are
remembered in the arena database when it is usable. `compare` is also an API endpoint that returns
both files and the metrics.

A slot can be "Kokoro in this browser" (`IN_BROWSER`): the Compare button first renders it in the page
(`compare_kokoro_in_browser.js`, with `window.kokoroBrowser`), which sends the clip back in the slot's hidden
input; the server checks it (`evaluation.kokoro_in_browser_clip`), plays it in the slot's player like any slot's
and measures it, with the browser's own first-audio time and real-time factor. A browser that cannot
run Kokoro gets its sentence and the server renders that slot instead. Browser runs are not stored in
the arena database (its runs record this server's back-end).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from engines.base import EngineError, InputError
from engines.lexicon import owner_mapping
from engines.reference import load_reference, read_upload
from engines.runtime import registry
from engines.voice_library import list_voices, shared
from evaluation import kokoro_in_browser_clip
from evaluation.arena import Arena
from evaluation.captions import write_captions
from evaluation.compare import (
    BROWSER_ENGINE,
    IN_BROWSER,
    MATCH_LUFS,
    ClipResult,
    Slot,
    browser_slot,
    clone_of,
    matched,
    same_slot_notice,
    slot_summary,
)
from evaluation.pair import (
    Measuring,
    MetricsReady,
    PairEvent,
    PairStarted,
    SlotFailed,
    SlotFinished,
    SlotStarted,
)
from service import janitor, voices
from service import pair as pairs
from service.janitor import output_dir

from . import charts
from .caller import caller
from .common import blend_hint, clip_path, found_voice_choices, speed_words, status_line, user_errors
from .kokoro_in_browser import MODULE_URL
from .owner import owner_of
from .page import COUNTED, HIDE_EMPTY
from .player import StreamPlayer
from .readalong import slot_words
from .stopping import stoppable
from .streaming import pair_message

log = logging.getLogger(__name__)

EXAMPLE = "The quick brown fox jumps over the lazy dog, and the five boxing wizards jump quickly."
FROM_REFERENCE = ""  # a cloning engine's voice choice that means "the reference clip below"
ARENA = Arena()  # shared with the Arena tab
BROWSER_JS = Path(__file__).with_name("compare_kokoro_in_browser.js").read_text(encoding="utf-8")
IN_BROWSER_NAME = "Kokoro in this browser"


def voice_choices(engine_id: str, owner: str | None = None) -> tuple[list[tuple[str, str]], str]:
    """(label, value) voices an engine can speak now (saved voices: `owner`'s), and a default; an engine
    that clones offers the reference clip first (none for a name that is no engine); "Kokoro in this
    browser" offers Kokoro's voices."""
    if engine_id == IN_BROWSER:
        engine_id = BROWSER_ENGINE
    if engine_id not in registry.ENGINES:
        return [], ""
    capabilities, info = registry.capabilities(engine_id), registry.info(engine_id)
    voices = [v for v in info.voices if v.available] or info.voices
    choices = [(f"{v.name} ({v.id}) · {v.language} · {v.gender}", v.id) for v in voices]
    if capabilities.saved_voices:
        choices += [(f"Saved: {n}", n) for n in list_voices(owner)]
    if capabilities.found_voices:
        choices += found_voice_choices(owner)
    if capabilities.clones:
        return [("Reference clip below", FROM_REFERENCE), *choices], FROM_REFERENCE
    return choices, (choices[0][1] if choices else "")


def engine_choices() -> list[tuple[str, str]]:
    """Every engine, then Kokoro rendered in the visitor's browser."""
    return [(registry.info(e).name, e) for e in registry.ENGINES] + [(IN_BROWSER_NAME, IN_BROWSER)]


def default_engines() -> tuple[str, str]:
    """Slot A's and slot B's engine when the page opens: the first two that speak here without a reference
    clip (the same engine twice, with two voices, when only one does)."""
    presets = [e for e in registry.ENGINES if not registry.capabilities(e).clones]
    speaking = [e for e in presets if registry.info(e).available] or presets or list(registry.ENGINES)
    return speaking[0], speaking[1 % len(speaking)]


def default_voices(engines: tuple[str, str]) -> tuple[str, str]:
    """The two slots' voices when the page opens: two different voices when both slots have one engine."""
    a_choices, a_voice = voice_choices(engines[0])
    b_choices, b_voice = voice_choices(engines[1])
    if engines[0] in registry.ENGINES:  # the engine's own preferred voice first (e.g. its best English one)
        a_voice = registry.capabilities(engines[0]).preferred_voice([v for _, v in a_choices]) or a_voice
    if engines[0] == engines[1] and b_voice == a_voice:
        b_voice = next((value for _, value in b_choices if value != a_voice), b_voice)
    return a_voice, b_voice


def on_engine(engine_id: str, owner_token: str, request: gr.Request):
    """A new engine in a slot: its voices, and the reference inputs only for an engine that clones."""
    choices, value = voice_choices(engine_id, owner_of(owner_token, request))
    cloning = engine_id in registry.ENGINES and registry.capabilities(engine_id).clones
    return gr.update(choices=choices, value=value), gr.update(visible=cloning), gr.update(visible=cloning)


def on_owner(engine_id: str, current: str, owner_token: str, request: gr.Request):
    """The visitor's saved voices in a slot whose engine keeps them, once the page knows who they are (the
    slot's voice stays when it is still offered: the page's defaults are two different voices)."""
    capabilities = registry.capabilities(engine_id) if engine_id in registry.ENGINES else None
    if capabilities is None or not (capabilities.saved_voices or capabilities.found_voices):
        return gr.skip()
    choices, value = voice_choices(engine_id, owner_of(owner_token, request))
    return gr.update(choices=choices, value=current if current in {v for _, v in choices} else value)


def make_slot(
    engine: str, voice: str, ref_path: str | None, transcript: str, owner: str | None = None, clip: str | None = None
) -> Slot:
    """A slot from the UI's inputs (a clone slot without a saved voice decodes the uploaded reference);
    `owner`: whose saved voices it may name and whose pronunciation lexicon it speaks with; `clip`: what the
    page rendered for a browser slot (checked by `evaluation.kokoro_in_browser_clip`; a browser that cannot run Kokoro
    makes it a server slot, said once)."""
    if engine == IN_BROWSER:
        voice = voice or voice_choices(BROWSER_ENGINE)[1]
        reason = kokoro_in_browser_clip.fallback_reason(clip)
        if reason:
            gr.Info(reason)
            return Slot(BROWSER_ENGINE, voice)
        return browser_slot(voice, kokoro_in_browser_clip.decode(clip))
    if engine not in registry.ENGINES:
        raise InputError(f"Unknown engine {engine!r}.")
    lexicon = owner_mapping(owner, registry.capabilities(engine).lexicon)
    if registry.capabilities(engine).clones and not voice:
        if not ref_path:
            raise InputError("Upload or record a reference clip to clone, or pick a saved voice.")
        reference = load_reference(read_upload(ref_path, "reference clip"))
        text, x_vector_only, notice = voices.settle(caller(), reference, transcript, False)
        if notice:
            gr.Info(notice)
        return Slot(engine, "", reference=reference, reference_text=text, x_vector_only=x_vector_only, lexicon=lexicon)
    return Slot(engine, voice or "", owner=owner, lexicon=lexicon)


def stored_voice(slot: Slot) -> str:
    """The voice as the shared run records (and their exports) name it: a visitor's own saved voice
    is just "saved voice", its name is theirs alone."""
    if slot.owner and slot.voice and slot.voice in list_voices(slot.owner) and not shared():
        return "saved voice"
    return slot.voice or "reference"


def remember(result: ClipResult, text: str) -> int | None:
    """Store a finished run in the arena database (when usable); its id or None. A browser's clip is
    not stored: a run there records this server's back-end and device."""
    if not result.finished or result.slot.browser is not None or not ARENA.available():
        return None
    try:
        info = registry.info(result.slot.engine)
        manifest = {
            "backend": info.backend, "device": info.device, "weights": info.weights_source,
            "playback_lufs": MATCH_LUFS, "reference": result.slot.reference is not None,
        }  # fmt: skip
        result.run_id = ARENA.record_run(
            text, result.slot.engine, stored_voice(result.slot), result.metrics or {}, manifest
        )
        return result.run_id
    except EngineError as exc:
        log.warning("run not stored: %s", exc)
        return None


def outputs_for(named: dict[str, ClipResult], text: str, pictures: bool = True) -> tuple:
    """Table, chart, pictures and the metrics file of a finished pair (no charts with `pictures=False`)."""
    labels = {f"{n} · {r.slot.system}": r for n, r in named.items()}
    figures = {label: r.metrics for label, r in labels.items()}
    summary = {"text": text, "playback_lufs": MATCH_LUFS, **{n.lower(): slot_summary(r) for n, r in named.items()}}
    output_dir().mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="metrics-", suffix=".json", dir=output_dir())
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(summary, out, ensure_ascii=False, indent=1)
    janitor.written()
    table = gr.update(value=charts.table(figures), headers=["metric", *labels])
    if not pictures:
        return table, None, None, name
    clips = {label: (r.audio if r.finished else None) for label, r in labels.items()}
    return table, charts.bars(figures), charts.waveforms(clips), name


def caption_files(named: dict[str, ClipResult]) -> list[str] | None:
    """.srt and .vtt files of each finished slot (`compare-a.asr.srt`, ...: `evaluation.captions`), written
    into a folder of `output_dir()`; None when no slot has timed words."""
    output_dir().mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="captions-", dir=output_dir()))
    names = []
    for name, result in named.items():
        if result.finished:
            unit = (result.metrics or {}).get("error_unit") or "word"
            words = result.alignment.words if result.alignment else None
            names += write_captions(folder, f"compare-{name.lower()}", words, result.chunks, unit)
    janitor.written()
    return [str(folder / n) for n in names] or None


def run_slots(text: str, slots: dict[str, Slot | Exception], ui: dict) -> Iterator[dict]:
    """Stream the slots into their players with every figure in their status lines (`pair_events`:
    together or in turn, metrics in the background as each clip ends); then the results."""
    for event in pairs.events(caller(), text, slots):  # admitted by both slots' cost, in this caller's turns
        if isinstance(event, MetricsReady):
            results = event.results
            for result in results.values():
                remember(result, text)
            table, chart, pictures, path = outputs_for(results, text)
            notice = " ".join(filter(None, [_notice(slots), f"Both clips are played at {MATCH_LUFS:g} LUFS."]))
            update = {
                ui["table"]: table, ui["chart"]: chart, ui["pictures"]: pictures, ui["file"]: path,
                ui["notice"]: notice, ui["state"]: results, ui["captions"]: caption_files(results),
            }  # fmt: skip
            for name, result in results.items():  # the read-along: each player's words, marked
                message = slot_words(result)
                if message is not None and name in ui:
                    update[ui[name][0]] = message
            yield update
            continue
        if isinstance(event, PairStarted):
            if event.together:
                yield {ui["notice"]: "Both slots run together (their times include sharing the device)."}
            continue
        if isinstance(event, Measuring):
            yield {ui["notice"]: "Measuring: ASR round trip, predicted MOS, speaker similarity…"}
            continue
        player, status = ui[event.slot]
        update = {status: _status(event)}
        audio = pair_message(event, figures=event.result.slot.browser is None)  # a browser's ttfa is not the server's
        if audio is not None:
            update[player] = audio
        yield update


def _status(event: PairEvent) -> str:
    """A slot's status line: what speaks, then its back-end, weights and figures as they come."""
    result = event.result
    if isinstance(event, SlotFailed):
        return f"**This slot could not speak:** {event.sentence}"
    if result.slot.browser is not None:  # rendered before the event began: its figures are all known
        return browser_status(result)
    if isinstance(event, SlotStarted):
        return f"Loading **{registry.info(result.slot.engine).name}** and speaking…"
    return status_line(result.slot.engine, result.stats, done=isinstance(event, SlotFinished))


def browser_status(result: ClipResult) -> str:
    """A browser slot's status line: where it ran and the figures the browser measured, said as such."""
    clip, stats = result.slot.browser, result.stats
    figures = clip.figures
    ttfa = f"{stats.ttfa_s:.2f} s" if stats.ttfa_s is not None else "–"
    download = figures.get("model_download_s")
    fetched = f" · model download {download:.1f} s (first time)" if download else ""
    return (
        f"Rendered **in this browser** · back-end **{clip.backend or 'unknown'}**{fetched} · measured in the "
        f"browser: time to first audio **{ttfa}** · {speed_words(stats.rtf)} · {stats.audio_s:.1f} s of audio, "
        "sent back and measured here"
    )


def with_ears(report_a: str, report_b: str, results: dict | None, text: str):
    """The table and metrics.json again, with each slot's first audio at the ear and its stalls (as the
    browser reported them for this pair's runs); unchanged until a report matches."""
    if not results:
        return gr.skip(), gr.skip()
    changed = False
    for name, value in (("A", report_a), ("B", report_b)):
        report, result = StreamPlayer.parse_report(value), results.get(name)
        if not report or result is None or report["run"] != getattr(result, "player_run", None):
            continue
        metrics = result.metrics if result.metrics is not None else {}
        figures = {"ear_ttfa_s": report.get("ear_ttfa_s"), "stalls": report.get("stalls")}
        if any(metrics.get(k) != v for k, v in figures.items()) and report.get("ear_ttfa_s") is not None:
            metrics.update(figures)
            result.metrics = metrics
            changed = True
    if not changed:
        return gr.skip(), gr.skip()
    table, _, _, path = outputs_for(results, text, pictures=False)
    return table, path


def browser_js() -> str:
    """The Compare button's page-side step: render the slots that are "Kokoro in this browser" and put
    their clips into the hidden inputs (`compare_kokoro_in_browser.js`) before the server's event starts. The
    click's inputs are the text, each slot's engine, voice, reference and transcript, the owner token,
    then each slot's clip."""
    spec = {
        "kind": IN_BROWSER, "module": MODULE_URL, "stop": "compare-stop",
        "max_seconds": kokoro_in_browser_clip.MAX_SECONDS, "owner": 9,
        "slots": [
            {"name": n, "engine": 1 + 4 * i, "voice": 2 + 4 * i, "clip": 10 + i, "status": f"compare-{n}-browser"}
            for i, n in enumerate("ab")
        ],
    }  # fmt: skip
    return f"async (...args) => ({BROWSER_JS})({json.dumps(spec)}, args)"


def _notice(slots: dict[str, Slot | Exception]) -> str:
    good = [s for s in slots.values() if isinstance(s, Slot)]
    return same_slot_notice(*good) if len(good) == 2 else ""


def _check_text(text: str) -> str:
    if not (text or "").strip():
        raise InputError("Please type some text to compare.")
    return text


@user_errors
def compare_api(
    text: str, a: str, b: str, owner_token: str = "", request: gr.Request | None = None
) -> tuple[str | None, str | None, dict]:
    """Speak one text with two engines and measure both (no streaming).

    Args:
        text: What both slots say, up to 5,000 characters.
        a: Slot A as engine:voice, e.g. "kokoro:af_heart" or "qwen-custom:Ryan" (a saved clone: "qwen-clone:NAME").
        b: Slot B, the same form; "qwen-clone:@a" clones slot A's voice with Qwen3-TTS.
        owner_token: Your owner token (from /owner_token), needed for "qwen-clone:NAME" with one of your saved voices.

    Returns:
        Slot A's clip as a WAV file at -23 LUFS (None if the slot failed).
        Slot B's clip, the same way.
        The metrics JSON: per slot ttfa_s, total_s, rtf, duration_s, lufs, error_rate and error_unit (word or
        character; wer and wer_unit hold the same two), transcript, similarity, mos, error.
    """
    from evaluation.compare import parse_second, parse_slot

    text = _check_text(text)
    owner = owner_of(owner_token, request)
    first, second = pairs.run(caller(owner_token, request), parse_slot(a, owner), parse_second(b, owner), text)
    files = [clip_path(matched(r), f"compare-{n}") if r.finished else None for n, r in (("a", first), ("b", second))]
    summary = {"text": text, "playback_lufs": MATCH_LUFS, "notice": same_slot_notice(first.slot, second.slot)}
    return files[0], files[1], {**summary, "a": slot_summary(first), "b": slot_summary(second)}


def build_tab(owner: gr.Textbox) -> None:
    """The Compare tab, inside the caller's gr.Blocks; `owner` holds the visitor's owner token."""
    with gr.Tab("Compare", id="compare"):
        gr.Markdown(
            "Same words, two voices. Each clip streams into its own player at "
            f"{MATCH_LUFS:g} LUFS, then both are measured."
        )
        text = gr.Textbox(label="Text", value=EXAMPLE, lines=3, elem_id="compare-text", elem_classes=[COUNTED])
        ui: dict = {}
        inputs = []
        clips = []  # per slot, what the page rendered when the slot is "Kokoro in this browser"
        players: dict[str, StreamPlayer] = {}
        with gr.Row():
            engines = default_engines()
            for name, engine_id, default in zip(("A", "B"), engines, default_voices(engines), strict=True):
                with gr.Column():
                    gr.Markdown(f"### Slot {name}")
                    engine = gr.Dropdown(
                        engine_choices(), value=engine_id, label="Engine", elem_id=f"compare-{name.lower()}-engine"
                    )
                    choices, _ = voice_choices(engine_id)
                    voice = gr.Dropdown(
                        choices, value=default, label="Voice", allow_custom_value=True,
                        info=blend_hint(),
                        elem_id=f"compare-{name.lower()}-voice",
                    )  # fmt: skip
                    ref = gr.Audio(
                        label="Reference clip to clone", sources=["upload", "microphone"], type="filepath",
                        visible=False,
                    )  # fmt: skip
                    transcript = gr.Textbox(label="Its transcript (empty: transcribed)", visible=False)
                    engine.change(on_engine, [engine, owner], [voice, ref, transcript], api_visibility="private")
                    owner.change(
                        on_owner,
                        [engine, voice, owner],
                        voice,
                        api_visibility="private",
                        show_progress="hidden",
                        queue=False,
                    )
                    # B plays when A's playback ends, never over it
                    players[name] = StreamPlayer(
                        f"compare-{name.lower()}-player", f"Slot {name}", autoplay=name == "A", follows=players.get("A")
                    )
                    status = gr.Markdown(elem_id=f"compare-{name.lower()}-status")
                    gr.HTML(value="", elem_id=f"compare-{name.lower()}-browser")  # the browser's progress
                    clips.append(gr.Textbox(visible=False, elem_id=f"compare-{name.lower()}-browser-clip"))
                    ui[name] = (players[name].output, status)
                    inputs += [engine, voice, ref, transcript]
        with gr.Row():
            go = gr.Button("Compare", variant="primary", elem_id="compare-go")
            cloner = next(iter(registry.engines_that("clones")), None)
            clone = gr.Button(
                "Clone slot A's voice into slot B",
                elem_id="compare-clone",
                interactive=cloner is not None and registry.info(cloner).available,
            )
            stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
        ui["notice"] = gr.Markdown(elem_id="compare-notice")
        ui["table"] = gr.Dataframe(
            headers=["metric", "A", "B"], label="Measured", interactive=False, elem_id="compare-metrics"
        )
        with gr.Row():
            ui["chart"] = gr.Plot(label="Timings and scores", elem_classes=HIDE_EMPTY)
        ui["pictures"] = gr.Plot(label="Waveforms and spectrograms", elem_classes=HIDE_EMPTY)
        ui["file"] = gr.File(label="Measured figures (metrics.json)", interactive=False, elem_classes=HIDE_EMPTY)
        ui["captions"] = gr.File(
            label="Captions (.asr: from the speech recogniser's alignment; .model: the model's own word times)",
            file_count="multiple", interactive=False, elem_id="compare-captions", elem_classes=HIDE_EMPTY,
        )  # fmt: skip
        ui["state"] = gr.State()
        outputs = [ui["A"][0], ui["A"][1], ui["B"][0], ui["B"][1], ui["notice"], ui["table"], ui["chart"]]
        outputs += [ui["pictures"], ui["file"], ui["state"], ui["captions"]]

        @user_errors
        def compare_stream(text, a_engine, a_voice, a_ref, a_text, b_engine, b_voice, b_ref, b_text, owner_token,
                           a_clip, b_clip, request: gr.Request):  # fmt: skip
            text = _check_text(text)
            owner = owner_of(owner_token, request)
            values = ((a_engine, a_voice, a_ref, a_text, a_clip), (b_engine, b_voice, b_ref, b_text, b_clip))
            slots: dict[str, Slot | Exception] = {}
            for name, (engine, voice, ref, transcript, clip) in zip("AB", values, strict=True):
                try:
                    slots[name] = make_slot(engine, voice, ref, transcript, owner, clip)
                except EngineError as exc:
                    slots[name] = exc
            yield from run_slots(text, slots, ui)

        @user_errors
        def cross_clone(text, previous):
            text = _check_text(text)
            first = (previous or {}).get("A")
            if first is None or not first.finished:
                raise InputError("Run a comparison first: slot A must finish speaking before its voice can be cloned.")
            results = {"A": first}
            for update in run_slots(text, {"B": clone_of(first, text)}, ui):
                if ui["state"] in update:
                    results["B"] = update[ui["state"]]["B"]
                    update = {**update, **dict(zip(outputs[5:9], outputs_for(results, text), strict=True))}
                    update[ui["state"]] = results
                    update[ui["captions"]] = caption_files(results)
                yield update

        event = go.click(
            stoppable(compare_stream), [text, *inputs, owner, *clips], outputs, api_visibility="private",
            concurrency_id="compare", js=browser_js(),
        )  # fmt: skip
        clone_event = clone.click(
            stoppable(cross_clone), [text, ui["state"]],
            [o for o in outputs if o is not ui["A"][0]],  # A is not replayed
            api_visibility="private", concurrency_id="compare",
        )  # fmt: skip
        # Stop silences both players at once
        players["A"].bind(go, stop, [event, clone_event], [ui["A"][1], ui["B"][1]])
        players["B"].bind(go, stop)
        players["B"].bind(clone)
        # the browser's first audio at the ear and stalls join the table and metrics.json
        ears = [players["A"].report, players["B"].report, ui["state"], text]
        for source in (players["A"].report, players["B"].report, ui["state"]):
            source.change(with_ears, ears, [ui["table"], ui["file"]], api_visibility="private", queue=False)
        with gr.Row(visible=False):
            api_a, api_b, api_metrics = gr.Audio(type="filepath"), gr.Audio(type="filepath"), gr.JSON()
            api_in_a, api_in_b, api_button = gr.Textbox(), gr.Textbox(), gr.Button()
        api_button.click(
            compare_api, [text, api_in_a, api_in_b, owner], [api_a, api_b, api_metrics],
            api_name="compare", concurrency_id="compare",
        )  # fmt: skip
