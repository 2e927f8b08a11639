"""Qwen3-TTS engines on tiny random checkpoints built at test time, loaded by the real loader."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ROOT

from engines import voice_library
from engines.base import InputError, SynthesisRequest, UnavailableError
from engines.qwen.engine import FRAMES_PER_SECOND, QwenCloneEngine, QwenCustomEngine, batches, sentences, token_cap
from engines.reference import load_reference
from evaluation.compare import Slot, similarity_reference

SAMPLES_PER_FRAME = 1920
OWNER = "visitor:" + "0" * 32  # whose voices the library tests save


def wav_bytes(
    seconds: float = 3.0, rate: int = 24_000, channels: int = 1, level: float = 0.3, fmt: str = "WAV"
) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    mono = level * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    buffer = io.BytesIO()
    sf.write(buffer, data.astype(np.float32), rate, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def qwen_env(qwen_dirs, tmp_path_factory):
    library = tmp_path_factory.mktemp("library")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom"]))
        mp.setenv("QWEN_BASE_MODEL", str(qwen_dirs["clone"]))
        mp.setenv("VOICE_LIBRARY_DIR", str(library))
        mp.setenv("TORCH_THREADS", "1")
        yield library


@pytest.fixture(scope="module")
def custom(qwen_env):
    engine = QwenCustomEngine()
    engine.load("cpu")
    return engine


@pytest.fixture(scope="module")
def clone(qwen_env):
    engine = QwenCloneEngine()
    engine.load("cpu")
    return engine


def test_speakers_and_languages_come_from_the_loaded_model(custom):
    assert {v.id for v in custom.voices() if v.available} == {
        "Vivian", "Serena", "Uncle_Fu", "Dylan", "Eric", "Ryan", "Aiden", "Ono_Anna", "Sohee",
    }  # fmt: skip
    assert custom.languages()[0] == "Auto" and "English" in custom.languages() and len(custom.languages()) == 11
    assert not custom.follows_instructions()


def test_preset_streams_one_chunk_per_sentence_in_order(custom):
    text = "Hello there. How are you today? Fine."
    torch.manual_seed(0)  # random weights may sample the end code early (one clip in a CI run did)
    chunks = list(custom.stream(SynthesisRequest(text, "Ryan", language="English", max_new_tokens=6)))
    assert [c.text for c in chunks] == ["Hello there.", "How are you today?", "Fine."]
    assert [c.index for c in chunks] == [0, 1, 2]
    # whole frames, never past the cap, and the cap reached: the token cap is passed on
    frames = [len(c.audio) / SAMPLES_PER_FRAME for c in chunks]
    assert all(f.is_integer() and 0 < f <= 6 - 1 for f in frames) and max(frames) == 6 - 1, frames


def test_sentences_after_the_first_are_batched_in_one_generate(custom, monkeypatch):
    calls = []
    original = custom._model.generate_custom_voice

    def spy(**kwargs):
        calls.append(len(kwargs["text"]))
        return original(**kwargs)

    monkeypatch.setattr(custom._model, "generate_custom_voice", spy)
    text = "One two three. Four five six. Seven eight nine. Ten eleven twelve. Thirteen fourteen."
    chunks = list(custom.stream(SynthesisRequest(text, "Aiden", max_new_tokens=4)))
    assert len(chunks) == 5 and calls == [1, 4]


def test_token_cap_follows_the_text_length():
    assert token_cap("Hi.", None) == int(FRAMES_PER_SECOND * (3 + 0.6))
    assert token_cap("x" * 500, None) > token_cap("x" * 50, None)
    assert token_cap("x" * 500, 20) == 20
    assert batches(["aaaa", "bbbbb", "c" * 30, "dd" * 14]) == [["aaaa", "bbbbb"], ["c" * 30, "dd" * 14]]
    assert sentences("First one. Second, with a comma! 第三。") == ["First one.", "Second, with a comma!", "第三。"]


def test_instruction_is_refused_by_a_06b_model_and_followed_by_a_17b_one(custom, qwen_dirs, monkeypatch):
    with pytest.raises(InputError, match="ignores instructions"):
        list(custom.stream(SynthesisRequest("Hello.", "Ryan", instruct="Speak happily.", max_new_tokens=4)))
    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom-1.7b"]))
    big = QwenCustomEngine()
    big.load("cpu")
    assert big.follows_instructions() and big.info().follows_instructions
    assert not custom.info().follows_instructions  # what the API checks before passing `instructions` on
    assert list(big.stream(SynthesisRequest("Hello.", "Ryan", instruct="Speak happily.", max_new_tokens=4)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"voice": "Nobody"}, "Unknown Qwen3-TTS speaker"),
        ({"language": "Klingon"}, "Unknown language 'Klingon'"),
    ],
)
def test_bad_preset_requests(custom, kwargs, message):
    with pytest.raises(InputError, match=message):
        list(custom.stream(SynthesisRequest(**{"text": "Hello.", "voice": "Ryan", "max_new_tokens": 4, **kwargs})))
    assert list(custom.stream(SynthesisRequest("Still fine.", "Ryan", max_new_tokens=4)))


def test_icl_and_x_vector_cloning(clone):
    reference = load_reference(wav_bytes(3.0))
    icl = list(
        clone.stream(
            SynthesisRequest(
                "Hello there.", "", reference=reference, reference_text="A reference line.", max_new_tokens=5
            )
        )
    )
    xvec = list(
        clone.stream(SynthesisRequest("Hello there.", "", reference=reference, x_vector_only=True, max_new_tokens=5))
    )
    assert len(icl[0].audio) == len(xvec[0].audio) == 4 * SAMPLES_PER_FRAME
    assert len(clone._prompts) == 2  # one cached prompt per (clip, transcript, mode)
    list(clone.stream(SynthesisRequest("Again.", "", reference=reference, x_vector_only=True, max_new_tokens=3)))
    assert len(clone._prompts) == 2
    with pytest.raises(InputError, match="needs its exact transcript"):
        list(clone.stream(SynthesisRequest("Hello.", "", reference=reference, max_new_tokens=3)))


def test_library_round_trip_across_a_new_process(clone, qwen_env, tmp_path):
    reference = load_reference(wav_bytes(2.5))
    prompt = clone.clone_prompt(reference, "A reference line.", False)
    slug = voice_library.save_voice("../My Voice/", prompt, reference_audio=reference.audio, owner=OWNER)
    assert slug == "my-voice" and voice_library.list_voices(OWNER) == ["my-voice"]
    # the reference clip is kept, so the compare tab can score likeness to it (its owner's slots only)
    kept, rate = similarity_reference(Slot("qwen-clone", "my-voice", owner=OWNER))
    assert rate == 24_000 and np.array_equal(kept, reference.audio)
    assert similarity_reference(Slot("qwen-clone", "my-voice", owner="visitor:someone-else")) is None
    assert not list(qwen_env.glob("*.pt")) and not list(qwen_env.glob("*.pkl"))
    out = tmp_path / "saved.wav"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "engines", "synth", "--engine", "qwen-clone", "--voice", "my-voice",
         "--text", "From a new process.", "--max-new-tokens", "4", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["audio_s"] == pytest.approx(3 * SAMPLES_PER_FRAME / 24_000, abs=0.01)
    voice_library.delete_voice("my-voice", OWNER)
    assert voice_library.list_voices(OWNER) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [("../", "needs letters or digits"), ("x" * 300, "at most 64 characters"), ("", "give the voice a name")],
)
def test_bad_library_names(qwen_env, name, message):
    with pytest.raises(InputError, match=message):
        voice_library.safe_name(name)
    assert voice_library.safe_name("a/b\\c") == "a-b-c"


def test_a_corrupt_library_entry_gets_one_sentence(clone, qwen_env):
    reference = load_reference(wav_bytes(2.0))
    voice_library.save_voice("broken", clone.clone_prompt(reference, None, True), owner=OWNER)
    assert voice_library.reference_audio("broken", OWNER) is None  # saved without its clip
    folder = qwen_env / voice_library.OWNERS_FOLDER / voice_library.owner_folder(OWNER)
    next(folder.glob("broken-*.safetensors")).write_bytes(b"not a safetensors file")
    assert similarity_reference(Slot("qwen-clone", "broken", owner=OWNER)) is None
    with pytest.raises(UnavailableError, match="'broken' is damaged; delete it"):
        list(clone.stream(SynthesisRequest("Hello.", "broken", max_new_tokens=3, owner=OWNER)))
    with pytest.raises(InputError, match="no saved voice called 'ghost'"):
        list(clone.stream(SynthesisRequest("Hello.", "ghost", max_new_tokens=3, owner=OWNER)))
    voice_library.delete_voice("broken", OWNER)


def test_a_saved_voice_speaks_only_for_its_owner(clone, qwen_env):
    voice_library.save_voice("mine", clone.clone_prompt(load_reference(wav_bytes(2.0)), None, True), owner=OWNER)
    assert len(list(clone.stream(SynthesisRequest("Hello.", "mine", max_new_tokens=3, owner=OWNER)))) == 1
    for stranger in ("visitor:" + "f" * 32, None):  # another owner, or a call without one
        with pytest.raises(InputError, match="no saved voice called 'mine' that you can use; your saved voices: none"):
            list(clone.stream(SynthesisRequest("Hello.", "mine", max_new_tokens=3, owner=stranger)))
    voice_library.delete_voice("mine", OWNER)


def test_offline_without_a_local_copy_says_so(offline_env, monkeypatch):
    monkeypatch.delenv("QWEN_CUSTOM_VOICE_MODEL", raising=False)
    info = QwenCustomEngine().info()
    assert not info.available and "needs the model hub" in info.reason and "QWEN_CUSTOM_VOICE_MODEL" in info.reason


def _cli(qwen_dirs, library, *args):
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "TORCH_THREADS": "1", "VOICE_LIBRARY_DIR": str(library),
        "QWEN_CUSTOM_VOICE_MODEL": str(qwen_dirs["custom"]), "QWEN_BASE_MODEL": str(qwen_dirs["clone"]),
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "engines", "synth", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_preset_and_clone_from_a_reference_file(qwen_dirs, tmp_path):
    preset = _cli(qwen_dirs, tmp_path, "--engine", "qwen-custom", "--voice", "Ryan", "--lang", "English",
                  "--text", "Hello.", "--max-new-tokens", "5", "--out", str(tmp_path / "p.wav"))  # fmt: skip
    assert preset.returncode == 0, preset.stderr
    assert sf.info(tmp_path / "p.wav").frames == 4 * SAMPLES_PER_FRAME
    (tmp_path / "ref.wav").write_bytes(wav_bytes(3.0))
    clone = _cli(qwen_dirs, tmp_path, "--engine", "qwen-clone", "--ref-audio", str(tmp_path / "ref.wav"),
                 "--text", "Hello.", "--max-new-tokens", "5", "--out", str(tmp_path / "c.flac"))  # fmt: skip
    assert clone.returncode == 0, clone.stderr
    assert "x-vector" in clone.stderr  # a tone has no words: the ASR finds none, so it falls back
    assert json.loads(clone.stdout)["format"] == "flac"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "qwen-clone", "--ref-audio", "{junk}"], "not audio that can be read"),
        (["--engine", "qwen-clone", "--ref-audio", "{ref}", "--ref-text", "x" * 1001], "reference transcript is 1,001"),
        (["--engine", "qwen-custom", "--voice", "Ryan", "--lang", "Elvish"], "Unknown language 'Elvish'"),
        (["--engine", "qwen-custom", "--voice", "Ryan", "--max-new-tokens", "0"], "max_new_tokens must be"),
    ],
)
def test_cli_bad_qwen_input_is_one_line(qwen_dirs, tmp_path, args, message):
    (tmp_path / "junk.wav").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "ref.wav").write_bytes(wav_bytes(2.0))
    args = [a.format(junk=tmp_path / "junk.wav", ref=tmp_path / "ref.wav") for a in args]
    result = _cli(qwen_dirs, tmp_path, *args, "--text", "Hello.", "--out", str(tmp_path / "x.wav"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_first_sentence_streams_in_pieces_that_join_into_the_whole_decode(custom, monkeypatch):
    whole = []
    original = custom._model.generate_custom_voice

    def keep(**kwargs):
        wavs, rate = original(**kwargs)
        whole.append(wavs[0])
        return wavs, rate

    monkeypatch.setattr(custom._model, "generate_custom_voice", keep)
    chunks = list(custom.stream(SynthesisRequest("Hello there.", "Ryan", max_new_tokens=30)))
    assert len(chunks) == 3 and [c.text for c in chunks] == ["Hello there.", "", ""]  # 29 frames: 12 + 12 + 5
    streamed = np.concatenate([c.audio for c in chunks])
    assert len(streamed) == len(whole[0]) == 29 * SAMPLES_PER_FRAME
    inner = slice(200, -200)  # only the sentence's outer fades differ
    assert np.max(np.abs(streamed[inner] - whole[0][inner])) < 1e-4


def test_leaving_a_stream_early_stops_generation_and_frees_the_model(custom):
    stream = custom.stream(SynthesisRequest("A long first sentence that we stop early.", "Ryan", max_new_tokens=400))
    first = next(stream)
    assert len(first.audio) == 12 * SAMPLES_PER_FRAME
    stream.close()  # what the Stop button does to the generator
    assert not custom._lock.locked()
    assert list(custom.stream(SynthesisRequest("Next one.", "Ryan", max_new_tokens=4)))


def test_icl_stream_decodes_with_the_reference_codes_as_context(clone):
    import torch

    torch.manual_seed(0)  # random weights sample their codes: an unseeded run may hit the end code early
    reference = load_reference(wav_bytes(2.0))
    chunks = list(
        clone.stream(SynthesisRequest("Hello.", "", reference=reference, reference_text="A line.", max_new_tokens=20))
    )
    assert sum(len(c.audio) for c in chunks) == 19 * SAMPLES_PER_FRAME and len(chunks) == 2


def test_token_cap_is_clamped_to_the_model_maximum(custom, monkeypatch):
    caps = []

    def record(model, texts, language, conditioning, cap):
        caps.append(cap)
        return [np.zeros(SAMPLES_PER_FRAME, np.float32) for _ in texts], 24_000

    monkeypatch.setattr(custom, "_generate", record)
    sentence = ("word " * 999) + "end."  # 5,000 characters, one sentence: 12,537 frames from its length alone
    assert token_cap(sentence, None) == 8_192  # the package's own ceiling, MAX_NEW_TOKENS
    list(custom.stream(SynthesisRequest(sentence, "Ryan", language="English")))
    assert caps == [8_192]
    monkeypatch.setitem(custom._model.generate_defaults, "max_new_tokens", 2_048)  # the model's generate_config
    shorter = ("word " * 990) + "end. Then a second one."
    list(custom.stream(SynthesisRequest(shorter, "Ryan", max_new_tokens=5_000)))
    assert caps[1:] == [2_048, token_cap("Then a second one.", None)]


def test_sentences_keep_the_text_between_their_clauses():
    text = "Second, with a comma! The quick dog, and then it ran. 你好，世界。再见"
    assert sentences(text) == ["Second, with a comma!", "The quick dog, and then it ran.", "你好，世界。", "再见"]
