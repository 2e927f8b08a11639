"""Which votes count: a vote is taken only on a pair served to the same visitor, after listening, once.

The Arena serves each pair under a random token bound to the visitor it was served to (the page's
session and client address). A vote on that token is refused, with one sentence, unless:
- both clips have finished streaming;
- the page reported at least `MIN_LISTEN_S` of each clip played (or the clip to its end when it is
  shorter), and, not to trust the page alone, as much wall time has passed on the server since the
  clip's first piece was sent;
- the pair has not been voted on (one vote per pair, a pair votes once) and was not voided (a clip
  failed);
- the visitor has cast fewer than `ARENA_VOTES_PER_HOUR` (default 60) votes in the last hour.
Pairs live in memory (the newest `MAX_PAIRS`); a restart forgets them, so a pair served before it
cannot be voted on after it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from engines.base import InputError
from engines.settings import env_int

MIN_LISTEN_S = 3.0
END_SLACK_S = 0.25  # a player stops a few frames short of a clip's last sample
MAX_PAIRS = 10_000
HOUR_S = 3600.0
DEFAULT_VOTES_PER_HOUR = 60

NOT_SERVED = "This pair was not served to you; press New pair and vote on the pair you hear."
NOT_FINISHED = "Both clips must finish before you vote."
NOT_HEARD = "Listen to at least three seconds of both clips (or all of a shorter one) before you vote."
ALREADY = "You already voted on this pair; press New pair for another."
VOID = "This pair could not be played; press New pair for another."
TOO_MANY = "You have voted {n} times in the last hour, the most we take; please come back later."


class VoteRefused(InputError):
    """A vote that does not count; the message is one sentence for the visitor."""


def votes_per_hour() -> int:
    """`ARENA_VOTES_PER_HOUR` (default 60; a bad value keeps the default)."""
    return env_int("ARENA_VOTES_PER_HOUR", int(DEFAULT_VOTES_PER_HOUR), minimum=0)


@dataclass
class Clip:
    """What the server knows of one clip's delivery and of the visitor's listening."""

    first_sent: float | None = None  # server clock when its first piece went out
    duration_s: float | None = None  # set when the clip has finished streaming
    played_s: float = 0.0  # the most the page reported played
    ended: bool = False  # the page reported the player reached the end


@dataclass
class Served:
    visitor: str
    clips: dict[str, Clip] = field(default_factory=lambda: {"A": Clip(), "B": Clip()})
    voted: bool = False
    void: bool = False


class Ballots:
    """Served pairs and votes in memory, safe across threads. `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._pairs: OrderedDict[str, Served] = OrderedDict()
        self._cast: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def serve(self, visitor: str) -> str:
        """A new pair for a visitor; its token (random, opaque)."""
        token = secrets.token_hex(16)
        with self._lock:
            self._pairs[token] = Served(visitor)
            while len(self._pairs) > MAX_PAIRS:
                self._pairs.popitem(last=False)
        return token

    def sent(self, token: str, slot: str) -> None:
        """A piece of a clip was sent to the visitor (the first one starts its wall clock)."""
        with self._lock:
            clip = self._clip(token, slot)
            if clip is not None and clip.first_sent is None:
                clip.first_sent = self.clock()

    def finished(self, token: str, slot: str, duration_s: float) -> None:
        """A clip has finished streaming; `duration_s` is how long it plays."""
        with self._lock:
            clip = self._clip(token, slot)
            if clip is not None:
                clip.duration_s = float(duration_s)

    def void(self, token: str) -> None:
        """A clip failed: no vote on this pair."""
        with self._lock:
            if token in self._pairs:
                self._pairs[token].void = True

    def heard(self, visitor: str, token: str, slot: str, played_s: float, ended: bool = False) -> None:
        """The page's report of a clip's playback (ignored for a pair not served to this visitor)."""
        with self._lock:
            pair = self._pairs.get(token)
            if pair is None or pair.visitor != visitor or slot not in pair.clips:
                return
            clip = pair.clips[slot]
            if played_s == played_s and played_s > clip.played_s:  # NaN never counts
                clip.played_s = min(float(played_s), 24 * HOUR_S)
            clip.ended = clip.ended or bool(ended)

    def problem(self, visitor: str, token: str | None) -> str | None:
        """The sentence a vote on this pair would be refused with now, or None if it would count."""
        with self._lock:
            return self._problem(visitor, token, self.clock())

    def cast(self, visitor: str, token: str | None) -> None:
        """Take the vote (marks the pair voted and counts it for the visitor), or raise `VoteRefused`."""
        with self._lock:
            now = self.clock()
            problem = self._problem(visitor, token, now)
            if problem is not None:
                raise VoteRefused(problem)
            self._pairs[token].voted = True
            self._recent(visitor, now).append(now)
            if len(self._cast) > MAX_PAIRS:  # forget visitors with no vote in the last hour
                for who in [w for w in self._cast if not self._recent(w, now)]:
                    del self._cast[who]

    def withdraw(self, visitor: str, token: str) -> None:
        """Undo `cast` when the vote could not be stored (the visitor may try again)."""
        with self._lock:
            pair = self._pairs.get(token)
            if pair is not None and pair.visitor == visitor and pair.voted:
                pair.voted = False
                recent = self._cast.get(visitor)
                if recent:
                    recent.pop()

    # --- the rules -------------------------------------------------------------------------------------

    def _problem(self, visitor: str, token: str | None, now: float) -> str | None:
        pair = self._pairs.get(token) if isinstance(token, str) else None
        if pair is None or pair.visitor != visitor:
            return NOT_SERVED
        if pair.voted:
            return ALREADY
        if pair.void:
            return VOID
        if any(c.duration_s is None or c.first_sent is None for c in pair.clips.values()):
            return NOT_FINISHED
        if not all(_listened(c, now) for c in pair.clips.values()):
            return NOT_HEARD
        limit = votes_per_hour()
        if len(self._recent(visitor, now)) >= limit:
            return TOO_MANY.format(n=limit)
        return None

    def _recent(self, visitor: str, now: float) -> deque[float]:
        recent = self._cast.setdefault(visitor, deque())
        while recent and recent[0] <= now - HOUR_S:
            recent.popleft()
        return recent

    def _clip(self, token: str, slot: str) -> Clip | None:
        pair = self._pairs.get(token)
        return None if pair is None else pair.clips.get(slot)


def _listened(clip: Clip, now: float) -> bool:
    """Enough of a clip heard: `MIN_LISTEN_S` (or the whole clip if shorter) by the page's report and
    by the server's clock since its first piece was sent."""
    waited = now - clip.first_sent >= min(MIN_LISTEN_S, clip.duration_s)
    to_end = clip.duration_s - END_SLACK_S  # a player stops a few frames short of the end
    played = clip.played_s >= min(MIN_LISTEN_S, to_end) or (clip.ended and clip.duration_s <= MIN_LISTEN_S)
    return waited and played
