"""Saved cloned voices: a Qwen3-TTS clone prompt under a name, reusable after a restart, owned.

A saved voice belongs to whoever saved it: every function takes an `owner` (an opaque id the caller
proved: a page visitor's signed token, a Hugging Face user, an API key; see docs/qwen.md, "Saved voices").
`None` sees nothing and can save nothing, so a call that carries no owner never reaches anyone's
voice. `VOICE_LIBRARY_SHARED=1` keeps one shared library instead (a personal machine): the owner is
then ignored. `OPERATOR` (the CLI, run by the machine's operator) sees every voice; an owner's voice is
then written `<owner folder>/<name>`.

Layout under `VOICE_LIBRARY_DIR` (default ~/.local/share/tts-compare/voices): the shared library in
the folder itself (also where voices saved before owners existed stay: only the shared mode and the
CLI see them), each owner's voices in `owners/<sha256 of the owner id>/`. A voice is a record
`<name>.json` (display name, owner, "share in the arena", the prompt's flags and transcript) that
names its tensors file `<name>-<random>.safetensors` (speaker embedding, reference codes in ICL mode,
the 24 kHz reference clip). Both are written to a temporary file and moved into place
(`os.replace`), tensors first: a reader sees the old voice or the new one, never half of either.
Names are case-insensitive slugs ("Bob" and "bob" are one voice); saving over one needs
`overwrite=True`. Nothing is unpickled.

Storage is bounded (`check_room`, used by saves here and by `engines.lexicon`): an owner keeps at most
`VOICES_PER_OWNER` voices (default 20) and `OWNER_STORAGE_MB` (default 100) of voices and lexicon
together; the whole folder stays under `VOICE_LIBRARY_MAX_MB` (default 10240). An owner whose voices
and lexicon have not been used or changed for `OWNER_IDLE_DAYS` (default 90) is removed by
`sweep_idle_owners` (the app's janitor calls it); use refreshes an owner's folder time at most hourly
(`touch`). The shared library and the CLI's operator library are never swept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from engines.base import InputError, UnavailableError, shown
from engines.settings import settings

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
REFERENCE_KEY = "reference_audio_24k"
OPERATOR = "operator:*"  # the CLI's marker: the machine's operator sees every voice
OWNERS_FOLDER = "owners"
LEXICONS_FOLDER = "lexicons"  # `engines.lexicon` keeps `<owner folder>.json` there
MB = 2**20
TOUCH_EVERY_S = 3600.0  # use refreshes an owner's time at most this often (one utime, not one per request)
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_TENSORS_FILE = re.compile(r"^[a-z0-9_-]+\.safetensors$")
_OWNER_FOLDER = re.compile(r"^[0-9a-f]{32}$")
_write_lock = threading.Lock()  # save and delete read, then change, a voice's files


def library_dir() -> Path:
    path = Path(settings().voice_library_dir or Path.home() / ".local" / "share" / "tts-compare" / "voices")
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared() -> bool:
    """Whether this machine keeps one shared library (`VOICE_LIBRARY_SHARED=1`): no owners."""
    return settings().voice_library_shared


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


def owner_folder(owner: str) -> str:
    """The folder name of an owner's voices: no character of the owner id reaches the file system."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]


def _folder(owner: str | None) -> Path | None:
    """Where an owner's voices live (the shared library in shared mode); None: nowhere (no owner)."""
    if shared():
        return library_dir()
    if not owner or owner == OPERATOR:
        return None
    return library_dir() / OWNERS_FOLDER / owner_folder(owner)


def _record(folder: Path, slug: str) -> dict | None:
    """A voice's record with its tensors file checked, or None when there is no usable pair."""
    path = folder / f"{slug}.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}  # damaged record: listed, and loading it says so
    if not isinstance(meta, dict):
        meta = {}
    tensors = meta.get("tensors", f"{slug}.safetensors")  # voices saved before records named their tensors
    if not isinstance(tensors, str) or not _TENSORS_FILE.match(tensors) or not (folder / tensors).is_file():
        return None
    return {**meta, "tensors": tensors}


def _slugs(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json") if _record(folder, p.stem) is not None)


def _owner_folders() -> list[Path]:
    root = library_dir() / OWNERS_FOLDER
    return sorted(p for p in root.iterdir() if p.is_dir() and _OWNER_FOLDER.match(p.name)) if root.is_dir() else []


def list_voices(owner: str | None = None) -> list[str]:
    """Names of the voices `owner` may use (none for no owner; every voice for `OPERATOR`)."""
    if owner == OPERATOR:
        return _slugs(library_dir()) + [f"{f.name}/{slug}" for f in _owner_folders() for slug in _slugs(f)]
    folder = _folder(owner)
    return _slugs(folder) if folder is not None and folder.is_dir() else []


def _locate(name: str, owner: str | None) -> tuple[Path, str, dict] | None:
    """(folder, slug, record) of the voice `owner` calls `name`, or None when it has none by that name."""
    if owner == OPERATOR and not shared():
        folder_name, sep, rest = str(name).partition("/")
        if sep and _OWNER_FOLDER.match(folder_name):
            folder, slug = library_dir() / OWNERS_FOLDER / folder_name, safe_name(rest)
            record = _record(folder, slug)
            return None if record is None else (folder, slug, record)
        slug = safe_name(name)
        found = [(f, slug, r) for f in (library_dir(), *_owner_folders()) if (r := _record(f, slug)) is not None]
        if len(found) > 1:
            names = ", ".join(f"{f.name}/{slug}" for f, _, _ in found if f != library_dir())
            raise InputError(f"Several owners have a voice called {slug!r}; name one of: {names}.")
        return found[0] if found else None
    slug = safe_name(name)
    folder = _folder(owner)
    if folder is None:
        return None
    record = _record(folder, slug)
    return None if record is None else (folder, slug, record)


def _not_found(name: str, owner: str | None) -> InputError:
    """The same sentence whether the name is free or someone else's: no one learns another's names."""
    saved = ", ".join(list_voices(owner)) or "none yet"
    return InputError(f"There is no saved voice called {shown(name)} that you can use; your saved voices: {saved}.")


def voice_exists(name: str, owner: str | None) -> bool:
    """Whether `owner` already has a voice of this name (any case)."""
    return _locate(name, owner) is not None


def voices_per_owner() -> int:
    """`VOICES_PER_OWNER` (default 20): the most voices one owner keeps."""
    return settings().voices_per_owner


def owner_storage_bytes() -> int:
    """`OWNER_STORAGE_MB` (default 100): the most one owner's voices and lexicon take together, in bytes."""
    return int(settings().owner_storage_mb * MB)


def library_max_bytes() -> int:
    """`VOICE_LIBRARY_MAX_MB` (default 10240): the most the whole voice library folder takes, in bytes."""
    return int(settings().voice_library_max_mb * MB)


def idle_seconds() -> float:
    """`OWNER_IDLE_DAYS` (default 90) in seconds: an owner unused this long is swept."""
    return settings().owner_idle_days * 86_400


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (0 for what is not there)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _lexicon_file(owner: str) -> Path:
    return library_dir() / LEXICONS_FOLDER / f"{owner_folder(owner)}.json"


def check_room(owner: str | None, adding: int, freeing: int = 0, new_voice: bool = False) -> None:
    """`InputError` (one sentence) when `owner` writing `adding` bytes in place of `freeing` ones (and one
    more voice with `new_voice`) would pass its count or storage quota or the library's bound."""
    if owner and owner != OPERATOR and not shared():
        folder = library_dir() / OWNERS_FOLDER / owner_folder(owner)
        if new_voice and folder.is_dir() and len(_slugs(folder)) >= voices_per_owner():
            raise InputError(
                f"You have {voices_per_owner()} saved voices, the most one owner may keep; delete one to save another."
            )
        used = _size(folder) + _size(_lexicon_file(owner))
        if used - freeing + adding > owner_storage_bytes():
            raise InputError(
                f"This would take your saved voices and lexicon over {owner_storage_bytes() / MB:g} MB; "
                "delete a voice first."
            )
    if adding > freeing and _size(library_dir()) - freeing + adding > library_max_bytes():
        raise InputError("The voice library of this Space is full; please try again later.")


def touch(path: Path) -> None:
    """Mark an owner's folder or lexicon file as used now (at most every `TOUCH_EVERY_S`)."""
    try:
        if time.time() - path.stat().st_mtime > TOUCH_EVERY_S:
            os.utime(path)
    except OSError:
        pass


def sweep_idle_owners(now: float | None = None) -> dict:
    """Remove every owner whose voices folder and lexicon were last used or changed over `OWNER_IDLE_DAYS`
    ago (both go together). The shared library, the CLI's operator voices in the library's own folder and
    `lexicons/shared.json` are never touched. Returns {"owners": n, "freed_bytes": b}."""
    import shutil

    now = time.time() if now is None else now
    cutoff = now - idle_seconds()
    root = library_dir()
    folders = {f.name: f for f in _owner_folders()}
    lexicons = root / LEXICONS_FOLDER
    files = {p.stem: p for p in lexicons.glob("*.json") if _OWNER_FOLDER.match(p.stem)} if lexicons.is_dir() else {}
    swept = freed = 0
    with _write_lock:
        for name in sorted(set(folders) | set(files)):
            parts = [p for p in (folders.get(name), files.get(name)) if p is not None]
            try:
                last = max(_last_used(p) for p in parts)
            except OSError:
                continue
            if last >= cutoff:
                continue
            for part in parts:
                freed += _size(part)
                if part.is_dir():
                    shutil.rmtree(part, ignore_errors=True)
                else:
                    part.unlink(missing_ok=True)
            swept += 1
    if swept:
        log.info("voice library: swept %d idle owners (%.1f MB)", swept, freed / MB)
    return {"owners": swept, "freed_bytes": freed}


def _last_used(path: Path) -> float:
    """A folder's or file's time: its own (touched on use) or, for a folder, its newest file's."""
    newest = path.stat().st_mtime
    if path.is_dir():
        for child in path.iterdir():
            newest = max(newest, child.stat().st_mtime)
    return newest


def save_voice(
    name: str,
    items: list,
    model_source: str = "",
    reference_audio: np.ndarray | None = None,
    *,
    owner: str | None = None,
    overwrite: bool = False,
    share_in_arena: bool = False,
) -> str:
    """Save a one-item clone prompt (from `create_voice_clone_prompt`) as `owner`'s voice `name`, with
    the 24 kHz reference clip it came from when given; returns the slug. An existing voice of that
    name (any case) is replaced only with `overwrite`; `share_in_arena` lets the Arena draw it."""
    import torch
    from safetensors.torch import save

    slug = safe_name(name)
    folder = _folder(owner)
    if folder is None:
        raise InputError(
            "Saving a voice needs an owner (a page visitor, a signed-in user or an API key); none came with it."
        )
    item = items[0]
    tensors = _prompt_tensors(item)
    if reference_audio is not None:
        tensors[REFERENCE_KEY] = torch.from_numpy(np.ascontiguousarray(reference_audio, dtype=np.float32))
    meta = {
        "name": name.strip(),
        "owner": None if shared() else owner,
        "share_in_arena": bool(share_in_arena),
        "x_vector_only_mode": bool(item.x_vector_only_mode),
        "icl_mode": bool(item.icl_mode),
        "ref_text": item.ref_text,
        "model": model_source,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tensors": f"{slug}-{secrets.token_hex(4)}.safetensors",
    }
    data = save(tensors)
    record = json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8")
    with _write_lock:
        old = _record(folder, slug)
        if old is not None and not overwrite:
            raise InputError(f"You already have a voice called {slug!r}; choose another name, or overwrite it.")
        freeing = 0 if old is None else _size(folder / f"{slug}.json") + _size(folder / old["tensors"])
        check_room(owner, len(data) + len(record), freeing, new_voice=old is None)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / meta["tensors"], data)
        _atomic_write(folder / f"{slug}.json", record)
        if old is not None and old["tensors"] != meta["tensors"]:
            (folder / old["tensors"]).unlink(missing_ok=True)
    return slug


def _prompt_tensors(item) -> dict:
    tensors = {"ref_spk_embedding": item.ref_spk_embedding.detach().cpu().contiguous()}
    if item.ref_code is not None:
        tensors["ref_code"] = item.ref_code.detach().cpu().contiguous()
    return tensors


def prompt_to_stored(items: list) -> tuple[dict, bytes]:
    """A one-item clone prompt as a record and safetensors bytes (a replica sends a new prompt this way;
    `prompt_from_stored` reads it back)."""
    from safetensors.torch import save

    item = items[0]
    meta = {"x_vector_only_mode": bool(item.x_vector_only_mode), "icl_mode": bool(item.icl_mode)}
    meta["ref_text"] = item.ref_text
    return meta, save(_prompt_tensors(item))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then move it into place (readers never see half)."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_voice(name: str, owner: str | None = None) -> list:
    """`owner`'s saved clone prompt as a one-item list ready for `generate_voice_clone`."""
    return prompt_from_stored(*stored_voice(name, owner))


def stored_voice(name: str, owner: str | None = None) -> tuple[dict, bytes]:
    """`owner`'s saved voice as stored: its record and its safetensors bytes (what `engines.runtime.wire` sends
    to a remote replica, which rebuilds the prompt with `prompt_from_stored`)."""
    found = _locate(name, owner)
    if found is None:
        raise _not_found(name, owner)
    folder, slug, meta = found
    touch(folder)
    try:
        return meta, (folder / meta["tensors"]).read_bytes()
    except (OSError, KeyError, TypeError) as exc:
        log.warning("Saved voice %s is unreadable: %s", slug, exc)
        raise UnavailableError(f"The saved voice {slug!r} is damaged; delete it and save it again.") from None


def prompt_from_stored(meta: dict, data: bytes) -> list:
    """A one-item clone prompt from a voice's record and safetensors bytes (nothing is unpickled)."""
    from safetensors.torch import load

    from engines.qwen.tts_import import import_qwen_tts

    VoiceClonePromptItem = import_qwen_tts().VoiceClonePromptItem  # noqa: N806

    slug = _UNSAFE.sub("-", str(meta.get("name") if isinstance(meta, dict) else "voice").lower())[:MAX_NAME_CHARS]
    try:
        tensors = load(data)
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


def reference_audio(name: str, owner: str | None = None) -> np.ndarray | None:
    """The saved voice's 24 kHz reference clip (None for voices saved without one, unreadable, or
    not `owner`'s)."""
    from safetensors import safe_open

    found = _locate(name, owner)
    if found is None:
        return None
    folder, slug, meta = found
    try:
        with safe_open(str(folder / meta["tensors"]), framework="numpy") as stored:
            return stored.get_tensor(REFERENCE_KEY) if REFERENCE_KEY in stored.keys() else None
    except Exception as exc:  # damaged file: the synthesis path reports it; here the metric is just missing
        log.warning("Saved voice %s has no readable reference clip: %s", slug, exc)
        return None


def delete_voice(name: str, owner: str | None = None) -> None:
    """Delete `owner`'s voice `name` (its record first: it is gone at once, then its tensors)."""
    with _write_lock:
        found = _locate(name, owner)
        if found is None:
            raise _not_found(name, owner)
        folder, slug, meta = found
        (folder / f"{slug}.json").unlink(missing_ok=True)
        (folder / meta["tensors"]).unlink(missing_ok=True)


def arena_voices() -> list[tuple[str | None, str]]:
    """(owner, name) of every voice whose owner ticked "share in the arena" (owner None in shared
    mode); voices saved before owners existed are not shared unless the shared library holds them."""
    folders = [library_dir()] if shared() else _owner_folders()
    out = []
    for folder in folders:
        for slug in _slugs(folder):
            record = _record(folder, slug) or {}
            owner = None if shared() else record.get("owner")
            mine = shared() or (isinstance(owner, str) and owner and owner_folder(owner) == folder.name)
            if record.get("share_in_arena") is True and mine:
                out.append((owner, slug))
    return out
