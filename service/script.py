"""Render a script (`engines.script`) into one take: every line in its speaker's engine and voice,
each line levelled to one loudness, a gap between lines, and a manifest of who says what when.

Each piece of a line (`engines.ssml`: text in one voice and speed) is one synthesis in its engine's
line (`engines.runtime.timing.synthesize`, the same turn every request takes), trimmed of the model's
boundary silence; a `<break>` becomes exactly that much silence; the line is levelled to
`LINE_LUFS` (peak-guarded). The take is the lines in order with `gap_s` between them. Written to a
folder: `take.<fmt>`, `lines/NNN-<speaker>.wav`, `lines.zip` (the per-line files) and
`manifest.json` (`lines: [{speaker, engine, voice, text, start, end, ...}]`, seconds in the take, each
span from the line's first to last speech sample).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import zipfile
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engines.audio import FORMATS, normalize_loudness, silent_edges, trim_silence, write
from engines.base import SAMPLE_RATE, EngineError, InputError, SynthesisRequest
from engines.batch_files import slug
from engines.runtime import registry
from engines.runtime import stop as stopping
from engines.script import Line, Role
from engines.ssml import Pause, Piece

from . import admission, speech
from .caller import Caller, operator

LINE_LUFS = -20.0
DEFAULT_GAP_S = 0.4
MAX_GAP_S = 5.0
EDGE_KEEP_S = 0.02  # what each trimmed piece keeps of its own silence at either end
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
log = logging.getLogger(__name__)

Synthesize = Callable[[str, SynthesisRequest], np.ndarray]  # engine id, request -> 24 kHz float32
Progress = Callable[[int, int, Line], None]


def in_turn(caller: Caller) -> Synthesize:
    """Synthesis in `caller`'s turn in each engine's line (`service.speech`: fair share, figures)."""

    def synthesize(engine_id: str, request: SynthesisRequest) -> np.ndarray:
        audio, _, _ = speech.synthesize(caller, engine_id, request, cancelled=stopping.stopped)
        return audio

    return synthesize


def cost(lines: list[Line], roles: dict[str, Role]) -> float:
    """Estimated seconds of compute for every piece of `lines` (`service.admission.speech_cost`)."""
    return sum(
        admission.speech_cost(roles[line.speaker].engine, part.text)
        for line in lines
        for part in line.parts
        if isinstance(part, Piece)
    )


def request_for(piece: Piece, role: Role, owner: str | None) -> tuple[SynthesisRequest, list[str]]:
    """The request for one piece, and notes (a `<phoneme>` that this engine cannot take)."""
    notes, lexicon = [], {}
    if piece.phonemes:
        if registry.capabilities(role.engine).lexicon == "phonemes":
            lexicon = piece.phonemes
        else:
            words = ", ".join(piece.phonemes)
            notes.append(f"{registry.name(role.engine)} takes no phonemes: said {words} as written.")
    request = SynthesisRequest(
        text=piece.text, voice=piece.voice or role.voice, speed=piece.speed, owner=owner, lexicon=lexicon
    )
    return request, notes


def render_line(
    line: Line, role: Role, owner: str | None = None, synthesize: Synthesize | None = None
) -> tuple[np.ndarray, list[str]]:
    """One line's audio (24 kHz float32, levelled) and its notes."""
    synthesize = synthesize or in_turn(operator())
    pieces: list[np.ndarray] = []
    notes: list[str] = []
    keep = int(EDGE_KEEP_S * SAMPLE_RATE)
    for part in line.parts:
        if isinstance(part, Pause):
            # the trimmed pieces either side keep EDGE_KEEP_S each: the silence heard is the break
            pieces.append(np.zeros(max(0, int(part.seconds * SAMPLE_RATE) - 2 * keep), np.float32))
            continue
        request, more = request_for(part, role, owner)
        notes.extend(more)
        audio, _ = trim_silence(synthesize(role.engine, request), SAMPLE_RATE, keep_s=EDGE_KEEP_S)
        pieces.append(np.asarray(audio, np.float32))
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    levelled, note = normalize_loudness(audio, LINE_LUFS)
    if note and "silent" in note:
        notes.append(f"Line {line.index} came out silent.")
    return levelled.astype(np.float32), notes


def _job_key(lines: list[Line], roles: dict[str, Role], fmt: str, gap_s: float) -> str:
    """What a finished line's file depends on: the script's lines, their roles, the format and the gap."""
    said = [(ln.index, ln.speaker, ln.text, roles[ln.speaker].engine, roles[ln.speaker].voice) for ln in lines]
    return hashlib.sha256(json.dumps([said, fmt, float(gap_s)], ensure_ascii=False).encode()).hexdigest()


def _finished(out_dir: Path, key: str) -> dict[int, dict]:
    """The lines a previous run of the same job finished (their entries), when their files are still there."""
    try:
        state = json.loads((out_dir / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("key") != key:
        return {}
    done = {}
    for entry in state.get("lines", []):
        if isinstance(entry, dict) and entry.get("file") and (out_dir / str(entry["file"])).is_file():
            done[int(entry["index"])] = entry
    return done


def _save_progress(out_dir: Path, key: str, entries: list[dict]) -> None:
    tmp = out_dir / (PROGRESS + ".tmp")
    tmp.write_text(json.dumps({"key": key, "lines": entries}, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out_dir / PROGRESS)


def _render_with_retry(
    line: Line, role: Role, owner: str | None, synthesize: Synthesize
) -> tuple[np.ndarray, list[str]]:
    """One line; a failure that is not the input's fault is tried once more before it is reported."""
    try:
        return render_line(line, role, owner, synthesize)
    except InputError:
        raise
    except Exception as exc:  # a model hiccup, a busy line: once more, then the error stands
        log.warning("line %d failed (%s); trying it once more", line.index, exc)
        audio, notes = render_line(line, role, owner, synthesize)
        return audio, [*notes, "Rendered on the second try."]


def _check_words(entry: dict, audio: np.ndarray, text: str) -> None:
    """The line's words as the speech recogniser heard them (`evaluation.alignment`)."""
    from evaluation.alignment import align_clip

    try:
        found = align_clip(audio, SAMPLE_RATE, text)
    except Exception as exc:  # the recogniser cannot hear this line: say so, keep the line
        log.warning("words check of line %s failed: %s", entry["index"], exc)
        entry["notes"].append("The words could not be checked for this line.")
        return
    entry["words"], entry["error_rate"] = found.words, found.error_rate


@dataclass(frozen=True)
class Heard:
    """One line of a take as it is added: its manifest entry (start and end in the take, or the error)
    and the samples it adds to the take (the gap before it, then the line; none for a failed line)."""

    entry: dict
    audio: np.ndarray


def render_take(*args, **kwargs) -> dict:
    """`take_lines` run to its end: the manifest (the same arguments)."""
    steps = take_lines(*args, **kwargs)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def take_lines(
    lines: list[Line],
    roles: dict[str, Role],
    out_dir: Path,
    fmt: str = "wav",
    gap_s: float = DEFAULT_GAP_S,
    caller: Caller | None = None,
    synthesize: Synthesize | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = stopping.stopped,
    check_words: bool = False,
) -> Generator[Heard, None, dict]:
    """Render every line for `caller` (default: the operator), yielding each as it joins the take (the
    page plays them as they come), then write the take, the per-line files, their zip and the manifest,
    and return the manifest. The job is admitted by its estimated compute before its first line,
    and each piece takes the caller's turn in its engine's line; `cancelled()` (default: the page's Stop)
    ends it after the line in progress.

    A job: each finished line is kept (`lines/NNN-<speaker>.wav`) and listed in `progress.json`, so a
    run of the same script, cast and settings into the same folder (after a restart or a dropped
    connection) picks up after the last finished line. A script with chapters (Markdown headings) also
    gets `take.m4b` with chapter marks and a cue list, `take.cue`.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise InputError(f"Unknown audio format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if not 0 <= float(gap_s) <= MAX_GAP_S:
        raise InputError(f"The gap between lines must be between 0 and {MAX_GAP_S:g} seconds.")
    out_dir = Path(out_dir)
    (out_dir / "lines").mkdir(parents=True, exist_ok=True)
    key = _job_key(lines, roles, fmt, gap_s)
    finished = _finished(out_dir, key)
    caller = caller or operator()
    owner = caller.owner
    # the whole job is admitted by what is left of it (its caller's compute allowance), before its first line
    admission.admit(caller, compute_s=cost([ln for ln in lines if ln.index not in finished], roles))
    synthesize = synthesize or in_turn(caller)
    gap = np.zeros(int(float(gap_s) * SAMPLE_RATE), np.float32)
    take: list[np.ndarray] = []
    entries: list[dict] = []
    cursor = 0
    for number, line in enumerate(lines, 1):
        if cancelled is not None and cancelled():
            break
        role = roles[line.speaker]
        entry = finished.get(line.index)
        if entry is not None:  # kept from an earlier run of this job
            audio, _ = sf.read(out_dir / entry["file"], dtype="float32")
            entry = {**entry, "resumed": True}
        else:
            entry = {"index": line.index, "speaker": line.speaker, "engine": role.engine, "voice": role.voice,
                     "text": line.spoken, "chapter": line.chapter, "file": None, "error": None,
                     "notes": []}  # fmt: skip
            try:
                audio, entry["notes"] = _render_with_retry(line, role, owner, synthesize)
            except EngineError as exc:
                entry["error"], audio = str(exc), None
            except Exception:
                log.exception("line %d failed twice", line.index)
                entry["error"], audio = "This line could not be rendered (it failed twice).", None
            if audio is not None:
                name = f"lines/{line.index:03d}-{slug(line.speaker, 20)}.wav"
                write(out_dir / name, audio, "wav")
                entry["file"] = name
                if check_words:
                    _check_words(entry, audio, line.spoken)
        added = np.zeros(0, np.float32)
        if audio is not None:
            if take:
                take.append(gap)
                cursor += len(gap)
                added = gap
            first, last = silent_edges(audio)
            entry["start"] = round((cursor + first) / SAMPLE_RATE, 3)
            entry["end"] = round((cursor + max(first, last)) / SAMPLE_RATE, 3)
            take.append(audio)
            cursor += len(audio)
            added = np.concatenate([added, audio])
        else:
            entry["start"] = entry["end"] = None
        entries.append(entry)
        _save_progress(out_dir, key, [e for e in entries if e.get("file")])
        if progress:
            progress(number, len(lines), line)
        yield Heard(entry, added)
    audio = np.concatenate(take) if take else np.zeros(0, np.float32)
    take_name = f"take.{fmt}"
    if take:
        write(out_dir / take_name, audio, fmt)
    with zipfile.ZipFile(out_dir / "lines.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            if entry["file"]:
                archive.write(out_dir / entry["file"], arcname=Path(entry["file"]).name)
    chapters = _chapters(entries)
    manifest = {
        "take": take_name if take else None,
        "format": fmt,
        "duration_s": round(len(audio) / SAMPLE_RATE, 3),
        "gap_s": float(gap_s),
        "line_lufs": LINE_LUFS,
        "rendered": sum(1 for e in entries if e["file"]),
        "failed": sum(1 for e in entries if e["error"]),
        "resumed": sum(1 for e in entries if e.get("resumed")),
        "stopped": len(entries) < len(lines),
        "chapters": chapters,
        "lines": entries,
    }
    if take and chapters:
        manifest["cue"] = _write_cue(out_dir, take_name, chapters)
        manifest["m4b"] = _write_m4b(out_dir, take_name, chapters, manifest["duration_s"])
    (out_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def _chapters(entries: list[dict]) -> list[dict]:
    """Each chapter's title and span in the take (from its first line's start to its last line's end)."""
    chapters: list[dict] = []
    for entry in entries:
        title = entry.get("chapter") or ""
        if not title or entry.get("start") is None:
            continue
        if not chapters or chapters[-1]["title"] != title:
            chapters.append({"title": title, "start": entry["start"], "end": entry["end"]})
        else:
            chapters[-1]["end"] = entry["end"]
    return chapters


def _write_cue(out_dir: Path, take_name: str, chapters: list[dict]) -> str:
    """A cue sheet: one track per chapter (MM:SS:FF, 75 frames a second)."""

    def stamp(seconds: float) -> str:
        frames = int(round(seconds * 75))
        return f"{frames // 4500:02d}:{frames // 75 % 60:02d}:{frames % 75:02d}"

    quote = lambda text: text.replace('"', "'")  # noqa: E731
    rows = [f'FILE "{take_name}" WAVE']
    for number, chapter in enumerate(chapters, 1):
        rows += [f"  TRACK {number:02d} AUDIO", f'    TITLE "{quote(chapter["title"])}"',
                 f"    INDEX 01 {stamp(chapter['start'])}"]  # fmt: skip
    (out_dir / "take.cue").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return "take.cue"


def _write_m4b(out_dir: Path, take_name: str, chapters: list[dict], duration_s: float) -> str | None:
    """The take as an audiobook (AAC in M4B) with a chapter mark per chapter (ffmpeg metadata)."""
    escape = lambda text: "".join("\\" + ch if ch in "=;#\\\n" else ch for ch in text)  # noqa: E731
    meta = [";FFMETADATA1"]
    for number, chapter in enumerate(chapters):
        end = chapters[number + 1]["start"] if number + 1 < len(chapters) else duration_s
        meta += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={int(chapter['start'] * 1000)}", f"END={int(end * 1000)}",
                 f"title={escape(chapter['title'])}"]  # fmt: skip
    (out_dir / "chapters.ffmeta").write_text("\n".join(meta) + "\n", encoding="utf-8")
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(out_dir / take_name),
               "-i", str(out_dir / "chapters.ffmeta"), "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1",
               "-c:a", "aac", "-b:a", "96k", str(out_dir / "take.m4b")]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("the chaptered M4B could not be written: %s", exc)
        return None
    return "take.m4b"
