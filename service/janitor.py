"""The folder the running app writes, and its bounds: what is older than `OUTPUT_TTL_S` goes, and the
whole stays under `OUTPUT_MAX_MB`, oldest first.

`output_dir()` (`TTS_OUTPUT_DIR`, default `<temp>/tts-compare`) holds the page's clips, batch folders and
zips, metrics files and arena exports; Gradio's own cache (uploads, copies of returned files, streamed
segments) is `GRADIO_TEMP_DIR`, which the app points at `output_dir()/gradio-cache` unless the operator
set it. Both are swept by one `Janitor`: a daemon thread every `SWEEP_EVERY_S` and soon after each
write (`written()`). Each top-level entry of a folder (a file, or a folder such as `batch-…/` or one of
Gradio's hash folders) is one unit, aged by its newest file (written or copied there; empty folders
stay). Units younger than `GRACE_S` are never removed to meet the size bound (they may still be being
written or downloaded); expired ones always are. Nothing else is touched: the CLI's `--out` files,
`VOICE_LIBRARY_DIR` and `ARENA_DB` live elsewhere. The janitor also runs other stores' own cleanups
(`chores`, at most every `CHORES_EVERY_S`): the app's removes owners idle for `OWNER_IDLE_DAYS`
(`engines.voice_library.sweep_idle_owners`). This module imports nothing from Gradio, so `app.py`
can set `GRADIO_TEMP_DIR` before Gradio reads it at import.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engines.settings import settings
from engines.voice_library import sweep_idle_owners

log = logging.getLogger(__name__)

GRADIO_CACHE_NAME = "gradio-cache"
SWEEP_EVERY_S = 60.0
GRACE_S = 30.0  # a unit this young may still be being written or fetched: the size bound waits for it
CHORES_EVERY_S = 3600.0  # other stores' cleanups (idle owners) walk their folders: hourly is enough


def output_dir() -> Path:
    """`TTS_OUTPUT_DIR`, else `<temp>/tts-compare`: where the app writes what visitors download."""
    return Path(settings().tts_output_dir or Path(tempfile.gettempdir()) / "tts-compare")


def ttl_s() -> float:
    """`OUTPUT_TTL_S`: seconds a written file is kept (default 3600)."""
    return settings().output_ttl_s


def max_bytes() -> int:
    """`OUTPUT_MAX_MB`: the most the written folders may hold together, in bytes (default 2048 MB)."""
    return int(settings().output_max_mb * 2**20)


def gradio_cache_dir() -> Path:
    """Gradio's cache folder as Gradio computes it (`GRADIO_TEMP_DIR`, else `<temp>/gradio`)."""
    return Path(settings().gradio_temp_dir or Path(tempfile.gettempdir()) / "gradio")


def use_own_gradio_cache() -> Path:
    """Point Gradio's cache into `output_dir()` unless the operator chose a folder; call before importing
    Gradio (it reads the variable at import). Returns the folder."""
    # a write that configures Gradio, which reads GRADIO_TEMP_DIR itself (`settings()` sees it too)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(output_dir() / GRADIO_CACHE_NAME))
    return gradio_cache_dir()


@dataclass(frozen=True)
class Unit:
    """One top-level entry of a swept folder: removed whole."""

    path: Path
    size: int
    newest: float  # mtime of its newest file (the entry's own for a file)


def _changed(stat: os.stat_result) -> float:
    """When a file was last written or put there: a copy that keeps an old modification time (Gradio
    copies files into its cache with `copy2`) is as young as the copy (its inode change time)."""
    return max(stat.st_mtime, stat.st_ctime)


def _unit(path: Path) -> Unit | None:
    """The entry as a unit; None for one that is gone or an empty folder (it holds nothing, and Gradio
    makes some at start that it expects to stay)."""
    try:
        stat = path.lstat()
    except FileNotFoundError:
        return None
    if not path.is_dir() or path.is_symlink():
        return Unit(path, stat.st_size, _changed(stat))
    size, newest = 0, None  # a folder is as old as its newest file
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                inner = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            size += inner.st_size
            newest = _changed(inner) if newest is None else max(newest, _changed(inner))
    return None if newest is None else Unit(path, size, newest)


def _remove(unit: Unit) -> bool:
    try:
        if unit.path.is_dir() and not unit.path.is_symlink():
            shutil.rmtree(unit.path)
        else:
            unit.path.unlink()
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("could not remove %s: %s", unit.path, exc)
        return False
    return True


class Janitor:
    """Keeps folders bounded by age and total size; `sweep()` once, `start()` a daemon thread."""

    def __init__(
        self,
        roots: list[Path],
        ttl_s: float,
        max_bytes: int,
        grace_s: float = GRACE_S,
        every_s: float = SWEEP_EVERY_S,
        chores: list[Callable[[], object]] = (),
    ) -> None:
        self.roots = [Path(r) for r in roots]
        self.ttl_s, self.max_bytes, self.grace_s, self.every_s = ttl_s, max_bytes, grace_s, every_s
        self.chores, self._chores_due = list(chores), 0.0
        self._wake = threading.Event()
        self._sweeping = threading.Lock()
        self._thread: threading.Thread | None = None

    def units(self) -> list[Unit]:
        """Every unit of every root, oldest first (a root nested in another is not a unit of it)."""
        roots = {r.resolve() for r in self.roots}
        found = []
        for root in self.roots:
            try:
                entries = list(root.iterdir())
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.resolve() in roots:
                    continue
                unit = _unit(entry)
                if unit is not None:
                    found.append(unit)
        return sorted(found, key=lambda u: u.newest)

    def sweep(self, now: float | None = None) -> dict:
        """Remove expired units, then the oldest until the total fits (sparing units under the grace age).
        Returns {"removed": n, "freed_bytes": b, "kept_bytes": b, "kept": n}."""
        with self._sweeping:
            now = time.time() if now is None else now
            units = self.units()
            total = sum(u.size for u in units)
            removed = freed = 0
            kept = []
            for unit in units:  # oldest first
                age = now - unit.newest
                expired = age > self.ttl_s
                over = total > self.max_bytes and age > self.grace_s
                if (expired or over) and _remove(unit):
                    removed, freed, total = removed + 1, freed + unit.size, total - unit.size
                else:
                    kept.append(unit)
            if removed:
                log.info(
                    "output janitor removed %d entries (%.1f MB); %.1f MB kept", removed, freed / 2**20, total / 2**20
                )
            self._run_chores()
            return {"removed": removed, "freed_bytes": freed, "kept_bytes": total, "kept": len(kept)}

    def _run_chores(self) -> None:
        """Each chore when due (one failing never stops the others or the sweep)."""
        if time.monotonic() < self._chores_due:
            return
        self._chores_due = time.monotonic() + CHORES_EVERY_S
        for chore in self.chores:
            try:
                chore()
            except Exception:
                log.exception("janitor chore %s failed", getattr(chore, "__name__", chore))

    def written(self) -> None:
        """Something was written: sweep soon (in the janitor's thread, never in the caller's)."""
        self._wake.set()

    def start(self) -> Janitor:
        """Sweep every `every_s` and after each `written()`, in a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="output-janitor", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # a sweep must never end the thread
                log.exception("output janitor sweep failed")
            self._wake.wait(self.every_s)
            self._wake.clear()


_app_janitor: Janitor | None = None


def start() -> Janitor:
    """The app's janitor over `output_dir()` and Gradio's cache, with the bounds of the environment, and the
    voice library's sweep of idle owners; started once (later calls return it)."""
    global _app_janitor
    if _app_janitor is None:
        roots = [output_dir(), gradio_cache_dir()]
        _app_janitor = Janitor(roots, ttl_s(), max_bytes(), chores=[sweep_idle_owners]).start()
    return _app_janitor


def written() -> None:
    """Tell the app's janitor, when it runs, that a file was written: it sweeps soon."""
    if _app_janitor is not None:
        _app_janitor.written()
