"""Qwen3-TTS 12Hz: nine preset speakers (`qwen-custom`, CustomVoice) and voice cloning from a
reference clip (`qwen-clone`, Base), on the stock `qwen-tts` package.

Weights come from `QWEN_CUSTOM_VOICE_MODEL` / `QWEN_BASE_MODEL` (hub id or local folder; 1.7B ids
work the same way). The package has no audio streaming, so the first sentence is streamed frame by
frame (a forward hook collects the codec frames as they are sampled and the codec decodes them a
second at a time, with left context) and the rest come sentence by sentence, in groups of similar
length. Every request goes through its model's batcher (`engines.qwen.batcher`), which generates
the sentences of concurrent requests in shared `generate` calls. `max_new_tokens` is capped from the
text length (random or odd inputs can otherwise run to the package's 8,192-token default, about
eleven minutes) and clamped to the model's maximum (a 5,000-character sentence would otherwise ask
for 12,537 frames), and one lock guards each model.
Clone prompts are cached per reference clip, transcript and mode, least recently used first out past
`PROMPT_CACHE_ITEMS` or `PROMPT_CACHE_BYTES`. The registry loads an engine before it is used
(`engines.runtime.registry.get`); an engine never looks itself up there.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from engines.audio import fade_edges
from engines.base import (
    MAX_NEW_TOKENS,
    SAMPLE_RATE,
    AudioChunk,
    Capabilities,
    EngineInfo,
    InputError,
    SynthesisRequest,
    UnavailableError,
    VoiceInfo,
    shown,
)
from engines.language import AUTO, is_auto, iso_code
from engines.lexicon import RESPELLING, respell
from engines.qwen.batcher import QwenBatcher
from engines.qwen.runaway import bound_s as runaway_bound_s
from engines.qwen.tts_import import import_qwen_tts
from engines.runtime.device import resolve as resolve_device
from engines.runtime.device import torch_dtype
from engines.runtime.lru import BoundedLRU
from engines.runtime.weights import hub_offline, source_name
from engines.settings import settings
from engines.text import SENTENCE, length_groups, split_clauses
from engines.voice_library import load_voice

log = logging.getLogger(__name__)

CATALOGUE_PATH = Path(__file__).resolve().parents[2] / "voices" / "qwen.json"
FRAMES_PER_SECOND = 12.5
BATCH_SIZE = 4  # rows of one `generate` call: a request's group of sentences, or concurrent requests
PROMPT_CACHE_ITEMS = 32  # clone prompts kept (one per uploaded clip, transcript and mode)
PROMPT_CACHE_BYTES = 64 * 2**20  # a 60 s reference's prompt holds ~0.1 MB of codes and one speaker embedding


# Two from_pretrained calls at once race on transformers' global meta-device initialisation
# ("Cannot copy out of meta tensor"): the CustomVoice and Base models load one after the other.
_FROM_PRETRAINED = threading.Lock()


@lru_cache(maxsize=1)
def catalogue() -> dict:
    with open(CATALOGUE_PATH, encoding="utf-8") as f:
        return json.load(f)


CUSTOM_CAPABILITIES = Capabilities(
    name="Qwen3-TTS CustomVoice",
    languages=tuple(catalogue()["languages"]),
    default_voice="Ryan",
    offline_voice="Aiden",  # the default's fallback (both English speakers)
    batches=True,
    lexicon=RESPELLING,  # a lexicon entry's respelling is said instead of its word
    instructions=True,  # the 1.7B model does; the 0.6B one drops them (`EngineInfo.follows_instructions`)
    openai_voices={
        "alloy": "Vivian", "ash": "Dylan", "ballad": "Eric", "coral": "Sohee", "echo": "Ryan", "fable": "Aiden",
        "nova": "Serena", "onyx": "Uncle_Fu", "sage": "Ono_Anna", "shimmer": "Vivian", "verse": "Aiden",
    },  # OpenAI voice name -> a speaker of similar gender and character
)  # fmt: skip
CLONE_CAPABILITIES = Capabilities(
    name="Qwen3-TTS Base (cloning)",
    languages=tuple(catalogue()["languages"]),
    clones=True,
    saved_voices=True,
    batches=True,
    lexicon=RESPELLING,
)
MODELS = {  # kind -> (the variable naming its weights, the model's name)
    "custom": ("QWEN_CUSTOM_VOICE_MODEL", CUSTOM_CAPABILITIES.name),
    "clone": ("QWEN_BASE_MODEL", CLONE_CAPABILITIES.name),
}


def configured_model(kind: str) -> str:
    """The hub id or folder of a model kind's weights (`QWEN_*_MODEL`, `engines.settings`)."""
    return getattr(settings(), MODELS[kind][0].lower())


def model_location(kind: str) -> tuple[str, str]:
    """("local" | "hub", where) for a model kind; offline without a local folder it is unavailable."""
    variable, name = MODELS[kind]
    where = configured_model(kind)
    if Path(where).expanduser().is_dir():
        return "local", str(Path(where).expanduser().resolve())
    if hub_offline():
        raise UnavailableError(
            f"{name} needs the model hub, which is unreachable here, or a local copy: set {variable} to its folder."
        )
    return "hub", where


def token_cap(text: str, requested: int | None, limit: int = MAX_NEW_TOKENS, language: str | None = None) -> int:
    """A generous upper bound on codec frames for `text` (0.2 s per character plus 3 s, or a quarter
    more than the runaway guard's bound where that is longer: CJK text, whose characters take longer
    to say, see `engines.qwen.runaway`), never over the model's own maximum `limit` (`model_token_limit`)."""
    seconds = max(3.0 + 0.2 * len(text), 1.25 * runaway_bound_s(text, language))
    cap = min(int(FRAMES_PER_SECOND * seconds), limit)
    return max(1, min(cap, requested)) if requested else max(1, cap)


def model_token_limit(model) -> int:
    """The most codec frames the loaded model may generate: its `generate_config.json` cap (8,192 for
    the released 12Hz models), its talker's `max_position_embeddings`, and `MAX_NEW_TOKENS`."""
    limits = [MAX_NEW_TOKENS]
    configured = (getattr(model, "generate_defaults", None) or {}).get("max_new_tokens")
    if configured:
        limits.append(int(configured))
    talker = getattr(getattr(getattr(model, "model", None), "config", None), "talker_config", None)
    positions = getattr(talker, "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    return max(1, min(limits))


def sentences(text: str) -> list[str]:
    """The text as sentences (clauses joined back up to their sentence end)."""
    out, current, space = [], "", False
    for clause in split_clauses(text):
        current = f"{current} {clause.text}" if current and space else current + clause.text
        space = clause.space_after  # whether the text had a space between this clause and the next
        if clause.strength >= SENTENCE:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out


def batches(items: list[str], size: int = BATCH_SIZE) -> list[list[str]]:
    """Consecutive groups of up to `size` sentences whose lengths are within a factor of two
    (`engines.text.length_groups`, in sentence order)."""
    return [[items[i] for i in group] for group in length_groups(items, size)]


class QwenEngine:
    """Shared loading and streaming for both Qwen3-TTS engines; each subclass supplies
    `_conditioning(request)` (speaker or clone prompt) and `_generate(model, texts, languages,
    conditionings, cap)` (one batched call, one entry per row)."""

    kind = "custom"
    engine_id = "qwen-custom"
    CAPABILITIES = CUSTOM_CAPABILITIES

    def __init__(self) -> None:
        self._model = None
        self._device = ""
        self._source = ""
        self._lock = threading.Lock()
        self._prompts = BoundedLRU(PROMPT_CACHE_ITEMS, PROMPT_CACHE_BYTES)
        # looked up at each step, so the loaded model and its `_generate` are always the current ones
        self._batcher = QwenBatcher(lambda: self._loaded(), lambda *a: self._generate(*a), self._lock, BATCH_SIZE)

    # ----- registry protocol -------------------------------------------------------------
    def info(self) -> EngineInfo:
        info = EngineInfo(
            id=self.engine_id,
            name=self.CAPABILITIES.name,
            loaded=self._model is not None,
            backend="torch",
            capabilities=self.CAPABILITIES,
        )
        info.concurrent_requests = BATCH_SIZE  # served together by its batcher
        try:
            kind, where = model_location(self.kind)
            info.weights_source = self._source or source_name(kind, where)
            info.device = self._device
        except UnavailableError as exc:
            info.available, info.reason = False, str(exc)
        info.voices = self.voices()
        info.follows_instructions = self.kind == "custom" and self.follows_instructions()
        return info

    def load(self, device: str) -> None:
        import torch

        Qwen3TTSModel = import_qwen_tts().Qwen3TTSModel  # noqa: N806

        kind, where = model_location(self.kind)
        device = resolve_device(device)  # on ZeroGPU "cuda": placed there at start, run inside GPU calls
        threads = settings().torch_threads
        if threads:
            torch.set_num_threads(threads)
        dtype = torch_dtype(device)
        try:
            with _FROM_PRETRAINED:
                self._model = Qwen3TTSModel.from_pretrained(
                    where, device_map=device, dtype=dtype, attn_implementation="sdpa"
                )
        except Exception as exc:  # missing files, bad config, download failure
            log.exception("Loading %s failed", where)
            raise UnavailableError(
                f"Could not load {MODELS[self.kind][1]}: the weights that {MODELS[self.kind][0]} names are missing, "
                "damaged or unreadable (the server log says which)."
            ) from exc
        self._device, self._source = device, source_name(kind, where)

    def unload(self) -> None:
        self._model = None
        self._prompts.clear()

    # ----- what the model offers ---------------------------------------------------------
    def voices(self) -> list[VoiceInfo]:
        if self.kind != "custom":
            return []
        speakers = catalogue()["speakers"]
        loaded = {s.lower() for s in (self._model.get_supported_speakers() or [])} if self._model else None
        return [
            VoiceInfo(
                s["id"],
                s["id"].replace("_", " "),
                s["native_language"],
                "",
                None,
                loaded is None or s["id"].lower() in loaded,
            )
            for s in speakers
        ]

    def languages(self) -> list[str]:
        if self._model is not None:
            found = self._model.get_supported_languages() or []
            names = [lang.capitalize() for lang in found if "dialect" not in lang and lang != "auto"]
            return ["Auto", *sorted(names)]
        return list(catalogue()["languages"])

    def follows_instructions(self) -> bool:
        """Only the 1.7B CustomVoice model follows `instruct`; the 0.6B one silently drops it."""
        if self._model is not None:
            return "1b7" in str(getattr(self._model.model, "tts_model_size", "")).lower()
        return "1.7b" in configured_model(self.kind).lower()

    # ----- synthesis ---------------------------------------------------------------------
    @classmethod
    def spoken_language(cls, request: SynthesisRequest) -> str | None:
        """The ISO code of the language asked for; None on Auto (the model chooses: detect it)."""
        return iso_code(request.language)

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        """The first sentence streams frame by frame; the rest come sentence by sentence, in groups of
        similar length, each in a `generate` call shared with concurrent requests (`engines.qwen.batcher`)."""
        model = self._loaded()
        language = self._language(request.language)
        lines = sentences(respell(request.text, request.lexicon))  # the owner's lexicon
        if not lines:
            raise InputError("There is nothing to say in this text.")
        conditioning = self._conditioning(request)
        limit = model_token_limit(model)
        plan = [[lines[0]], *batches(lines[1:])]
        cap = request.max_new_tokens
        groups = [[(text, token_cap(text, cap, limit, language)) for text in group] for group in plan]
        spoken = self.spoken_language(request)
        chunks = self._batcher.stream(groups, language, conditioning, self._context_codes(conditioning))
        try:
            for chunk in chunks:
                yield replace(chunk, language=spoken) if spoken else chunk
        finally:
            if hasattr(chunks, "close"):
                chunks.close()  # a listener who leaves cancels the rows, as `yield from` would

    def synthesize_batch(self, requests: list[SynthesisRequest]) -> list[np.ndarray]:
        """Whole clips for several texts in one `generate` call (batch files).

        The requests must share voice, language, instruction, reference and token cap (the first
        one's are used); each text is generated whole, not split into sentences.
        """
        model = self._loaded()
        first = requests[0]
        language = self._language(first.language)
        conditioning = self._conditioning(first)
        texts = [respell(r.text, r.lexicon) for r in requests]
        cap = token_cap(max(texts, key=len), first.max_new_tokens, model_token_limit(model))
        with self._lock:
            wavs, rate = self._generate(model, texts, [language] * len(texts), [conditioning] * len(texts), cap)
        clips = []
        for wav in wavs:
            audio = np.asarray(wav, dtype=np.float32).ravel()
            if rate != SAMPLE_RATE:
                import soxr

                audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
            clips.append(fade_edges(audio))
        return clips

    def _context_codes(self, conditioning: dict) -> list:
        """Codec frames that precede the generated ones: the reference's codes in ICL cloning."""
        prompt = conditioning.get("prompt")
        if prompt and prompt[0].icl_mode and prompt[0].ref_code is not None:
            return list(prompt[0].ref_code.detach().to("cpu").reshape(-1, prompt[0].ref_code.shape[-1]))
        return []

    def _language(self, language: str | None) -> str:
        """The model's own name for a language: a name in any case, or its ISO code ("ja", "pt-BR")."""
        if is_auto(language):
            return AUTO
        wanted = str(language).strip().lower()
        for name in self.languages():
            if name.lower() == wanted:
                return name
        for name in self.languages():
            if iso_code(name) is not None and iso_code(name) == iso_code(wanted):
                return name
        known = ", ".join(self.languages())
        raise InputError(f"Unknown language {shown(language)} for Qwen3-TTS; choose one of: {known}.")

    def _loaded(self):
        """The model; the registry (or a caller's `load`) loads it before the engine is used."""
        if self._model is None:
            raise UnavailableError(f"{MODELS[self.kind][1]} is not loaded yet; please try again.")
        return self._model


class QwenCustomEngine(QwenEngine):
    """Engine id `qwen-custom`: the nine preset speakers, optionally with an instruction (1.7B)."""

    kind = "custom"
    engine_id = "qwen-custom"
    CAPABILITIES = CUSTOM_CAPABILITIES

    def _conditioning(self, request: SynthesisRequest) -> dict:
        wanted = (request.voice or "").strip().lower()
        names = {v.id.lower(): v.id for v in self.voices() if v.available}
        if wanted not in names:
            raise InputError(
                f"Unknown Qwen3-TTS speaker {request.voice!r}; choose one of: {', '.join(names.values())}."
            )
        instruct = (request.instruct or "").strip() or None
        if instruct and not self.follows_instructions():
            raise InputError(
                "This Qwen3-TTS model (0.6B) ignores instructions; only the 1.7B CustomVoice model follows them."
            )
        return {"speaker": names[wanted], "instruct": instruct}

    def _generate(self, model, texts, languages, conditionings, cap):
        """One `generate` call; each row has its own text, language, speaker and instruction."""
        instructs = [c["instruct"] for c in conditionings]
        return model.generate_custom_voice(
            text=list(texts),
            speaker=[c["speaker"] for c in conditionings],
            language=list(languages),
            instruct=instructs if any(instructs) else None,
            max_new_tokens=cap,
        )


class QwenCloneEngine(QwenEngine):
    """Engine id `qwen-clone`: any voice from a reference clip (ICL with its transcript, or x-vector only)."""

    kind = "clone"
    engine_id = "qwen-clone"
    CAPABILITIES = CLONE_CAPABILITIES

    def clone_prompt(self, reference, reference_text: str | None, x_vector_only: bool) -> list:
        """The model's voice-clone prompt for a reference, cached per clip, transcript and mode."""
        model = self._loaded()
        text = (reference_text or "").strip() or None
        if not x_vector_only and not text:
            raise InputError(
                "Cloning with the reference's own words needs its exact transcript; type it, or tick x-vector only."
            )
        key = (reference.digest, None if x_vector_only else text, bool(x_vector_only))
        prompt = self._prompts.get(key)
        if prompt is None:
            with self._lock:
                prompt = model.create_voice_clone_prompt(
                    ref_audio=(reference.audio, reference.sample_rate),
                    ref_text=text,
                    x_vector_only_mode=bool(x_vector_only),
                )
            self._prompts.put(key, prompt)
        return prompt

    def _conditioning(self, request: SynthesisRequest) -> dict:
        if request.clone_prompt is not None:  # a saved voice sent with the request (a remote replica)
            return {"prompt": request.clone_prompt}
        if request.reference is not None:
            return {"prompt": self.clone_prompt(request.reference, request.reference_text, request.x_vector_only)}
        return {"prompt": load_voice(request.voice, request.owner)}

    def _generate(self, model, texts, languages, conditionings, cap):
        """One `generate` call; each row has its own text, language and clone prompt (ICL or x-vector)."""
        return model.generate_voice_clone(
            text=list(texts),
            language=list(languages),
            voice_clone_prompt=[c["prompt"][0] for c in conditionings],
            max_new_tokens=cap,
        )
