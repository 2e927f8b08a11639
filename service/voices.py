"""Saved voices: save (admitted by the bytes it stores), list and delete a caller's cloned voices.

Quotas per owner are `engines.voice_library`'s; what is checked here is the caller's allowance.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines import gpu, registry
from engines.reference import Reference, settle_transcript
from engines.voice_library import delete_voice, list_voices, save_voice

from . import admission
from .caller import Caller


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
    admission.admit(caller, nbytes=int(reference.audio.nbytes))
    transcript, x_vector_only, notice = settle_transcript(reference, transcript, x_vector_only)
    engine = registry.get(engine_id)
    prompt = gpu.call(engine, "clone_prompt", reference, transcript, x_vector_only)
    slug = save_voice(
        name, prompt, engine.info().weights_source, reference_audio=reference.audio,
        owner=caller.owner, overwrite=bool(overwrite), share_in_arena=bool(share_in_arena),
    )  # fmt: skip
    return Saved(slug, transcript, x_vector_only, notice)


def listing(caller: Caller) -> list[str]:
    """The caller's saved voices."""
    return list_voices(caller.owner)


def delete(caller: Caller, name: str) -> None:
    """Delete the caller's voice `name`."""
    admission.admit(caller)
    delete_voice(name, caller.owner)
