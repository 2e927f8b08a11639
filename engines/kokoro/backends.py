"""Kokoro's two back-ends behind one small interface: PyTorch (`KModel`) and ONNX Runtime.

Both take token ids, a 256-float style row and a speed, and return 24 kHz float audio; the
PyTorch one also returns the predicted duration of each token, which gives word timestamps.
Both can also run the model in two halves (`plan`: the front half and the harmonic source of a whole
sentence; `decode`: the decoder over a window of it), which `engines.kokoro.windows` streams; the
ONNX model is split for that with `onnx`'s own extractor, once, cached next to the model (`split_onnx`).
Voice packs load as (rows, 256) float32 arrays: `.pt` files with `weights_only=True`, or the
packaged `.npz`. Neither back-end holds any language logic: that is the shared front-end's job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zlib
from pathlib import Path

import numpy as np

from engines.base import UnavailableError
from engines.kokoro.windows import SentencePlan
from engines.runtime import give_way, stop
from engines.runtime.device import gpu_attached, onnx_providers, resolve, zero_gpu
from engines.runtime.weights import KokoroWeights, hub_voice
from engines.settings import settings

log = logging.getLogger(__name__)


class OnnxBackend:
    """The int8 ONNX export on ONNX Runtime (CPU, or CUDA when the GPU package is installed)."""

    name = "onnx"

    def __init__(self, weights: KokoroWeights, device: str) -> None:
        import onnxruntime as ort

        device = resolve(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings().ort_threads or (os.cpu_count() or 1)
        self.session = ort.InferenceSession(str(weights.model_path), options, providers=onnx_providers(device))
        self.device = device if self.session.get_providers()[0].startswith("CUDA") else "cpu"
        with open(weights.vocab_path, encoding="utf-8") as f:
            self.vocab: dict[str, int] = json.load(f)["vocab"]
        with np.load(weights.voices_npz) as npz:
            self._packs = {name: npz[name].reshape(-1, 256).astype(np.float32) for name in npz.files}
        self._lock = threading.Lock()
        self._weights, self._device, self._options = weights, device, options
        self._halves: tuple | None = None  # (front, source, decoder) sessions, made on first use
        self.frame_samples = ONNX_FRAME_SAMPLES

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

        def attempt(offer) -> np.ndarray:
            # a visitor's Stop cuts the call short (`engines.runtime.stop`), and so does a caller who has used the
            # engine less lately, arriving while it runs (`engines.runtime.give_way.yielding`: it runs again later)
            options = ort.RunOptions()
            terminate = lambda: setattr(options, "terminate", True)  # noqa: E731
            if offer is not None:
                offer(terminate)
            with stop.abortable(terminate), self._lock:
                return self.session.run(None, feeds, options)[0]

        audio = give_way.yielding(attempt)
        return np.asarray(audio, dtype=np.float32).ravel(), None

    def _sessions(self) -> tuple:
        if self._halves is None:
            import onnxruntime as ort

            paths = split_onnx(Path(self._weights.model_path))
            providers = onnx_providers(self._device)
            self._halves = tuple(ort.InferenceSession(str(p), self._options, providers=providers) for p in paths)
        return self._halves

    def plan(self, ids: list[int], style: np.ndarray, speed: float) -> SentencePlan:
        """The front graph (durations, aligned features, F0, energy) and the harmonic source, whole sentence."""
        front, source, _ = self._sessions()
        style = style.reshape(1, 256).astype(np.float32)
        feeds = {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style,
            "speed": np.array([speed], dtype=np.float32),
        }
        with self._lock:
            asr, f0, energy, durations = front.run(SPLIT["front"], feeds)
            har = source.run(None, {SPLIT["f0"]: f0})[0]
        return SentencePlan(asr, f0[:, 0], energy[:, 0], har, np.asarray(durations).ravel().astype(np.int64), style)

    def decode(self, asr, f0, energy, har, style) -> np.ndarray:
        """The decoder graph over one window of a `SentencePlan`."""
        _, _, decoder = self._sessions()
        feeds = {
            SPLIT["asr"]: np.ascontiguousarray(asr),
            SPLIT["f0"]: np.ascontiguousarray(f0[:, None]),
            SPLIT["energy"]: np.ascontiguousarray(energy[:, None]),
            SPLIT["har"]: np.ascontiguousarray(har),
            "style": style,
        }
        with self._lock:
            return np.asarray(decoder.run(None, feeds)[0], dtype=np.float32).ravel()


class TorchBackend:
    """The full-precision `kokoro.KModel`, on the device `engines.runtime.device` resolves.

    On ZeroGPU the model is placed on `cuda` at load, but the GPU is attached only inside GPU calls
    (`engines.runtime.gpu`): a CPU copy, made at load, runs everything outside them (the load-time speed
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
        gen = self.model.decoder.generator
        hop = gen.stft.hop_length
        # one aligned-feature frame: twice the generator's input frame (the decoder upsamples by 2)
        self.frame_samples = 2 * int(np.prod([u.stride[0] for u in gen.ups])) * int(hop)

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
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(sentence_seed(ids))  # the harmonic source's noise, the same for every render
            audio, durations = model.forward_with_tokens(input_ids, ref, speed)
        return (
            audio.float().cpu().numpy().ravel(),
            durations.cpu().numpy().ravel().astype(np.int64),
        )

    def _model_device(self):
        if self._cpu_model is not None and not gpu_attached():
            return self._cpu_model, "cpu"
        return self.model, self.device

    def plan(self, ids: list[int], style: np.ndarray, speed: float) -> SentencePlan:
        """`KModel.forward_with_tokens` up to the decoder, plus the decoder's harmonic source, whole sentence."""
        torch = self._torch
        model, device = self._model_device()
        input_ids = torch.tensor([[0, *ids, 0]], dtype=torch.long, device=device)
        ref = torch.from_numpy(style.reshape(1, 256).astype(np.float32)).to(device)
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(sentence_seed(ids))  # as `run` seeds it: the same noise as the whole render
            lengths = torch.full((1,), input_ids.shape[-1], device=device, dtype=torch.long)
            mask = torch.zeros_like(input_ids, dtype=torch.bool)
            bert = model.bert(input_ids, attention_mask=(~mask).int())
            d_en = model.bert_encoder(bert).transpose(-1, -2)
            s = ref[:, 128:]
            d = model.predictor.text_encoder(d_en, s, lengths, mask)
            x, _ = model.predictor.lstm(d)
            duration = torch.sigmoid(model.predictor.duration_proj(x)).sum(axis=-1) / speed
            durations = torch.round(duration).clamp(min=1).long().squeeze(0)
            indices = torch.repeat_interleave(torch.arange(input_ids.shape[1], device=device), durations)
            align = torch.zeros((input_ids.shape[1], indices.shape[0]), device=device)
            align[indices, torch.arange(indices.shape[0])] = 1
            align = align.unsqueeze(0)
            f0, energy = model.predictor.F0Ntrain(d.transpose(-1, -2) @ align, s)
            asr = model.text_encoder(input_ids, lengths, mask) @ align
            gen = model.decoder.generator
            up = gen.f0_upsamp(f0[:, None]).transpose(1, 2)
            har_source, _, _ = gen.m_source(up)
            spec, phase = gen.stft.transform(har_source.transpose(1, 2).squeeze(1))
            har = torch.cat([spec, phase], dim=1)
        as_np = lambda t: t.float().cpu().numpy()  # noqa: E731
        return SentencePlan(
            as_np(asr),
            as_np(f0),
            as_np(energy),
            as_np(har),
            as_np(durations).astype(np.int64),
            style.reshape(1, 256).astype(np.float32),
        )

    def decode(self, asr, f0, energy, har, style) -> np.ndarray:
        """`Decoder.forward` over one window, reading the sentence's harmonic source instead of making its own."""
        torch = self._torch
        model, device = self._model_device()
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        with self._lock, torch.inference_mode():
            dec, s = model.decoder, t(style)[:, :128]
            asr, f0_curve, har = t(asr), t(f0), t(har)
            f0 = dec.F0_conv(f0_curve.unsqueeze(1))
            n = dec.N_conv(t(energy).unsqueeze(1))
            x = dec.encode(torch.cat([asr, f0, n], axis=1), s)
            asr_res = dec.asr_res(asr)
            res = True
            for block in dec.decode:
                if res:
                    x = torch.cat([x, asr_res, f0, n], axis=1)
                x = block(x, s)
                if block.upsample_type != "none":
                    res = False
            audio = _generate(dec.generator, x, s, har)
        return audio.float().cpu().numpy().ravel()


def _generate(gen, x, s, har):
    """`kokoro.istftnet.Generator.forward` after its harmonic source, which the caller passes in."""
    import torch.nn.functional as F

    for i in range(gen.num_upsamples):
        x = F.leaky_relu(x, negative_slope=0.1)
        x_source = gen.noise_res[i](gen.noise_convs[i](har), s)
        x = gen.ups[i](x)
        if i == gen.num_upsamples - 1:
            x = gen.reflection_pad(x)
        x = x + x_source
        xs = sum(gen.resblocks[i * gen.num_kernels + j](x, s) for j in range(gen.num_kernels))
        x = xs / gen.num_kernels
    x = gen.conv_post(F.leaky_relu(x))
    bins = gen.post_n_fft // 2 + 1
    return gen.stft.inverse(x[:, :bins, :].exp(), x[:, bins:, :].sin())


def sentence_seed(ids) -> int:
    """A seed from the token ids: a sentence's random noise is the same in every render of it."""
    return zlib.crc32(np.asarray(ids, dtype=np.int64).tobytes())


# The int8 export's tensors where the decoder starts (read in its graph: `/encoder/MatMul_1` is
# `t_en @ pred_aln_trg`, the two `Unsqueeze`s are `F0_conv`'s and `N_conv`'s inputs, `Concat_3` is the
# harmonic source's magnitude and phase, `/encoder/Cast` the rounded durations).
SPLIT = {
    "asr": "/encoder/MatMul_1_output_0",
    "f0": "/decoder/decoder/Unsqueeze_output_0",
    "energy": "/decoder/decoder/Unsqueeze_1_output_0",
    "har": "/decoder/decoder/generator/Concat_3_output_0",
    "durations": "/encoder/Cast_output_0",
}
SPLIT["front"] = [SPLIT["asr"], SPLIT["f0"], SPLIT["energy"], SPLIT["durations"]]
ONNX_FRAME_SAMPLES = 600  # upsample rates 10 x 6, iSTFT hop 5, times the decoder's 2


def split_onnx(model_path: Path) -> tuple[Path, Path, Path]:
    """The front, source and decoder graphs of the int8 export, made with `onnx.utils.Extractor` once and
    kept next to the model; a manifest records the SHA-256 of the model they came from, and a model that
    no longer matches it (or a folder that cannot be written) makes them again (in a cache folder)."""
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    folder = model_path.parent
    if not os.access(folder, os.W_OK):
        folder = Path(settings().xdg_cache_home or Path.home() / ".cache") / "tts-compare"
        folder.mkdir(parents=True, exist_ok=True)
    stem = f"{model_path.stem}.split"
    paths = tuple(folder / f"{stem}.{part}.onnx" for part in ("front", "source", "decoder"))
    manifest = folder / f"{stem}.json"
    try:
        known = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if known.get("sha256") == digest and all(p.is_file() for p in paths):
        return paths
    import onnx
    from onnx.utils import Extractor

    extractor = Extractor(onnx.load(str(model_path)))
    graphs = (
        extractor.extract_model(["tokens", "style", "speed"], SPLIT["front"]),
        extractor.extract_model([SPLIT["f0"]], [SPLIT["har"]]),
        extractor.extract_model([SPLIT["asr"], SPLIT["f0"], SPLIT["energy"], "style", SPLIT["har"]], ["audio"]),
    )
    for graph, path in zip(graphs, paths, strict=True):
        tmp = path.with_suffix(".tmp")
        onnx.save(graph, str(tmp))
        os.replace(tmp, path)
    manifest.write_text(json.dumps({"sha256": digest, "source": model_path.name, "graphs": [p.name for p in paths]}))
    log.info("Kokoro ONNX split into front, source and decoder graphs at %s", folder)
    return paths


def create_backend(weights: KokoroWeights, device: str) -> OnnxBackend | TorchBackend:
    if weights.backend == "onnx":
        return OnnxBackend(weights, device)
    return TorchBackend(weights, device)
