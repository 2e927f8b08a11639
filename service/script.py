"""Render a script (`engines.script`) into one take: every line in its speaker's engine and voice,
each line levelled to one loudness, a gap between lines, and a manifest of who says what when.

Each piece of a line (`engines.ssml`: text in one voice and speed) is one synthesis in its engine's
line (`engines.timing.synthesize`, the same turn every request takes), trimmed of the model's
boundary silence; a `<break>` becomes exactly that much silence; the line is levelled to
`LINE_LUFS` (peak-guarded). The take is the lines in order with `gap_s` between them. Written to a
folder: `take.<fmt>`, `lines/NNN-<speaker>.<fmt>`, `lines.zip` (the per-line files) and
`manifest.json` (`lines: [{speaker, engine, voice, text, start, end, ...}]`, seconds in the take, each
span from the line's first to last speech sample).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engines import registry, timing
from engines.audio import FORMATS, normalize_loudness, silent_edges, trim_silence, write
from engines.base import SAMPLE_RATE, EngineError, InputError, SynthesisRequest
from engines.batch import slug
from engines.script import Line, Role
from engines.ssml import Pause, Piece

LINE_LUFS = -20.0
DEFAULT_GAP_S = 0.4
MAX_GAP_S = 5.0
EDGE_KEEP_S = 0.02  # what each trimmed piece keeps of its own silence at either end
MANIFEST = "manifest.json"

Synthesize = Callable[[str, SynthesisRequest], np.ndarray]  # engine id, request -> 24 kHz float32
Progress = Callable[[int, int, Line], None]


def _registry_synthesize(engine_id: str, request: SynthesisRequest) -> np.ndarray:
    audio, _, _ = timing.synthesize(engine_id, request)
    return audio


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
    line: Line, role: Role, owner: str | None = None, synthesize: Synthesize = _registry_synthesize
) -> tuple[np.ndarray, list[str]]:
    """One line's audio (24 kHz float32, levelled) and its notes."""
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


def render_take(
    lines: list[Line],
    roles: dict[str, Role],
    out_dir: Path,
    fmt: str = "wav",
    gap_s: float = DEFAULT_GAP_S,
    owner: str | None = None,
    synthesize: Synthesize = _registry_synthesize,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Render every line, write the take, the per-line files, their zip and the manifest; return it."""
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise InputError(f"Unknown audio format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if not 0 <= float(gap_s) <= MAX_GAP_S:
        raise InputError(f"The gap between lines must be between 0 and {MAX_GAP_S:g} seconds.")
    out_dir = Path(out_dir)
    (out_dir / "lines").mkdir(parents=True, exist_ok=True)
    gap = np.zeros(int(float(gap_s) * SAMPLE_RATE), np.float32)
    take: list[np.ndarray] = []
    entries: list[dict] = []
    cursor = 0
    for number, line in enumerate(lines, 1):
        if cancelled is not None and cancelled():
            break
        role = roles[line.speaker]
        entry = {"index": line.index, "speaker": line.speaker, "engine": role.engine, "voice": role.voice,
                 "text": line.spoken, "start": None, "end": None, "file": None, "error": None, "notes": []}  # fmt: skip
        try:
            audio, entry["notes"] = render_line(line, role, owner, synthesize)
        except EngineError as exc:
            entry["error"] = str(exc)
        else:
            if take:
                take.append(gap)
                cursor += len(gap)
            first, last = silent_edges(audio)
            entry["start"] = round((cursor + first) / SAMPLE_RATE, 3)
            entry["end"] = round((cursor + max(first, last)) / SAMPLE_RATE, 3)
            name = f"lines/{line.index:03d}-{slug(line.speaker, 20)}.{fmt}"
            write(out_dir / name, audio, fmt)
            entry["file"] = name
            take.append(audio)
            cursor += len(audio)
        entries.append(entry)
        if progress:
            progress(number, len(lines), line)
    audio = np.concatenate(take) if take else np.zeros(0, np.float32)
    take_name = f"take.{fmt}"
    if take:
        write(out_dir / take_name, audio, fmt)
    with zipfile.ZipFile(out_dir / "lines.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            if entry["file"]:
                archive.write(out_dir / entry["file"], arcname=Path(entry["file"]).name)
    manifest = {
        "take": take_name if take else None,
        "format": fmt,
        "duration_s": round(len(audio) / SAMPLE_RATE, 3),
        "gap_s": float(gap_s),
        "line_lufs": LINE_LUFS,
        "rendered": sum(1 for e in entries if e["file"]),
        "failed": sum(1 for e in entries if e["error"]),
        "stopped": len(entries) < len(lines),
        "lines": entries,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest
