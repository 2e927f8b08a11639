"""Saved cloned voices: a Qwen3-TTS clone prompt under a name, reusable after a restart.

Each voice is two files in `VOICE_LIBRARY_DIR` (default ~/.local/share/tts-compare/voices):
`<name>.safetensors` with the prompt's tensors (speaker embedding, reference codes in ICL mode, and
the reference clip itself, so that likeness to it can be measured later) and `<name>.json` with its
metadata. Names are reduced to a safe slug; nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from .base import InputError, UnavailableError

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
REFERENCE_KEY = "reference_audio_24k"
_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def library_dir() -> Path:
    path = Path(os.environ.get("VOICE_LIBRARY_DIR") or Path.home() / ".local" / "share" / "tts-compare" / "voices")
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(name: str) -> str:
    """A file-safe slug of a voice name, or one sentence saying why the name cannot be used."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("Please give the voice a name.")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"Voice names are at most {MAX_NAME_CHARS} characters; this one has {len(name)}.")
    slug = _UNSAFE.sub("-", name.strip().lower()).strip("-_")
    if not slug:
        raise InputError("A voice name needs letters or digits (slashes, dots and the like are dropped).")
    return slug


def list_voices() -> list[str]:
    """Names of the saved voices whose two files are both present."""
    folder = library_dir()
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.safetensors").is_file())


def save_voice(name: str, items: list, model_source: str = "", reference_audio: np.ndarray | None = None) -> str:
    """Save a one-item clone prompt (from `create_voice_clone_prompt`) under a name, with the 24 kHz
    reference clip it came from when given; returns the slug."""
    import torch
    from safetensors.torch import save_file

    slug = safe_name(name)
    item = items[0]
    tensors = {"ref_spk_embedding": item.ref_spk_embedding.detach().cpu().contiguous()}
    if item.ref_code is not None:
        tensors["ref_code"] = item.ref_code.detach().cpu().contiguous()
    if reference_audio is not None:
        tensors[REFERENCE_KEY] = torch.from_numpy(np.ascontiguousarray(reference_audio, dtype=np.float32))
    meta = {
        "name": name.strip(),
        "x_vector_only_mode": bool(item.x_vector_only_mode),
        "icl_mode": bool(item.icl_mode),
        "ref_text": item.ref_text,
        "model": model_source,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    folder = library_dir()
    save_file(tensors, str(folder / f"{slug}.safetensors"))
    (folder / f"{slug}.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return slug


def load_voice(name: str) -> list:
    """The saved clone prompt as a one-item list ready for `generate_voice_clone`."""
    from safetensors.torch import load_file

    from .qwen import import_qwen_tts

    VoiceClonePromptItem = import_qwen_tts().VoiceClonePromptItem  # noqa: N806

    slug = safe_name(name)
    folder = library_dir()
    if slug not in list_voices():
        saved = ", ".join(list_voices()) or "none yet"
        raise InputError(f"There is no saved voice called {name!r}; saved voices: {saved}.")
    try:
        meta = json.loads((folder / f"{slug}.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / f"{slug}.safetensors"))
        item = VoiceClonePromptItem(
            ref_code=tensors.get("ref_code"),
            ref_spk_embedding=tensors["ref_spk_embedding"],
            x_vector_only_mode=bool(meta["x_vector_only_mode"]),
            icl_mode=bool(meta["icl_mode"]),
            ref_text=meta.get("ref_text"),
        )
        if item.icl_mode and (item.ref_code is None or not item.ref_text):
            raise ValueError("ICL voice without codes or transcript")
    except Exception as exc:  # corrupt JSON, truncated safetensors, missing keys
        log.warning("Saved voice %s is unreadable: %s", slug, exc)
        raise UnavailableError(f"The saved voice {slug!r} is damaged; delete it and save it again.") from None
    return [item]


def reference_audio(name: str) -> np.ndarray | None:
    """The saved voice's 24 kHz reference clip (None for voices saved without one, or unreadable)."""
    from safetensors import safe_open

    slug = safe_name(name)
    if slug not in list_voices():
        return None
    try:
        with safe_open(str(library_dir() / f"{slug}.safetensors"), framework="numpy") as stored:
            return stored.get_tensor(REFERENCE_KEY) if REFERENCE_KEY in stored.keys() else None
    except Exception as exc:  # damaged file: the synthesis path reports it; here the metric is just missing
        log.warning("Saved voice %s has no readable reference clip: %s", slug, exc)
        return None


def delete_voice(name: str) -> None:
    slug = safe_name(name)
    found = False
    for suffix in (".json", ".safetensors"):
        path = library_dir() / f"{slug}{suffix}"
        if path.is_file():
            path.unlink()
            found = True
    if not found:
        raise InputError(f"There is no saved voice called {name!r}.")
