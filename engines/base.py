"""The contract every engine honours: requests, audio chunks, engine info, capabilities and the errors.

A `SynthesisRequest` is validated when it is built, so an engine never sees empty, oversized or
garbled text or an out-of-range speed. Engines yield `AudioChunk`s at 24 kHz that carry the text
and phonemes they cover; a whole clip is the chunks joined. Every error a user can cause is an
`EngineError` whose message is one sentence fit to show as it is.

What an engine can do and its defaults are data: each engine class declares `CAPABILITIES`
(a `Capabilities`), read by `registry.capabilities(engine_id)` without loading the model. Code
outside an engine's own modules and its own tab asks these questions instead of testing engine ids.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from engines import language as languages

SAMPLE_RATE = 24_000
MAX_TEXT_CHARS = 5_000
MIN_SPEED, MAX_SPEED = 0.5, 2.0
MAX_REFERENCE_TEXT_CHARS = 1_000
MAX_INSTRUCT_CHARS = 500
MAX_NEW_TOKENS = 8_192
# A voice spec names at most a blend of every catalogued voice with its weight; a language is a name
# (`engines.language.MAX_NAME_CHARS`). Longer values are refused before any parser reads them.
MAX_VOICE_CHARS = 1_000
# Tab, newline and carriage return are ordinary text; every other control character is refused.
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
# A pronunciation lexicon (`SynthesisRequest.lexicon`, `engines.lexicon`): its bounds and what a word is
# (letters or digits, apostrophes and hyphens inside).
MAX_LEXICON_ENTRIES = 200
MAX_LEXICON_WORD_CHARS = 40
MAX_LEXICON_VALUE_CHARS = 80
LEXICON_WORD = re.compile(r"^[^\W_](?:[\w'’-]*[^\W_])?$")


def shown(value: object, limit: int = 40) -> str:
    """A caller's value as a sentence quotes it: printable characters only ("?" for the rest), cut to
    `limit` characters (a 256 KiB value in an error would be no sentence)."""
    text = str(value)[: limit + 1]
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class EngineError(Exception):
    """A failure whose message is one clear sentence for the user."""


class InputError(EngineError):
    """The request itself is wrong (text, voice, speed...)."""


class UnavailableError(EngineError):
    """The engine or a voice cannot be used here (missing weights, offline, missing package)."""


class BusyError(EngineError):
    """Too many requests already wait for this engine (`engines.runtime.work_queue`); try again after
    `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(EngineError):
    """This caller has used its share for now (`service.admission`: requests or compute a minute, bytes,
    characters); try again after `retry_after_s`. Faces answer 429 with `Retry-After`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SynthesisRequest:
    """What to say and how. Construction validates the text and the speed."""

    text: str
    voice: str
    speed: float = 1.0
    # None, "", "Auto" and "auto" all mean automatic, stored as None (`engines.language.normalize`)
    language: str | None = None
    # Engines that take them (Qwen3-TTS): a style instruction, a decoded reference clip
    # (`engines.reference.Reference`) with its transcript, x-vector-only cloning, a token cap.
    instruct: str | None = None
    reference: object | None = None
    reference_text: str | None = None
    x_vector_only: bool = False
    max_new_tokens: int | None = None
    # Whose saved voices `voice` may name (`engines.voice_library`): None sees none of them.
    owner: str | None = None
    # A saved voice's clone prompt already loaded by the caller (`engines.voice_library.prompt_from_stored`):
    # how a remote replica, which keeps no voice library, gets a saved voice with the request.
    clone_prompt: object | None = None
    # A found Kokoro voice's style table (rows x 256, `engines.kokoro.voices.load_found_voice`) already loaded
    # by the caller after its owner check: how a remote replica gets a found voice with the request.
    style_table: object | None = None
    # Word -> how to say it, matched whole-word in any case: phonemes for an engine whose
    # `Capabilities.lexicon` is "phonemes" (Kokoro), a respelling for "respelling" (Qwen3-TTS).
    lexicon: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise InputError("Please enter some text to speak.")
        if len(self.text) > MAX_TEXT_CHARS:
            raise InputError(f"The text is {len(self.text):,} characters long; the limit is {MAX_TEXT_CHARS:,}.")
        bad = next(
            (ch for ch in self.text if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS),
            None,
        )
        if bad is not None:
            raise InputError(f"The text contains a control character (U+{ord(bad):04X}); please remove it.")
        if self.reference is None and (not isinstance(self.voice, str) or not self.voice.strip()):
            raise InputError("Please choose a voice.")
        if isinstance(self.voice, str) and len(self.voice) > MAX_VOICE_CHARS:
            raise InputError(f"The voice is over {MAX_VOICE_CHARS:,} characters long; choose one from the list.")
        if self.language is not None and len(str(self.language)) > languages.MAX_NAME_CHARS:
            raise InputError(
                f"The language is over {languages.MAX_NAME_CHARS} characters long; choose one from the list."
            )
        if self.reference_text and len(self.reference_text) > MAX_REFERENCE_TEXT_CHARS:
            raise InputError(
                f"The reference transcript is {len(self.reference_text):,} characters long; "
                f"the limit is {MAX_REFERENCE_TEXT_CHARS:,}."
            )
        if self.instruct and len(self.instruct) > MAX_INSTRUCT_CHARS:
            raise InputError(f"The instruction is over {MAX_INSTRUCT_CHARS} characters; please shorten it.")
        if self.max_new_tokens is not None and not 1 <= int(self.max_new_tokens) <= MAX_NEW_TOKENS:
            raise InputError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS:,}.")
        try:
            speed = float(self.speed)
        except (TypeError, ValueError):
            raise InputError(f"Speed must be a number between {MIN_SPEED} and {MAX_SPEED}.") from None
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise InputError(f"Speed must be between {MIN_SPEED} and {MAX_SPEED}; got {speed:g}.")
        object.__setattr__(self, "speed", speed)
        object.__setattr__(self, "language", languages.normalize(self.language))
        object.__setattr__(self, "lexicon", check_lexicon(self.lexicon))


class Lexicon(Mapping):
    """A checked, read-only word -> pronunciation map. Unlike a mappingproxy it pickles: a request crosses
    into the ZeroGPU worker process (`engines.runtime.gpu`)."""

    __slots__ = ("_words",)

    def __init__(self, words: Mapping[str, str] | None = None) -> None:
        self._words = dict(words or {})

    def __getitem__(self, word: str) -> str:
        return self._words[word]

    def __iter__(self) -> Iterator[str]:
        return iter(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __repr__(self) -> str:
        return f"Lexicon({self._words!r})"


def check_lexicon(lexicon: object) -> Mapping[str, str]:
    """A request's lexicon checked (words, lengths, count; what the symbols mean is the engine's to
    check) and frozen; `InputError` in one sentence otherwise."""
    if not lexicon:
        return Lexicon()
    if not isinstance(lexicon, Mapping):
        raise InputError("The pronunciation lexicon must map words to pronunciations.")
    if len(lexicon) > MAX_LEXICON_ENTRIES:
        raise InputError(f"The pronunciation lexicon has {len(lexicon)} entries; the limit is {MAX_LEXICON_ENTRIES}.")
    out = {}
    for word, said in lexicon.items():
        check_lexicon_word(word)
        if not isinstance(said, str) or not said.strip():
            raise InputError(f"The lexicon entry {shown(word)} needs a pronunciation.")
        if len(said) > MAX_LEXICON_VALUE_CHARS or any(unicodedata.category(ch) == "Cc" for ch in said):
            raise InputError(
                f"The pronunciation of {word!r} must be one line of at most {MAX_LEXICON_VALUE_CHARS} characters."
            )
        if word.strip().lower() in {w.lower() for w in out}:
            raise InputError(f"The lexicon has the word {shown(word.strip())} twice (words match in any case).")
        out[word.strip()] = said.strip()
    return Lexicon(out)


def check_lexicon_word(word: object) -> str:
    """A lexicon word, stripped, or `InputError`: one word of letters or digits (apostrophes, hyphens inside)."""
    if not isinstance(word, str) or not word.strip():
        raise InputError("A lexicon entry needs a word.")
    word = word.strip()
    if len(word) > MAX_LEXICON_WORD_CHARS:
        raise InputError(f"Lexicon words are at most {MAX_LEXICON_WORD_CHARS} characters; {word[:20]!r}… is longer.")
    if not LEXICON_WORD.match(word):
        raise InputError(
            f"The lexicon word {word!r} must be one word: letters or digits, with apostrophes or hyphens inside."
        )
    return word


@dataclass(frozen=True)
class WordTiming:
    """When one word is spoken, in seconds from the start of its chunk."""

    word: str
    phonemes: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class AudioChunk:
    """A piece of the output: mono float32 audio and the text and phonemes it speaks."""

    audio: np.ndarray
    text: str
    phonemes: str
    index: int
    words: tuple[WordTiming, ...] = ()
    sample_rate: int = SAMPLE_RATE
    # what the listener should know about this chunk, one sentence each (e.g. the runaway guard's stop)
    notes: tuple[str, ...] = ()
    # the runaway guard's figures for a sentence it stopped (`engines.qwen.runaway`: reason, bound_s, observed_s, ...)
    stops: tuple[dict, ...] = ()
    # the ISO 639-1 code of the language this chunk was spoken in (the G2P's or the model's); None where
    # the model chose it itself (Qwen3-TTS on Auto): the one "language spoken" every scorer uses
    language: str | None = None

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class VoiceInfo:
    """One voice as the UI and the CLI list it."""

    id: str
    name: str
    language: str
    gender: str
    grade: str | None
    available: bool


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do and its defaults, fixed for the engine class (its `CAPABILITIES`).

    Read without loading the model (`registry.capabilities`); what depends on the loaded weights
    (which voices are usable here, whether this model size follows instructions) is in `EngineInfo`.
    """

    name: str  # display name, the one place it is written
    languages: tuple[str, ...] = ()  # what `SynthesisRequest.language` may name, as the engine spells it
    default_voice: str = ""  # preselected where the whole catalogue is usable (with the model hub)
    offline_voice: str = ""  # the default when `default_voice` is not usable here (offline)
    blends: bool = False  # a voice may be a weighted blend "a:0.7,b:0.3"
    clones: bool = False  # speaks the voice of a reference clip (`SynthesisRequest.reference`)
    saved_voices: bool = False  # speaks the voices of `engines.voice_library`, and makes them (`clone_prompt`)
    batches: bool = False  # `synthesize_batch(requests)`: several texts in one model call
    instructions: bool = False  # may follow `SynthesisRequest.instruct` (this model: EngineInfo.follows_instructions)
    # makes a new voice from a description (`SynthesisRequest.instruct`); its voices are ready-made
    # descriptions, so a caller may leave the voice out (`default_voice`) and describe one instead
    designs_voices: bool = False
    # speaks voices found for a clip and saved in the owner's library (`engines.kokoro.voices.list_found_voices`)
    found_voices: bool = False
    streams: bool = True  # yields audio while the rest is generated, not only the whole clip at the end
    # `front_end(request)` plans token ids and style rows that its ONNX export renders in a browser (`/kokoro/plan`)
    renders_in_browser: bool = False
    cpu_fallback: bool = False  # on ZeroGPU, runs on a CPU copy when the GPU is refused (`engines.runtime.gpu`)
    openai_models: tuple[str, ...] = ()  # OpenAI model names that mean this engine on /v1 (`tts-1`)
    openai_voices: dict[str, str] = field(default_factory=dict)  # OpenAI voice name -> a similar voice
    # what `SynthesisRequest.lexicon` maps a word to for this engine: "phonemes" (its G2P's alphabet),
    # "respelling" (text said instead), or "" (it ignores the lexicon); `engines.lexicon`
    lexicon: str = ""

    @property
    def default_voices(self) -> tuple[str, ...]:
        """The defaults in order of preference (the hub's, then the offline one)."""
        return tuple(dict.fromkeys(v for v in (self.default_voice, self.offline_voice) if v))

    def preferred_voice(self, usable: Collection[str]) -> str | None:
        """The first default voice among `usable`, or None when none of them is."""
        return next((v for v in self.default_voices if v in usable), None)

    def as_dict(self) -> dict:
        """The record as JSON-ready data (`/v1/models`, `python -m engines list`)."""
        return asdict(self)


@dataclass
class EngineInfo:
    """What the UI's status line and `python -m engines list` show about an engine."""

    id: str
    name: str
    loaded: bool = False
    available: bool = True
    reason: str = ""
    backend: str = ""
    concurrent_requests: int = 1  # requests it serves at once (its work queue's slots; Qwen3-TTS batches them)
    device: str = ""
    weights_source: str = ""
    voices: list[VoiceInfo] = field(default_factory=list)
    follows_instructions: bool = False  # takes a style instruction (`SynthesisRequest.instruct`)
    # measured when it loaded: seconds of compute per character of text (the work queue's first estimate)
    compute_s_per_char: float | None = None
    capabilities: Capabilities | None = None  # the engine class's (`registry.info` fills it in)
    # served by a remote engine tier (`engines.runtime.remote`): its live replicas
    # (`concurrent_requests`: all of theirs)
    replicas: int | None = None


@runtime_checkable
class Engine(Protocol):
    """One text-to-speech model behind the registry."""

    def info(self) -> EngineInfo: ...

    def load(self, device: str) -> None: ...

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]: ...

    def unload(self) -> None: ...

    # optional, a classmethod: `spoken_language(request) -> str | None`, the ISO code of the language the
    # engine will speak `request` in, decided before synthesis (`engines.runtime.registry.spoken_language`)
