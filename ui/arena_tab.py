"""The blind Arena tab: two random systems on one text, nothing about them shown until the vote, a leaderboard.

The pool is `ARENA_SYSTEMS` (space-separated `engine:voice` specs) or, by default, every voice the
available preset engines can speak now and every saved cloned voice (when the cloning model is
there). The text is a built-in prompt of a category the visitor picks (or "any", drawn at random;
`evaluation.prompts`) or their own, classified into a category and language the tab shows; a
non-English text is spoken in its language by every system whose engine lists it. Sides are drawn
at random and the pair runs through `evaluation.pair`; this tab maps its events to neutral words only
("A is speaking…", "A is ready"): before the vote no status line, notice, error, file or payload names
an engine, voice, back-end, device or weights, or shows a figure. A slot that fails before anything
was played redraws the pair; later, the pair is void.
A vote (A better, B better, tie, both bad) is taken only as `evaluation.ballot` allows (a pair served
to this visitor, both clips heard, once, with the pair's proof of work, within the caps of the
person: the signed-in account, else the client address): the page reports playback and solves the
challenge (`arena_pow.js`, while the clips play), and the vote buttons stay disabled until then.
The vote reveals the systems and their figures and is stored by `evaluation.arena` (SQLite,
`ARENA_DB`) with the visitor's optional reason tags; after it,
each clip's figures stand next to the outcome, and the board's section shows how often listeners chose
the better-measured clip. The leaderboard is over all votes or one prompt category and/or language
(the `/leaderboard` endpoint and MCP tool take both, and name the board in a last column), on the
built-in prompts (the main board) or on typed texts (their own board); its line says how many votes
were counted, flagged and left out, and how the board is protected. When the
database is damaged or locked the tab says so and keeps playing pairs; votes are off until it is usable.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import gradio as gr

from engines.base import SAMPLE_RATE, EngineError, InputError
from engines.language import iso_code
from engines.runtime import registry
from engines.strict_json import parse as parse_json
from engines.voice_library import arena_voices
from evaluation import prompts
from evaluation.arena import (
    BUILTIN,
    REASONS,
    TYPED,
    ArenaUnavailable,
    Rules,
    better_measured,
    board_keys,
    board_name,
    configured_systems,
    from_screen,
    min_votes_to_rank,
    reason_keys,
    require_login,
    split_system,
)
from evaluation.ballot import (
    NOT_FINISHED,
    Ballots,
    VoteRefused,
    counting_key,
    pow_bits,
    signed_in,
    votes_per_day,
    votes_per_hour,
)
from evaluation.compare import ClipResult, Slot, parse_slot
from evaluation.pair import (
    Measuring,
    MetricsReady,
    PairEvent,
    SlotChunk,
    SlotFailed,
    SlotFinished,
    SlotStarted,
)
from service import arena, janitor
from service import pair as pairs
from service.caller import client_address
from service.janitor import output_dir

from . import charts
from .caller import caller
from .common import status_line, user_errors
from .compare_tab import ARENA, remember
from .owner import signed_in_user
from .page import COUNTED, HIDE_EMPTY
from .player import StreamPlayer
from .stopping import stoppable
from .streaming import pair_message

log = logging.getLogger(__name__)

CHOICES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
OUTCOMES = {"a": ("chosen", "not chosen"), "b": ("not chosen", "chosen"), "tie": ("tie", "tie")}
OUTCOMES["both_bad"] = ("both bad", "both bad")
ALL = "all"
BOARD_HEADERS = [
    "system", "rating", "95% CI", "votes", "wins", "losses", "ties", "both bad", "won for", "lost for", "flagged",
    "left out", "board",
]  # fmt: skip
BOARDS = {BUILTIN: "Built-in prompts (the main board)", TYPED: "Typed texts"}
POW_JS = (Path(__file__).with_name("arena_pow.js")).read_text(encoding="utf-8")
BOARD_LANGUAGES = ("en", "es", "fr", "it", "pt", "de", "ja", "zh", "ko", "ru", "hi")  # the boards' language choices
RECENT = 30  # prompts a visitor heard that are not drawn again while their category has others
MAX_DRAWS = 3  # a slot that fails before anything was played: draw again, this many pairs at most
BALLOTS = Ballots()
COULD_NOT_PLAY = "This pair could not be played; press New pair for another."
READY = "Both clips are ready: which one sounds better? The vote opens once you have heard both."


def pool() -> list[Slot]:
    """The systems a pair is drawn from (`ARENA_SYSTEMS`, else every voice the engines can speak here)."""
    configured = configured_systems()
    if configured:
        return [parse_slot(spec) for spec in configured]
    slots = []
    for engine_id in registry.ENGINES:  # every available engine's own voices
        info = registry.info(engine_id)
        if info.available:
            slots += [Slot(engine_id, v.id) for v in info.voices if v.available]
    for engine_id in registry.engines_that("saved_voices"):  # saved voices shared by their owners
        if registry.info(engine_id).available:  # two owners' voices of one name: two systems (the owner's tag)
            slots += [
                Slot(engine_id, name, owner=owner, owner_tag=ARENA.owner_tag(owner)) for owner, name in arena_voices()
            ]
    return slots


def draw(systems: list[Slot], excluded: set[str]) -> tuple[Slot, Slot] | None:
    """Two different systems at random, none of `excluded`; None when fewer than two are left."""
    left = list({s.system: s for s in systems if s.system not in excluded}.values())
    return tuple(random.sample(left, 2)) if len(left) >= 2 else None


def visitor(request: gr.Request | None) -> str:
    """Who is voting: the page's session and the client's address (one visitor, one ballot)."""
    if request is None:
        return "?"
    return f"{getattr(request, 'session_hash', None) or '?'}@{client_address(request)}"


def voter(request: gr.Request | None) -> str:
    """Whose vote it counts as (`evaluation.ballot.counting_key`): the signed-in Hugging Face account,
    else the client address; never the session, which the client chooses."""
    if request is None:
        return counting_key(None, None)
    return counting_key(signed_in_user(request), client_address(request))


def db_line() -> str:
    if ARENA.available():
        return "Votes are saved on this server; they make the leaderboard below."
    return f"**Votes are off:** {ARENA.problem}"


def leaderboard(category: str = ALL, language: str = ALL, prompts_of: str = BUILTIN) -> list[list]:
    """The Arena's ratings as the tab shows them: over the counted votes on the built-in prompts (the
    main board) or on typed texts, all of them or those on one prompt category and/or one language
    (each fitted on those votes alone). Columns: system, rating, 95% CI, votes (counted), wins, losses,
    ties, both bad, the reason tags of the votes it won and lost, its votes flagged and left out, and
    the board (e.g. "all votes", "category names", "typed texts, language es"). Empty when the vote
    database is unusable.

    Args:
        category: "all", or a prompt category: short, long, numbers, names, non_english, dialogue.
        language: "all", or an ISO 639-1 code such as en, es, fr, it, pt, ja, zh.
        prompts_of: "built-in" (the main board: votes on the built-in prompts) or "typed" (typed texts).
    """
    try:
        keys = board_keys(category, language)
        rows = ARENA.leaderboard(category=keys[0], language=keys[1], board=prompts_of) if ARENA.available() else []
    except EngineError as exc:  # the database went unusable meanwhile: said by the database line
        if isinstance(exc, InputError):
            raise gr.Error(str(exc)) from None
        return []
    return [
        [r["system"] + (" (preliminary)" if r.get("preliminary") else ""), round(r["rating"]),
         f"{r['ci_low']:.0f} – {r['ci_high']:.0f}" if r["ci_low"] is not None else "–",
         r["votes"], r["wins"], r["losses"], r["ties"], r["both_bad"],
         _tags(r.get("reasons_won")), _tags(r.get("reasons_lost")), r.get("flagged", 0), r.get("left_out", 0),
         r.get("board", board_name(*keys))]
        for r in rows
    ]  # fmt: skip


def _tags(counts: dict | None) -> str:
    """Reason tags with their counts, most first ("pacing 3, artefacts 1"), or "–"."""
    found = sorted(
        ((n, tag) for tag, n in (counts or {}).items() if n), key=lambda x: (-x[0], list(REASONS).index(x[1]))
    )
    return ", ".join(f"{REASONS[tag]} {n}" for n, tag in found) or "–"


def board_line(category: str = ALL, language: str = ALL, prompts_of: str = BUILTIN) -> str:
    """Which board the table shows, and how far to trust it: votes counted, flagged and left out."""
    try:
        keys = board_keys(category, language)
        if not ARENA.available():
            return ""
        trust = ARENA.trust(category=keys[0], language=keys[1], board=prompts_of)
    except InputError as exc:
        return str(exc)
    except EngineError:
        return ""
    votes = trust["counted"]
    line = f"Board: **{board_name(*keys, prompts_of)}** · {votes} vote{'s' if votes != 1 else ''}"
    line += f" counted · {trust['flagged']} flagged · {trust['left_out']} left out."
    if prompts_of == TYPED:
        line += " Typed texts are the visitors' own: this board is apart from the main one."
    return line


def protection_line() -> str:
    """How the board is protected, with the settings in force."""
    bits = pow_bits()
    work = f"a proof of work in the page ({bits} bits) for every vote; " if bits else ""
    login = "only signed-in votes count; " if require_login() else ""
    return (
        "**How this board is protected:** a vote counts once per person (the signed-in Hugging Face account, "
        f"else the address), at most {votes_per_hour()} an hour and {votes_per_day()} a day; {login}{work}"
        "both clips must be heard first; the main board counts only the built-in prompts, each prompt and pair "
        f"once per voter; votes showing a pattern are flagged and left off the board ({Rules.from_env().describe()}). "
        f"Systems with fewer than {min_votes_to_rank()} counted votes are *preliminary*."
    )


def better_measured_chosen(language: str = ALL) -> list[list]:
    """How often listeners chose the better-measured clip (lower ASR error rate; higher predicted MOS),
    over all votes and per prompt category, with the counts: the votes whose clips differ in the figure
    and A or B was chosen, how many chose the better-measured one, the share with its 95% Wilson
    interval, and the ties and both-bad votes left out. Empty when the vote database is unusable.

    Args:
        language: "all", or an ISO 639-1 code such as en, es, ja: only the votes on texts in it.
    """
    try:
        _, code = board_keys(None, language)
    except InputError as exc:
        raise gr.Error(str(exc)) from None
    try:
        rows = ARENA.agreement(language=code) if ARENA.available() else []
    except EngineError:
        return []
    return charts.agreement_rows(rows, {"all": "all", **prompts.CATEGORIES})


def pick_prompt(category: str, recent: list | None) -> tuple[str, str, list]:
    """A built-in prompt of the category ("any": one drawn at random), not one of the visitor's
    recent ones while others are left: the text, its line and the recent prompts."""
    recent = list(recent or [])
    try:
        prompt = prompts.draw(category, recent)
    except InputError as exc:
        raise gr.Error(str(exc)) from None
    return prompt.text, kind_line(prompt.text), (recent + [prompt.text])[-RECENT:]


def kind_line(text: str) -> str:
    """What a text is, as the tab shows it before the pair: "Prompt: **Names** · English"."""
    if not (text or "").strip():
        return ""
    try:
        kind = arena.classify(caller(), text)  # metered by its characters
    except EngineError as exc:
        return str(exc)
    return f"Prompt: **{prompts.CATEGORIES[kind.category]}** · {prompts.language_name(kind.language)}"


def in_language(slot: Slot, language: str | None) -> Slot:
    """The slot speaking a non-English text's language, when its engine lists that language."""
    if language in (None, "en") or not languages_of(slot.engine, language):
        return slot
    return replace(slot, language=language)


def languages_of(engine_id: str, language: str) -> bool:
    """Whether an engine lists a language (by ISO code) among those its requests may name."""
    return any(iso_code(name) == language for name in registry.capabilities(engine_id).languages)


def export() -> list[str]:
    """Votes and runs as CSV and JSON files (figures; texts and transcripts only with ARENA_EXPORT_TEXTS=1)."""
    folder = tempfile.mkdtemp(prefix="arena-", dir=_output_dir())
    paths = [str(p) for p in arena.export(caller(), ARENA.export_files, folder)]
    janitor.written()
    return paths


def _output_dir() -> str:
    output_dir().mkdir(parents=True, exist_ok=True)
    return str(output_dir())


def to_player(event: PairEvent | None):
    """What a slot's player gets for a pair event (None: nothing), or for None, the end of a pair in
    which it got no audio; the one place that knows the player is a `StreamPlayer`: a new run when
    the slot starts, each piece (without the server's figures: nothing is shown before the vote), the
    end of the run."""
    return StreamPlayer.end() if event is None else pair_message(event, figures=False)


def _with_player(update: dict, player, event: PairEvent) -> dict:
    value = to_player(event)
    return update if value is None else {**update, player: value}


def buttons_update(open_: bool) -> gr.update:
    return gr.update(interactive=open_)


def reveal_line(name: str, result: ClipResult) -> str:
    """A slot's status after the vote: what spoke and its figures."""
    return f"{name} was **{result.slot.system}** · " + status_line(result.slot.engine, result.stats, done=True)


def vote_on(
    current: dict | None,
    choice: str,
    who: str,
    reasons: Iterable[str] | None = None,
    category: str = ALL,
    language: str = ALL,
    key: str | None = None,
    proof: object = None,
    prompts_of: str = BUILTIN,
) -> tuple:
    """Store a vote on the pair served to `who`, counted for `key` (`voter`; default `who`) with the
    page's proof of work, with the visitor's reason tags, and reveal it (refused, with one sentence,
    where `evaluation.ballot` says the vote is not taken, or a reason is not one of `REASONS`: then the
    pair can still be voted on).

    Returns the reveal (the outcome next to each clip's figures), the metrics table, the new pair
    state, the leaderboard (of the board `category` and `language`), the database line, both slots'
    status lines and the "better-measured clip chosen" table.
    """
    results = (current or {}).get("results") or {}
    if len(results) < 2 or not all(r.finished and r.metrics for r in results.values()):
        raise gr.Error(NOT_FINISHED)
    try:
        tags = reason_keys(reasons)
    except InputError as exc:
        raise gr.Error(str(exc)) from None
    token = current.get("token")
    key = key or who
    try:
        BALLOTS.cast(who, token, key=key, proof=proof)
    except VoteRefused as exc:
        raise gr.Error(str(exc)) from None
    a, b = results["A"], results["B"]
    reveal = f"A was **{a.slot.system}**, B was **{b.slot.system}**."
    if ARENA.available():
        sides = [
            {"engine": r.slot.engine, "voice": split_system(r.slot.system)[1], "metrics": r.metrics, "run_id": r.run_id}
            for r in (a, b)
        ]  # the voice as the system names it (a shared voice with its owner's tag)
        try:
            ARENA.record_vote(
                current["text"], sides[0], sides[1], from_screen(choice, "a"), left="a", reasons=tags, voter=key,
                listened=BALLOTS.listened(token),
            )  # fmt: skip
            why = f"Why: {', '.join(REASONS[t] for t in tags)}. " if tags else ""
            reveal = f"Vote stored: {CHOICES[choice]}. {why}" + reveal
            if require_login() and not signed_in(key):
                reveal = "Your vote is stored as anonymous and is not counted on the board: sign in to count. " + reveal
        except ArenaUnavailable as exc:  # locked or damaged since the page loaded: reveal anyway
            reveal = f"Not stored ({exc}) " + reveal
        except InputError as exc:
            BALLOTS.withdraw(who, token, key)
            raise gr.Error(str(exc)) from None
    else:
        reveal = f"Not stored ({ARENA.problem}) " + reveal
    table = charts.table({f"A · {a.slot.system}": a.metrics, f"B · {b.slot.system}": b.metrics})
    headers = ["metric", f"A · {a.slot.system}", f"B · {b.slot.system}"]
    try:
        board = leaderboard(category, language, prompts_of)
    except gr.Error:
        board = leaderboard()
    return (
        reveal + "\n\n" + outcome(a, b, choice),
        gr.update(value=table, headers=headers),
        {**current, "voted": True},
        board,
        db_line(),
        reveal_line("A", a),
        reveal_line("B", b),
        better_measured_chosen(),
    )


def outcome(a: ClipResult, b: ClipResult, choice: str) -> str:
    """After the vote: each clip's figures next to what the vote made of it, and whether the
    better-measured clip was the one chosen."""
    figures = {name: _figures(r) for name, r in (("A", a), ("B", b))}
    better = {}
    for figure in ("error_rate", "mos"):
        side = better_measured(figures["A"], figures["B"], figure)
        better[figure] = None if side is None else side.upper()
    clips = {name: (r.slot.system, figures[name]) for name, r in (("A", a), ("B", b))}
    lines = [charts.outcome(clips, dict(zip("AB", OUTCOMES[choice], strict=True)), better)]
    for figure, name in better.items():
        if name is None:
            continue
        what = charts.FIGURE_NAMES[figure]
        if choice in ("a", "b"):
            verdict = "your choice" if name.lower() == choice else "not your choice"
        else:
            verdict = "you chose neither"
        lines.append(f"The clip with the {what} was {name}: {verdict}.")
    return "\n\n".join(lines)


def _figures(result: ClipResult) -> dict:
    """A clip's figures for the outcome: its metrics, with the run's first audio where metrics lack it."""
    figures = dict(result.metrics or {})
    stats = getattr(result, "stats", None)
    if figures.get("ttfa_s") is None and getattr(stats, "ttfa_s", None) is not None:
        figures["ttfa_s"] = stats.ttfa_s
    return figures


def heard(report_a: str, report_b: str, current: dict | None, who: str, key: str | None = None) -> bool:
    """Take the page's playback reports (JSON `{"run", "played_s", "ended"}` per player) for the pair in
    this session's state; whether the vote is open now (for counting key `key`, default `who`). A report
    counts only for the run it names: the pair's token, or the player's own run id where
    `current["runs"]` maps the slot to one."""
    token = (current or {}).get("token")
    runs = (current or {}).get("runs") or {}
    for slot, report in (("A", report_a), ("B", report_b)):
        try:
            got = parse_json((report or "{}").encode("utf-8", "replace"))
            if token and str(got.get("run")) == runs.get(slot, token):
                BALLOTS.heard(who, token, slot, float(got.get("played_s") or 0), bool(got.get("ended")))
        except (ValueError, TypeError, AttributeError):
            continue  # a report that is not ours: ignored
    return vote_open(current, who, key)


def vote_open(current: dict | None, who: str, key: str | None = None) -> bool:
    """Whether a vote on this pair would be taken now (the proof of work aside)."""
    results = (current or {}).get("results") or {}
    if current is None or current.get("voted") or len(results) < 2:
        return False
    return BALLOTS.problem(who, current.get("token"), key) is None


def pair_updates(text: str, who: str, ui: dict) -> Iterator[dict]:
    """A blind pair for visitor `who`: `pair_events` mapped to the tab's outputs in neutral words.

    `ui` holds the components: "A" and "B" (player, status line), "notice", "table", "pair" (the
    session's pair state), "run" (the pair's token for the page's progress reports), "buttons" (the
    vote buttons). A slot that fails before anything was played redraws the pair without it (at most
    `MAX_DRAWS` pairs); a failure after that voids the pair. No sentence of a failure reaches the page.
    """
    if not (text or "").strip():
        raise InputError("Please type some text for the pair to say.")
    kind = arena.classify(caller(), text)
    systems = pool()
    if len({s.system for s in systems}) < 2:
        raise InputError("The arena needs at least two voices that can speak now.")
    players = {name: ui[name][0] for name in "AB"}
    statuses = {name: ui[name][1] for name in "AB"}
    vote_buttons = ui["buttons"]
    sent = {"A": False, "B": False}
    excluded: set[str] = set()
    failed = None
    for attempt in range(MAX_DRAWS):
        drawn = draw(systems, excluded)
        if drawn is None:
            break
        token = BALLOTS.serve(who)
        first = {ui["kind"]: kind_line(text)} if "kind" in ui else {}
        if "challenge" in ui:  # the page solves it while the clips play
            first[ui["challenge"]] = json.dumps(BALLOTS.challenge(token))
        if "reasons" in ui:
            first[ui["reasons"]] = gr.update(value=[])  # the tags of the last vote do not carry over
        yield first | {
            ui["notice"]: "Listen to A and B…", ui["table"]: gr.update(value=[], headers=["metric", "A", "B"]),
            ui["pair"]: {"token": token, "text": text, "results": None, "voted": False, "runs": {}},
            statuses["A"]: "A is waiting…", statuses["B"]: "B is waiting…",
            **dict.fromkeys(vote_buttons, buttons_update(False)),
        }  # fmt: skip
        seconds = {"A": 0.0, "B": 0.0}
        runs: dict[str, str] = {}
        failed = None
        events = pairs.events(
            caller(), text, {name: in_language(slot, kind.language) for name, slot in zip("AB", drawn, strict=True)}
        )
        for event in events:
            if isinstance(event, SlotStarted):
                start = to_player(event)
                runs[event.slot] = json.loads(start)["run"]  # the player's reports name this run
                yield {
                    statuses[event.slot]: f"{event.slot} is speaking…", players[event.slot]: start,
                    ui["pair"]: {"token": token, "text": text, "results": None, "voted": False, "runs": dict(runs)},
                }  # fmt: skip
            elif isinstance(event, SlotChunk):
                BALLOTS.sent(token, event.slot)
                sent[event.slot] = True
                seconds[event.slot] += event.audio.size / SAMPLE_RATE
                yield {players[event.slot]: to_player(event)}
            elif isinstance(event, SlotFailed) or (isinstance(event, SlotFinished) and not event.result.chunks):
                failed = event
                break
            elif isinstance(event, SlotFinished):
                BALLOTS.finished(token, event.slot, seconds[event.slot])
                yield _with_player({statuses[event.slot]: f"{event.slot} is ready."}, players[event.slot], event)
            elif isinstance(event, Measuring):
                yield {ui["notice"]: "Both clips are ready: listen to both, at least three seconds of each."}
            elif isinstance(event, MetricsReady):
                for result in event.results.values():
                    remember(result, text)
                current = {"token": token, "text": text, "results": event.results, "voted": False, "runs": runs}
                yield {
                    ui["pair"]: current, ui["notice"]: READY,
                    **dict.fromkeys(vote_buttons, buttons_update(vote_open(current, who))),
                }  # fmt: skip
        events.close()
        if failed is None:
            return
        BALLOTS.void(token)
        excluded.add(failed.result.slot.system)
        log.warning("arena slot %s failed: %s", failed.result.slot.system, getattr(failed, "sentence", ""))
        if any(sent.values()) or attempt == MAX_DRAWS - 1:
            break
        yield {statuses[failed.slot]: f"{failed.slot} could not be played; new pair…"}
    update = {ui["notice"]: COULD_NOT_PLAY, ui["pair"]: None, statuses["A"]: "", statuses["B"]: ""}
    if failed is not None:
        update[statuses[failed.slot]] = f"{failed.slot} could not be played."
    yield update
    # Gradio ends a streamed output that never started with an error: silence for a player without audio
    silent = {players[name]: to_player(None) for name, got in sent.items() if not got}
    if silent:
        yield silent


def blind(fn):
    """Errors of a pair reach the visitor without naming anything: one neutral sentence (the
    visitor's own input errors excepted)."""

    @functools.wraps(fn)
    def generator(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except gr.Error:
            raise
        except InputError as exc:
            raise gr.Error(str(exc)) from None
        except Exception:
            log.exception("arena pair failed")
            raise gr.Error(COULD_NOT_PLAY) from None

    generator.starts_work = True  # a pair runs two engines (metered by service.pair)
    return generator


def _player(name: str, first: StreamPlayer | None) -> StreamPlayer:
    """Slot `name`'s player: B plays once A has played to its end; no figures before the vote."""
    return StreamPlayer(f"arena-{name.lower()}-player", name, autoplay=first is None, follows=first, figures=False)


def build_tab() -> None:
    """The Arena tab, inside the caller's gr.Blocks."""
    with gr.Tab("Blind arena", id="arena", elem_id="arena-tab"):
        gr.Markdown(
            "Two voices drawn at random say the same words. Pick a kind of prompt (or type your own text), "
            "listen to both, then vote: the names are shown after your vote."
        )
        db_status = gr.Markdown(db_line(), elem_id="arena-db")
        with gr.Row():
            category = gr.Dropdown(
                [("Any (drawn at random)", prompts.ANY), *((label, key) for key, label in prompts.CATEGORIES.items())],
                value=prompts.ANY, label="Prompt category", elem_id="arena-category", scale=3,
            )  # fmt: skip
            draw_button = gr.Button("Draw a prompt", elem_id="arena-draw", scale=1)
        opening = prompts.prompts("short")[0].text  # a built-in prompt: a vote on it counts on the main board
        text = gr.Textbox(
            label="Text (a drawn prompt, or your own)", value=opening, lines=2, elem_id="arena-text",
            elem_classes=[COUNTED],
        )  # fmt: skip
        kind = gr.Markdown(kind_line(opening), elem_id="arena-prompt-kind")
        recent = gr.State([])
        with gr.Row():
            new_pair = gr.Button("New pair", variant="primary", elem_id="arena-new")
            stop = gr.Button("Stop", variant="stop", elem_id="arena-stop")
        players: dict[str, StreamPlayer] = {}
        statuses = {}
        with gr.Column(elem_id="arena-pair"):
            with gr.Row():
                for name in "AB":
                    with gr.Column():
                        players[name] = _player(name, players.get("A"))
                        statuses[name] = gr.Markdown(elem_id=f"arena-{name.lower()}-status")
            reasons = gr.CheckboxGroup(
                [(label, key) for key, label in REASONS.items()], label="Why? (optional: tick before you vote)",
                elem_id="arena-reasons",
            )  # fmt: skip
            with gr.Row():
                buttons = {
                    key: gr.Button(label, elem_id=f"arena-vote-{key}", interactive=False)
                    for key, label in CHOICES.items()
                }
            notice = gr.Markdown(elem_id="arena-reveal")
            table = gr.Dataframe(
                headers=["metric", "A", "B"], label="Measured (shown after the vote)", interactive=False,
                elem_id="arena-metrics", visible=False,  # the reveal's own table shows each clip's figures, once
            )  # fmt: skip
        pair = gr.State()
        challenge = gr.HTML(
            value="", html_template="", visible="hidden", elem_id="arena-challenge",
            js_on_load=POW_JS + "\nwatch('value', () => window.arenaChallenge(props.value));",
        )  # fmt: skip
        with gr.Accordion("Leaderboard", open=True, elem_id="arena-board"):
            gr.Markdown(
                "Ordered by the lower end of each system's 95% interval; *preliminary*: fewer votes than "
                "the board needs to say much. A category or language board is fitted on its own votes."
            )
            gr.Markdown(protection_line(), elem_id="arena-protection")
            with gr.Row():
                board_prompts = gr.Dropdown(
                    [(label, key) for key, label in BOARDS.items()], value=BUILTIN, label="Board: prompts",
                    elem_id="arena-board-prompts",
                )  # fmt: skip
                board_category = gr.Dropdown(
                    [("All categories", ALL), *((label, key) for key, label in prompts.CATEGORIES.items())],
                    value=ALL, label="Board: prompt category", allow_custom_value=True, elem_id="arena-board-category",
                )  # fmt: skip
                board_language = gr.Dropdown(
                    [("All languages", ALL), *((prompts.language_name(c), c) for c in BOARD_LANGUAGES)],
                    value=ALL, label="Board: language", allow_custom_value=True, elem_id="arena-board-language",
                )  # fmt: skip
            which = gr.Markdown(board_line(), elem_id="arena-board-name")
            board = gr.Dataframe(
                headers=BOARD_HEADERS, value=leaderboard, inputs=[board_category, board_language, board_prompts],
                interactive=False, elem_id="arena-leaderboard",
            )  # fmt: skip
            gr.Markdown(
                "How often listeners chose the clip that measured better (lower ASR error rate; higher "
                "predicted MOS), counting the votes whose clips differ in that figure; ties and both-bad "
                "votes apart."
            )
            agreed = gr.Dataframe(
                headers=charts.AGREEMENT_HEADERS, value=better_measured_chosen, inputs=[board_language],
                interactive=False, elem_id="arena-agreement",
            )  # fmt: skip
            with gr.Row():
                refresh = gr.Button("Refresh")
                export_button = gr.Button("Export votes and runs (CSV, JSON)")
            files = gr.File(label="Exports", file_count="multiple", interactive=False, elem_classes=HIDE_EMPTY)
        vote_buttons = list(buttons.values())
        outputs = [players["A"].output, statuses["A"], players["B"].output, statuses["B"], notice, table, pair]
        outputs += [kind, reasons, challenge, *vote_buttons]
        reports = {name: player.report for name, player in players.items()}

        ui = {"A": (players["A"].output, statuses["A"]), "B": (players["B"].output, statuses["B"]), "notice": notice}
        ui.update(table=table, pair=pair, buttons=vote_buttons, kind=kind, reasons=reasons, challenge=challenge)

        @blind
        def play_pair(text, request: gr.Request):
            yield from pair_updates(text, visitor(request), ui)

        # the last vote's tags are cleared in the page at the click too: the pair's own clear (its first update)
        # was once seen not to reach a busy page, and a tag carried over would go with the next vote
        new_pair.click(
            None, None, reasons, js="() => []", queue=False, show_progress="hidden", api_visibility="private"
        )
        pair_event = new_pair.click(
            stoppable(play_pair), text, outputs, api_visibility="private", concurrency_id="compare"
        )
        players["A"].bind(new_pair, stop, [pair_event], [statuses["A"], statuses["B"]])
        players["B"].bind(new_pair, stop)
        for trigger in (category.input, draw_button.click):
            trigger(pick_prompt, [category, recent], [text, kind, recent], api_visibility="private")
        text.blur(kind_line, text, kind, api_visibility="private")
        vote_outputs = [notice, table, pair, board, db_status, statuses["A"], statuses["B"], agreed, *vote_buttons]
        for key, button in buttons.items():

            def on_vote(current, tags, board_kind, board_lang, board_of, proof, request: gr.Request, key=key):
                try:
                    revealed = arena.vote(  # counted as one of the caller's requests (`service.arena`)
                        caller(request=request), vote_on,
                        current, key, visitor(request), tags, board_kind, board_lang, key=voter(request),
                        proof=proof, prompts_of=board_of,
                    )  # fmt: skip
                    return (*revealed, *[buttons_update(False)] * len(vote_buttons))
                except (gr.Error, EngineError) as exc:  # refused (also past the caller's allowance): said once
                    message = exc.message if isinstance(exc, gr.Error) else str(exc)
                    gr.Warning(message)
                    return (message, *[gr.skip()] * (len(vote_outputs) - 1))

            button.click(
                on_vote,
                [pair, reasons, board_category, board_language, board_prompts, challenge],
                vote_outputs,
                api_visibility="private",
                js="(...args) => window.arenaVoteInputs(...args)",
            ).then(board_line, [board_category, board_language, board_prompts], which, api_visibility="private")

        def on_report(report_a, report_b, current, request: gr.Request):
            open_ = heard(report_a, report_b, current, visitor(request), voter(request))
            return [buttons_update(open_)] * len(vote_buttons)

        for report in reports.values():
            report.change(
                on_report, [reports["A"], reports["B"], pair], vote_buttons,
                api_visibility="private", trigger_mode="always_last",
            )  # fmt: skip
        # the line names the board the table shows: when a selector changes, and when the table does
        # (on page load: the line was written when the page was built)
        for trigger in (board_category.change, board_language.change, board_prompts.change, board.change):
            trigger(board_line, [board_category, board_language, board_prompts], which, api_visibility="private")

        def on_refresh(c, lang, of):
            return leaderboard(c, lang, of), db_line(), board_line(c, lang, of), better_measured_chosen(lang)

        refresh.click(
            on_refresh, [board_category, board_language, board_prompts], [board, db_status, which, agreed],
            api_visibility="private",
        )  # fmt: skip
        export_button.click(user_errors(export), None, files, api_visibility="private")
