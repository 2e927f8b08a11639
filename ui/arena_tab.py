"""The blind Arena tab: two random systems on one text, names hidden until the vote, a leaderboard.

The pool is `ARENA_SYSTEMS` (space-separated `engine:voice` specs) or, by default, every voice the
available preset engines can speak now and every saved cloned voice (when the cloning model is
there). Sides are drawn at random; the players are labelled A and B only. A vote (A better, B
better, tie, both bad) needs a finished pair; it reveals the systems and their metrics and is
stored by `evaluation.arena` (SQLite, `ARENA_DB`). When the database is damaged or locked the tab
says so and keeps playing pairs; votes are off until it is usable.
"""

from __future__ import annotations

import os
import random
import tempfile

import gradio as gr

from engines import registry
from engines.base import InputError
from engines.voice_library import list_voices
from evaluation.arena import ArenaUnavailable, from_screen
from evaluation.compare import Slot, parse_slot

from . import charts
from .common import OUTPUT_DIR, user_errors
from .compare_tab import ARENA, run_slots
from .player import StreamPlayer

EXAMPLES = [
    "The birch canoe slid on the smooth planks.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "It was the best of times, it was the worst of times.",
    "A rainbow is a division of white light into many beautiful colors.",
]
CHOICES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
PRESET_ENGINES = ("kokoro", "qwen-custom")


def pool() -> list[Slot]:
    """The systems a pair is drawn from."""
    configured = os.environ.get("ARENA_SYSTEMS", "").split()
    if configured:
        return [parse_slot(spec) for spec in configured]
    slots = []
    for engine_id in PRESET_ENGINES:
        info = registry.info(engine_id)
        if info.available:
            slots += [Slot(engine_id, v.id) for v in info.voices if v.available]
    if registry.info("qwen-clone").available:
        slots += [Slot("qwen-clone", name) for name in list_voices()]
    return slots


def db_line() -> str:
    if ARENA.available():
        return f"Votes are stored in `{ARENA.path.name}`."
    return f"**Votes are off:** {ARENA.problem}"


def leaderboard() -> list[list]:
    """Rows of the leaderboard (empty, with a reason in the status line, when the database is unusable)."""
    if not ARENA.available():
        return []
    try:
        rows = ARENA.leaderboard()
    except InputError:
        return []
    return [
        [r["system"], round(r["rating"]), f"{r['ci_low']:.0f} – {r['ci_high']:.0f}" if r["ci_low"] is not None else "–",
         r["votes"], r["wins"], r["losses"], r["ties"], r["both_bad"]]
        for r in rows
    ]  # fmt: skip


def export() -> list[str]:
    """Votes and runs as CSV and JSON files."""
    folder = tempfile.mkdtemp(prefix="arena-", dir=_output_dir())
    return [str(p) for p in ARENA.export_files(folder)]


def _output_dir() -> str:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return str(OUTPUT_DIR)


def vote_on(current: dict | None, choice: str) -> tuple:
    """Store a vote on the finished pair and reveal it.

    Returns the reveal line, the metrics table, the new pair state, the leaderboard and the database line.
    """
    results = (current or {}).get("results") or {}
    if len(results) < 2 or not all(r.finished and r.metrics for r in results.values()):
        raise gr.Error("Both clips must finish before you vote.")
    if current.get("voted"):
        raise gr.Error("You already voted on this pair; press New pair for another.")
    a, b = results["A"], results["B"]
    reveal = f"A was **{a.slot.system}**, B was **{b.slot.system}**."
    if ARENA.available():
        sides = [
            {"engine": r.slot.engine, "voice": r.slot.voice, "metrics": r.metrics, "run_id": r.run_id} for r in (a, b)
        ]
        try:
            ARENA.record_vote(current["text"], sides[0], sides[1], from_screen(choice, "a"), left="a")
            reveal = f"Vote stored: {CHOICES[choice]}. " + reveal
        except ArenaUnavailable as exc:  # locked or damaged since the page loaded: reveal anyway
            reveal = f"Not stored ({exc}) " + reveal
        except InputError as exc:
            raise gr.Error(str(exc)) from None
    else:
        reveal = f"Not stored ({ARENA.problem}) " + reveal
    table = charts.table({f"A · {a.slot.system}": a.metrics, f"B · {b.slot.system}": b.metrics})
    headers = ["metric", f"A · {a.slot.system}", f"B · {b.slot.system}"]
    return (
        reveal,
        gr.update(value=table, headers=headers),
        {**current, "voted": True},
        leaderboard(),
        db_line(),
    )


def _player(name: str, first: StreamPlayer | None) -> StreamPlayer:
    """Slot `name`'s player: B plays once A has played to its end; no figures before the vote."""
    return StreamPlayer(f"arena-{name.lower()}-player", name, autoplay=first is None, follows=first, figures=False)


def build_tab() -> None:
    """The Arena tab, inside the caller's gr.Blocks."""
    with gr.Tab("Blind arena", id="arena"):
        gr.Markdown(
            "Two voices drawn at random say the same words. Listen to both, then vote: "
            "the names are shown after your vote."
        )
        db_status = gr.Markdown(db_line(), elem_id="arena-db")
        text = gr.Textbox(label="Text", value=EXAMPLES[0], lines=2, elem_id="arena-text")
        gr.Examples(EXAMPLES, inputs=text, label="Examples")
        new_pair = gr.Button("New pair", variant="primary", elem_id="arena-new")
        ui: dict = {}
        players: dict[str, StreamPlayer] = {}
        with gr.Row():
            for name in "AB":
                with gr.Column():
                    players[name] = _player(name, players.get("A"))
                    status = gr.Markdown(elem_id=f"arena-{name.lower()}-status")
                    ui[name] = (players[name].output, status)
        with gr.Row():
            buttons = {key: gr.Button(label, elem_id=f"arena-vote-{key}") for key, label in CHOICES.items()}
        ui["notice"] = gr.Markdown(elem_id="arena-reveal")
        ui["table"] = gr.Dataframe(
            headers=["metric", "A", "B"], label="Measured (shown after the vote)", interactive=False,
            elem_id="arena-metrics",
        )  # fmt: skip
        for hidden in ("chart", "pictures", "file", "state"):  # run_slots' other outputs, not shown here
            ui[hidden] = gr.State()
        pair = gr.State()
        with gr.Accordion("Leaderboard", open=True):
            board = gr.Dataframe(
                headers=["system", "rating", "95% CI", "votes", "wins", "losses", "ties", "both bad"],
                value=leaderboard, interactive=False, elem_id="arena-leaderboard",
            )  # fmt: skip
            with gr.Row():
                refresh = gr.Button("Refresh")
                export_button = gr.Button("Export votes and runs (CSV, JSON)")
            files = gr.File(label="Exports", file_count="multiple", interactive=False)
        outputs = [ui["A"][0], ui["A"][1], ui["B"][0], ui["B"][1], ui["notice"], ui["table"], pair]

        @user_errors
        def play_pair(text):
            if not (text or "").strip():
                raise InputError("Please type some text for the pair to say.")
            systems = pool()
            if len({s.system for s in systems}) < 2:
                raise InputError("The arena needs at least two voices that can speak now.")
            first, second = random.sample(systems, 2)
            while second.system == first.system:
                second = random.choice(systems)
            yield {
                ui["notice"]: "Listen to A and B…",
                ui["table"]: gr.update(value=[], headers=["metric", "A", "B"]),
                pair: None,
            }
            for update in run_slots(text, {"A": first, "B": second}, ui):
                for hidden in ("table", "chart", "pictures", "file"):  # metrics stay hidden until the vote
                    update.pop(ui[hidden], None)
                if ui["state"] in update:
                    update[pair] = {"text": text, "results": update.pop(ui["state"]), "voted": False}
                    update[ui["notice"]] = "Both clips are ready: which one sounds better?"
                yield update

        new_pair.click(play_pair, text, outputs, api_visibility="private", concurrency_id="compare")
        for player in players.values():
            player.bind(new_pair)
        for key, button in buttons.items():
            button.click(
                lambda current, key=key: vote_on(current, key),
                pair,
                [ui["notice"], ui["table"], pair, board, db_status],
                api_visibility="private",
            )
        refresh.click(lambda: (leaderboard(), db_line()), None, [board, db_status], api_visibility="private")
        export_button.click(user_errors(export), None, files, api_visibility="private")
