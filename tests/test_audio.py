"""Audio helpers: formats decode with the right rate and duration, fades, trimming, int16."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from engines import audio
from engines.base import InputError


def tone(seconds: float, rate: int = 24_000, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":  # raw: the rate is the contract, not in the bytes
        return sf.read(io.BytesIO(data), format="RAW", subtype="PCM_16", samplerate=24_000, channels=1, endian="LITTLE")
    return sf.read(io.BytesIO(data))


@pytest.mark.parametrize("fmt", audio.FORMATS)
def test_each_format_decodes_with_the_right_rate_and_duration(fmt):
    data, rate = decode(audio.encode(tone(2.0), fmt), fmt)
    assert rate == 24_000
    assert abs(len(data) / rate - 2.0) < 0.06  # mp3 frames pad a little
    assert np.max(np.abs(data)) == pytest.approx(0.3, abs=0.05)
    # no click at the end (libsndfile's own Opus encoder left a spike in the last samples)
    assert np.max(np.abs(data[-240:])) < 0.35


def test_opus_is_ogg_opus_with_the_exact_duration_and_pcm_is_raw_int16():
    info = sf.info(io.BytesIO(audio.encode(tone(1.5), "opus")))
    assert (info.format, info.subtype, info.samplerate) == ("OGG", "OPUS", 24_000)
    assert info.frames == 36_000  # pre-skip removed: the same number of samples as the input
    raw = audio.encode(tone(1.5), "pcm")
    assert len(raw) == 2 * 36_000 and not raw.startswith(b"RIFF")
    assert set(audio.MEDIA_TYPES) == set(audio.FORMATS)


def test_unknown_format_is_refused():
    with pytest.raises(InputError, match="Unknown audio format 'aiff'"):
        audio.encode(tone(0.1), "aiff")


def test_int16_conversion_clips_instead_of_wrapping():
    out = audio.to_int16(np.array([0.0, 0.5, 1.5, -2.0], np.float32))
    assert out.dtype == np.int16 and list(out) == [0, 16383, 32767, -32767]


def test_fades_bring_both_ends_to_zero_and_keep_the_middle():
    faded = audio.fade_edges(np.ones(24_000, np.float32))
    assert faded[0] == 0.0 and faded[-1] == 0.0
    assert np.all(faded[200:-200] == 1.0)


def test_trim_keeps_a_margin_and_adds_the_pause():
    clip = np.concatenate([np.zeros(12_000, np.float32), tone(1.0), np.zeros(24_000, np.float32)])
    trimmed, head = audio.trim_silence(clip, keep_s=0.04, pause_s=0.2)
    assert head == pytest.approx(12_000 - 960, abs=240)
    assert len(trimmed) / 24_000 == pytest.approx(1.0 + 0.08 + 0.2, abs=0.03)


def test_silence_only_becomes_just_the_pause():
    trimmed, head = audio.trim_silence(np.zeros(24_000, np.float32), pause_s=0.1)
    assert len(trimmed) == 2_400 and head == 0


def test_a_tone_normalized_to_minus_20_lufs_measures_minus_20():
    out, note = audio.normalize_loudness(tone(3.0, level=0.05), -20.0)
    assert note == ""
    assert audio.integrated_loudness(out) == pytest.approx(-20.0, abs=0.5)


def test_the_peak_guard_holds_true_peak_at_minus_1_dbfs():
    out, note = audio.normalize_loudness(tone(3.0, level=0.05), -3.0)
    assert "Peak guard" in note
    assert audio.true_peak_dbfs(out) == pytest.approx(-1.0, abs=0.1)


def test_a_clip_under_0_4_s_has_no_loudness_and_gets_the_peak_guard_only():
    assert audio.integrated_loudness(tone(0.3)) is None
    out, note = audio.normalize_loudness(tone(0.3, level=0.99), -16.0)
    assert "shorter than 0.4 s" in note and audio.true_peak_dbfs(out) <= -0.9


# ----- post-processing: OutputSettings, process, StreamLeveler -----------------------------------


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * 24_000))).astype(np.float32)


def band_db(data: np.ndarray, low_hz: float, rate: int = 24_000) -> float:
    spectrum = np.abs(np.fft.rfft(data)) ** 2
    freqs = np.fft.rfftfreq(len(data), 1 / rate)
    return float(10 * np.log10(np.mean(spectrum[freqs > low_hz])))


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus"])
@pytest.mark.parametrize("target", [-23.0, -16.0, -14.0])
@pytest.mark.parametrize("level", [0.02, 0.6])  # raised from quiet, lowered from loud
def test_loudness_of_the_written_file_is_within_half_a_lu_of_the_target(tmp_path, fmt, target, level):
    processed, notes = audio.process(tone(3.0, level=level), settings=audio.OutputSettings(lufs=target))
    assert notes == []
    path = audio.write(tmp_path / f"clip.{fmt}", processed)
    data, rate = sf.read(path)
    assert abs(audio.integrated_loudness(data, rate) - target) <= 0.5


def peaky(seconds: float = 3.0) -> np.ndarray:
    """A tone with 1 ms bursts every 200 ms: true peak 20 dB over the loudness, as Kokoro's speech has."""
    clip = tone(seconds, level=0.1)
    for start in range(0, len(clip) - 240, 4_800):
        clip[start : start + 24] = 0.9 * np.sin(2 * np.pi * 3_000 * np.arange(24) / 24_000)
    return clip


@pytest.mark.parametrize("target", [-16.0, -14.0])
def test_a_peaky_clip_reaches_the_target_through_the_limiter_with_true_peak_at_most_minus_1(tmp_path, target):
    clip = peaky()
    assert audio.true_peak_dbfs(clip * audio.loudness_gain(clip, target, peak_dbfs=99)[0]) > 0  # a gain alone clips
    processed, notes = audio.process(clip, settings=audio.OutputSettings(lufs=target))
    data, rate = sf.read(audio.write(tmp_path / "clip.wav", processed))
    assert notes == []
    assert abs(audio.integrated_loudness(data, rate) - target) <= 0.5
    assert audio.true_peak_dbfs(data, rate) <= -0.95


def test_the_limiter_leaves_a_clip_under_the_ceiling_alone_and_says_when_a_target_is_out_of_reach():
    quiet = tone(1.0, level=0.5)
    assert np.array_equal(audio.limit_true_peak(quiet), quiet)
    spike = tone(3.0, level=0.003)
    spike[24_000] = 0.99
    out, notes = audio.process(spike, settings=audio.OutputSettings(lufs=-10))
    assert len(notes) == 1 and notes[0].startswith("Peak guard: reached")
    assert audio.true_peak_dbfs(out) <= -0.95


@pytest.mark.parametrize("fmt", audio.LOSSY)
def test_a_lossy_file_keeps_the_peak_guard_once_decoded(fmt):
    # a square wave and white noise, peak-normalised: raw, their MP3/Vorbis decodes ring above 0 dBTP
    t = np.arange(48_000) / 24_000
    noise = np.random.default_rng(0).standard_normal(48_000) * 0.2
    for clip in (0.5 * np.sign(np.sin(2 * np.pi * 440 * t)), noise):
        out, _ = audio.process(clip.astype(np.float32), settings=audio.OutputSettings(peak_normalize=True))
        data, rate = decode(audio.encode(out, fmt), fmt)
        assert -1.5 < audio.true_peak_dbfs(data.astype(np.float32), rate) <= -1.0


def test_a_lossy_file_of_an_unguarded_clip_is_left_at_its_level():
    loud = tone(1.0, level=0.99)  # no peak guard asked for: the encoder's output is not turned down
    data, rate = decode(audio.encode(loud, "mp3"), "mp3")
    assert audio.true_peak_dbfs(data.astype(np.float32), rate) > -0.5


def test_peak_normalization_puts_the_true_peak_at_minus_1_dbfs():
    clip = np.concatenate([tone(1.0, level=0.1), tone(0.5, level=0.25)])
    out, _ = audio.process(clip, settings=audio.OutputSettings(peak_normalize=True))
    assert audio.true_peak_dbfs(out) == pytest.approx(-1.0, abs=0.05)
    assert np.max(np.abs(out[:24_000])) / np.max(np.abs(out[24_000:])) == pytest.approx(0.4, abs=0.01)


def test_denoise_lowers_the_noise_floor_and_keeps_the_signal():
    t = np.arange(4 * 24_000) / 24_000
    clean = tone(4.0, level=0.3) * ((t % 1.0) < 0.6)  # phrases and pauses, as speech has
    noisy = clean + noise(4.0, 0.01)
    out, _ = audio.process(noisy, settings=audio.OutputSettings(denoise=True))
    pauses = (t % 1.0) > 0.7
    assert np.std(out[pauses]) < 0.3 * np.std(noisy[pauses])  # the floor drops by over 10 dB

    def snr(x):
        return 10 * np.log10(np.sum(clean**2) / np.sum((x - clean) ** 2))

    assert snr(out) > snr(noisy) + 3
    assert np.std(out) == pytest.approx(np.std(clean), rel=0.05)


def test_trim_and_fade_apply_to_the_whole_clip():
    clip = np.concatenate([np.zeros(24_000, np.float32), tone(1.0, level=0.5), np.zeros(24_000, np.float32)])
    out, _ = audio.process(clip, settings=audio.OutputSettings(trim=True, fade=True))
    assert len(out) / 24_000 == pytest.approx(1.08, abs=0.03)  # 40 ms kept at each end
    assert out[0] == 0.0 and out[-1] == 0.0
    assert np.max(np.abs(out[:240])) < 0.5 and np.max(np.abs(out[len(out) // 2 :])) == pytest.approx(0.5, abs=0.01)


def test_no_settings_leave_the_clip_as_it_is():
    clip = tone(1.0)
    out, notes = audio.process(clip, settings=audio.OutputSettings())
    assert np.array_equal(out, clip) and notes == []


@pytest.mark.parametrize("value", [-60, 0, -4.9, "loud", float("nan")])
def test_a_loudness_target_outside_the_sane_range_is_refused(value):
    with pytest.raises(InputError, match="loudness target must be"):
        audio.OutputSettings(lufs=value)


def test_loudness_targets_parse_from_text():
    assert audio.OutputSettings(lufs="-16 LUFS").lufs == -16.0
    assert audio.OutputSettings(lufs="Off").lufs is None


def test_a_clip_under_0_4_s_gets_the_peak_guard_only_and_says_so():
    out, notes = audio.process(tone(0.3, level=0.99), settings=audio.OutputSettings(lufs=-16))
    assert len(notes) == 1 and "shorter than 0.4 s" in notes[0]
    assert audio.true_peak_dbfs(out) <= -0.95


def phrases() -> list[np.ndarray]:
    """Chunks like a speech stream: phrases at different levels with pauses."""
    levels = [0.1, 0.2, 0.08, 0.15, 0.12]
    return [np.concatenate([tone(0.8 + 0.1 * i, level=lv), np.zeros(4_800, np.float32)]) for i, lv in enumerate(levels)]


def test_streamed_chunks_do_not_pump_and_match_the_file_level():
    settings = audio.OutputSettings(lufs=-16)
    leveler = audio.StreamLeveler(settings)
    streamed = [leveler.feed(c) for c in phrases()]
    assert leveler.flush().size == 0
    gains_db = [
        20 * np.log10(np.max(np.abs(out)) / np.max(np.abs(c))) for out, c in zip(streamed, phrases(), strict=True)
    ]
    assert np.max(np.abs(np.diff(gains_db))) <= 1.5 + 1e-3  # the phrases keep their own levels (0.08 to 0.2)
    file_level = audio.integrated_loudness(audio.process(np.concatenate(phrases()), settings=settings)[0])
    assert abs(file_level - -16) < 0.5
    assert abs(audio.integrated_loudness(np.concatenate(streamed)) - file_level) < 1.0


def test_level_gives_each_chunk_at_the_stream_level_then_what_was_held_back():
    from engines.base import AudioChunk

    chunks = [AudioChunk(tone(0.2, level=0.05), "a", "", 0), AudioChunk(tone(0.1, level=0.05), "b", "", 1)]
    by_hand = audio.StreamLeveler(audio.OutputSettings(lufs=-14))
    expected = [by_hand.feed(c.audio) for c in chunks] + [by_hand.flush()]
    steps = list(audio.StreamLeveler(audio.OutputSettings(lufs=-14)).level(iter(chunks)))
    assert [chunk for chunk, _ in steps] == [*chunks, None]
    assert [piece.size for _, piece in steps] == [0, 0, int(0.3 * 24_000)]  # the whole opening is under 0.4 s
    for (_, piece), want in zip(steps, expected, strict=True):
        np.testing.assert_array_equal(piece, want)


def test_pcm16_is_little_endian_int16_from_float_or_int16():
    floats = np.array([0.0, 0.5, -1.0, 2.0], np.float32)
    assert audio.pcm16(floats) == audio.to_int16(floats).astype("<i2").tobytes()
    assert np.frombuffer(audio.pcm16(floats), "<i2").tolist() == [0, 16383, -32767, 32767]
    ints = np.array([1, -2, 300], np.int16)
    assert audio.pcm16(ints) == ints.astype("<i2").tobytes()  # int16 passes as it is


def test_the_stream_holds_a_short_opening_until_0_4_s_and_guards_later_peaks():
    leveler = audio.StreamLeveler(audio.OutputSettings(lufs=-14))
    assert leveler.feed(tone(0.2, level=0.05)).size == 0  # too short to measure: held back
    opening = leveler.feed(tone(0.4, level=0.05))
    assert len(opening) == int(0.6 * 24_000)  # both chunks, at one gain
    loud = leveler.feed(tone(1.0, level=0.9))
    assert audio.true_peak_dbfs(loud) <= -0.95
    assert leveler.flush().size == 0


# ----- the streaming encoder -----------------------------------------------------------------------------------


def streamed(fmt: str, chunks: list[np.ndarray]) -> list[bytes]:
    """The pieces `StreamEncoder` hands on for `chunks`, after it finished."""
    pieces: list[bytes] = []
    with audio.StreamEncoder(fmt, pieces.append) as encoder:
        for chunk in chunks:
            encoder.write(chunk)
        encoder.close()
    return pieces


@pytest.mark.parametrize("fmt", audio.STREAMED_FORMATS)
def test_every_streamed_format_decodes_to_the_clip_it_was_fed_in_pieces(fmt):
    chunks = [tone(0.5), tone(0.7), np.zeros(0, np.float32), tone(0.8)]
    pieces = streamed(fmt, chunks)
    data = b"".join(pieces)
    if fmt == "pcm":
        assert data == audio.encode(np.concatenate(chunks), "pcm")  # the same frames as the whole clip
    elif fmt == "wav":  # the header (sizes "unknown") goes out with the first audio, then raw frames
        assert data[:4] == b"RIFF" and data[4:8] == b"\xff\xff\xff\xff" and len(pieces) == 3
        assert data[44:] == audio.encode(np.concatenate(chunks), "pcm")
    else:
        decoded, rate = sf.read(io.BytesIO(data))
        assert rate == 24_000 and abs(len(decoded) / rate - 2.0) < 0.08  # a piped MP3 keeps its encoder delay


def test_a_wav_stream_without_audio_still_sends_its_header_and_flac_does_not_stream():
    pieces = streamed("wav", [])
    assert pieces == [audio.wav_stream_header()] and len(pieces[0]) == 44
    with pytest.raises(InputError, match="'flac' cannot be streamed"):
        audio.StreamEncoder("flac", print)


def test_the_stream_and_the_whole_opus_file_share_one_ffmpeg_command():
    whole, stream = audio.ffmpeg_command("opus", 24_000), audio.ffmpeg_command("opus", 24_000, stream=True)
    assert stream[: len(whole) - 1] == whole[:-1] and whole[-1] == stream[-1] == "pipe:1"
    assert stream[len(whole) - 1 : -1] == ["-page_duration", "200000", "-flush_packets", "1"]
