"""The ZeroGPU wrapper: GPU durations from the request, the quota fallback, and no change off ZeroGPU.

`spaces.GPU` is replaced by a stand-in with its calling convention (the duration callable gets the
GPU function's arguments; a generator's GPU is scheduled at its first step, where a refused quota
raises the gradio Error that `spaces` builds); one slow test runs the real `spaces` emulation.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.base import AudioChunk, Capabilities, EngineInfo, InputError, SynthesisRequest, UnavailableError
from engines.runtime import gpu, registry, timing, work_queue

QUOTA = "You have exceeded your free ZeroGPU quota (60s requested vs. 12s left). Try again in 0:04:10. "


def quota_error():
    from spaces.zero.gradio import error  # the very Error `spaces` raises when a visitor's quota is used up

    return error("ZeroGPU quota exceeded", QUOTA)


class FakeSpaces:
    """`spaces.GPU(duration=...)` as ZeroGPU runs it, minus the fork: records each duration asked for."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.refuse: Exception | None = None

    def GPU(self, duration):  # noqa: N802 (the spaces API)
        def wrap(fn):
            def schedule(args):
                self.asked.append(duration(*args))
                if self.refuse is not None:
                    raise self.refuse

            if inspect.isgeneratorfunction(fn):

                def generator(*args):
                    schedule(args)
                    for item in fn(*crossed(args)):  # arguments and results cross between processes
                        yield crossed(item)

                return generator

            def regular(*args):
                schedule(args)
                return crossed(fn(*crossed(args)))

            return regular

        return wrap


def crossed(value):
    return pickle.loads(pickle.dumps(value))


class FakeEngine:
    """A GPU engine in the registry: three chunks of a fixed tone per request."""

    def __init__(self, engine_id: str = "qwen-custom", fallback: bool = False, where: str = "cuda") -> None:
        self.engine_id, self.where = engine_id, where
        self.CAPABILITIES = Capabilities(name="Fake TTS", cpu_fallback=fallback)
        self.streams = 0

    def info(self) -> EngineInfo:
        return EngineInfo(id=self.engine_id, name="Fake TTS", loaded=True, device=self.where)

    def load(self, where: str) -> None:
        pass

    def unload(self) -> None:
        pass

    def stream(self, request: SynthesisRequest):
        self.streams += 1
        if request.voice == "nobody":
            raise InputError("Unknown speaker 'nobody'; choose one of: Ryan.")
        for index in range(3):
            yield AudioChunk(np.full(240, 0.1 * (index + 1), np.float32), request.text, "", index)

    def prompt(self, request: SynthesisRequest):
        torch = pytest.importorskip("torch")
        return [Prompt(torch.ones(2), len(request.text))]


@dataclasses.dataclass
class Prompt:
    codes: object
    size: int


@pytest.fixture()
def zero(monkeypatch):
    """A simulated ZeroGPU Space: the env flag, the stand-in `spaces.GPU`, the wrapper re-decorated."""
    import spaces

    fake = FakeSpaces()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(spaces, "GPU", fake.GPU)
    gpu.decorate()
    yield fake
    monkeypatch.undo()
    gpu.decorate()


@pytest.fixture()
def measured_line(monkeypatch):
    """A fresh work queue for the fake engine, whose measured speed a test sets."""
    line = work_queue.EngineQueue("qwen-custom")
    monkeypatch.setitem(work_queue._lines, "qwen-custom", line)
    return line


def register(monkeypatch, engine: FakeEngine) -> None:
    monkeypatch.setitem(registry._instances, engine.engine_id, engine)
    monkeypatch.setattr(registry, "_loaded", {engine.engine_id})


# ----- the duration asked for -----------------------------------------------------------------
def test_duration_is_the_default_until_the_speed_is_measured(measured_line):
    assert gpu.duration_s("qwen-custom", 500) == gpu.DEFAULT_S


def test_duration_follows_the_measured_speed_and_grows_with_the_text(measured_line):
    measured_line.observe(1_000, 20.0)  # 0.02 s per character
    short, medium = gpu.duration_s("qwen-custom", 100), gpu.duration_s("qwen-custom", 1_000)
    assert medium == int(np.ceil(gpu.STARTUP_S + gpu.MARGIN * 0.02 * 1_000))  # 45 s
    assert short < medium
    measured_line.observe(1_000, 100.0)  # the engine got slower: the same text asks for more
    assert gpu.duration_s("qwen-custom", 1_000) > medium


def test_duration_stays_within_its_floor_and_ceiling(measured_line):
    measured_line.observe(1_000, 1.0)
    assert gpu.duration_s("qwen-custom", 1) == gpu.MIN_S
    measured_line.observe(1_000, 10_000.0)
    assert gpu.duration_s("qwen-custom", 5_000) == gpu.MAX_S


# ----- off ZeroGPU nothing changes --------------------------------------------------------------
def test_off_zero_gpu_the_wrapper_is_a_direct_call(monkeypatch):
    import spaces

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def never(*args, **kwargs):
        raise AssertionError("spaces.GPU must not be called off ZeroGPU")

    monkeypatch.setattr(spaces, "GPU", never)
    gpu.decorate()
    engine = FakeEngine()
    request = SynthesisRequest("Hello.", "Ryan")
    assert not gpu.on_gpu(engine)
    assert inspect.getgeneratorstate(gpu.stream(engine, request)) == "GEN_CREATED"
    assert [c.index for c in gpu.stream(engine, request)] == [0, 1, 2]
    assert gpu.call(engine, "prompt", request)[0].size == 6


def test_off_zero_gpu_kokoro_gives_the_same_audio_as_its_own_stream(packaged_kokoro, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    request = SynthesisRequest("The same words, the same samples.", "jf_alpha")
    direct = np.concatenate([c.audio for c in packaged_kokoro.stream(request)])
    wrapped = np.concatenate([c.audio for c in gpu.stream(packaged_kokoro, request)])
    assert np.array_equal(direct, wrapped)


def test_on_zero_gpu_an_engine_on_the_cpu_is_not_wrapped(zero):
    engine = FakeEngine(where="cpu")  # e.g. Kokoro's ONNX back-end, which stays on the CPU there
    assert len(list(gpu.stream(engine, SynthesisRequest("Hello.", "Ryan")))) == 3
    assert zero.asked == []


# ----- on ZeroGPU --------------------------------------------------------------------------------
def test_on_zero_gpu_the_whole_stream_is_one_gpu_call_with_a_measured_duration(zero, measured_line, monkeypatch):
    engine = FakeEngine()
    register(monkeypatch, engine)
    measured_line.observe(1_000, 20.0)
    text = "A sentence of some length. " * 20
    chunks = list(gpu.stream(engine, SynthesisRequest(text, "Ryan")))
    assert [c.index for c in chunks] == [0, 1, 2] and chunks[0].text == text
    assert zero.asked == [gpu.duration_s("qwen-custom", len(text))]  # one call for all three chunks
    assert engine.streams == 1


def test_through_timing_the_run_is_measured_as_before(zero, measured_line, monkeypatch):
    engine = FakeEngine()
    register(monkeypatch, engine)
    monkeypatch.setattr(timing, "load", lambda engine_id: engine)
    stats = timing.RunStats(engine="qwen-custom")
    chunks = list(timing.timed_stream("qwen-custom", SynthesisRequest("Hello there.", "Ryan"), stats))
    assert len(chunks) == stats.chunks == 3 and len(zero.asked) == 1
    assert stats.audio_s == pytest.approx(3 * 240 / 24_000)


def test_an_engine_error_in_the_gpu_worker_keeps_its_sentence(zero, monkeypatch):
    register(monkeypatch, FakeEngine())
    with pytest.raises(InputError, match="Unknown speaker 'nobody'"):
        list(gpu.stream(FakeEngine(), SynthesisRequest("Hello.", "nobody")))


def test_a_refused_gpu_says_when_to_come_back(zero, monkeypatch):
    register(monkeypatch, FakeEngine())
    zero.refuse = quota_error()
    with pytest.raises(UnavailableError) as caught:
        list(gpu.stream(FakeEngine(), SynthesisRequest("Hello.", "Ryan")))
    message = str(caught.value)
    assert message == (
        "Your GPU quota on this Space is used up for now; Fake TTS needs the GPU, "
        "so please come back in about 5 minutes."
    )


def test_a_refused_gpu_call_says_so_too(zero, monkeypatch):
    register(monkeypatch, FakeEngine())
    zero.refuse = quota_error()
    with pytest.raises(UnavailableError, match="come back in about 5 minutes"):
        gpu.call(FakeEngine(), "prompt", SynthesisRequest("Hello.", "Ryan"))


def test_an_engine_that_runs_on_the_cpu_falls_back_with_the_same_audio(zero, monkeypatch):
    engine = FakeEngine(engine_id="kokoro", fallback=True)
    register(monkeypatch, engine)
    zero.refuse = quota_error()
    request = SynthesisRequest("Hello.", "Ryan")
    fallback = list(gpu.stream(engine, request))
    direct = list(engine.stream(request))
    assert len(zero.asked) == 1  # the GPU was asked for, refused, and the CPU served it
    assert [c.index for c in fallback] == [0, 1, 2]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(fallback, direct, strict=True))


def test_gpu_calls_bring_their_tensors_back_on_the_cpu(zero, monkeypatch, measured_line):
    # `measured_line`: a line that has not measured the engine yet (an earlier test in this process may have)
    register(monkeypatch, FakeEngine())
    prompt = gpu.call(FakeEngine(), "prompt", SynthesisRequest("Hello there.", "Ryan"))
    assert prompt[0].size == 12 and prompt[0].codes.device.type == "cpu"
    assert zero.asked == [gpu.DEFAULT_S]


@pytest.mark.parametrize(
    ("refusal", "says"),
    [
        ("Space app has reached its GPU limit. Try re-running outside of examples", "please try again later"),
        ("No GPU was available", "No GPU was free"),
        ("The requested GPU duration (300s) is larger than the maximum allowed", "please shorten it"),
        ("You have exceeded your ZeroGPU quota (60s requested vs. 0s left). Try again in 1 day, 2:00:00.", "26 hours"),
        ("You have exceeded your ZeroGPU quota (60s requested vs. 0s left). Try again in 0:00:40.", "40 seconds"),
    ],
)
def test_every_refusal_is_one_sentence(refusal, says):
    sentence = gpu.come_back("Fake TTS", refusal)
    assert says in sentence and sentence.endswith(".") and "\n" not in sentence
    assert sentence[0].isupper() and "http" not in sentence


@pytest.mark.slow
def test_real_spaces_emulation_kokoro_falls_back_to_its_cpu_copy(tiny_kokoro_dir):
    """The real `spaces` package on ZeroGPU settings: Kokoro loads on its emulated `cuda`, ZeroGPU's
    scheduler refuses the call with the quota error, and the CPU copy still speaks."""
    env = {
        **os.environ,
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9",  # never reached: the scheduler is replaced
        "KOKORO_MODEL": str(tiny_kokoro_dir),
        "TORCH_THREADS": "1",
    }
    env.pop("KOKORO_BACKEND", None)
    env.pop("TTS_DEVICE", None)
    script = Path(__file__).with_name("zerogpu_emulated.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2_000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["device"] == "cuda" and result["on_gpu"] and not result["attached"]
    assert result["asked_s"] and gpu.MIN_S <= result["asked_s"][0] <= gpu.MAX_S
    assert result["chunks"] >= 1 and result["audio_s"] > 0.2
