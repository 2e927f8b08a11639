"""Batching across visitors for one Qwen3-TTS model: concurrent requests share its `generate` calls.

Each request is a queue of sentences (in groups of similar length, planned by the engine). A step is
one batched `generate` call: it takes the next sentence of every active request (least recently
served first, up to `rows`), then fills free rows with more of the same requests' current groups.
So a request that arrives while a step runs joins the next step and never waits for another's long
text to finish. A step that would hold a request's first sentence waits up to `BATCH_WAIT_MS`
(default 20) after that request arrived for others to join (not when the rows are already full);
steps of requests already under way start at once.

The package's `generate_*` calls take one list entry per row (text, language, speaker, instruction,
clone prompt), so rows of different languages and voices share a step: only the model matters, and
there is one batcher per loaded model. A step's token cap is its longest row's cap.

A request's first sentence streams frame by frame, also in a batched step: a forward hook on the
talker sees every row's codes as they are sampled, and the codec decoder renders each streamed row
every `STREAM_FRAMES` frames with up to `LEFT_CONTEXT` frames of context (the reference's codes in
ICL cloning), so the pieces join into what a whole-clip decode gives. Later sentences come whole,
one chunk each, from the package's own decode. Each visitor gets their own `AudioChunk`s in order.

The same hook runs the runaway guard (`engines.qwen.runaway`): a row that passes the bound its text
allows, or whose frames loop, gets its end code as its next token, so it ends while the other rows go
on (the step ends when they all have). Stopped rows nobody has heard yet are generated once more,
together, with a new torch seed, in the same step (so chunks stay in order); what is kept is cut where
the loop began, and the chunk carries a one-sentence notice and the figures (`AudioChunk.notes`, `stops`).

A visitor who leaves drops out of the next step; a step whose visitors have all left stops
generating at once. When a step fails with rows of several requests (one row's conditioning the
model rejects), each request is retried alone, so only the one at fault fails. Steps run one at a
time under the model's lock, which also guards its other uses (clone prompts, batch files).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from engines.audio import fade_edges
from engines.base import SAMPLE_RATE, AudioChunk
from engines.qwen.runaway import RowGuard, notice
from engines.settings import settings

log = logging.getLogger(__name__)

STREAM_FRAMES = 12  # decode and yield about every second of speech
LEFT_CONTEXT = 25  # frames of decoded context before each new piece, as the codec's chunked decode uses
NOTICE_SILENCE = 480  # samples (20 ms) that carry a runaway notice when the stopped sentence was all heard


def batch_wait_s() -> float:
    """`BATCH_WAIT_MS` in seconds (0 turns the wait off)."""
    return settings().batch_wait_ms / 1000.0


class _Cancelled(Exception):
    """Raised inside the generation thread when everyone in the step has gone away."""


@dataclass
class Line:
    """One sentence of a request: its text, its token cap and its place in the request (0: first)."""

    text: str
    cap: int
    number: int


@dataclass
class Job:
    """One request in the batcher: the sentences still to generate and the chunks owed to it."""

    groups: deque  # deque[deque[Line]]
    language: str
    conditioning: dict
    context: list  # codec frames before the generated ones (the reference's codes in ICL cloning)
    out: queue.Queue = field(default_factory=queue.Queue)
    seq: int = 0
    arrived: float = 0.0
    last_step: int = -1
    index: int = 0  # the next chunk's index
    cancelled: bool = False
    finished: bool = False
    alone: bool = False  # its last step failed beside others: its next step runs without them

    def put(self, audio: np.ndarray, text: str, notes: tuple = (), stops: tuple = ()) -> None:
        if not self.cancelled:
            chunk = AudioChunk(audio=audio, text=text, phonemes="", index=self.index, notes=notes, stops=stops)
            self.out.put(("chunk", chunk))
            self.index += 1


@dataclass
class Row:
    job: Job
    line: Line

    @property
    def streamed(self) -> bool:
        return self.line.number == 0


class QwenBatcher:
    """Steps of one model shared by every request that streams from it (see the module docstring).

    `model()` gives the loaded `Qwen3TTSModel`; `generate(model, texts, languages, conditionings,
    cap)` runs one batched call and returns `(wavs, rate)`; `lock` is the model's lock. A serving
    thread runs the steps while there is work and ends when there is none.
    """

    def __init__(self, model: Callable, generate: Callable, lock: threading.Lock, rows: int = 4) -> None:
        self._model, self._generate, self._lock, self.rows = model, generate, lock, max(1, rows)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._jobs: list[Job] = []
        self._running: list[Row] | None = None
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()
        self.steps = 0  # batched `generate` calls so far

    # ----- a request's side ------------------------------------------------------------------
    def stream(
        self, groups: list[list[tuple[str, int]]], language: str, conditioning: dict, context: list
    ) -> Iterator[AudioChunk]:
        """The request's chunks in order; `groups` are its sentences as (text, token cap), the first
        group being the first sentence alone. Closing the iterator takes the request out."""
        numbered = itertools.count()
        plan = deque(deque(Line(text, cap, next(numbered)) for text, cap in group) for group in groups if group)
        job = Job(plan, language, conditioning, list(context))
        self._submit(job)
        try:
            while True:
                kind, value = job.out.get()
                if kind == "chunk":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            self._leave(job)

    def _submit(self, job: Job) -> None:
        if self._pid != os.getpid():  # in a forked worker (ZeroGPU): the parent's thread and lines are not here
            self._reset()
        with self._cond:
            job.seq, job.arrived = next(self._seq), time.monotonic()
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="qwen-batcher", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _leave(self, job: Job) -> None:
        """The request is done or its visitor has gone: out of the next step. If every request of
        the running step has gone, wait until it has stopped (the model is free again)."""
        with self._cond:
            if job.finished:
                return
            job.cancelled = True
            step = self._running
            if step is not None and any(r.job is job for r in step):
                if all(r.job.cancelled for r in step):
                    self._cond.wait_for(lambda: self._running is not step)
            elif job in self._jobs:
                self._jobs.remove(job)
            self._cond.notify_all()

    # ----- the serving thread ----------------------------------------------------------------
    def _serve(self) -> None:
        try:
            self._steps()
        except BaseException as exc:  # a bug here must not leave visitors waiting on a dead thread
            log.exception("The Qwen3-TTS batcher stopped")
            with self._cond:
                jobs, self._jobs, self._running, self._thread = self._jobs, [], None, None
                self._cond.notify_all()
            for job in jobs:
                if not job.finished:
                    job.finished = True
                    job.out.put(("error", exc))

    def _steps(self) -> None:
        """Run steps while there are requests; return when there are none."""
        while True:
            with self._cond:
                if not self._ready():
                    self._thread = None
                    return
            outcomes: list[tuple[Job, str, object]] = []
            with self._lock:  # one step at a time per model
                with self._cond:
                    rows = self._take()
                    self._running = rows
                try:
                    if rows:
                        outcomes = self._execute(rows)
                except BaseException as exc:  # never leave a visitor waiting on a dead thread
                    log.exception("A Qwen3-TTS batch step failed")
                    outcomes = [self._fail(job, exc) for job in _jobs_of(rows or []) if not job.finished]
            with self._cond:
                self._running = None
                self._jobs = [j for j in self._jobs if not (j.finished or j.cancelled)]
                self._cond.notify_all()
            # only now, with the step's tensors freed: a process may end as soon as its last request is
            # answered, and a thread stopped inside torch's C++ code at exit aborts the process
            for job, kind, value in outcomes:
                job.out.put((kind, value))

    def _ready(self) -> bool:
        """Wait (lock held) until a step may start: False when no request is left."""
        while True:
            self._jobs = [j for j in self._jobs if not (j.finished or j.cancelled)]
            if not self._jobs:
                return False
            wait = batch_wait_s()
            fresh = [j for j in self._jobs if j.last_step < 0 and not j.alone]
            if fresh and wait > 0 and len(self._jobs) < self.rows:
                left = min(j.arrived for j in fresh) + wait - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
            return True

    def _take(self) -> list[Row]:
        """The next step's rows (lock held): one sentence of each request in turn, then more of theirs."""
        jobs = sorted(
            (j for j in self._jobs if j.groups and not (j.finished or j.cancelled)), key=lambda j: (j.last_step, j.seq)
        )
        if not jobs:
            return []
        jobs = [jobs[0]] if jobs[0].alone else [j for j in jobs if not j.alone]
        taken, rows = [], []
        for job in jobs[: self.rows]:
            rows.append(Row(job, job.groups[0].popleft()))
            taken.append(job)
        for job in taken:
            while len(rows) < self.rows and job.groups[0]:
                rows.append(Row(job, job.groups[0].popleft()))
        for job in taken:
            if not job.groups[0]:
                job.groups.popleft()
            job.last_step = self.steps
        self.steps += 1
        return rows

    def _execute(self, rows: list[Row]) -> list[tuple[Job, str, object]]:
        """One batched `generate`: stream the first sentences frame by frame, hand out the rest whole.
        Rows the runaway guard stopped (`engines.qwen.runaway`) and nobody has heard yet are generated once
        more, together, with a new seed. Returns what to tell the requests it ended: ("done", None) or
        ("error", exception)."""
        model = self._model()
        guards = [_guard(row) for row in rows]
        streamed = [i for i, row in enumerate(rows) if row.streamed]
        outcome, state = self._attempt(model, rows, guards, streamed)
        if "error" in outcome:
            return self._failed(rows, outcome["error"], state)
        wavs, rate = outcome["result"]
        clips = {i: _sane(wav, rate, guards[i]) for i, wav in enumerate(wavs) if not state.get(i, {}).get("sent")}
        stops = {i: guards[i].figures(retried=False) for i in clips if guards[i].stopped}
        if stops:
            again = self._retry(model, rows, sorted(stops))
            if again is None:
                return []  # everyone in the step has gone
            for i, (clip, guard) in again.items():
                stops[i]["retried"] = True
                if guard.stopped:  # stopped again: what is sane of the second try
                    stops[i] = {**guard.figures(retried=True), "again": True}
                clips[i] = clip
        for i, clip in sorted(clips.items()):
            if len(clip):
                figures = stops.get(i)
                notes = (notice(figures),) if figures else ()
                rows[i].job.put(fade_edges(clip), rows[i].line.text, notes, (figures,) if figures else ())
        completed = []
        for job in _jobs_of(rows):
            job.alone = False
            if not job.groups and not job.finished:
                job.finished = True
                completed.append((job, "done", None))
        return completed

    def _retry(self, model, rows: list[Row], which: list[int]) -> dict | None:
        """The stopped rows `which` generated again in one call with a new torch seed: {row: (clip, guard)};
        {} when the second try failed (the first one's sane part stays), None when everyone has gone."""
        import torch

        seed = secrets.randbits(63)
        torch.manual_seed(seed)
        log.info("Runaway guard: %d sentence(s) generated again with seed %d", len(which), seed)
        subset = [rows[i] for i in which]
        guards = [_guard(row) for row in subset]
        outcome, _ = self._attempt(model, subset, guards, [])
        if isinstance(outcome.get("error"), _Cancelled):
            return None
        if "error" in outcome:
            log.warning("Runaway guard: the second try failed (%s)", type(outcome["error"]).__name__)
            return {}
        wavs, rate = outcome["result"]
        return {i: (_sane(wav, rate, guard), guard) for i, wav, guard in zip(which, wavs, guards, strict=True)}

    def _attempt(self, model, rows: list[Row], guards: list[RowGuard], streamed: list[int]) -> tuple[dict, dict]:
        """One `generate` call of `rows` under their guards, streaming the rows `streamed`. Returns
        ({"result": (wavs, rate)} or {"error": exception}, the streamed rows' state)."""
        import torch

        inner = model.model
        vocab = inner.config.talker_config.code_predictor_config.vocab_size
        end_code = inner.config.talker_config.codec_eos_token_id
        decoder = inner.speech_tokenizer.model.decoder
        frames: queue.Queue = queue.Queue()
        stop = threading.Event()
        outcome: dict = {}

        def hook(module, args, kwargs, output):
            if stop.is_set() or all(row.job.cancelled for row in rows):
                raise _Cancelled
            codes = output.hidden_states[1] if output.hidden_states is not None else None
            if codes is None:  # the prefill: no frame yet
                return
            stopping = []
            for b, first in enumerate(codes[:, 0].tolist()):
                if guards[b].ended:
                    continue
                if not 0 <= first < vocab:  # its own end code
                    guards[b].ended = True
                elif guards[b].feed(first):
                    stopping.append(b)
            if stopping:  # their next token is the end code: those rows end, the others go on
                logits = output.logits
                logits[stopping, -1, :] = float("-inf")
                logits[stopping, -1, end_code] = 0.0
            if streamed:
                frames.put(codes.detach().to("cpu", copy=True))

        def run() -> None:
            try:
                outcome["result"] = self._generate(
                    model,
                    [row.line.text for row in rows],
                    [row.job.language for row in rows],
                    [row.job.conditioning for row in rows],
                    max(row.line.cap for row in rows),
                )
            except BaseException as exc:  # reported below
                outcome["error"] = exc
            finally:
                frames.put(None)

        # per streamed row: frames so far (context first), how many are rendered, ended, pieces sent
        state = {i: {"done": list(rows[i].job.context), "ended": False, "sent": 0, "seen": 0} for i in streamed}
        for s in state.values():
            s["emitted"] = s["context"] = len(s["done"])

        def render(i: int, last: bool) -> None:
            s, row, guard = state[i], rows[i], guards[i]
            if guard.stopped:  # drop the unheard frames past the sane part (a loop found late)
                del s["done"][max(s["context"] + guard.keep, s["emitted"]) :]
                guard.keep = len(s["done"]) - s["context"]
            if len(s["done"]) > s["emitted"]:
                left = min(s["emitted"], LEFT_CONTEXT)
                codes = torch.stack(s["done"][s["emitted"] - left :], 0).T.unsqueeze(0).to(inner.device)
                with torch.inference_mode():
                    wav = decoder(codes)[0, 0].float().cpu().numpy()
                per_frame = len(wav) // codes.shape[-1]
                # fades only where the sentence starts and ends: the pieces in between are continuous
                piece = fade_edges(wav[left * per_frame :], start=s["sent"] == 0, end=last)
                figures = guard.figures(retried=False) if last and guard.stopped else None
                notes = (notice(figures),) if figures else ()
                row.job.put(piece, row.line.text if s["sent"] == 0 else "", notes, (figures,) if figures else ())
                s["emitted"], s["sent"] = len(s["done"]), s["sent"] + 1
            elif last and guard.stopped and not s["ended"]:  # all of it was heard: the notice comes with a breath
                figures = guard.figures(retried=False)
                row.job.put(np.zeros(NOTICE_SILENCE, np.float32), "", (notice(figures),), (figures,))
                s["sent"] += 1
            s["ended"] = s["ended"] or last

        handle = inner.talker.register_forward_hook(hook, with_kwargs=True)
        worker = threading.Thread(target=run, name="qwen-generate", daemon=True)
        worker.start()
        try:
            while (item := frames.get()) is not None:
                for i in streamed:
                    s = state[i]
                    if s["ended"] or rows[i].job.cancelled:
                        continue
                    code = item[i]
                    if 0 <= int(code.min()) and int(code.max()) < vocab:
                        s["done"].append(code)
                        s["seen"] += 1
                        if guards[i].stopped and s["seen"] >= guards[i].frames:  # its last frame
                            render(i, last=True)
                        elif len(s["done"]) - s["emitted"] >= STREAM_FRAMES:
                            render(i, last=False)
                    else:  # its end code: this row is complete while the others go on
                        render(i, last=True)
            if "result" in outcome:
                for i in streamed:
                    if not state[i]["ended"] and not rows[i].job.cancelled:
                        render(i, last=True)
        finally:
            stop.set()
            worker.join()
            handle.remove()
        return outcome, state

    def _failed(self, rows: list[Row], error: BaseException, state: dict) -> list[tuple[Job, str, object]]:
        """A step failed: with one request in it, that request fails; with several, each one that has
        not received audio from it is tried again alone (so only the one at fault fails)."""
        if isinstance(error, _Cancelled):
            return []
        jobs = _jobs_of(rows)
        if len(jobs) == 1:
            return [self._fail(jobs[0], error)]
        log.info("A batched Qwen3-TTS step failed (%s); its requests are retried one by one", type(error).__name__)
        heard = {id(rows[i].job) for i, s in state.items() if s["sent"]}
        failed = []
        for job in jobs:
            if id(job) in heard:  # part of its sentence has been heard: it cannot start again
                failed.append(self._fail(job, error))
            else:
                job.groups.appendleft(deque(r.line for r in rows if r.job is job))
                job.alone = True
        return failed

    @staticmethod
    def _fail(job: Job, error: BaseException) -> tuple[Job, str, object]:
        job.finished = True
        return job, "error", error


def _guard(row: Row) -> RowGuard:
    """The runaway guard of a row: its bound from its text and language, within its token cap."""
    return RowGuard.for_text(row.line.text, row.job.language, row.line.cap)


def _sane(wav, rate: int, guard: RowGuard) -> np.ndarray:
    """A row's whole clip at 24 kHz, cut where its guard found a loop."""
    audio = np.asarray(wav, dtype=np.float32).ravel()
    if rate != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    if guard.stopped and guard.frames and guard.keep is not None and guard.keep < guard.frames:
        audio = audio[: len(audio) * guard.keep // guard.frames]
    return audio


def _jobs_of(rows: list[Row]) -> list[Job]:
    """The requests of a step's rows, each once, in order."""
    return list({id(r.job): r.job for r in rows}.values())
