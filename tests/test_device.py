"""The one device resolver: `TTS_DEVICE`, CUDA when present, ZeroGPU, and everything that asks it."""

from __future__ import annotations

import pytest

from engines.base import EngineInfo, UnavailableError
from engines.runtime import device, registry
from engines.settings import SettingsError


@pytest.fixture()
def machine(monkeypatch):
    """A machine with a chosen number of CUDA devices, not a ZeroGPU Space, nothing forced."""
    monkeypatch.delenv("TTS_DEVICE", raising=False)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def with_gpus(count: int) -> None:
        monkeypatch.setattr(device, "cuda_count", lambda: count)

    with_gpus(0)
    return with_gpus


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and "Traceback" not in message


def test_unset_means_cuda_when_present_else_cpu(machine):
    assert device.resolve() == "cpu"
    machine(1)
    assert device.resolve() == "cuda"
    assert device.preference() == "auto"


@pytest.mark.parametrize("value", ["cpu", "CPU", " cpu "])
def test_cpu_is_taken_even_with_a_gpu(machine, monkeypatch, value):
    machine(2)
    monkeypatch.setenv("TTS_DEVICE", value)
    assert device.resolve() == "cpu"
    assert not device.gpu_wanted()


def test_a_numbered_gpu_is_taken_when_it_exists(machine, monkeypatch):
    machine(2)
    monkeypatch.setenv("TTS_DEVICE", "cuda:1")
    assert device.resolve() == "cuda:1"
    monkeypatch.setenv("TTS_DEVICE", "cuda")
    assert device.resolve() == "cuda"


@pytest.mark.parametrize(("value", "gpus", "says"), [("cuda", 0, "no CUDA device"), ("cuda:2", 2, "only 2")])
def test_a_missing_gpu_is_one_sentence(machine, monkeypatch, value, gpus, says):
    machine(gpus)
    monkeypatch.setenv("TTS_DEVICE", value)
    with pytest.raises(UnavailableError) as caught:
        device.resolve()
    assert says in str(caught.value) and value in str(caught.value)
    assert one_sentence(str(caught.value))


@pytest.mark.parametrize("value", ["gpu", "tpu", "cpu:1", "cuda:x", "cuda:", "mps", "cuda 1"])
def test_a_bad_value_is_one_sentence_that_names_it(machine, monkeypatch, value):
    monkeypatch.setenv("TTS_DEVICE", value)
    with pytest.raises(SettingsError) as caught:  # `engines.settings`: the app stops at start
        device.resolve()
    message = str(caught.value)
    assert message.startswith("TTS_DEVICE must be") and repr(value) in message and "cpu, cuda, cuda:N" in message
    assert one_sentence(message)
    monkeypatch.delenv("TTS_DEVICE")
    with pytest.raises(UnavailableError) as caught:  # a device named in code: one sentence too
        device.resolve(value)
    assert repr(value.strip()) in str(caught.value) and "cpu, cuda or cuda:N" in str(caught.value)
    assert one_sentence(str(caught.value))


def test_on_zero_gpu_models_go_to_cuda_unless_the_cpu_is_forced(machine, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert device.zero_gpu()
    assert device.resolve() == "cuda"  # no GPU is visible between calls: ZeroGPU attaches one per call
    monkeypatch.setenv("TTS_DEVICE", "cuda:1")
    assert device.resolve() == "cuda"  # a ZeroGPU Space has one GPU
    monkeypatch.setenv("TTS_DEVICE", "cpu")
    assert device.resolve() == "cpu"
    assert device.gpu_free_bytes() is None  # nothing to measure between calls: a comparison runs in turn


@pytest.mark.parametrize(("value", "zero"), [("1", True), ("True", True), ("t", True), ("false", False), ("", False)])
def test_zero_gpu_is_read_as_spaces_reads_it(monkeypatch, value, zero):
    import spaces.config

    monkeypatch.setenv("SPACES_ZERO_GPU", value)
    assert device.zero_gpu() is zero is spaces.config.Settings().zero_gpu


def test_off_zero_gpu_the_gpu_is_always_attached(machine):
    assert device.gpu_attached()
    assert device.gpu_free_bytes() is None  # and without CUDA there is nothing to measure


def test_onnx_runs_on_the_cpu_without_cuda_and_on_zero_gpu(machine, monkeypatch):
    assert device.onnx_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert device.onnx_providers("cuda") == ["CPUExecutionProvider"]


class _Recorder:
    def __init__(self) -> None:
        self.devices: list[str] = []

    def info(self) -> EngineInfo:
        return EngineInfo(id="kokoro", name="Recorder")

    def load(self, where: str) -> None:
        self.devices.append(where)

    def stream(self, request):
        return iter(())

    def unload(self) -> None:
        pass


def test_the_registry_loads_engines_where_the_resolver_says(machine, monkeypatch):
    recorder = _Recorder()
    monkeypatch.setitem(registry._instances, "kokoro", recorder)
    monkeypatch.setattr(registry, "_loaded", set())
    monkeypatch.setenv("TTS_DEVICE", "gpu")
    with pytest.raises(SettingsError, match="TTS_DEVICE must be"):
        registry.get("kokoro")
    assert recorder.devices == []  # refused before loading anything
    monkeypatch.setenv("TTS_DEVICE", "cpu")
    assert registry.get("kokoro") is recorder
    assert recorder.devices == ["cpu"]


def test_kokoro_asked_for_a_missing_gpu_says_so(machine, tiny_kokoro_dir, monkeypatch):
    from engines.kokoro.engine import KokoroEngine

    monkeypatch.setenv("KOKORO_MODEL", str(tiny_kokoro_dir))
    monkeypatch.delenv("KOKORO_BACKEND", raising=False)
    with pytest.raises(UnavailableError, match="no CUDA device is visible") as caught:
        KokoroEngine().load("cuda")
    assert one_sentence(str(caught.value))


def test_qwen_asked_for_a_missing_gpu_says_so(machine, tmp_path, monkeypatch):
    from engines.qwen.engine import QwenCustomEngine

    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(tmp_path))  # a local folder: no hub needed to get this far
    with pytest.raises(UnavailableError, match="no CUDA device is visible"):
        QwenCustomEngine().load("cuda:0")
