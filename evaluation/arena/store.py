"""The arena's memory: runs and votes in one SQLite file (`Arena`), its schema and migrations, the keyed
tags of voters and owners, and the exports (CSV, JSON and the audit).

Each vote is one row with the text, both systems (`engine:voice`), which one was played on the left,
the choice (a, b, tie, both_bad: which *system* won, not which screen side), both clips' metrics, the
text's prompt category and language (`evaluation.prompts.classify` of the text played) and the voter's
optional reason tags (`REASONS`).
Finished runs (with their metrics and an optional manifest) get rows of their own. The database is
`ARENA_DB` (default `<project>/data/arena.sqlite3`), opened lazily on first use with a short busy
timeout, in WAL mode, schema versioned by `PRAGMA user_version`; a file of an older schema is migrated
in place on first use (schema 1 -> 2: the category, language and reasons columns, the first two filled
in by classifying each stored vote's text). A damaged, locked or unwritable file
never breaks construction: it surfaces on use as `ArenaUnavailable` (one sentence), and
`Arena.available()` / `Arena.problem` let the UI switch votes off while the compare tab keeps working.
A file deleted, replaced or overwritten while the app runs (or its WAL file) is noticed on the next
use and opened anew, or refused as damaged: a vote never goes into a file nobody can read again. Runs
beyond `ARENA_MAX_RUNS` (default 10,000) are pruned oldest first, except runs a vote points at (votes
themselves, with the figures they were cast on, are kept). The leaderboard is computed once per state
of the votes table and cached until the next vote. Exports hold votes and figures; the typed texts and
ASR transcripts only with `ARENA_EXPORT_TEXTS=1` (a cell that a spreadsheet would read as a formula is
escaped).

Schema 3: each vote keeps its voter as a keyed hash of the counting key (`hf:…` signed in, `ip:…` by
address; HMAC-SHA256 with `ARENA_SECRET` or a secret made once and kept in the database), whether its
text is a built-in prompt, whether a clip was heard past the listening gate, and its flag and weight
(`evaluation.arena.trust`). Shared saved voices carry their owner's tag (`owner_tag`, a keyed hash) in
the system id, so two owners' "narrator" are two systems.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engines.base import InputError, UnavailableError
from engines.settings import settings

from ..prompts import classify
from .board import (
    BUILTIN,
    _board_kind,
    _reason_tally,
    _subset,
    _valid_choice,
    board_keys,
    board_name,
    reason_keys,
    system_id,
)
from .statistics import agreement, rank
from .trust import COUNTED, FLAGGED, LEFT_OUT, _others, flags, is_builtin, require_login, standings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
# Metric columns first in this order in CSV exports; any other keys follow alphabetically.
METRIC_ORDER = (
    "ttfa_s", "total_s", "rtf", "duration_s", "lufs", "error_rate", "error_unit", "wer", "wer_unit", "transcript",
    "similarity", "mos",
)  # fmt: skip
NOT_FINISHED = "Both clips must finish before you vote."
TEXT_METRICS = ("transcript",)  # what a clip's metrics hold of its text (the ASR's hearing of it)
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (OWASP CSV injection)

_SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,          -- UTC, ISO 8601
    text TEXT NOT NULL,
    engine TEXT NOT NULL,
    voice TEXT NOT NULL,
    system TEXT NOT NULL,              -- engine:voice
    metrics TEXT NOT NULL,             -- JSON object
    manifest TEXT                      -- JSON object or NULL
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    text TEXT NOT NULL,
    a_system TEXT NOT NULL, a_engine TEXT NOT NULL, a_voice TEXT NOT NULL,
    b_system TEXT NOT NULL, b_engine TEXT NOT NULL, b_voice TEXT NOT NULL,
    left_system TEXT NOT NULL,         -- the randomized sides as the voter saw them
    right_system TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_bad')),
    a_metrics TEXT NOT NULL,           -- JSON objects
    b_metrics TEXT NOT NULL,
    a_run_id INTEGER,                  -- runs.id when the clip was recorded as a run
    b_run_id INTEGER,
    category TEXT,                     -- evaluation.prompts category of the text (schema 2)
    language TEXT,                     -- its ISO 639-1 code, NULL when it has no letters (schema 2)
    reasons TEXT NOT NULL DEFAULT '[]', -- JSON list of REASONS keys (schema 2)
    voter TEXT,                        -- keyed hash of the counting key, NULL before schema 3
    builtin INTEGER,                   -- 1: a built-in prompt, 0: a typed text (schema 3)
    listened INTEGER,                  -- 1: a clip heard past the gate, 0: not, NULL: unknown (schema 3)
    flag TEXT,                         -- why the vote was flagged (schema 3)
    weight REAL NOT NULL DEFAULT 1     -- 0 when flagged (schema 3)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS votes_by_system ON votes (a_system, b_system);
COMMIT;
"""
# Columns added by each schema version (version, column, declaration), for files made before it
_ADDED = (
    (2, "category", "TEXT"),
    (2, "language", "TEXT"),
    (2, "reasons", "TEXT NOT NULL DEFAULT '[]'"),
    (3, "voter", "TEXT"),
    (3, "builtin", "INTEGER"),
    (3, "listened", "INTEGER"),
    (3, "flag", "TEXT"),
    (3, "weight", "REAL NOT NULL DEFAULT 1"),
)
RUN_COLUMNS = ("id", "created_at", "text", "engine", "voice", "system", "metrics", "manifest")
VOTE_COLUMNS = (
    "id", "created_at", "text", "a_system", "a_engine", "a_voice", "b_system", "b_engine", "b_voice",
    "left_system", "right_system", "choice", "a_metrics", "b_metrics", "a_run_id", "b_run_id",
    "category", "language", "reasons", "voter", "builtin", "listened", "flag", "weight",
)  # fmt: skip
AUDIT_COLUMNS = (
    "id",
    "created_at",
    "voter",
    "a_system",
    "b_system",
    "choice",
    "builtin",
    "listened",
    "flag",
    "standing",
)
_JSON_COLUMNS = {"metrics", "manifest", "a_metrics", "b_metrics", "reasons"}
_SYSTEM_KEYS = ("system", "engine", "voice")
_CSV_PREFIX = {"metrics": "metrics", "a_metrics": "a", "b_metrics": "b"}  # metric JSON -> one column per key


class ArenaUnavailable(UnavailableError):
    """The vote database cannot be used (damaged, locked, unwritable); the message is one sentence."""


def default_db_path() -> Path:
    """`ARENA_DB` if set, else `<project>/data/arena.sqlite3` (the folder is made on first use)."""
    configured = settings().arena_db
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[2] / "data" / "arena.sqlite3"  # evaluation/arena/ -> the project


def max_runs() -> int:
    """`ARENA_MAX_RUNS` (default 10,000): how many runs are kept."""
    return settings().arena_max_runs


def export_texts() -> bool:
    """`ARENA_EXPORT_TEXTS=1`: exports keep the typed texts and ASR transcripts (off by default: they are
    other visitors' words)."""
    return settings().arena_export_texts


class Arena:
    """Runs and votes in one SQLite file. Nothing is opened until a method needs it."""

    def __init__(
        self, path: str | os.PathLike | None = None, timeout: float = 2.0, keep_runs: int | None = None
    ) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.timeout = timeout
        self.keep_runs = max_runs() if keep_runs is None else keep_runs
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple | None = None  # `_fingerprint()` of the files when the connection opened them
        self._lock = threading.RLock()
        self._problem: str | None = None
        self._board: tuple[tuple, list[dict[str, Any]]] | None = None  # (votes state + arguments, rows)

    @property
    def problem(self) -> str | None:
        """The last failure's sentence, or None when the last use worked."""
        return self._problem

    def available(self) -> bool:
        """Open the database (creating it if needed); False with `problem` set if that fails."""
        try:
            with self._db() as conn:
                conn.execute("SELECT count(*) FROM votes").fetchone()
        except ArenaUnavailable:
            return False
        return True

    # --- writing -------------------------------------------------------------------------------------

    def record_run(
        self, text: str, engine: str, voice: str, metrics: Mapping[str, Any], manifest: Mapping | None = None
    ) -> int:
        """Store one finished run; returns its id."""
        _require_system(engine, voice)
        if not isinstance(metrics, Mapping):
            raise InputError("A run's metrics must be a dictionary.")
        row = (
            _now(), str(text), engine, voice, system_id(engine, voice), _to_json(metrics),
            None if manifest is None else _to_json(manifest),
        )  # fmt: skip
        with self._db() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (created_at, text, engine, voice, system, metrics, manifest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            run_id = int(cursor.lastrowid)
            self._prune(conn)
            return run_id

    def _prune(self, conn: sqlite3.Connection) -> int:
        """Delete the oldest runs past `keep_runs` that no vote points at; returns how many went."""
        excess = conn.execute("SELECT count(*) FROM runs").fetchone()[0] - self.keep_runs
        if excess <= 0:
            return 0
        cursor = conn.execute(
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE id NOT IN"
            " (SELECT a_run_id FROM votes WHERE a_run_id IS NOT NULL"
            "  UNION SELECT b_run_id FROM votes WHERE b_run_id IS NOT NULL)"
            " ORDER BY id LIMIT ?)",
            (excess,),
        )
        return cursor.rowcount

    def record_vote(
        self,
        text: str,
        a: Mapping[str, Any] | None,
        b: Mapping[str, Any] | None,
        choice: str,
        left: str = "a",
        reasons: Iterable[str] | None = (),
        voter: str | None = None,
        listened: bool | None = None,
    ) -> int:
        """Store one vote; returns its id.

        `a` and `b` are the two clips as `{"engine", "voice", "metrics", "run_id" (optional)}`; a clip
        without metrics has not finished. `choice` names the winning system ('a', 'b', 'tie',
        'both_bad'); `left` says which of them was played on the left (use `from_screen` to convert
        a vote cast on screen sides); `reasons`: the voter's tags (`REASONS`); `voter`: the counting
        key (`evaluation.ballot.counting_key`; stored as its keyed hash); `listened`: whether a clip was
        heard past the gate. The category and language are the text's own (`evaluation.prompts.classify`).
        The votes' patterns are looked for again afterwards (`Rules`).
        """
        choice = _valid_choice(choice)
        tags = reason_keys(reasons)
        if left not in ("a", "b"):
            raise InputError(f"The left clip is 'a' or 'b'; got {left!r}.")
        if not isinstance(text, str) or not text.strip():
            raise InputError(NOT_FINISHED)
        sides = [_side(a), _side(b)]
        if sides[0]["system"] == sides[1]["system"]:
            raise InputError("Both clips come from the same voice; a vote needs two different systems.")
        first, second = sides if left == "a" else sides[::-1]
        row = (
            _now(), text,
            *(sides[0][k] for k in _SYSTEM_KEYS), *(sides[1][k] for k in _SYSTEM_KEYS),
            first["system"], second["system"], choice,
            sides[0]["metrics"], sides[1]["metrics"], sides[0]["run_id"], sides[1]["run_id"],
            *_kind(text), json.dumps(tags),
        )  # fmt: skip
        with self._db() as conn:
            tag = None if voter is None else self._voter_tag(conn, voter)
            row += (tag, int(is_builtin(text)), None if listened is None else int(bool(listened)), None, 1.0)
            cursor = conn.execute(
                f"INSERT INTO votes ({', '.join(VOTE_COLUMNS[1:])}) VALUES ({', '.join('?' * len(row))})", row
            )
            _reflag(conn)
            return int(cursor.lastrowid)

    def flag_of(self, vote_id: int) -> str | None:
        """Why a stored vote was flagged (None: it was not)."""
        with self._db() as conn:
            found = conn.execute("SELECT flag FROM votes WHERE id = ?", (int(vote_id),)).fetchone()
        return None if found is None else found[0]

    def owner_tag(self, owner: str | None) -> str:
        """A short, stable tag of a voice's owner that does not reveal it (keyed hash): what tells two
        owners' shared voices of one name apart in a system id ("" for no owner)."""
        if not owner:
            return ""
        try:
            with self._db() as conn:
                key = _secret(conn)
        except ArenaUnavailable:
            key = _fallback_secret()
        return hmac.new(key, b"owner:" + owner.encode("utf-8"), hashlib.sha256).hexdigest()[:8]

    def _voter_tag(self, conn: sqlite3.Connection, voter: str) -> str:
        kind, _, _ = voter.partition(":")
        digest = hmac.new(_secret(conn), b"voter:" + voter.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
        return f"{kind if kind in ('hf', 'ip') else 'other'}:{digest}"

    # --- reading -------------------------------------------------------------------------------------

    def votes(self) -> list[dict[str, Any]]:
        """Every vote, oldest first, metrics as dictionaries."""
        return self._rows("votes", VOTE_COLUMNS)

    def runs(self) -> list[dict[str, Any]]:
        """Every recorded run, oldest first, metrics and manifest as dictionaries."""
        return self._rows("runs", RUN_COLUMNS)

    def leaderboard(
        self,
        confidence: float = 0.95,
        bootstrap: int = 200,
        seed: int = 0,
        category: str | None = None,
        language: str | None = None,
        board: str = BUILTIN,
    ) -> list[dict[str, Any]]:
        """Ratings of every system with at least one counted vote, best first (see `rank`), on the
        board of built-in prompts (`board` "built-in", the main one) or of typed texts ("typed"), over all
        its votes or the subset of one prompt category and/or language; `votes` counts the counted
        votes, `flagged` and `left_out` the system's others; each row also says its `board`
        (`board_name`) and counts the reason tags of the system's votes (`reasons`, and apart those it
        won, `reasons_won`, and lost, `reasons_lost`). Computed again only when the votes have changed
        (a vote from any process) since the last call with the same arguments. A category or language
        that is not one gets one sentence (`InputError`)."""
        category, language = board_keys(category, language)
        kind = _board_kind(board)
        with self._db() as conn:
            key = (
                *conn.execute("SELECT max(id), count(*) FROM votes").fetchone(),
                confidence, bootstrap, seed, category, language, kind, require_login(),
            )  # fmt: skip
            if self._board is not None and self._board[0] == key:
                return [dict(row) for row in self._board[1]]
            votes = self._standings(conn, category, language, kind)
        found = [(v["a_system"], v["b_system"], v["choice"], v["reasons"]) for v in votes if v["standing"] == COUNTED]
        rows = rank([row[:3] for row in found], confidence=confidence, bootstrap=bootstrap, seed=seed)
        tags = _reason_tally(found)
        name = board_name(category, language, kind)
        others = _others(votes)
        for row in rows:
            row.update(tags[row["system"]], **others[row["system"]], board=name)
        self._board = (key, rows)
        return [dict(row) for row in rows]

    def trust(self, category: str | None = None, language: str | None = None, board: str = BUILTIN) -> dict[str, Any]:
        """How far a board can be trusted: its votes `counted`, `flagged` and `left_out`, and how many
        of each reason (`flags`, `left_out_for`)."""
        category, language = board_keys(category, language)
        with self._db() as conn:
            votes = self._standings(conn, category, language, _board_kind(board))
        flags = Counter(v["flag"] for v in votes if v["standing"] == FLAGGED)
        left = Counter(v["why"] for v in votes if v["standing"] == LEFT_OUT)
        return {
            "counted": sum(v["standing"] == COUNTED for v in votes), "flagged": sum(flags.values()),
            "left_out": sum(left.values()), "flags": dict(flags), "left_out_for": dict(left),
        }  # fmt: skip

    def _standings(
        self, conn: sqlite3.Connection, category: str | None, language: str | None, kind: str | None
    ) -> list[dict[str, Any]]:
        """The votes of a board (all votes when `kind` is None), each with its `standing` and why."""
        where, args = _subset(category, language, kind)
        columns = ("id", "text", "a_system", "b_system", "choice", "reasons", "voter", "flag")
        found = conn.execute(f"SELECT {', '.join(columns)} FROM votes{where} ORDER BY id", args).fetchall()
        return standings([dict(zip(columns, row, strict=True)) for row in found], require_login())

    def agreement(self, language: str | None = None, confidence: float = 0.95) -> list[dict[str, Any]]:
        """`agreement` over the stored votes that are not flagged (of one language, if given)."""
        _, language = board_keys(None, language)
        where, args = _subset(None, language)
        where += " AND flag IS NULL" if where else " WHERE flag IS NULL"
        columns = ("a_metrics", "b_metrics", "choice", "category")
        with self._db() as conn:
            found = conn.execute(f"SELECT {', '.join(columns)} FROM votes{where}", args).fetchall()
        votes = [
            {"a_metrics": json.loads(a), "b_metrics": json.loads(b), "choice": c, "category": k} for a, b, c, k in found
        ]
        return agreement(votes, confidence=confidence)

    # --- exports -------------------------------------------------------------------------------------

    def export_csv(self, kind: str) -> str:
        """Votes or runs as CSV text; each metric is a column of its own (`a.wer`, `metrics.rtf`...)."""
        rows, columns = self._export_rows(kind)
        nested = {c: _CSV_PREFIX[c] for c in columns if c in _CSV_PREFIX}
        keys = {c: _metric_keys(row[c] for row in rows) for c in nested}
        header = [c for c in columns if c not in nested]
        header += [f"{prefix}.{k}" for c, prefix in nested.items() for k in keys[c]]
        flat_rows = [
            {c: _cell(row[c]) for c in columns if c not in nested}
            | {f"{prefix}.{k}": _cell(row[c].get(k)) for c, prefix in nested.items() for k in keys[c]}
            for row in rows
        ]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(flat_rows)
        return out.getvalue()

    def export_json(self, kind: str) -> str:
        """Votes or runs as a JSON array of objects (metrics and manifests nested)."""
        rows, _ = self._export_rows(kind)
        return json.dumps(rows, ensure_ascii=False, indent=2)

    def export_audit(self) -> str:
        """The audit as CSV: every flagged or left-out vote, with its voter's tag, its reason and how it
        stands (counted votes are not listed)."""
        with self._db() as conn:
            votes = {v["id"]: v for v in self._standings(conn, None, None, None)}
            found = conn.execute(f"SELECT {', '.join(AUDIT_COLUMNS[:-1])} FROM votes ORDER BY id").fetchall()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(AUDIT_COLUMNS)
        for row in found:
            standing = votes[row[0]]
            if standing["standing"] != COUNTED:
                reason = standing["flag"] if standing["standing"] == FLAGGED else standing["why"]
                writer.writerow([_cell(v) for v in (*row[:-1], reason, standing["standing"])])
        return out.getvalue()

    def export_files(self, folder: str | os.PathLike) -> list[Path]:
        """Write votes and runs as CSV and JSON into a folder (for download buttons); returns the paths.

        The names are fixed (arena-votes.csv, ...): give each request a folder of its own.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for kind in ("votes", "runs"):
            for suffix, export in (("csv", self.export_csv), ("json", self.export_json)):
                path = folder / f"arena-{kind}.{suffix}"
                path.write_text(export(kind), encoding="utf-8")
                paths.append(path)
        path = folder / "arena-audit.csv"
        path.write_text(self.export_audit(), encoding="utf-8")
        return [*paths, path]

    # --- the database --------------------------------------------------------------------------------

    def _export_rows(self, kind: str) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
        """The rows and columns an export holds: votes and figures; the typed texts and the ASR
        transcripts only with `ARENA_EXPORT_TEXTS=1`."""
        if kind == "votes":
            rows, columns = self.votes(), VOTE_COLUMNS
        elif kind == "runs":
            rows, columns = self.runs(), RUN_COLUMNS
        else:
            raise ValueError(f"kind must be 'votes' or 'runs', not {kind!r}")
        if export_texts():
            return rows, columns
        columns = tuple(c for c in columns if c != "text")
        return [_without_texts(row, columns) for row in rows], columns

    def _rows(self, table: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        with self._db() as conn:
            fetched = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id").fetchall()
        decode = [c in _JSON_COLUMNS for c in columns]
        return [
            {c: json.loads(v) if d and v is not None else v for c, d, v in zip(columns, decode, row, strict=True)}
            for row in fetched
        ]

    def close(self) -> None:
        """Close the connection (the next use opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _fingerprint(self) -> tuple | None:
        """(device, inode, header intact, the WAL file's device and inode) of the files on disk; None when
        the database file is gone. A change since the connection opened them means it must open them again:
        an open connection would go on reading its cache and writing into files nobody will read."""
        try:
            stat = os.stat(self.path)
            with open(self.path, "rb") as handle:
                intact = handle.read(16) == b"SQLite format 3\x00"
        except FileNotFoundError:
            return None
        try:
            wal = os.stat(f"{self.path}-wal")
            wal_id = (wal.st_dev, wal.st_ino)
        except FileNotFoundError:
            wal_id = None
        return (stat.st_dev, stat.st_ino, intact, wal_id)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The open connection, one user at a time; sqlite and OS errors become one sentence.

        After a failure the connection is dropped, so the next use reopens the file (it may have been
        unlocked or replaced meanwhile).
        """
        with self._lock:
            try:
                if self._conn is not None and self._fingerprint() != self._identity:
                    log.warning("arena database %s was changed on disk (deleted, replaced or damaged)", self.path)
                    self.close()
                if self._conn is None:
                    self._conn = self._open()
                    self._identity = self._fingerprint()
                yield self._conn
                self._problem = None
            except (ArenaUnavailable, sqlite3.Error, OSError) as exc:
                error = exc if isinstance(exc, ArenaUnavailable) else _explain(exc, self.path)
                log.warning("arena database %s: %s (%s)", self.path, exc, getattr(exc, "sqlite_errorname", ""))
                self._problem = str(error)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise error from None

    def _open(self) -> sqlite3.Connection:
        """Connect (autocommit, busy timeout), switch to WAL and create the schema if it is missing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # a damaged file fails here
            if version > SCHEMA_VERSION:
                raise ArenaUnavailable(
                    f"The vote database {self.path.name} was written by a newer version of this app "
                    f"(schema {version}); votes are off."
                )
            if version < SCHEMA_VERSION:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.info("arena database %s stays in %s journal mode", self.path, mode)
                conn.executescript(_SCHEMA)  # a new file: every table; an older one: left as it is
                _migrate(conn)
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across crashes of the app
        except BaseException:
            conn.close()
            raise
        return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the votes table to `SCHEMA_VERSION` in place: add the columns it lacks (`_ADDED`), fill a
    new category and language by classifying each vote's text, and set the version. One transaction,
    taken before looking (two processes opening an old file at once migrate it once)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = {row[1] for row in conn.execute("PRAGMA table_info(votes)")}
        added = [name for _, name, _ in _ADDED if name not in have]
        for _, name, declaration in _ADDED:
            if name in added:
                conn.execute(f"ALTER TABLE votes ADD COLUMN {name} {declaration}")
        if "category" in added:
            texts = conn.execute("SELECT id, text FROM votes").fetchall()
            conn.executemany(
                "UPDATE votes SET category = ?, language = ? WHERE id = ?", [(*_kind(t), i) for i, t in texts]
            )
            if texts:
                log.info("arena database: %d votes given a prompt category and language", len(texts))
        if "builtin" in added:  # schema 3: which board each vote belongs to; its patterns where data allows
            texts = conn.execute("SELECT id, text FROM votes").fetchall()
            conn.executemany("UPDATE votes SET builtin = ? WHERE id = ?", [(int(is_builtin(t)), i) for i, t in texts])
            _reflag(conn)
        conn.execute("CREATE INDEX IF NOT EXISTS votes_by_category ON votes (category)")
        conn.execute("CREATE INDEX IF NOT EXISTS votes_by_language ON votes (language)")
        conn.execute("CREATE INDEX IF NOT EXISTS votes_by_voter ON votes (voter)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _kind(text: str) -> tuple[str, str | None]:
    kind = classify(text)
    return kind.category, kind.language


def _reflag(conn: sqlite3.Connection) -> int:
    """Look for the patterns over the stored votes and flag the votes newly caught (weight 0); a flag
    stays. Returns how many were flagged now."""
    columns = ("id", "created_at", "voter", "a_system", "b_system", "choice", "listened", "flag")
    votes = [dict(zip(columns, row, strict=True)) for row in conn.execute(
        f"SELECT {', '.join(columns)} FROM votes WHERE voter IS NOT NULL"
    )]  # fmt: skip
    already = {v["id"] for v in votes if v["flag"]}
    new = [(reason, i) for i, reason in flags(votes).items() if i not in already]
    conn.executemany("UPDATE votes SET flag = ?, weight = 0 WHERE id = ?", new)
    if new:
        log.info("arena: %d votes flagged", len(new))
    return len(new)


_process_secret = secrets.token_bytes(32)


def _fallback_secret() -> bytes:
    """`ARENA_SECRET`, else a secret of this process (only while the database cannot be used)."""
    configured = settings().arena_secret
    return configured.get_secret_value().encode("utf-8") if configured else _process_secret


def _secret(conn: sqlite3.Connection) -> bytes:
    """The key of voter and owner tags: `ARENA_SECRET`, else one made once and kept in the database."""
    configured = settings().arena_secret
    if configured:
        return configured.get_secret_value().encode("utf-8")
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)", (secrets.token_hex(32),))
    return bytes.fromhex(conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0])


def _require_system(engine: Any, voice: Any) -> None:
    if not (isinstance(engine, str) and engine.strip() and isinstance(voice, str) and voice.strip()):
        raise InputError("Each clip needs an engine and a voice.")


def _side(side: Mapping[str, Any] | None) -> dict[str, Any]:
    """One clip of a vote, checked: finished (non-empty metrics), with an engine and a voice."""
    if not isinstance(side, Mapping) or not isinstance(side.get("metrics"), Mapping) or not side["metrics"]:
        raise InputError(NOT_FINISHED)
    engine, voice = side.get("engine"), side.get("voice")
    _require_system(engine, voice)
    run_id = side.get("run_id")
    return {
        "engine": engine, "voice": voice, "system": system_id(engine, voice), "metrics": _to_json(side["metrics"]),
        "run_id": None if run_id is None else int(run_id),
    }  # fmt: skip


def _without_texts(row: Mapping[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """A row without the typed text and without the transcripts in its metrics."""
    return {
        c: {k: v for k, v in row[c].items() if k not in TEXT_METRICS} if c in _CSV_PREFIX and row[c] else row[c]
        for c in columns
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars and arrays to Python, NaN and infinities to None, other objects to str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):
        return value
    return str(value)


def _to_json(value: Mapping[str, Any]) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, allow_nan=False)


def _metric_keys(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    present = set().union(*(d.keys() for d in dicts))
    return [k for k in METRIC_ORDER if k in present] + sorted(present.difference(METRIC_ORDER))


def _cell(value: Any) -> Any:
    """One CSV cell; text a spreadsheet would run as a formula gets a leading quote (OWASP)."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(CSV_FORMULA):
        return "'" + value
    return "" if value is None else value


def _explain(exc: BaseException, path: Path) -> ArenaUnavailable:
    """One sentence for a failed database operation."""
    code = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    name = path.name
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return ArenaUnavailable(f"The vote database {name} is locked by another process; try again in a moment.")
    if code.startswith("SQLITE_NOTADB") or "not a database" in text:
        return ArenaUnavailable(
            f"The vote database {name} is damaged (not a SQLite database); votes are off until it is replaced."
        )
    if code.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return ArenaUnavailable(
            f"The vote database {name} is damaged (its contents are malformed); votes are off until it is replaced."
        )
    if code.startswith("SQLITE_FULL") or "disk is full" in text:
        return ArenaUnavailable(f"The disk holding the vote database {name} is full; votes are off for now.")
    if isinstance(exc, OSError) or code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_IO")):
        return ArenaUnavailable(
            f"The vote database {name} cannot be created or written where it is; set ARENA_DB to a writable path."
        )
    return ArenaUnavailable(f"The vote database {name} cannot be used; votes are off.")
