"""Qwen3-TTS VoiceDesign (`qwen-design`): speech in a voice described in words ("a warm, low-pitched
narrator in his sixties, slow and calm"), streamed like the other Qwen3-TTS engines (`engines.qwen.engine`).

The description is the request's `instruct`. The engine's voices are ready-made descriptions
(`PRESETS`), so every way in that lists voices (Compare, Arena, Batch, `/v1`) can use it as it is;
a description given with the request replaces the voice's. Weights come from
`QWEN_VOICE_DESIGN_MODEL` (hub id or local folder; VoiceDesign exists only at 1.7B). A designed voice
varies from line to line; to keep one, clone a designed clip with the Base model and save it
(`Capabilities.saved_voices`: the Qwen3-TTS tab's "Keep this voice").
"""

from __future__ import annotations

from engines.base import Capabilities, EngineInfo, InputError, SynthesisRequest, VoiceInfo
from engines.lexicon import RESPELLING
from engines.qwen.engine import MODELS, QwenEngine, catalogue

NAME = "Qwen3-TTS VoiceDesign"
MODELS["design"] = ("QWEN_VOICE_DESIGN_MODEL", NAME)  # the family's table

# voice id -> (display name, the description the model is given); written in the style of the model
# card's examples: who speaks, then timbre, pace and mood.
PRESETS = {
    "narrator": ("Narrator", "A warm, low-pitched male narrator in his sixties, speaking slowly and calmly."),
    "storyteller": ("Storyteller", "A gentle young woman telling a bedtime story, soft, expressive and smiling."),
    "newsreader": ("Newsreader", "A clear, confident female newsreader with a neutral accent and a steady pace."),
    "announcer": ("Announcer", "A deep, booming male announcer with dramatic emphasis and long pauses."),
    "enthusiast": ("Enthusiast", "An excited teenage boy, high-pitched and fast, bursting with energy."),
    "whisper": ("Whisper", "A hushed, breathy female voice whispering close to the microphone, slow and intimate."),
}

CAPABILITIES = Capabilities(
    name=NAME,
    languages=tuple(catalogue()["languages"]),
    default_voice="narrator",
    designs_voices=True,
    instructions=True,  # the description: VoiceDesign is 1.7B only, and always follows it
    batches=True,
    lexicon=RESPELLING,
    openai_models=("qwen3-tts-design",),
)


class QwenDesignEngine(QwenEngine):
    """Engine id `qwen-design`: a voice from a description (the request's `instruct`, else its preset voice's)."""

    kind = "design"
    engine_id = "qwen-design"
    CAPABILITIES = CAPABILITIES

    def info(self) -> EngineInfo:
        info = super().info()
        info.follows_instructions = info.available
        return info

    def voices(self) -> list[VoiceInfo]:
        return [VoiceInfo(voice, name, "", "", None, True) for voice, (name, _) in PRESETS.items()]

    def follows_instructions(self) -> bool:
        return True

    def description(self, request: SynthesisRequest) -> str:
        """What the voice should sound like: the request's own description, else its preset voice's."""
        own = (request.instruct or "").strip()
        if own:
            return own
        preset = PRESETS.get((request.voice or "").strip().lower())
        if preset is None:
            raise InputError(
                f"Describe the voice (for example {PRESETS['narrator'][1]!r}), or pick one of the described "
                f"voices: {', '.join(PRESETS)}."
            )
        return preset[1]

    def _conditioning(self, request: SynthesisRequest) -> dict:
        return {"instruct": self.description(request)}

    def _generate(self, model, texts, languages, conditionings, cap):
        """One `generate` call; each row has its own text, language and description."""
        return model.generate_voice_design(
            text=list(texts),
            instruct=[c["instruct"] for c in conditionings],
            language=list(languages),
            max_new_tokens=cap,
        )
