"""The blind A/B arena's memory: runs and votes in SQLite, and a Bradley–Terry leaderboard.

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
of the votes table and cached until the next vote.
Ratings are Bradley–Terry strengths (maximum a posteriori by Newton's method), ties and both-bad
votes counted as half a win each way, one virtual tie against a strength-1 opponent as a prior (so an
unbeaten system stays finite), shown as 1000 + 400·log10(strength) shifted to a mean of 1000, with
percentile bootstrap confidence intervals over resampled votes (seeded, so deterministic), widened to
the Laplace (posterior curvature) interval where that is wider, as it is for a few unanimous votes.
The board is ordered by the interval's lower bound; systems with fewer than `ARENA_MIN_VOTES` votes
are marked preliminary. A board is over all votes or over the subset of one prompt category and/or one
language (fitted on that subset alone), and counts each system's reason tags (on votes it won, lost, or
all). `agreement` says how often the better-measured clip (lower error rate; higher predicted MOS) was
the one chosen, overall and per category, with counts and a Wilson interval. Exports hold votes and
figures; the typed texts and ASR transcripts only with `ARENA_EXPORT_TEXTS=1` (a cell that a
spreadsheet would read as a formula is escaped). Which votes are taken (served, heard, once, proof of
work, caps per person) is `evaluation.ballot`.

What a taken vote is worth (schema 3): each vote keeps its voter as a keyed hash of the counting key
(`hf:…` signed in, `ip:…` by address; HMAC-SHA256 with `ARENA_SECRET` or a secret made once and kept in
the database), whether its text is a built-in prompt, and whether a clip was heard past the listening
gate. After every vote the patterns of `Rules` are looked for (votes under 3 s apart, sustained; more
than 30 in an hour; 80 % or more of one voter's picks to one system over 5 or more; voters who never
listen past the gate; several voters voting alike on the same pair within hours); a vote caught is
stored with its reason (`flag`) and weight 0, and stays flagged. A board is fitted on the counted votes:
unflagged, of its prompts (built-in prompts on the main board, typed texts on their own), each
(prompt, pair of systems) once per voter, and with `ARENA_REQUIRE_LOGIN=1` signed-in votes only; the
rest is "left out", with its reason. Shared saved voices carry their owner's tag (`owner_tag`, a keyed
hash) in the system id, so two owners' "narrator" are two systems.
"""

from __future__ import annotations

import csv
import functools
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
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from engines.base import InputError, UnavailableError
from engines.settings import env_int, env_number

from .prompts import ANY, CATEGORIES, category_key, classify, language_key, prompts

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
CHOICES = ("a", "b", "tie", "both_bad")
REASONS: dict[str, str] = {
    "naturalness": "naturalness",
    "pronunciation": "pronunciation",
    "pacing": "pacing",
    "voice_quality": "voice quality",
    "artefacts": "artefacts",
}  # key -> label: why the voter chose as they did (optional, any number of them)
# The figures a clip is "better-measured" by, and whether lower is better
BETTER_BY = {"error_rate": True, "mos": False}
# Metric columns first in this order in CSV exports; any other keys follow alphabetically.
METRIC_ORDER = (
    "ttfa_s", "total_s", "rtf", "duration_s", "lufs", "error_rate", "error_unit", "wer", "wer_unit", "transcript",
    "similarity", "mos",
)  # fmt: skip
NOT_FINISHED = "Both clips must finish before you vote."
DEFAULT_MIN_VOTES = 30
TEXT_METRICS = ("transcript",)  # what a clip's metrics hold of its text (the ASR's hearing of it)
PRIOR_TIES = 1.0  # virtual ties of every system against a fixed strength-1 opponent
ELO_SCALE = 400.0 / math.log(10.0)  # natural-log strength -> rating points
MAX_RUNS = 10_000  # default of `ARENA_MAX_RUNS`
BUILTIN, TYPED = "built-in", "typed"  # the two boards: votes on built-in prompts, votes on typed texts
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


@dataclass(frozen=True)
class Rules:
    """When a voter's votes are flagged (each threshold a setting, defaults as TTS Arena V2's)."""

    fast_s: float = 3.0  # `ARENA_FLAG_FAST_S`: votes closer than this...
    fast_run: int = 3  # `ARENA_FLAG_FAST_RUN`: ...this many times in a row
    per_hour: int = 30  # `ARENA_FLAG_PER_HOUR`: more votes than this in an hour
    one_sided: float = 0.8  # `ARENA_FLAG_ONE_SIDED`: this share of one voter's picks to one system...
    min_votes: int = 5  # `ARENA_FLAG_MIN_VOTES`: ...over at least this many picks (also: never listened)
    group_keys: int = 3  # `ARENA_FLAG_GROUP_KEYS`: this many voters, each voting...
    group_votes: int = 5  # `ARENA_FLAG_GROUP_VOTES`: ...this many times the same way on one pair...
    group_hours: float = 6.0  # `ARENA_FLAG_GROUP_HOURS`: ...within this many hours

    @classmethod
    def from_env(cls) -> Rules:
        d = cls()
        return cls(
            fast_s=env_number("ARENA_FLAG_FAST_S", d.fast_s, minimum=0.0),
            fast_run=env_int("ARENA_FLAG_FAST_RUN", d.fast_run, minimum=1),
            per_hour=env_int("ARENA_FLAG_PER_HOUR", d.per_hour, minimum=1),
            one_sided=env_number("ARENA_FLAG_ONE_SIDED", d.one_sided, minimum=0.5, maximum=1.0),
            min_votes=env_int("ARENA_FLAG_MIN_VOTES", d.min_votes, minimum=1),
            group_keys=env_int("ARENA_FLAG_GROUP_KEYS", d.group_keys, minimum=2),
            group_votes=env_int("ARENA_FLAG_GROUP_VOTES", d.group_votes, minimum=1),
            group_hours=env_number("ARENA_FLAG_GROUP_HOURS", d.group_hours, minimum=0.01),
        )

    def describe(self) -> str:
        """The rules in words, for the board's line on how it is protected."""
        return (
            f"votes under {self.fast_s:g} s apart ({self.fast_run} in a row), more than {self.per_hour} an hour, "
            f"{self.one_sided:.0%} or more of one voter's picks to one system (over {self.min_votes} or more), "
            f"voters who never listen past the gate, and {self.group_keys} or more voters voting alike "
            f"{self.group_votes} times on one pair within {self.group_hours:g} hours"
        )


FAST = "votes under {s:g} s apart"
HOURLY = "more than {n} votes in an hour"
ONE_SIDED = "{share:.0%} or more of picks to one system"
UNHEARD = "never listened past the gate"
ALIKE = "many voters voting alike on the same pair"


def require_login() -> bool:
    """`ARENA_REQUIRE_LOGIN=1`: only signed-in votes count (anonymous ones are stored, left out)."""
    return os.environ.get("ARENA_REQUIRE_LOGIN", "").strip().lower() in ("1", "true", "yes", "on")


def is_builtin(text: str) -> bool:
    """Whether a text is one of the built-in prompts (`evaluation.prompts`)."""
    return text in _builtin_texts()


@functools.cache
def _builtin_texts() -> frozenset[str]:
    return frozenset(p.text for p in prompts())


class ArenaUnavailable(UnavailableError):
    """The vote database cannot be used (damaged, locked, unwritable); the message is one sentence."""


def default_db_path() -> Path:
    """`ARENA_DB` if set, else `<project>/data/arena.sqlite3` (the folder is made on first use)."""
    configured = os.environ.get("ARENA_DB", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / "data" / "arena.sqlite3"


def max_runs() -> int:
    """`ARENA_MAX_RUNS` (default 10,000): how many runs are kept."""
    return env_int("ARENA_MAX_RUNS", MAX_RUNS, minimum=0) or MAX_RUNS


def system_id(engine: str, voice: str) -> str:
    """The display id of a system: `engine:voice` (voices may contain colons; engine ids do not)."""
    return f"{engine}:{voice}"


def split_system(system: str) -> tuple[str, str]:
    """`(engine, voice)` of a system id or a slot spec `engine:voice`; the voice keeps its own colons
    (a Kokoro blend `kokoro:af_heart:0.7,af_bella:0.3`). The one reading of that syntax."""
    engine, _, voice = str(system or "").strip().partition(":")
    return engine, voice.strip()


def reason_keys(reasons: Iterable[str] | str | None) -> list[str]:
    """Reason tags as their keys, in `REASONS` order, each once; labels and any case accepted; one
    sentence for anything else."""
    if reasons is None:
        return []
    if isinstance(reasons, str):
        reasons = [reasons]
    if not isinstance(reasons, list | tuple | set | frozenset):
        raise InputError(f"Reasons are a list of tags, such as {', '.join(REASONS.values())}.")
    by_name = {k: k for k in REASONS} | {label: k for k, label in REASONS.items()}
    chosen = set()
    for reason in reasons:
        key = by_name.get(str(reason).strip().lower().replace("-", " "), by_name.get(str(reason).strip().lower()))
        if key is None:
            allowed = ", ".join(REASONS.values())
            raise InputError(f"A reason is one or more of {allowed}; got {str(reason)[:40]!r}.")
        chosen.add(key)
    return [k for k in REASONS if k in chosen]


def board_name(category: str | None = None, language: str | None = None, board: str = BUILTIN) -> str:
    """Which board: "all votes", "category names", "language es", or both ("category names, language es");
    the typed texts' board says so first ("typed texts", "typed texts, language es")."""
    parts = ([f"category {category}"] if category else []) + ([f"language {language}"] if language else [])
    if _board_kind(board) == TYPED:
        return ", ".join(["typed texts", *parts])
    return ", ".join(parts) or "all votes"


def from_screen(screen_choice: str, left: str) -> str:
    """Turn a vote on screen sides (a = the left clip, b = the right one) into a vote on systems."""
    choice = _valid_choice(screen_choice)
    if left == "b" and choice in ("a", "b"):
        return "b" if choice == "a" else "a"
    return choice


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
        category, language = _board_keys(category, language)
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
        category, language = _board_keys(category, language)
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
        _, language = _board_keys(None, language)
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


def _board_keys(category: str | None, language: str | None) -> tuple[str | None, str | None]:
    """A board's category and language keys (None: any), checked."""
    category = category_key(category, allow_any=True) if category not in (None, "") else ANY
    return (None if category == ANY else category), language_key(language)


def _board_kind(board: object) -> str:
    value = str(board or BUILTIN).strip().lower().replace("_", "-")
    if value in ("built-in", "builtin", "main"):
        return BUILTIN
    if value == TYPED:
        return TYPED
    raise InputError(f"A board is {BUILTIN!r} (the built-in prompts) or {TYPED!r} (typed texts); got {value[:40]!r}.")


def _subset(category: str | None, language: str | None, kind: str | None = None) -> tuple[str, tuple]:
    """The WHERE clause and arguments of a board's votes (`kind`: built-in prompts, typed texts, or both)."""
    builtin = {BUILTIN: 1, TYPED: 0}.get(kind)
    pairs = (("category", category), ("language", language), ("coalesce(builtin, 0)", builtin))
    clauses = [(f"{column} = ?", value) for column, value in pairs if value is not None and value != ""]
    if not clauses:
        return "", ()
    return " WHERE " + " AND ".join(c for c, _ in clauses), tuple(v for _, v in clauses)


def _reason_tally(votes: Iterable[tuple[str, str, str, str | None]]) -> dict[str, dict[str, dict[str, int]]]:
    """Per system: each reason tag's count over its votes (`reasons`), those it won and those it lost."""
    empty = dict.fromkeys(REASONS, 0)
    tally: dict[str, dict[str, dict[str, int]]] = {}
    for a, b, choice, reasons in votes:
        for system in (a, b):
            tally.setdefault(system, {k: dict(empty) for k in ("reasons", "reasons_won", "reasons_lost")})
        for tag in json.loads(reasons or "[]"):
            if tag not in empty:
                continue
            for system in (a, b):
                tally[system]["reasons"][tag] += 1
            if choice in ("a", "b"):
                winner, loser = (a, b) if choice == "a" else (b, a)
                tally[winner]["reasons_won"][tag] += 1
                tally[loser]["reasons_lost"][tag] += 1
    return tally


# --- which votes count -----------------------------------------------------------------------------------

COUNTED, FLAGGED, LEFT_OUT = "counted", "flagged", "left out"
ANONYMOUS = "anonymous (sign-in required)"
REPEAT = "repeat of a prompt and pair by one voter"


def standings(votes: Iterable[Mapping[str, Any]], login_required: bool = False) -> list[dict[str, Any]]:
    """Each vote (oldest first; `id`, `text`, `a_system`, `b_system`, `voter`, `flag`) with its
    `standing`: flagged (it has a flag), left out (`why`: anonymous where sign-in is required, or a
    voter's repeat of a prompt on a pair of systems already voted on), else counted."""
    seen: set[tuple] = set()
    out = []
    for vote in votes:
        vote = dict(vote)
        voter = vote.get("voter")
        once = (voter, vote.get("text"), frozenset((vote.get("a_system"), vote.get("b_system"))))
        if vote.get("flag"):
            vote.update(standing=FLAGGED, why=vote["flag"])
        elif login_required and not str(voter or "").startswith("hf:"):
            vote.update(standing=LEFT_OUT, why=ANONYMOUS)
        elif voter is not None and once in seen:
            vote.update(standing=LEFT_OUT, why=REPEAT)
        else:
            vote.update(standing=COUNTED, why=None)
        if voter is not None and vote["standing"] != FLAGGED:
            seen.add(once)
        out.append(vote)
    return out


def _others(votes: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per system: its flagged and left-out votes."""
    tally: dict[str, dict[str, int]] = defaultdict(lambda: {"flagged": 0, "left_out": 0})
    for vote in votes:
        column = {FLAGGED: "flagged", LEFT_OUT: "left_out"}.get(vote["standing"])
        for system in (vote["a_system"], vote["b_system"]):
            tally[system]  # every system of the board has a row
            if column:
                tally[system][column] += 1
    return tally


def flags(votes: Iterable[Mapping[str, Any]], rules: Rules | None = None) -> dict[int, str]:
    """The votes the patterns of `rules` catch, `{id: reason}`, from votes with `id`, `created_at` (ISO
    8601), `voter` (votes without one are judged by no rule), `a_system`, `b_system`, `choice` and
    `listened`. The first rule that catches a vote names it."""
    rules = rules or Rules.from_env()
    by_voter: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for vote in sorted(votes, key=lambda v: v["id"]):
        if vote.get("voter"):
            by_voter[vote["voter"]].append({**vote, "t": _seconds(vote["created_at"])})
    caught: dict[int, str] = {}

    def catch(found: Iterable[Mapping[str, Any]], reason: str) -> None:
        for vote in found:
            caught.setdefault(vote["id"], reason)

    for mine in by_voter.values():
        times = [v["t"] for v in mine]
        run = 0  # votes in a row, each closer than fast_s to the one before
        for i in range(1, len(mine)):
            run = run + 1 if times[i] - times[i - 1] < rules.fast_s else 0
            if run >= rules.fast_run:
                catch(mine[i - run : i + 1], FAST.format(s=rules.fast_s))
        start = 0
        for i, t in enumerate(times):
            while times[start] <= t - 3600.0:
                start += 1
            if i - start + 1 > rules.per_hour:
                catch([mine[i]], HOURLY.format(n=rules.per_hour))
        picks = Counter(v["a_system"] if v["choice"] == "a" else v["b_system"] for v in mine if v["choice"] in "ab")
        decided = sum(picks.values())
        if decided >= rules.min_votes and max(picks.values()) >= rules.one_sided * decided:
            catch(mine, ONE_SIDED.format(share=rules.one_sided))
        known = [v["listened"] for v in mine if v.get("listened") is not None]
        if len(known) >= rules.min_votes and not any(known):
            catch(mine, UNHEARD)
    window = rules.group_hours * 3600.0
    for offset in (0.0, window / 2):  # two tilings of time, so a burst across a boundary is caught too
        groups: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for voter, mine in by_voter.items():
            for v in mine:
                pair = tuple(sorted((v["a_system"], v["b_system"])))
                groups[(pair, (v["t"] + offset) // window)][voter].append(v)
        for per_voter in groups.values():
            alike: dict[str, list] = defaultdict(list)  # outcome -> the votes of voters who always voted it
            for mine in per_voter.values():
                outcomes = {_outcome(v) for v in mine}
                if len(mine) >= rules.group_votes and len(outcomes) == 1:
                    alike[outcomes.pop()].append(mine)
            for voters in alike.values():
                if len(voters) >= rules.group_keys:
                    catch([v for mine in voters for v in mine], ALIKE)
    return caught


def _outcome(vote: Mapping[str, Any]) -> str:
    """What a vote said of its pair, whichever side each system was on: the winner, or tie/both_bad."""
    return {"a": vote["a_system"], "b": vote["b_system"]}.get(vote["choice"], vote["choice"])


def _seconds(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return 0.0


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
    configured = os.environ.get("ARENA_SECRET", "").strip()
    return configured.encode("utf-8") if configured else _process_secret


def _secret(conn: sqlite3.Connection) -> bytes:
    """The key of voter and owner tags: `ARENA_SECRET`, else one made once and kept in the database."""
    configured = os.environ.get("ARENA_SECRET", "").strip()
    if configured:
        return configured.encode("utf-8")
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)", (secrets.token_hex(32),))
    return bytes.fromhex(conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0])


# --- what the votes say of the measurements ---------------------------------------------------------------


def better_measured(a_metrics: Mapping[str, Any], b_metrics: Mapping[str, Any], figure: str) -> str | None:
    """'a' or 'b': the clip with the better `figure` (`BETTER_BY`: lower error rate, higher predicted
    MOS); None when either clip lacks it or both have the same value."""
    a, b = (m.get(figure) if isinstance(m, Mapping) else None for m in (a_metrics, b_metrics))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (a, b)) or a == b:
        return None
    return "a" if (a < b) == BETTER_BY[figure] else "b"


def agreement(votes: Iterable[Mapping[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """How often the better-measured clip was the one chosen, for each figure of `BETTER_BY`, over all
    votes (`scope` "all") and per prompt category (those with votes on that figure).

    Counted are the votes whose two clips differ in the figure. Each row: figure, scope, `votes`
    (decisive ones: A or B chosen), `chose_better` (of those, the better-measured clip was chosen),
    `share` (chose_better / votes, None without votes), `ci_low`/`ci_high` (Wilson interval of the share),
    `undecided` (ties and both-bad votes on such pairs, not in the share).
    """
    votes = list(votes)
    rows = []
    for figure in BETTER_BY:
        tally: dict[str, Counter] = {"all": Counter()}
        for vote in votes:
            better = better_measured(vote.get("a_metrics") or {}, vote.get("b_metrics") or {}, figure)
            if better is None:
                continue
            choice = vote.get("choice")
            outcome = "undecided" if choice not in ("a", "b") else ("better" if choice == better else "worse")
            for scope in ("all", vote.get("category") or "unknown"):
                tally.setdefault(scope, Counter())[outcome] += 1
        order = ["all", *CATEGORIES, "unknown"]
        for scope in sorted(tally, key=order.index):
            t = tally[scope]
            if scope != "all" and not sum(t.values()):
                continue
            decided = t["better"] + t["worse"]
            low, high = _wilson(t["better"], decided, confidence)
            rows.append(
                {
                    "figure": figure, "scope": scope, "votes": decided, "chose_better": t["better"],
                    "share": t["better"] / decided if decided else None, "ci_low": low, "ci_high": high,
                    "undecided": t["undecided"],
                }
            )  # fmt: skip
    return rows


def _wilson(successes: int, trials: int, confidence: float) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (scipy's); (None, None) without trials."""
    if trials == 0:
        return None, None
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


# --- ratings ---------------------------------------------------------------------------------------------


def rank(
    votes: Iterable[tuple[str, str, str]],
    confidence: float = 0.95,
    bootstrap: int = 200,
    seed: int = 0,
    min_votes: int | None = None,
) -> list[dict[str, Any]]:
    """A leaderboard from (a_system, b_system, choice) triples, best first: ordered by the lower bound
    of the interval (a system with few votes does not top the board on luck), then by rating.

    Each row: system, engine, voice, rating (mean 1000 over the listed systems), ci_low and ci_high
    (percentile bootstrap over resampled votes, or the Laplace interval where wider; None when
    `bootstrap` is 0), votes, wins, losses, ties
    and both_bad (both_bad is rated as a tie but counted apart; votes = wins + losses + ties + both_bad),
    preliminary (fewer than `min_votes` votes, default `ARENA_MIN_VOTES`).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    votes = [(a, b, _valid_choice(c)) for a, b, c in votes if a != b]
    systems = sorted({s for a, b, _ in votes for s in (a, b)})
    if not systems:
        return []
    index = {s: i for i, s in enumerate(systems)}
    n = len(systems)
    tally = {s: Counter() for s in systems}
    for a, b, choice in votes:
        outcome = {"a": ("wins", "losses"), "b": ("losses", "wins")}.get(choice, (choice, choice))
        tally[a][outcome[0]] += 1
        tally[b][outcome[1]] += 1
    # Distinct (a, b, outcome) kinds with their counts: resampling votes = a multinomial over kinds.
    kinds = Counter((index[a], index[b], choice) for a, b, choice in votes)
    rows_i = np.array([k[0] for k in kinds])
    cols_j = np.array([k[1] for k in kinds])
    score = np.array([{"a": 1.0, "b": 0.0}.get(k[2], 0.5) for k in kinds])
    counts = np.array(list(kinds.values()), dtype=float)

    def wins_matrix(weights: np.ndarray) -> np.ndarray:  # weights: (batch, kinds) -> (batch, n, n)
        wins = np.zeros((weights.shape[0], n * n))
        np.add.at(wins, (slice(None), rows_i * n + cols_j), weights * score)
        np.add.at(wins, (slice(None), cols_j * n + rows_i), weights * (1.0 - score))
        return wins.reshape(-1, n, n)

    observed = wins_matrix(counts[None])
    strength = fit_bradley_terry(observed)[0]
    ratings = _elo(strength)
    low = high = [None] * n
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=bootstrap).astype(float)
        boot = _elo(fit_bradley_terry(wins_matrix(draws), start=strength))
        tail = 50.0 * (1.0 - confidence)
        boot_low, boot_high = np.percentile(boot, [tail, 100.0 - tail], axis=0)
        # Resampling unanimous votes gives the same outcome every time (a zero-width interval): take the
        # wider of the bootstrap and the posterior-curvature (Laplace) interval.
        half = NormalDist().inv_cdf(0.5 + confidence / 2) * laplace_sd(strength, observed[0])
        low = np.minimum(boot_low, ratings - half).tolist()
        high = np.maximum(boot_high, ratings + half).tolist()
    board = []
    for i, s in enumerate(systems):
        t = tally[s]
        engine, voice = split_system(s)
        board.append(
            {
                "system": s, "engine": engine, "voice": voice, "rating": float(ratings[i]),
                "ci_low": low[i], "ci_high": high[i], "votes": sum(t.values()), "wins": t["wins"],
                "losses": t["losses"], "ties": t["tie"], "both_bad": t["both_bad"],
            }
        )  # fmt: skip
    low_first = min_votes if min_votes is not None else min_votes_to_rank()
    for row in board:
        row["preliminary"] = row["votes"] < low_first
    # ordered by what the votes can vouch for: the interval's lower bound (the rating without intervals)
    board.sort(key=lambda r: (-(r["rating"] if r["ci_low"] is None else r["ci_low"]), -r["rating"], r["system"]))
    return board


def min_votes_to_rank() -> int:
    """`ARENA_MIN_VOTES` (default 30): systems with fewer votes are marked preliminary."""
    return env_int("ARENA_MIN_VOTES", int(DEFAULT_MIN_VOTES), minimum=0)


def export_texts() -> bool:
    """`ARENA_EXPORT_TEXTS=1`: exports keep the typed texts and ASR transcripts (off by default: they are
    other visitors' words)."""
    return os.environ.get("ARENA_EXPORT_TEXTS", "").strip().lower() in ("1", "true", "yes", "on")


def fit_bradley_terry(
    wins: np.ndarray, start: np.ndarray | None = None, tol: float = 1e-9, max_iter: int = 100
) -> np.ndarray:
    """Natural-log Bradley–Terry strengths (maximum a posteriori), batched over leading axes.

    `wins[..., i, j]` is how often i beat j (a tie is half a win each way). Every system also has
    `PRIOR_TIES` virtual ties against a fixed opponent of strength 1 (log strength 0), which makes the
    log posterior strictly concave: the maximum is unique and finite even for a system that never lost.
    Newton's method with a backtracking line search finds it in a handful of steps (Hunter's MM
    iteration crawls here: the weak prior is all that pins the common scale).
    """
    wins = np.asarray(wins, dtype=float)
    theta = np.zeros(wins.shape[:-1]) if start is None else np.broadcast_to(start, wins.shape[:-1]).copy()
    value = _log_posterior(theta, wins)
    for _ in range(max_iter):
        grad, precision = _gradient_and_precision(theta, wins)
        step = np.linalg.solve(precision, grad[..., None])[..., 0]
        rate = np.ones(theta.shape[:-1])
        for _ in range(40):  # halve the step where it does not climb enough (Armijo)
            trial = theta + rate[..., None] * step
            trial_value = _log_posterior(trial, wins)
            slack = 1e-12 * (1.0 + np.abs(value))
            climbed = trial_value >= value + 1e-4 * rate * (grad * step).sum(axis=-1) - slack
            if np.all(climbed):
                break
            rate = np.where(climbed, rate, rate / 2)
        theta, value = trial, trial_value
        if np.max(np.abs(rate[..., None] * step)) < tol:
            break
    else:
        log.warning("Bradley-Terry fit stopped after %d Newton steps without converging", max_iter)
    return theta


def _gradient_and_precision(theta: np.ndarray, wins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and negative Hessian (precision) of the log posterior at `theta`."""
    games = wins + np.swapaxes(wins, -1, -2)
    beats = _sigmoid(theta[..., :, None] - theta[..., None, :])  # P(i beats j)
    prior = _sigmoid(theta)
    grad = (wins - games * beats).sum(axis=-1) + PRIOR_TIES * (0.5 - prior)
    curvature = games * beats * (1.0 - beats)
    eye = np.eye(wins.shape[-1])
    precision = eye * (curvature.sum(axis=-1) + PRIOR_TIES * prior * (1.0 - prior))[..., None] - curvature
    return grad, precision


def laplace_sd(theta: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Posterior standard deviation of each rating (Elo points, mean-centred) from the curvature at the MAP."""
    n = theta.shape[-1]
    covariance = np.linalg.inv(_gradient_and_precision(theta, wins)[1])
    centre = np.eye(n) - 1.0 / n
    return ELO_SCALE * np.sqrt(np.clip(np.diag(centre @ covariance @ centre), 0.0, None))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def _log_posterior(theta: np.ndarray, wins: np.ndarray) -> np.ndarray:
    diff = theta[..., :, None] - theta[..., None, :]
    likelihood = -(wins * np.logaddexp(0.0, -diff)).sum(axis=(-2, -1))
    prior = -0.5 * PRIOR_TIES * (np.logaddexp(0.0, -theta) + np.logaddexp(0.0, theta)).sum(axis=-1)
    return likelihood + prior


def _elo(strength: np.ndarray) -> np.ndarray:
    """Log strengths -> 1000 + 400·log10(strength), shifted so each set averages 1000."""
    points = ELO_SCALE * strength
    return 1000.0 + points - points.mean(axis=-1, keepdims=True)


# --- helpers ---------------------------------------------------------------------------------------------


def _valid_choice(choice: str) -> str:
    value = str(choice).strip().lower().replace(" ", "_") if choice is not None else ""
    if value not in CHOICES:
        raise InputError(f"A vote is 'a', 'b', 'tie' or 'both_bad'; got {choice!r}.")
    return value


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
