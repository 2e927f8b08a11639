"""Saved voices: save (admitted by the bytes it stores), list and delete a caller's cloned voices, and
the transcript of a reference clip (admitted by its bytes and the recogniser's compute).

Quotas per owner are `engines.voice_library`'s; what is checked here is the caller's allowance.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.reference import Reference, settle_transcript
from engines.runtime import gpu, registry
from engines.voice_library import delete_voice, list_voices, save_voice

from . import admission
from .caller import Caller

# Whisper tiny.en (int8, CPU) spent 0.075 s per second heard on a 7.3 s clip on this 2-core machine
# under load (2026-12-07); taken a little higher, for the meter.
ASR_S_PER_AUDIO_S = 0.1


@dataclass(frozen=True)
class Saved:
    """A voice just saved: its safe name, the transcript used, whether only the timbre was kept, a note."""

    slug: str
    transcript: str | None
    x_vector_only: bool
    notice: str | None


def save(
    caller: Caller,
    engine_id: str,
    name: str,
    reference: Reference,
    transcript: str | None,
    x_vector_only: bool,
    overwrite: bool = False,
    share_in_arena: bool = False,
) -> Saved:
    """Make the engine's clone prompt of `reference` and keep it as the caller's voice `name`."""
    cost = recogniser_cost(reference, transcript, x_vector_only)
    admission.admit(caller, nbytes=int(reference.audio.nbytes), compute_s=cost)
    transcript, x_vector_only, notice = settle_transcript(reference, transcript, x_vector_only)
    engine = registry.get(engine_id)
    prompt = gpu.call(engine, "clone_prompt", reference, transcript, x_vector_only)
    slug = save_voice(
        name, prompt, engine.info().weights_source, reference_audio=reference.audio,
        owner=caller.owner, overwrite=bool(overwrite), share_in_arena=bool(share_in_arena),
    )  # fmt: skip
    return Saved(slug, transcript, x_vector_only, notice)


def recogniser_cost(reference: Reference, transcript: str | None, x_vector_only: bool) -> float:
    """Seconds of compute the speech recogniser will spend settling how to clone (none when the
    transcript is given or only the timbre is wanted)."""
    if x_vector_only or (transcript or "").strip():
        return 0.0
    return reference.duration_s * ASR_S_PER_AUDIO_S


def settle(
    caller: Caller, reference: Reference, transcript: str | None, x_vector_only: bool
) -> tuple[str | None, bool, str]:
    """How to clone from `reference` (`engines.reference.settle_transcript`), the recogniser's compute
    admitted first when it has to listen."""
    admission.admit(caller, compute_s=recogniser_cost(reference, transcript, x_vector_only))
    return settle_transcript(reference, transcript, x_vector_only)


def transcribe(caller: Caller, reference: Reference) -> tuple[str, str]:
    """The words heard in a reference clip, for the visitor to correct before cloning, and a note
    (admitted by the clip's bytes and the recogniser's compute, together)."""
    cost = recogniser_cost(reference, None, False)
    admission.admit(caller, nbytes=int(reference.audio.nbytes), compute_s=cost)
    text, _, notice = settle_transcript(reference, None, False)
    return text or "", notice


def listing(caller: Caller) -> list[str]:
    """The caller's saved voices."""
    return list_voices(caller.owner)


def delete(caller: Caller, name: str) -> None:
    """Delete the caller's voice `name`."""
    admission.admit(caller)
    delete_voice(name, caller.owner)
