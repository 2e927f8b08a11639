"""Kokoro's two back-ends behind one small interface: PyTorch (`KModel`) and ONNX Runtime.

Both take token ids, a 256-float style row and a speed, and return 24 kHz float audio; the
PyTorch one also returns the predicted duration of each token, which gives word timestamps.
Voice packs load as (rows, 256) float32 arrays: `.pt` files with `weights_only=True`, or the
packaged `.npz`. Neither back-end holds any language logic: that is the shared front-end's job.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from . import stop
from .base import UnavailableError
from .device import gpu_attached, onnx_providers, resolve, zero_gpu
from .settings import env_int
from .weights import KokoroWeights, hub_voice

log = logging.getLogger(__name__)


class OnnxBackend:
    """The int8 ONNX export on ONNX Runtime (CPU, or CUDA when the GPU package is installed)."""

    name = "onnx"

    def __init__(self, weights: KokoroWeights, device: str) -> None:
        import onnxruntime as ort

        device = resolve(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = env_int("ORT_THREADS", 0, minimum=0) or (os.cpu_count() or 1)
        self.session = ort.InferenceSession(str(weights.model_path), options, providers=onnx_providers(device))
        self.device = device if self.session.get_providers()[0].startswith("CUDA") else "cpu"
        with open(weights.vocab_path, encoding="utf-8") as f:
            self.vocab: dict[str, int] = json.load(f)["vocab"]
        with np.load(weights.voices_npz) as npz:
            self._packs = {name: npz[name].reshape(-1, 256).astype(np.float32) for name in npz.files}
        self._lock = threading.Lock()

    def voice_names(self) -> set[str]:
        return set(self._packs)

    def pack(self, name: str) -> np.ndarray:
        if name not in self._packs:
            raise UnavailableError(f"The voice {name} is not in the packaged model.")
        return self._packs[name]

    def run(self, ids: list[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, None]:
        feeds = {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style.reshape(1, 256).astype(np.float32),
            "speed": np.array([speed], dtype=np.float32),
        }
        import onnxruntime as ort

        options = ort.RunOptions()  # a visitor's Stop cuts the call short (`engines.stop`)
        with stop.abortable(lambda: setattr(options, "terminate", True)), self._lock:
            audio = self.session.run(None, feeds, options)[0]
        return np.asarray(audio, dtype=np.float32).ravel(), None


class TorchBackend:
    """The full-precision `kokoro.KModel`, on the device `engines.device` resolves.

    On ZeroGPU the model is placed on `cuda` at load, but the GPU is attached only inside GPU calls
    (`engines.gpu`): a CPU copy, made at load, runs everything outside them (the load-time speed
    measurement, and a visitor's request once their GPU quota has run out).
    """

    name = "torch"

    def __init__(self, weights: KokoroWeights, device: str) -> None:
        import torch
        from kokoro import KModel

        device = resolve(device)
        self.device = device
        self._torch = torch
        self._weights = weights

        def build() -> KModel:
            return KModel(
                repo_id=weights.repo_id or "hexgrad/Kokoro-82M",
                config=str(weights.config_path),
                model=str(weights.model_path),
            ).eval()

        # a second build, not a deepcopy: the weight-normed layers refuse to be deep-copied
        self._cpu_model = build() if device.startswith("cuda") and zero_gpu() else None
        self.model = build().to(device)
        self.vocab: dict[str, int] = self.model.vocab
        self._packs: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def voice_names(self) -> set[str] | None:
        """Voices on disk for a local folder; None (all of them) for the hub."""
        if self._weights.voices_dir is None:
            return None
        return {p.stem for p in Path(self._weights.voices_dir).glob("*.pt")}

    def pack(self, name: str) -> np.ndarray:
        if name not in self._packs:
            if self._weights.voices_dir is not None:
                path = Path(self._weights.voices_dir) / f"{name}.pt"
                if not path.is_file():
                    raise UnavailableError(f"The voice {name} is not in the local Kokoro folder's voices/.")
            else:
                path = hub_voice(self._weights.repo_id or "hexgrad/Kokoro-82M", name)
            tensor = self._torch.load(path, map_location="cpu", weights_only=True)
            self._packs[name] = tensor.float().numpy().reshape(-1, 256)
        return self._packs[name]

    def run(self, ids: list[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        model, device = self.model, self.device
        if self._cpu_model is not None and not gpu_attached():
            model, device = self._cpu_model, "cpu"
        input_ids = torch.tensor([[0, *ids, 0]], dtype=torch.long, device=device)
        ref = torch.from_numpy(style.reshape(1, 256).astype(np.float32)).to(device)
        with self._lock, torch.inference_mode():
            audio, durations = model.forward_with_tokens(input_ids, ref, speed)
        return (
            audio.float().cpu().numpy().ravel(),
            durations.cpu().numpy().ravel().astype(np.int64),
        )


def create_backend(weights: KokoroWeights, device: str) -> OnnxBackend | TorchBackend:
    if weights.backend == "onnx":
        return OnnxBackend(weights, device)
    return TorchBackend(weights, device)
