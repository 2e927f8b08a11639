"""The one device resolver: which device models load on, and what that device can do right now.

`TTS_DEVICE` forces a device (`cpu`, `cuda`, `cuda:1`); unset (or `auto`) it is CUDA when a CUDA
device is visible, else the CPU. On a ZeroGPU Space (`SPACES_ZERO_GPU`, read as the `spaces`
package reads it) models are placed on `cuda` at start as ZeroGPU expects: the `spaces` package
stands in for the GPU in the main process and attaches a real one only inside `spaces.GPU` calls
(`engines.runtime.gpu`), so `gpu_attached()` says whether this process may run CUDA work now.
Every engine, the ONNX providers and the comparison's free-memory check ask here.
"""

from __future__ import annotations

import re

from engines.base import UnavailableError
from engines.settings import DEVICE_PATTERN, settings

_DEVICE = re.compile(DEVICE_PATTERN)


def zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space (`SPACES_ZERO_GPU` is 1, t or true, as `spaces.config` reads it)."""
    return settings().spaces_zero_gpu


def preference(raw: str | None = None) -> str:
    """The device asked for (`raw`, else `TTS_DEVICE`, checked by `engines.settings`): "auto", "cpu",
    "cuda" or "cuda:N"; a `raw` that is none of these is refused in one sentence (`UnavailableError`)."""
    if raw is None:
        return settings().tts_device
    wanted = raw.strip().lower() or "auto"
    if _DEVICE.fullmatch(wanted) is None:
        raise UnavailableError(
            f"TTS_DEVICE={raw.strip()!r} is not a device this app knows; use cpu, cuda or cuda:N (e.g. cuda:1), "
            "or leave it unset for CUDA when present."
        )
    return wanted


def cuda_count() -> int:
    """How many CUDA devices PyTorch sees (0 without PyTorch). Counting does not start CUDA."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve(raw: str | None = None) -> str:
    """The concrete device to load on: "cpu", "cuda" or "cuda:N" (`raw` as for `preference`).

    On ZeroGPU any CUDA wish (and auto) is "cuda": the Space has one GPU, attached per call.
    """
    wanted = preference(raw)
    if wanted == "cpu":
        return "cpu"
    if zero_gpu():
        return "cuda"
    count = cuda_count()
    if wanted == "auto":
        return "cuda" if count else "cpu"
    index = int(wanted.partition(":")[2] or 0)
    if count == 0:
        raise UnavailableError(f"TTS_DEVICE={wanted} was asked for, but no CUDA device is visible.")
    if index >= count:
        raise UnavailableError(f"TTS_DEVICE={wanted} was asked for, but only {count} CUDA device(s) are visible.")
    return wanted


def gpu_wanted() -> bool:
    """Whether models will load on a GPU here (decided without loading any); False when the GPU asked for is missing."""
    try:
        return resolve().startswith("cuda")
    except UnavailableError:
        return False


def gpu_attached() -> bool:
    """Whether this process may run CUDA work now: always off ZeroGPU; on ZeroGPU only inside a GPU
    call's worker process (the main process holds the models but has no GPU)."""
    if not zero_gpu():
        return True
    from spaces.zero import wrappers  # ZeroGPU only: imports gradio

    return bool(wrappers.forked)


def gpu_free_bytes() -> int | None:
    """Free memory of the emptiest visible GPU; None without CUDA, or on ZeroGPU (a GPU is attached
    per call there, so there is nothing to measure between calls)."""
    if zero_gpu() or cuda_count() == 0:
        return None
    import torch

    return min(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))


def torch_dtype(device: str):
    """bfloat16 on CUDA, float32 on the CPU (for models that take a dtype at load)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def onnx_providers(device: str) -> list:
    """ONNX Runtime providers for `device`: CUDA first when asked for and installed (not on ZeroGPU:
    ONNX Runtime cannot use the GPU that `spaces` attaches per call), the CPU always last."""
    import onnxruntime as ort

    if device.startswith("cuda") and not zero_gpu() and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
