"""Run by tests/test_gpu.py in a fresh process with SPACES_ZERO_GPU=true: the real `spaces` package
stands in for the GPU (its PyTorch emulation, as in a ZeroGPU Space's main process), a tiny Kokoro
loads on `cuda` through the real loader, and ZeroGPU's scheduler refuses the call with the quota
error `spaces` itself builds. Prints one JSON line with what happened."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import spaces.zero.client as zero_client  # noqa: E402  (first, as on a Space: it patches PyTorch)
from spaces.zero.gradio import error  # noqa: E402

from engines.base import SynthesisRequest  # noqa: E402
from engines.kokoro.engine import KokoroEngine  # noqa: E402
from engines.runtime import device, gpu  # noqa: E402

asked: list[float] = []


def refuse(**kwargs):
    asked.append(kwargs["duration"].total_seconds())
    raise error(
        "ZeroGPU quota exceeded",
        "You have exceeded your free ZeroGPU quota (60s requested vs. 12s left). Try again in 0:04:10. ",
    )


engine = KokoroEngine()
engine.load(device.resolve())
zero_client.schedule = refuse
chunks = list(gpu.stream(engine, SynthesisRequest("Hello there, how are you?", "af_heart")))
print(
    json.dumps(
        {
            "device": engine.info().device,
            "on_gpu": gpu.on_gpu(engine),
            "attached": device.gpu_attached(),
            "asked_s": asked,
            "chunks": len(chunks),
            "audio_s": sum(c.duration_s for c in chunks),
        }
    )
)
