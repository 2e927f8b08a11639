"""Bounded audio decoding: the one home for turning bytes a caller sent into mono float32 at 24 kHz.

Every decoded input (reference clips for cloning, saved voices, the Compare browser slot's WAV, the
CLI's `--ref-audio`) goes through `decode_audio`. Nothing is decoded before its container has told
its sample rate, channels and length: a 5 s FLAC at 655,350 Hz × 8 channels is 27 KB on disk and
~125 MB as float32, so a header over `MAX_RATE` or `MAX_CHANNELS` or longer than the caller's bound is
refused in one sentence first. What is accepted is decoded in blocks of a quarter second, mixed to
mono and resampled block by block (soxr's streaming resampler), so memory follows the bound at 24 kHz
whatever the file's own rate: a 96 kHz studio recording still works.

libsndfile reads WAV, FLAC, OGG and MP3. Anything else (m4a, webm, FLAC inside .mka) goes to
ffmpeg through its standard input: `ffprobe` reads rate and channels first, then ffmpeg is asked for
`-t` (the bound), `-ac 1 -ar 24000` raw float32, and its output is read incrementally under a byte cap.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from engines.base import SAMPLE_RATE, InputError

MAX_RATE = 192_000  # the highest rate recorders use; above it a header is a decompression bomb, not a voice
MAX_CHANNELS = 8  # a voice needs one; 7.1 is the most any recording a visitor has would carry
BLOCK_SECONDS = 0.25  # one block of the largest accepted format: 192 kHz × 8 ch × 4 B / 4 = 1.5 MB
FFMPEG_TIMEOUT_S = 60  # a decode of at most a few minutes of audio; past this ffmpeg is stuck on the input


@dataclass(frozen=True)
class Probe:
    """What the container says before anything is decoded. `seconds` is None when it cannot tell."""

    container: str  # libsndfile's format name ("WAV", "FLAC", "OGG", "MP3") or "ffmpeg"
    sample_rate: int
    channels: int
    seconds: float | None


@dataclass(frozen=True)
class Decoded:
    """Mono float32 audio at `sample_rate`, and what the file itself was."""

    audio: np.ndarray
    sample_rate: int
    original_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def decode_audio(
    data: bytes,
    what: str,
    max_seconds: float,
    *,
    target_rate: int = SAMPLE_RATE,
    check: Callable[[Probe], None] | None = None,
    use_ffmpeg: bool = True,
) -> Decoded:
    """`data` decoded to mono float32 at `target_rate`, never more than `max_seconds` of it.

    `what` names the input in sentences ("reference", "browser's clip"). `check` sees the `Probe`
    before any decoding and raises `InputError` for what its caller refuses (a rate, a container).
    Every refusal is an `InputError` with one sentence."""
    if not data:
        raise InputError(f"The {what} is empty; please upload a few seconds of audio.")
    try:
        info = sf.info(io.BytesIO(data))
    except Exception:
        info = None
    if info is None:
        if not use_ffmpeg:
            raise _unreadable(what)
        probe = _ffprobe(data, what)
    else:
        frames = info.frames if 0 <= info.frames < 2**62 else None
        seconds = frames / info.samplerate if frames is not None and info.samplerate > 0 else None
        probe = Probe(info.format, int(info.samplerate), int(info.channels), seconds)
    _check_format(probe, what, max_seconds)
    if check is not None:
        check(probe)
    if probe.container == "ffmpeg":
        audio = _decode_ffmpeg(data, what, max_seconds, target_rate)
    else:
        audio = _decode_sndfile(data, probe, what, max_seconds, target_rate)
    return Decoded(audio=audio, sample_rate=target_rate, original_rate=probe.sample_rate, channels=probe.channels)


def _unreadable(what: str) -> InputError:
    return InputError(f"The {what} file is not audio that can be read (try WAV, FLAC, MP3 or OGG).")


def _too_long(what: str, seconds: float, max_seconds: float, over: bool = False) -> InputError:
    length = f"over {max_seconds:.0f}" if over else f"{seconds:.0f}"
    return InputError(f"The {what} is {length} s long; please use a clip under {max_seconds:.0f} seconds.")


def _check_format(probe: Probe, what: str, max_seconds: float) -> None:
    """Refuse, before decoding, a format no recording has or a header longer than the bound."""
    if probe.sample_rate <= 0 or probe.channels <= 0:
        raise _unreadable(what)
    if probe.channels > MAX_CHANNELS:
        raise InputError(f"The {what} has {probe.channels} channels; please use a mono or stereo clip.")
    if probe.sample_rate > MAX_RATE:
        raise InputError(
            f"The {what} says it is sampled at {probe.sample_rate:,} Hz; "
            f"please use audio sampled at {MAX_RATE // 1000} kHz or less."
        )
    if probe.seconds is not None and probe.seconds > max_seconds + 0.5:
        raise _too_long(what, probe.seconds, max_seconds)


def _decode_sndfile(data: bytes, probe: Probe, what: str, max_seconds: float, target_rate: int) -> np.ndarray:
    """libsndfile in blocks: each block mixed to mono and resampled before the next is read. The header's
    length is not believed: at most the bound's frames are read, and one more says the file is longer."""
    limit = int((max_seconds + 0.5) * probe.sample_rate)
    block = max(1024, int(probe.sample_rate * BLOCK_SECONDS))
    resampler = _resampler(probe.sample_rate, target_rate)
    pieces: list[np.ndarray] = []
    read = 0
    try:
        with sf.SoundFile(io.BytesIO(data)) as source:
            for frames in source.blocks(blocksize=block, dtype="float32", always_2d=True, frames=limit + 1):
                read += len(frames)
                if read > limit:
                    raise _too_long(what, read / probe.sample_rate, max_seconds, over=True)
                mono = frames.mean(axis=1, dtype=np.float32)
                pieces.append(resampler(mono, False) if resampler else mono)
    except InputError:
        raise
    except Exception:
        raise InputError(f"The {what} file is damaged or cut short; please upload it again.") from None
    if resampler:
        pieces.append(resampler(np.zeros(0, np.float32), True))
    return np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)


def _resampler(rate: int, target_rate: int) -> Callable[[np.ndarray, bool], np.ndarray] | None:
    if rate == target_rate:
        return None
    import soxr

    stream = soxr.ResampleStream(rate, target_rate, 1, dtype="float32")
    return lambda chunk, last: stream.resample_chunk(chunk, last=last)


def _ffprobe(data: bytes, what: str) -> Probe:
    """Rate and channels of the first audio stream, read by ffprobe from standard input."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None or shutil.which("ffmpeg") is None:
        raise _unreadable(what)
    command = [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels"]
    command += ["-of", "json", "pipe:0"]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
        stream = json.loads(done.stdout or b"{}").get("streams", [{}])[0]
        return Probe("ffmpeg", int(stream["sample_rate"]), int(stream["channels"]), None)
    except (subprocess.TimeoutExpired, OSError, ValueError, LookupError, TypeError, AttributeError):
        raise _unreadable(what) from None


def _decode_ffmpeg(data: bytes, what: str, max_seconds: float, target_rate: int) -> np.ndarray:
    """ffmpeg from standard input to raw mono float32 at `target_rate`, at most a second past the bound (so
    that a longer clip shows); its output is read in pieces and the process stopped past the byte cap."""
    cap = int((max_seconds + 1.5) * target_rate) * 4
    command = [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-map", "0:a:0"]
    command += ["-t", f"{max_seconds + 1.0:g}", "-ac", "1", "-ar", str(target_rate), "-f", "f32le", "pipe:1"]
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        raise _unreadable(what) from None
    writer = threading.Thread(target=_feed, args=(process, data), name="ffmpeg-decode-feed", daemon=True)
    watchdog = threading.Timer(FFMPEG_TIMEOUT_S, process.kill)
    writer.start()
    watchdog.start()
    output = bytearray()
    try:
        while piece := process.stdout.read(1 << 16):
            output += piece
            if len(output) > cap:
                process.kill()
                raise _too_long(what, 0.0, max_seconds, over=True)
        returncode = process.wait()
    finally:
        watchdog.cancel()
        process.kill()
        process.stdout.close()
        process.wait()
        writer.join(timeout=5)
    usable = len(output) // 4 * 4
    if returncode != 0 or usable == 0:
        raise _unreadable(what)
    audio = np.frombuffer(bytes(output[:usable]), dtype="<f4").astype(np.float32)
    if len(audio) > int((max_seconds + 0.5) * target_rate):
        raise _too_long(what, 0.0, max_seconds, over=True)
    return audio


def _feed(process: subprocess.Popen, data: bytes) -> None:
    """Write the input to ffmpeg's standard input; ffmpeg may close it early (it read enough, or failed)."""
    try:
        process.stdin.write(data)
    except (BrokenPipeError, OSError, ValueError):
        pass
    finally:
        try:
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
