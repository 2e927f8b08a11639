"""What a taken vote is worth: the patterns that flag a voter's votes (`Rules`, `flags`) and how each
vote stands on a board (`standings`: counted, flagged or left out, and why).

After every vote the patterns of `Rules` are looked for (votes under 3 s apart, sustained; more than 30
in an hour; 80 % or more of one voter's picks to one system over 5 or more; voters who never listen past
the gate; several voters voting alike on the same pair within hours); a vote caught is stored with its
reason (`flag`) and weight 0, and stays flagged. A board is fitted on the counted votes: unflagged, of
its prompts (built-in prompts on the main board, typed texts on their own), each (prompt, pair of
systems) once per voter, and with `ARENA_REQUIRE_LOGIN=1` signed-in votes only; the rest is "left out",
with its reason. Which votes are taken at all (served, heard, once, proof of work, caps per person) is
`evaluation.ballot`.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engines.settings import default, settings

from ..prompts import prompts

COUNTED, FLAGGED, LEFT_OUT = "counted", "flagged", "left out"
ANONYMOUS = "anonymous (sign-in required)"
REPEAT = "repeat of a prompt and pair by one voter"


@dataclass(frozen=True)
class Rules:
    """When a voter's votes are flagged (each threshold a setting, defaults as TTS Arena V2's)."""

    fast_s: float = default("ARENA_FLAG_FAST_S")  # votes closer than this...
    fast_run: int = default("ARENA_FLAG_FAST_RUN")  # ...this many times in a row
    per_hour: int = default("ARENA_FLAG_PER_HOUR")  # more votes than this in an hour
    one_sided: float = default("ARENA_FLAG_ONE_SIDED")  # this share of one voter's picks to one system...
    min_votes: int = default("ARENA_FLAG_MIN_VOTES")  # ...over at least this many picks (also: never listened)
    group_keys: int = default("ARENA_FLAG_GROUP_KEYS")  # this many voters, each voting...
    group_votes: int = default("ARENA_FLAG_GROUP_VOTES")  # ...this many times the same way on one pair...
    group_hours: float = default("ARENA_FLAG_GROUP_HOURS")  # ...within this many hours

    @classmethod
    def from_env(cls) -> Rules:
        """The rules as configured (`ARENA_FLAG_*`, `engines.settings`, where their defaults live)."""
        s = settings()
        return cls(**{name: getattr(s, f"arena_flag_{name}") for name in cls.__dataclass_fields__})

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
    return settings().arena_require_login


def is_builtin(text: str) -> bool:
    """Whether a text is one of the built-in prompts (`evaluation.prompts`)."""
    return text in _builtin_texts()


@functools.cache
def _builtin_texts() -> frozenset[str]:
    return frozenset(p.text for p in prompts())


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
