"""The numbers, with no storage: Bradley–Terry ratings and their intervals (`rank`), and how often the
better-measured clip was the one chosen (`agreement`, with a Wilson interval).

Ratings are Bradley–Terry strengths (maximum a posteriori by Newton's method), ties and both-bad
votes counted as half a win each way, one virtual tie against a strength-1 opponent as a prior (so an
unbeaten system stays finite), shown as 1000 + 400·log10(strength) shifted to a mean of 1000, with
percentile bootstrap confidence intervals over resampled votes (seeded, so deterministic), widened to
the Laplace (posterior curvature) interval where that is wider, as it is for a few unanimous votes.
The board is ordered by the interval's lower bound; systems with fewer than `ARENA_MIN_VOTES` votes
are marked preliminary. `agreement` says how often the better-measured clip (lower error rate; higher
predicted MOS) was the one chosen, overall and per category, with counts and a Wilson interval.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

from engines.settings import settings

from ..prompts import CATEGORIES
from .board import _valid_choice, split_system

log = logging.getLogger(__name__)

# The figures a clip is "better-measured" by, and whether lower is better
BETTER_BY = {"error_rate": True, "mos": False}
PRIOR_TIES = 1.0  # virtual ties of every system against a fixed strength-1 opponent
ELO_SCALE = 400.0 / math.log(10.0)  # natural-log strength -> rating points


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
    return settings().arena_min_votes


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
