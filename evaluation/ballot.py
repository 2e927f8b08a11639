"""Which votes count: a vote is taken only on a pair served to the same visitor, after listening, once,
with the pair's proof of work, within the caps of the person who casts it.

The Arena serves each pair under a random token bound to the visitor it was served to (the page's
session and client address), with a challenge: a random nonce, single-use and bound to that token, for
which the page finds a counter whose SHA-256 of `nonce:counter` starts with `ARENA_POW_BITS` zero bits
(hashcash; default 15, 0 turns it off), solved while the clips play. Votes are counted
per person, not per session: the counting key (`counting_key`) is the signed-in Hugging Face account,
else the client address; a session hash, which the client chooses, is never one. A vote on the token is
refused, with one sentence, unless:
- both clips have finished streaming;
- the page reported at least `MIN_LISTEN_S` of each clip played (or the clip to its end when it is
  shorter), and, not to trust the page alone, as much wall time has passed on the server since the
  clip's first piece was sent;
- the pair has not been voted on (one vote per pair, a pair votes once) and was not voided (a clip
  failed);
- the proof of work is right and the challenge has not expired (`CHALLENGE_TTL_S` after serving);
- the counting key has cast fewer than `ARENA_VOTES_PER_HOUR` (default 60) votes in the last hour and
  `ARENA_VOTES_PER_DAY` (default 200) in the last day.
Pairs live in memory (the newest `MAX_PAIRS`); a restart forgets them, so a pair served before it
cannot be voted on after it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from engines.base import InputError
from engines.settings import settings

MIN_LISTEN_S = 3.0
END_SLACK_S = 0.25  # a player stops a few frames short of a clip's last sample
MAX_PAIRS = 10_000
HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
CHALLENGE_TTL_S = 1800.0  # a challenge older than this is refused (the visitor draws a new pair)
PAST_GATE_S = 2.0  # a clip played this much past the listening gate (or to its end) was listened to

NOT_SERVED = "This pair was not served to you; press New pair and vote on the pair you hear."
NOT_FINISHED = "Both clips must finish before you vote."
NOT_HEARD = "Listen to at least three seconds of both clips (or all of a shorter one) before you vote."
ALREADY = "You already voted on this pair; press New pair for another."
VOID = "This pair could not be played; press New pair for another."
TOO_MANY = "You have voted {n} times in the last hour, the most we take; please come back later."
TOO_MANY_TODAY = "You have voted {n} times today, the most we take in a day; please come back tomorrow."
NO_PROOF = "This vote lacks the page's proof of work; wait a moment after the clips play, then vote again."
EXPIRED = "This pair was served too long ago; press New pair for another."


class VoteRefused(InputError):
    """A vote that does not count; the message is one sentence for the visitor."""


def votes_per_hour() -> int:
    """`ARENA_VOTES_PER_HOUR` (default 60)."""
    return settings().arena_votes_per_hour


def votes_per_day() -> int:
    """`ARENA_VOTES_PER_DAY` (default 200)."""
    return settings().arena_votes_per_day


def pow_bits() -> int:
    """`ARENA_POW_BITS` (default 15; 0: no proof of work)."""
    return settings().arena_pow_bits


def counting_key(account: str | None, address: str | None) -> str:
    """Whose vote it is: the signed-in account (`hf:<id>` as `ui.owner` names it) or the client address;
    never a session. The kind prefix (`hf:`, `ip:`) says whether the voter was signed in."""
    if account:
        return account if account.startswith("hf:") else f"hf:{account}"
    return f"ip:{address or 'unknown'}"


def signed_in(key: str) -> bool:
    """Whether a counting key is an account."""
    return key.startswith("hf:")


def solves(nonce: str, proof: object, bits: int) -> bool:
    """Whether `proof` (the counter, decimal) makes SHA-256(`nonce:proof`) start with `bits` zero bits."""
    if bits <= 0:
        return True
    if not isinstance(proof, str | int) or isinstance(proof, bool):
        return False
    proof = str(proof).strip()
    if not (proof.isascii() and proof.isdigit() and len(proof) <= 20):
        return False
    digest = hashlib.sha256(f"{nonce}:{proof}".encode("ascii")).digest()
    return int.from_bytes(digest, "big") >> (256 - bits) == 0


def solve(nonce: str, bits: int) -> str:
    """The first counter that `solves` the challenge (what the page's script does, for tests and tools)."""
    counter = 0
    while not solves(nonce, str(counter), bits):
        counter += 1
    return str(counter)


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
    served_at: float = 0.0
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))
    bits: int = 0
    clips: dict[str, Clip] = field(default_factory=lambda: {"A": Clip(), "B": Clip()})
    voted: bool = False
    void: bool = False

    def listened_past_gate(self) -> bool:
        """Whether the page reported a clip played past the gate by `PAST_GATE_S`, or to its end."""
        return any(
            c.ended or (c.duration_s is not None and c.played_s >= min(MIN_LISTEN_S + PAST_GATE_S, c.duration_s))
            for c in self.clips.values()
        )


class Ballots:
    """Served pairs and votes in memory, safe across threads. `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._pairs: OrderedDict[str, Served] = OrderedDict()
        self._cast: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def serve(self, visitor: str) -> str:
        """A new pair for a visitor; its token (random, opaque). Its challenge: `challenge(token)`."""
        token = secrets.token_hex(16)
        with self._lock:
            self._pairs[token] = Served(visitor, served_at=self.clock(), bits=pow_bits())
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

    def challenge(self, token: str) -> dict:
        """The page's proof-of-work challenge for a served pair: `{"nonce", "bits"}` (bits 0: none)."""
        with self._lock:
            pair = self._pairs.get(token)
            return {"nonce": pair.nonce, "bits": pair.bits} if pair is not None else {"nonce": "", "bits": 0}

    def listened(self, token: str) -> bool | None:
        """Whether a clip of the pair was heard past the gate (None: no such pair)."""
        with self._lock:
            pair = self._pairs.get(token)
            return None if pair is None else pair.listened_past_gate()

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

    def problem(self, visitor: str, token: str | None, key: str | None = None) -> str | None:
        """The sentence a vote on this pair would be refused with now (the proof of work aside), or
        None if it would count; `key`: the counting key (default: the visitor)."""
        with self._lock:
            return self._problem(visitor, token, key or visitor, self.clock())

    def cast(self, visitor: str, token: str | None, key: str | None = None, proof: object = None) -> None:
        """Take the vote (marks the pair voted, spends its challenge, counts it for the counting key
        `key`, default the visitor), or raise `VoteRefused`."""
        key = key or visitor
        with self._lock:
            now = self.clock()
            problem = self._problem(visitor, token, key, now)
            pair = self._pairs.get(token) if problem is None else None
            if pair is not None and not solves(pair.nonce, proof, pair.bits):
                problem = NO_PROOF
            if problem is not None:
                raise VoteRefused(problem)
            pair.voted = True
            self._recent(key, now).append(now)
            if len(self._cast) > MAX_PAIRS:  # forget keys with no vote in the last day
                for who in [w for w in self._cast if not self._recent(w, now)]:
                    del self._cast[who]

    def withdraw(self, visitor: str, token: str, key: str | None = None) -> None:
        """Undo `cast` when the vote could not be stored (the visitor may try again)."""
        with self._lock:
            pair = self._pairs.get(token)
            if pair is not None and pair.visitor == visitor and pair.voted:
                pair.voted = False
                recent = self._cast.get(key or visitor)
                if recent:
                    recent.pop()

    # --- the rules -------------------------------------------------------------------------------------

    def _problem(self, visitor: str, token: str | None, key: str, now: float) -> str | None:
        pair = self._pairs.get(token) if isinstance(token, str) else None
        if pair is None or pair.visitor != visitor:
            return NOT_SERVED
        if pair.voted:
            return ALREADY
        if pair.void:
            return VOID
        if now - pair.served_at > CHALLENGE_TTL_S:
            return EXPIRED
        if any(c.duration_s is None or c.first_sent is None for c in pair.clips.values()):
            return NOT_FINISHED
        if not all(_listened(c, now) for c in pair.clips.values()):
            return NOT_HEARD
        today = self._recent(key, now)
        limit = votes_per_hour()
        if sum(1 for t in today if t > now - HOUR_S) >= limit:
            return TOO_MANY.format(n=limit)
        limit = votes_per_day()
        if len(today) >= limit:
            return TOO_MANY_TODAY.format(n=limit)
        return None

    def _recent(self, key: str, now: float) -> deque[float]:
        """The key's votes in the last day (oldest first)."""
        recent = self._cast.setdefault(key, deque())
        while recent and recent[0] <= now - DAY_S:
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
