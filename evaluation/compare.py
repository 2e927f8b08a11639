"""Side-by-side runs: the same text through two slots (engine + voice), each measured.

A slot is written `engine:voice` (`kokoro:af_heart`, `kokoro:af_heart:0.7,af_bella:0.3`,
`qwen-custom:Ryan`, `qwen-clone:<saved voice>`), optionally with a reference clip for cloning.
`qwen-clone:@a` clones slot A's output (cross-model cloning: a Kokoro voice spoken by Qwen3-TTS),
with the text as its exact transcript. A slot can also be Kokoro rendered in the visitor's browser
(`IN_BROWSER`, the Compare page only): its clip is the one the page sent back (`evaluation.kokoro_in_browser_clip`),
measured like any other, with the browser's own time to first audio and real-time factor. Each
clip's figures have the same keys (`METRIC_KEYS`), None where a metric does not apply; a slot that
fails keeps its error and the other still runs.

Two slots run one after the other, or together (`runs_together`) when they are two different models
that both loaded on a GPU with room to spare: on one CPU they would only share its cores. Running a
pair is `evaluation.pair` (its events, and `run_pair` for the CLI); this module holds its parts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Queue

import numpy as np

from engines import language as languages
from engines.audio import encode, join, normalize_loudness, write
from engines.base import SAMPLE_RATE, AudioChunk, EngineError, InputError, SynthesisRequest, shown
from engines.kokoro.voices import spec_entries
from engines.lexicon import owner_mapping
from engines.reference import Reference, load_reference
from engines.runtime import device, registry
from engines.runtime.timing import RunStats, timed_stream
from engines.settings import settings

from . import metrics
from .alignment import Alignment, align_words
from .arena import split_system, system_id
from .captions import write_captions
from .kokoro_in_browser_clip import BrowserClip

log = logging.getLogger(__name__)

# `error_rate` counts in `error_unit` ("word", or "character" for Japanese, Chinese, Korean); `wer` and
# `wer_unit` are the same two figures under their first names, kept for callers that read them.
# `language` is the Whisper code the clip was transcribed and scored in; `detected_language` and
# `detected_language_p` what a multilingual Whisper hears it as, and how sure (null where only an
# English-only one is here); `language_mismatch` is true when it hears another language, at least
# `metrics.MISMATCH_P` sure.
METRIC_KEYS = (
    "ttfa_s", "total_s", "rtf", "duration_s", "lufs", "error_rate", "error_unit", "wer", "wer_unit", "transcript",
    "similarity", "mos", "language", "detected_language", "detected_language_p", "language_mismatch",
)  # fmt: skip
MATCH_LUFS = -23.0  # both clips are played (and written) at this loudness (EBU R 128: headroom for peaks)
CLONE_OF_A = "@a"
MIN_FREE_GPU_BYTES = 1 << 30  # room left on the GPU, once both models are loaded, to run them together
IN_BROWSER = "kokoro@browser"  # the slot kind "Kokoro in this browser": what its system ids start with
BROWSER_ENGINE = registry.browser_engine()  # the engine a browser runs (Capabilities.renders_in_browser)
BROWSER_PIECE_S = 2.0  # a browser's clip is handed to the player in pieces of this length


@dataclass(frozen=True)
class Slot:
    """One side of a comparison."""

    engine: str
    voice: str = ""
    reference: Reference | None = None
    reference_text: str | None = None
    x_vector_only: bool = False
    language: str | None = None
    owner: str | None = None  # whose saved voices `voice` may name (engines.voice_library)
    owner_tag: str = ""  # a shared voice's owner as a keyed hash (evaluation.arena.Arena.owner_tag): in `system`
    lexicon: Mapping[str, str] = field(default_factory=dict)  # the engine's column of a lexicon (engines.lexicon)
    browser: BrowserClip | None = field(default=None, compare=False)  # rendered in the visitor's browser

    @property
    def system(self) -> str:
        """Display id of what speaks, e.g. `kokoro:af_heart` (a reference clip shows as `reference`;
        a clip rendered in the browser as `kokoro@browser:af_heart`)."""
        voice = self.voice or ("reference" if self.reference is not None else "default")
        if self.owner_tag:  # two owners' shared voices of one name are two systems
            voice = f"{voice}~{self.owner_tag}"
        return system_id(IN_BROWSER if self.browser is not None else self.engine, voice)

    def request(self, text: str) -> SynthesisRequest:
        return SynthesisRequest(
            text=text,
            voice=self.voice,
            language=self.language,
            reference=self.reference,
            reference_text=self.reference_text,
            x_vector_only=self.x_vector_only,
            owner=self.owner,
            lexicon=self.lexicon,
        )


@dataclass
class ClipResult:
    """What one slot produced: its audio, its run figures, its metrics, or the sentence it failed with."""

    slot: Slot
    stats: RunStats
    chunks: list[AudioChunk] = field(default_factory=list)
    error: str | None = None
    metrics: dict | None = None
    run_id: int | None = None  # its row in the arena database, once stored
    together: bool = False  # ran at the same time as the other slot (its times include sharing the device)
    alignment: Alignment | None = None  # its words aligned to the text, from the ASR round trip of `measure`

    @property
    def audio(self) -> np.ndarray:
        return join(self.chunks)

    @property
    def finished(self) -> bool:
        return self.error is None and bool(self.chunks)


def parse_slot(spec: str, owner: str | None = None) -> Slot:
    """`engine:voice` -> Slot; the voice may itself hold colons (Kokoro blends); `owner`: whose saved
    voices it may name and whose pronunciation lexicon it speaks with."""
    engine, voice = split_system(spec)
    if engine == IN_BROWSER:
        raise InputError("Kokoro in this browser runs on the Compare page only; here use kokoro:VOICE.")
    if engine not in registry.ENGINES:
        raise InputError(f"Unknown engine {shown(engine)} in {shown(spec)}; use one of: {', '.join(registry.ENGINES)}.")
    lexicon = owner_mapping(owner, registry.capabilities(engine).lexicon)
    return Slot(engine=engine, voice=voice, owner=owner, lexicon=lexicon)


def parse_second(spec: str, owner: str | None = None) -> Slot | str:
    """Slot B's spec: like `parse_slot`, or `CLONE_OF_A` for `<engine that clones>:@a`, e.g. `qwen-clone:@a`
    (clone slot A's clip)."""
    engine, _, voice = (spec or "").strip().partition(":")
    if voice == CLONE_OF_A and engine in registry.ENGINES and registry.capabilities(engine).clones:
        return CLONE_OF_A
    return parse_slot(spec, owner)


def browser_slot(voice: str, clip: BrowserClip) -> Slot:
    """The slot of a clip the visitor's browser rendered in `voice` (`evaluation.kokoro_in_browser_clip.decode`)."""
    return Slot(engine=BROWSER_ENGINE, voice=voice, browser=clip)


def cloner() -> str:
    """The engine that clones another slot's clip (`CLONE_OF_A`): the first whose capabilities clone."""
    found = registry.engines_that("clones")
    if not found:
        raise InputError("No engine here can clone a voice from a clip.")
    return found[0]


def same_slot_notice(a: Slot, b: Slot) -> str:
    """A note when both sides are the same system (allowed: it shows run-to-run variation)."""
    if a.system == b.system and a.reference is None and b.reference is None:
        return f"Both slots use {a.system}: you will hear the same voice twice (run-to-run variation only)."
    return ""


def clone_of(result: ClipResult, text: str) -> Slot:
    """A slot of the `cloner` whose reference is another slot's finished clip, with the text as transcript."""
    if not result.finished:
        raise InputError("Slot A must finish speaking before its voice can be cloned.")
    engine = cloner()
    reference = load_reference(encode(result.audio, "wav"))
    return Slot(engine=engine, voice="", reference=reference, reference_text=text.strip())


def stream_slot(slot: Slot, text: str, result: ClipResult, caller: str | None = None) -> Iterator[AudioChunk]:
    """The slot's chunks as they are made, in `caller`'s turn; a failure is kept in `result.error`
    instead of raised."""
    if slot.browser is not None:
        yield from _browser_chunks(slot.browser, text, result)
        return
    try:
        for chunk in timed_stream(slot.engine, slot.request(text), result.stats, caller=caller):
            result.chunks.append(chunk)
            yield chunk
    except EngineError as exc:
        result.error = str(exc)
    except Exception:  # one slot's crash must not take the other down
        log.exception("slot %s failed", slot.system)
        result.error = f"{slot.system} failed unexpectedly."


def _browser_chunks(clip: BrowserClip, text: str, result: ClipResult) -> Iterator[AudioChunk]:
    """A browser's clip as chunks, with the figures the browser measured as the run's (its time to first
    audio and real-time factor: the browser's, on the visitor's machine, not this server's)."""
    stats, figures = result.stats, clip.figures
    stats.ttfa_s, stats.audio_s = figures.get("ttfa_s"), clip.duration_s
    stats.chunks = int(figures.get("chunks") or 1)
    rtf = figures.get("rtf")
    stats.total_s = rtf * clip.duration_s if rtf is not None else figures.get("total_s") or 0.0
    step = int(BROWSER_PIECE_S * SAMPLE_RATE)
    for index, start in enumerate(range(0, len(clip.audio), step)):
        piece = clip.audio[start : start + step]
        chunk = AudioChunk(audio=piece, text=text if index == 0 else "", phonemes="", index=index)
        result.chunks.append(chunk)
        yield chunk


def is_english(slot: Slot, text: str) -> bool:
    """Whether the English ASR (tiny.en) can judge this clip: English or automatic language, Latin text,
    and not a voice that reads Latin text in its own language (Spanish, French, ... voices)."""
    if languages.is_auto(slot.language):
        if languages.iso_code(voice_language(slot)) in languages.LATIN_LANGUAGES:
            return False
    elif languages.iso_code(slot.language) != "en":
        return False
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) > 0.95


def spoken_language(slot: Slot, text: str) -> str | None:
    """Whisper's code for the language a clip speaks: "en" where `is_english`; else the slot's
    language; for Auto, the text's script decides (`engines.language.script_language`, given the voice's
    catalogued language: kanji read by a Japanese voice, Latin text by a French one); None where
    nothing decides it (Latin text that is not plain English): Whisper then detects the language."""
    if is_english(slot, text):
        return "en"
    if not languages.is_auto(slot.language):
        return languages.iso_code(slot.language)
    return languages.script_language(text, languages.iso_code(voice_language(slot)))


def engine_language(result: ClipResult) -> str | None:
    """The language the engine says it spoke the clip in (`AudioChunk.language`, the first chunk that
    says one); None where it left the choice to the model."""
    return next((chunk.language for chunk in result.chunks if chunk.language), None)


def voice_language(slot: Slot) -> str | None:
    """The catalogued language of the slot's voice (of a blend's first voice); None if not catalogued."""
    first = spec_entries(slot.voice)[0][0]
    return next((v.language for v in registry.info(slot.engine).voices if v.id == first), None)


def measure(result: ClipResult, text: str) -> dict:
    """All figures of a finished clip (None where a metric does not apply or could not be computed).
    The ASR round trip runs for English text, and for any language when the ASR is multilingual;
    `error_rate` is then a character error rate where `error_unit` says "character" (Japanese, Chinese,
    Korean), else a word error rate (`wer`, `wer_unit`: the same figures under their older names);
    with a multilingual ASR here, the language the clip is heard in is checked against the one asked for.
    The same transcription's word times align the clip to the text: kept in `result.alignment`."""
    figures: dict = dict.fromkeys(METRIC_KEYS)
    stats = result.stats
    figures.update(
        ttfa_s=_round(stats.ttfa_s),
        total_s=_round(stats.total_s),
        rtf=_round(stats.rtf),
        duration_s=_round(stats.audio_s),
    )
    if not result.finished:
        return figures
    audio, slot = result.audio, result.slot
    figures["lufs"] = _round(_safely(metrics.loudness, audio, SAMPLE_RATE), 2)
    multilingual = _safely(metrics.asr_is_multilingual)
    said = engine_language(result)  # what the engine says it spoke; else the slot and the text decide
    if (said == "en" if said else is_english(slot, text)) or multilingual:
        language = said or spoken_language(slot, text)
        heard = _safely(metrics.transcribe_words, audio, SAMPLE_RATE, language)
        if heard is not None:
            figures["transcript"], language = heard[0], language or heard[1]
            figures["error_rate"] = figures["wer"] = _round(metrics.error_rate(text, heard[0], language))
            figures["error_unit"] = figures["wer_unit"] = metrics.error_unit(language)
            figures["language"] = language
            result.alignment = _safely(align_words, text, heard[2], language, len(audio) / SAMPLE_RATE, heard[0])
        detected = _safely(metrics.detect_language, audio, SAMPLE_RATE) if multilingual else None
        if detected is not None:
            figures["detected_language"], figures["detected_language_p"] = detected[0], _round(detected[1])
            figures["language_mismatch"] = metrics.language_mismatch(figures["language"], *detected)
    reference = similarity_reference(slot)
    if reference is not None:
        figures["similarity"] = _round(_safely(metrics.speaker_similarity, audio, SAMPLE_RATE, *reference))
    figures["mos"] = _round(_safely(metrics.predicted_mos, audio, SAMPLE_RATE), 2)
    return figures


def similarity_reference(slot: Slot) -> tuple[np.ndarray, int] | None:
    """The clip a slot's voice was cloned from: its reference, or the one kept with a saved voice."""
    if slot.reference is not None:
        return slot.reference.audio, slot.reference.sample_rate
    if slot.voice and slot.engine in registry.ENGINES and registry.capabilities(slot.engine).saved_voices:
        from engines.voice_library import reference_audio

        saved = _safely(reference_audio, slot.voice, slot.owner)
        return None if saved is None else (saved, 24_000)
    return None


def runs_together(a: Slot, b: Slot | str) -> bool:
    """Whether two slots run at the same time: two different models (one model speaks one request at
    a time) that both loaded on a GPU with `MIN_FREE_GPU_BYTES` still free. `COMPARE_PARALLEL=1`
    runs them together wherever they load (a machine with many cores, the tests), `0` never."""
    mode = settings().compare_parallel  # auto, 1 or 0
    if not isinstance(b, Slot) or a.engine == b.engine or mode == "0":
        return False
    if a.browser is not None or b.browser is not None:  # a browser's clip is already made: nothing to share
        return False
    forced = mode == "1"
    if not forced and not device.gpu_wanted():
        return False  # decided before loading anything: on a CPU, slot A must not wait for B's load
    try:
        devices = [registry.get(slot.engine).info().device for slot in (a, b)]
    except EngineError:
        return False  # the slot that cannot load fails on its own, in turn
    free = device.gpu_free_bytes()  # None on ZeroGPU: a GPU is attached per call, so they run in turn
    return forced or (all(d.startswith("cuda") for d in devices) and (free or 0) >= MIN_FREE_GPU_BYTES)


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def interleave(streams: dict[str, Iterator]) -> Iterator[tuple[str, object]]:
    """(name, item) pairs of several iterators as each item comes, every iterator drained in its own
    thread; an exception in one is raised here. Closing this generator (a cancelled request) stops
    the threads at their next item."""
    queue: Queue = Queue()
    stop = threading.Event()

    def drain(name: str, stream: Iterator) -> None:
        try:
            for item in stream:
                if stop.is_set():
                    break
                queue.put((name, item))
        except BaseException as exc:  # handed to the consumer, which raises it
            queue.put((name, _Raised(exc)))
        finally:
            getattr(stream, "close", lambda: None)()
            queue.put((name, _END))

    for name, stream in streams.items():
        threading.Thread(target=drain, args=(name, stream), name=f"slot-{name}", daemon=True).start()
    left = len(streams)
    try:
        while left:
            name, item = queue.get()
            if item is _END:
                left -= 1
            elif isinstance(item, _Raised):
                raise item.exc
            else:
                yield name, item
    finally:
        stop.set()


def matched(result: ClipResult) -> np.ndarray:
    """The clip at the shared playback loudness (peak-guarded), so neither side wins by being louder."""
    return normalize_loudness(result.audio, MATCH_LUFS)[0]


def slot_summary(result: ClipResult) -> dict:
    """The slot's figures (all `METRIC_KEYS`) with what spoke and the error, if any."""
    summary = {
        "system": result.slot.system,
        "engine": result.slot.engine,
        "voice": result.slot.voice,
        **(result.metrics or dict.fromkeys(METRIC_KEYS)),
        "error": result.error,
        "ran_together": result.together,
        **aligned_words(result),
    }
    clip = result.slot.browser
    if clip is not None:  # ttfa_s and rtf above are the browser's own: said so, with what it reported
        summary["rendered_in"] = "browser"
        summary["browser"] = {"backend": clip.backend, **clip.figures}
    return summary


def aligned_words(result: ClipResult) -> dict:
    """`words`, `inserted` and `repeated` of the slot's alignment (`evaluation.alignment`); None each
    where the clip was not transcribed."""
    found = result.alignment
    return {key: getattr(found, key) if found else None for key in ("words", "inserted", "repeated")}


def write_pair(first: ClipResult, second: ClipResult, text: str, out_dir: Path) -> dict:
    """`a.wav` and `b.wav` (loudness-matched; a failed slot writes none), their captions (`a.asr.srt`,
    `a.asr.vtt`, and `a.model.*` where the model timed its words: `evaluation.captions`) and `metrics.json`."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = {"text": text, "playback_lufs": MATCH_LUFS, "notice": same_slot_notice(first.slot, second.slot)}
        for name, result in (("a", first), ("b", second)):
            summary[name] = slot_summary(result)
            if result.finished:
                write(out_dir / f"{name}.wav", matched(result))
                unit = (result.metrics or {}).get("error_unit") or "word"
                summary[name]["captions"] = write_captions(out_dir, name, summary[name]["words"], result.chunks, unit)
        (out_dir / "metrics.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    except OSError as exc:
        raise EngineError(f"Cannot write to {out_dir}: {exc.strerror or exc}") from None
    return summary


def with_reference(slot: Slot, reference: Reference | None, transcript: str | None, x_vector_only: bool) -> Slot:
    return replace(slot, reference=reference, reference_text=transcript, x_vector_only=x_vector_only)


def _safely(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # a metric that cannot be computed is shown as missing, not as a failure
        log.warning("%s failed: %s", fn.__name__, exc)
        return None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)
