"""Find a Kokoro voice for any clip: a search of the style tables scored by speaker similarity.

Kokoro cannot clone, but its voices are small style tables (510 rows x 256), and a new table is a new
voice. Given a reference clip and its transcript, `VoiceSearch`:
1. scores every stock voice it may start from (`exclude` keeps some out), then blends of the nearest
   three, and starts from the best of them;
2. runs CMA-ES (the `cma` package) in a low-dimensional subspace around that start: the directions
   between the stock voices nearest the clip, each split into the style's two halves (the decoder's
   timbre and the predictor's prosody, which then move on their own), then random directions of the same
   size if that makes fewer than `DIMENSIONS`;
3. scores a candidate by resemblyzer's speaker similarity to the clip, of the candidate speaking the
   clip's own text and a second text (so the voice holds on words it never matched); a candidate that
   would become the best must also pass the ASR guard: its word error rate on the clip's text at most
   `WER_SLACK` above the start's (a voice that mumbles loses).
It stops at its time budget, its evaluation cap or when asked (`stop()`), reports `Progress` after
every evaluation, and returns `Found`: the table in the official (510, 1, 256) layout and the figures a
creator needs: similarity on a held-out sentence of the found voice, of its start and of the nearest
stock voice. `engines.kokoro.voices.save_found_voice` keeps it in the owner's library.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engines.asr import transcribe
from engines.base import SAMPLE_RATE, InputError
from engines.runtime import registry

from .metrics import speaker_embedding, word_error_rate

# short on purpose: each candidate speaks both texts (about 3 s of CPU per text on this 2-core sandbox)
SECOND_TEXT = "Bring the blue cup to the kitchen, please."
HELD_OUT = "Please call Stella and ask her to bring these things with her from the store."
DIMENSIONS = 8  # the subspace CMA-ES searches
SIGMA = 0.2  # CMA-ES's first step, in units of the typical distance between stock voices (per direction)
POPULATION = 6  # candidates per CMA-ES generation: small, so that a 5-minute budget sees many generations
STYLE_HALVES = (slice(0, 128), slice(128, 256))  # a style row: the decoder's half, then the predictor's
WER_SLACK = 0.05  # a new best may hear at most this much worse than the start
BLEND_FROM = 3  # the nearest stock voices whose blends are tried as starts


@dataclass(frozen=True)
class Progress:
    """Where a search stands, after each evaluation."""

    evaluations: int
    best_similarity: float
    start_similarity: float
    elapsed_s: float
    budget_s: float
    stage: str  # "stock voices", "blends" or "search"


@dataclass
class Found:
    """A search's result: the voice (official layout) and its figures."""

    table: np.ndarray  # (510, 1, 256) float32
    start: str  # the stock voice or blend it started from
    similarity: float  # its score (mean similarity on the clip's text and the second text)
    start_similarity: float
    held_out: dict = field(default_factory=dict)  # similarity on HELD_OUT: found, start, nearest stock voice
    nearest_stock: str = ""
    wer: float | None = None  # on the clip's text
    start_wer: float | None = None
    evaluations: int = 0
    compute_s: float = 0.0
    stopped: bool = False

    @property
    def improved(self) -> bool:
        return self.similarity > self.start_similarity

    def summary(self) -> dict:
        """The figures as JSON-ready data (the CLI's answer, the tab's table)."""
        return {
            "start": self.start, "similarity": round(self.similarity, 4),
            "start_similarity": round(self.start_similarity, 4), "improved": self.improved,
            "held_out": {k: round(v, 4) for k, v in self.held_out.items()}, "nearest_stock": self.nearest_stock,
            "wer": self.wer, "start_wer": self.start_wer, "evaluations": self.evaluations,
            "compute_s": round(self.compute_s, 1), "stopped": self.stopped,
        }  # fmt: skip


def searching_engine() -> str:
    """The engine whose voices are style tables that blend (Kokoro)."""
    found = registry.engines_that("blends")
    if not found:
        raise InputError("No engine here has voices made of style tables to search.")
    return found[0]


class VoiceSearch:
    """One search for a voice like `clip` (mono float32 at 24 kHz) saying `text`; see the module docstring."""

    def __init__(
        self,
        clip: np.ndarray,
        text: str,
        *,
        exclude: tuple[str, ...] = (),
        budget_s: float = 300.0,
        max_evaluations: int | None = None,
        seed: int = 0,
        second_text: str = SECOND_TEXT,
    ) -> None:
        if not (text or "").strip():
            raise InputError("The search needs the clip's transcript.")
        self.engine = registry.get(searching_engine())
        self.text, self.second_text = text.strip(), second_text
        self.exclude = {name.strip() for name in exclude if name.strip()}
        self.budget_s, self.max_evaluations, self.seed = float(budget_s), max_evaluations, seed
        self.target = _unit(speaker_embedding(np.asarray(clip, dtype=np.float32), SAMPLE_RATE))
        self.evaluations = 0

    # ----- scoring ------------------------------------------------------------------------------------------
    def similarity(self, table: np.ndarray, text: str) -> float:
        audio = self.engine.speak_table(text, table)
        return float(np.dot(self.target, _unit(speaker_embedding(audio, SAMPLE_RATE))))

    def score(self, table: np.ndarray) -> float:
        self.evaluations += 1
        return (self.similarity(table, self.text) + self.similarity(table, self.second_text)) / 2

    def wer(self, table: np.ndarray) -> float:
        return word_error_rate(self.text, transcribe(self.engine.speak_table(self.text, table), SAMPLE_RATE))

    # ----- the search ---------------------------------------------------------------------------------------
    def run(self, progress: Callable[[Progress], None] | None = None, stop: Callable[[], bool] | None = None) -> Found:
        import cma

        began = time.perf_counter()
        elapsed = lambda: time.perf_counter() - began  # noqa: E731
        stopped = stop or (lambda: False)
        usable = [v.id for v in self.engine.voices() if v.available and v.id not in self.exclude]
        if len(usable) < 2:
            raise InputError("The search needs at least two stock voices to start from.")
        tables = {name: self.engine.style_table(name).astype(np.float32) for name in usable}
        best = {"score": -2.0, "start": "", "table": None}

        def report(stage: str, start_score: float) -> None:
            if progress is not None:
                progress(Progress(self.evaluations, best["score"], start_score, elapsed(), self.budget_s, stage))

        stock = {}
        for name, table in tables.items():
            stock[name] = self.score(table)
            if stock[name] > best["score"]:
                best.update(score=stock[name], start=name, table=table)
            report("stock voices", best["score"])
        nearest = sorted(stock, key=stock.get, reverse=True)[:BLEND_FROM]
        blends = [(a, b) for i, a in enumerate(nearest) for b in nearest[i + 1 :]] + [tuple(nearest)]
        for names in blends if len(nearest) > 1 else []:
            table = sum(tables[n] for n in names) / len(names)
            score = self.score(table)
            if score > best["score"]:
                best.update(score=score, start=",".join(names), table=table)
            report("blends", best["score"])
        start, start_score, start_table = best["start"], best["score"], best["table"]
        start_wer = self.wer(start_table)

        by_score = sorted(usable, key=stock.get, reverse=True)  # the directions between the nearest voices first
        basis = _basis(start_table, [tables[n] for n in by_score], DIMENSIONS, self.seed)
        options = {"seed": self.seed + 1, "verbose": -9, "popsize": POPULATION}
        es = cma.CMAEvolutionStrategy(np.zeros(len(basis)), SIGMA, options)
        found_wer = start_wer
        while not self._over(elapsed(), stopped):
            candidates = es.ask()
            scores = []
            for x in candidates:
                if self._over(elapsed(), stopped):
                    break
                table = start_table + np.tensordot(x, basis, axes=1).astype(np.float32)
                score = self.score(table)
                if score > best["score"]:
                    heard = self.wer(table)
                    if heard <= start_wer + WER_SLACK:
                        best.update(score=score, table=table)
                        found_wer = heard
                    else:
                        score -= 1.0  # it mumbles: CMA-ES learns to stay away
                scores.append(score)
                report("search", start_score)
            if len(scores) < len(candidates):
                break
            es.tell(candidates, [-s for s in scores])

        table = best["table"]
        nearest_stock = max(stock, key=stock.get)
        held_out = {
            "found": self.similarity(table, HELD_OUT),
            "nearest_stock": self.similarity(tables[nearest_stock], HELD_OUT),
        }
        held_out["start"] = (
            held_out["nearest_stock"] if start == nearest_stock else self.similarity(start_table, HELD_OUT)
        )
        return Found(
            table=np.asarray(table, dtype=np.float32).reshape(-1, 1, 256),
            start=start, similarity=best["score"], start_similarity=start_score, held_out=held_out,
            nearest_stock=nearest_stock, wer=found_wer, start_wer=start_wer, evaluations=self.evaluations,
            compute_s=elapsed(), stopped=stopped(),
        )  # fmt: skip

    def _over(self, elapsed_s: float, stopped: Callable[[], bool]) -> bool:
        capped = self.max_evaluations is not None and self.evaluations >= self.max_evaluations
        return capped or elapsed_s >= self.budget_s or stopped()


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _basis(start: np.ndarray, stock: list[np.ndarray], dimensions: int, seed: int) -> np.ndarray:
    """`dimensions` orthogonal directions, each shaped like a table and as long as the typical distance
    between stock voices: the differences between the first stock voices (`stock` nearest first), each
    split into the style's two halves (`STYLE_HALVES`), then random ones if those are fewer."""
    pairs = max(1, dimensions // len(STYLE_HALVES))  # differences between pairs+1 voices: pairs per half
    flat = np.stack(stock[: pairs + 1]).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    scale = float(np.median(np.linalg.norm(centred.reshape(len(centred), -1), axis=1))) or 1.0
    parts = []
    for half in STYLE_HALVES:
        part = np.zeros_like(centred[:-1])
        part[..., half] = centred[:-1][..., half]
        parts.append(part.reshape(len(part), -1))
    rng = np.random.default_rng(seed)
    spread = np.stack(stock).std(axis=0).ravel()
    missing = max(dimensions - sum(len(p) for p in parts), 0)
    extra = rng.standard_normal((missing, spread.size)) * spread
    q, _ = np.linalg.qr(np.concatenate([*parts, extra]).T)
    return (q[:, :dimensions].T * scale).reshape(-1, *start.shape).astype(np.float32)
