"""A run streamed into the page's player, written once for every tab: wait for the engine's turn, stream
its chunks levelled (`engines.audio.StreamLeveler`) as int16 pieces, and wrap a run's pieces in the
player's start and end messages (`ui.player.StreamPlayer`). Compare and Arena get their levelled
pieces as pair events (`evaluation.pair`, the same leveler loop) and turn them into the player's
messages with `pair_message`. Pieces carry the model's word times where the chunks have them
(`ui.readalong.LiveWords`), for the players' live read-along.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import gradio as gr
import numpy as np

from engines.audio import OutputSettings, StreamLeveler, to_int16
from engines.base import AudioChunk, SynthesisRequest
from engines.runtime.timing import RunStats, timed_stream
from evaluation.pair import PairEvent, SlotChunk, SlotFailed, SlotFinished, SlotStarted

from .common import wait_for_turn
from .lexicon_panel import with_visitor_lexicon
from .player import StreamPlayer
from .readalong import LiveWords

SKIP = gr.skip()  # an update that leaves its output as it is


@dataclass(frozen=True)
class Step:
    """One step of a levelled run: while waiting, the place-in-line line; then each chunk made, with the
    int16 audio to play now (None while the opening is held back); last (`done`), what was held back."""

    sound: np.ndarray | None = None
    chunk: AudioChunk | None = None
    waiting: str | None = None
    done: bool = False


def levelled_run(
    engine_id: str, request: SynthesisRequest, settings: OutputSettings, stats: RunStats, chunks: list[AudioChunk]
) -> Iterator[Step]:
    """Take the engine's turn (`ui.common.wait_for_turn`), then stream the request at the level that
    `settings` ask for; the chunks made are appended to `chunks`, the run's figures kept in `stats`."""
    request = with_visitor_lexicon(engine_id, request)  # the page visitor's pronunciations (`ui.lexicon_panel`)
    ticket = yield from wait_for_turn(engine_id, request, lambda line: Step(waiting=line))
    leveler = StreamLeveler(settings)
    for chunk, piece in leveler.level(timed_stream(engine_id, request, stats, ticket=ticket)):
        if chunk is not None:
            chunks.append(chunk)
        yield Step(sound=to_int16(piece) if piece.size else None, chunk=chunk, done=chunk is None)


def played(
    player: StreamPlayer,
    updates: Iterator[tuple],
    outputs: int,
    chunks: list[AudioChunk] | None = None,
    after: Callable[[str], Iterator[tuple]] | None = None,
) -> Iterator[tuple]:
    """A run's updates, `(int16 piece or None, *other outputs, stats)`, as the page's event yields them to
    `(player.output, *other outputs)`: the player's start first, each piece with the server's first-audio
    figure, its end last; `outputs` counts the event's outputs, the player's included. `chunks`: the
    list the run appends its chunks to (each piece then carries the model's word times it covers, for a
    live highlight); `after(run id)`: updates for once the run's audio has all been sent (the words checked)."""
    rest = (gr.skip(),) * (outputs - 1)
    start = player.start()
    yield (start, *rest)
    live = LiveWords(chunks if chunks is not None else [])
    latest = list(rest)  # each other output's last value
    try:
        for sound, *others, stats in updates:
            latest = _kept(latest, others)
            if sound is None:
                yield (gr.skip(), *others)
            else:
                yield (player.piece(sound, stats.ttfa_s, words=live.new()), *others)
    except gr.Error:
        yield (player.end(), *rest)  # a refused or failed run: the player is not left waiting for audio
        raise
    # The run's last updates carry every output's last value again (unchanged: nothing is re-sent while
    # streaming). Gradio 6.17.3 streams a generator's outputs as diffs, and on a busy page one was seen
    # lost (the download missing while the status in the same update arrived); the event's completion
    # carries each output's last value whole, so the page ends with every output as the run left it.
    yield (player.end(), *latest)
    if after is not None:
        for row in after(StreamPlayer.run_of(start)):
            latest = _kept(latest, row[1:])
            yield (row[0], *latest)


def _kept(latest: list, update: Sequence) -> list:
    """`latest` with the values `update` sets (a skip keeps the last one)."""
    return [old if isinstance(new, dict) and new == SKIP else new for old, new in zip(latest, update, strict=True)]


def pair_message(event: PairEvent, figures: bool = True) -> str | None:
    """What a slot's player gets for a pair event, or None for nothing: a new run when the slot starts
    (its id kept on the result as `player_run`, to match the browser's report), each levelled piece
    (with the server's first-audio figure and the model's word times when `figures`: the blind arena
    shows neither, since only some engines time words), the end of the run."""
    if isinstance(event, SlotStarted):
        start = StreamPlayer.start()
        event.result.player_run = json.loads(start)["run"]
        event.result.live_words = LiveWords(event.result.chunks)
        return start
    if isinstance(event, SlotChunk):
        live = getattr(event.result, "live_words", None) if figures else None
        words = live.new() if live is not None else None
        return StreamPlayer.piece(event.audio, event.result.stats.ttfa_s if figures else None, words=words)
    if isinstance(event, SlotFinished | SlotFailed):
        return StreamPlayer.end()
    return None
