"""Batch synthesis: a .txt (one item per non-empty line) or a CSV (`text`, `engine`, `voice`, and an
optional `language`) in, a folder of numbered clips and `manifest.json` out, and a zip of both.

Items are checked one by one: a bad row (empty or oversized text, unknown engine or voice) is
recorded in the manifest with its error and the other rows still render. Engines whose capabilities
say they batch (`synthesize_batch`: several texts in one model call, Qwen3-TTS) get the items of one
voice and language grouped by similar length; the others render item by item. Every clip goes through the same
post-processing (`engines.audio.process`) and its duration and loudness are measured on the result.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.audio import FORMATS, OutputSettings, integrated_loudness, join, process, write
from engines.base import SAMPLE_RATE, Engine, EngineError, InputError, SynthesisRequest, shown
from engines.lexicon import Entry
from engines.lexicon import mapping as lexicon_mapping
from engines.runtime import gpu, registry, stop, work_queue
from engines.text import length_groups as text_length_groups

log = logging.getLogger(__name__)

MAX_ITEMS = 200
MAX_FILE_BYTES = 1_000_000
GROUP_SIZE = 4  # texts per model call for engines that batch
MANIFEST = "manifest.json"
Progress = Callable[[int, int], None]


@dataclass
class BatchItem:
    """One line or row: what to say with which engine and voice, and what came of it."""

    index: int
    text: str
    engine: str
    voice: str
    language: str | None = None  # the row's own; None: the batch's default
    error: str | None = None
    file: str | None = None
    duration_s: float | None = None
    lufs: float | None = None
    notes: list[str] = field(default_factory=list)
    spoken_language: str | None = None  # the ISO code the engine spoke it in (`registry.spoken_language`)

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "text": self.text,
            "engine": self.engine,
            "voice": self.voice,
            "language": self.language,
            "spoken_language": self.spoken_language,
            "file": self.file,
            "duration_s": self.duration_s,
            "lufs": self.lufs,
            "error": self.error,
            "notes": self.notes,
        }


def parse(data: bytes, name: str, engine: str, voice: str) -> list[BatchItem]:
    """The items of an uploaded batch file: CSV when `name` ends in .csv, else one item per line.

    `engine` and `voice` are the defaults for lines and for CSV rows that leave them blank.
    """
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"The batch file is over {MAX_FILE_BYTES // 1_000_000} MB; please split it.")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("The batch file is not UTF-8 text; save it as UTF-8 and upload it again.") from None
    if str(name).lower().endswith(".csv"):
        items = _csv_items(content, engine, voice)
    else:
        lines = [line.strip() for line in content.splitlines()]
        items = [BatchItem(0, line, engine, voice) for line in lines if line]
    if not items:
        raise InputError("The batch file has nothing to speak: it has no non-empty lines.")
    if len(items) > MAX_ITEMS:
        raise InputError(f"The batch file has {len(items)} items; the limit is {MAX_ITEMS}.")
    for number, item in enumerate(items, 1):
        item.index = number
        item.error = item.error or _check(item)
    return items


def _csv_items(content: str, engine: str, voice: str) -> list[BatchItem]:
    try:
        rows = list(csv.reader(io.StringIO(content)))
    except csv.Error as exc:
        raise InputError(f"The CSV file cannot be read ({exc}).") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "text" not in header:
        raise InputError("The CSV file has no 'text' column; its first row must name the columns text, engine, voice.")
    column = {name: header.index(name) for name in ("text", "engine", "voice", "language") if name in header}
    items = []
    for row in rows[1:]:
        cell = {name: row[i].strip() if i < len(row) else "" for name, i in column.items()}
        item = BatchItem(
            0, cell["text"], cell.get("engine") or engine, cell.get("voice") or voice, cell.get("language") or None
        )
        if len(row) > len(header):
            item.error = f"The row has {len(row)} fields but the header names {len(header)}."
        items.append(item)
    return items


def _check(item: BatchItem) -> str | None:
    """Why an item cannot be rendered, found before any model runs (None if it looks fine)."""
    if item.engine not in registry.ENGINES:
        return f"Unknown engine {item.engine!r}; choose one of: {', '.join(registry.ENGINES)}."
    try:
        SynthesisRequest(text=item.text, voice=item.voice)
    except EngineError as exc:
        return str(exc)
    return None


def slug(text: str, limit: int = 40) -> str:
    """A short ASCII file-name part from the text ("item" when nothing ASCII is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return words[:limit].rstrip("-") or "item"


def length_groups(items: list[BatchItem], size: int = GROUP_SIZE) -> list[list[BatchItem]]:
    """Items sorted by text length, cut into groups of up to `size` whose lengths are within 2x
    (`engines.text.length_groups`)."""
    return [[items[i] for i in group] for group in text_length_groups([i.text for i in items], size, sort=True)]


def render(
    items: list[BatchItem],
    out_dir: Path,
    fmt: str = "wav",
    settings: OutputSettings | None = None,
    speed: float = 1.0,
    language: str | None = None,
    max_new_tokens: int | None = None,
    progress: Progress | None = None,
    get_engine: Callable[[str], Engine] = registry.get,
    owner: str | None = None,
    lexicon: Iterable[Entry] = (),
    caller: str | None = None,
) -> dict:
    """Render every good item into `out_dir` (`001-<slug>.<fmt>`), write `manifest.json`, return it.

    `progress(done, total)` is called after each item. An item that fails gets its error in the
    manifest; the others still render. `get_engine` maps an engine id to a loaded engine (the
    registry; tests pass their own). `owner` is whose saved voices the items may name; `lexicon` the
    pronunciation entries every item speaks with (each engine takes its column: `engines.lexicon`);
    `caller` whose turns the groups take (the line serves callers in turn between groups).
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise InputError(f"Unknown audio format {shown(fmt)}; choose one of: {', '.join(FORMATS)}.")
    settings = settings or OutputSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done, total = sum(1 for i in items if i.error), len(items)
    if progress:
        progress(done, total)

    entries = tuple(lexicon)
    columns = {e: lexicon_mapping(entries, registry.capabilities(e).lexicon) for e in registry.ENGINES}

    def request(item: BatchItem) -> SynthesisRequest:
        return SynthesisRequest(
            text=item.text,
            voice=item.voice,
            speed=speed,
            language=item.language or language,
            max_new_tokens=max_new_tokens,
            owner=owner,
            lexicon=columns[item.engine],
        )

    for engine_id in dict.fromkeys(i.engine for i in items if not i.error):
        todo = [i for i in items if not i.error and i.engine == engine_id]
        try:
            engine = get_engine(engine_id)
        except EngineError as exc:
            for item in todo:
                item.error = str(exc)
            done += len(todo)
            if progress:
                progress(done, total)
            continue
        # an engine that batches (its capabilities) renders several texts in one model call
        many = engine.synthesize_batch if registry.capabilities(engine_id).batches else None
        if many is not None:
            kinds = dict.fromkeys((i.voice, i.language) for i in todo)  # one model call shares both
            work = [g for k in kinds for g in length_groups([i for i in todo if (i.voice, i.language) == k])]
        else:
            work = [[item] for item in todo]
        for group in work:
            try:
                # each group takes its turn in the engine's line (first come, first served, like every
                # request); a batch already admitted is not refused between its groups
                cost = work_queue.cost_of(engine_id, " ".join(item.text for item in group))
                with work_queue.enter(engine_id, cost, bounded=False, caller=caller) as ticket:
                    ticket.wait_turn()
                    if many is not None:
                        clips = gpu.call(engine, "synthesize_batch", [request(item) for item in group])
                    else:
                        clips = [join(gpu.stream(engine, request(group[0])))]
            except EngineError as exc:
                for item in group:
                    item.error = str(exc)
            except Exception:  # a model failure on one group must not end the batch
                if stop.stopped():  # the visitor's Stop cut the model call short: not a failure
                    for item in group:
                        item.error = "Stopped."
                else:
                    log.exception("Batch group failed")
                    for item in group:
                        item.error = "Synthesis failed unexpectedly."
            else:
                for item, clip in zip(group, clips, strict=True):
                    item.spoken_language = registry.spoken_language(engine_id, request(item))
                    _finish(item, clip, out_dir, fmt, settings)
            done += len(group)
            if progress:
                progress(done, total)
    manifest = {
        "format": fmt,
        "settings": settings.as_dict(),
        "rendered": sum(1 for i in items if not i.error),
        "failed": sum(1 for i in items if i.error),
        "items": [i.as_dict() for i in items],
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def _finish(item: BatchItem, clip: np.ndarray, out_dir: Path, fmt: str, settings: OutputSettings) -> None:
    """Post-process one clip, write it and record its file, duration and loudness."""
    try:
        audio, item.notes = process(clip, SAMPLE_RATE, settings)
        name = f"{item.index:03d}-{slug(item.text)}.{fmt}"
        write(out_dir / name, audio, fmt)
    except EngineError as exc:
        item.error = str(exc)
        return
    item.file = name
    item.duration_s = round(len(audio) / SAMPLE_RATE, 3)
    loudness = integrated_loudness(audio)
    item.lufs = None if loudness is None else round(loudness, 2)


def zip_folder(folder: Path, target: Path) -> Path:
    """`target`: a zip of the clips and the manifest in `folder` (flat, no folder inside)."""
    folder, target = Path(folder), Path(target)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path != target:
                archive.write(path, arcname=path.name)
    return target
