"""Batch files: a .txt (one item per non-empty line) or a CSV (`text`, `engine`, `voice`, and an
optional `language`) read into checked items, each clip's file name, `manifest.json`'s name, and the zip
of a rendered folder. Rendering the items is the batch use case's (`service.batch`).

Items are checked one by one: a bad row (empty or oversized text, unknown engine or voice) is
recorded in the manifest with its error and the other rows still render.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engines.base import EngineError, InputError, SynthesisRequest
from engines.runtime import registry

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


def zip_folder(folder: Path, target: Path) -> Path:
    """`target`: a zip of the clips and the manifest in `folder` (flat, no folder inside)."""
    folder, target = Path(folder), Path(target)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path != target:
                archive.write(path, arcname=path.name)
    return target
