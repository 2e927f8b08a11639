"""A vote stuffer's script against the Arena tab served on loopback (`app.serve`, the real HTTP stack, guard,
Gradio queue and sessions, ballots and vote store): the script speaks the page's protocol, invents session
hashes, reports playback and waits out the listening gate. The pair itself is faked (two short clips at once):
a real pair costs about a minute of CPU on this shared machine, and what is tested here is the vote."""

from __future__ import annotations

import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from engines.base import AudioChunk
from engines.runtime.timing import RunStats
from engines.settings import default
from evaluation import ballot
from evaluation.arena import ONE_SIDED, Arena
from evaluation.ballot import Ballots, solve
from evaluation.compare import ClipResult
from evaluation.pair import Measuring, MetricsReady, SlotChunk, SlotFinished, SlotStarted
from evaluation.prompts import prompts

pytestmark = pytest.mark.slow

CAP = 4  # ARENA_VOTES_PER_HOUR here
BITS = 12
CLIP_S = 4.0
TEXTS = [p.text for p in prompts() if p.language == "en"]


def fake_pair_events(text, slots):
    """What `evaluation.pair.pair_events` yields, for two 4-second clips made at once."""
    results = {
        name: ClipResult(slot, RunStats(engine=slot.engine, ttfa_s=0.1, audio_s=CLIP_S)) for name, slot in slots.items()
    }
    for name, result in results.items():
        yield SlotStarted(name, result)
        audio = np.full(int(CLIP_S * 24_000), 0.1, np.float32)
        result.chunks.append(AudioChunk(audio=audio, text=text, phonemes="", index=0))
        yield SlotChunk(name, audio, result)
        yield SlotFinished(name, result)
    yield Measuring()
    for result in results.values():
        result.metrics = {"duration_s": CLIP_S, "ttfa_s": 0.1}
    yield MetricsReady(results)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The Arena tab on a loopback port, behind one trusted proxy hop (each test script its own address)."""
    import gradio as gr

    import app
    from ui import arena_tab, compare_tab

    arena = Arena(tmp_path_factory.mktemp("stuffing") / "votes.sqlite3")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "TRUSTED_PROXY_HOPS": "1", "API_RATE_PER_MIN": "100000", "HF_HUB_OFFLINE": "1",
            "ARENA_SYSTEMS": "kokoro:jm_kumo kokoro:jf_alpha", "ARENA_VOTES_PER_HOUR": str(CAP),
            "ARENA_POW_BITS": str(BITS),
        }.items():  # fmt: skip
            mp.setenv(name, value)
        import service.pair

        # the pair's use case runs the pair through `evaluation.pair.pair_events` (caller's turns): faked here
        mp.setattr(service.pair, "pair_events", lambda text, slots, *caller: fake_pair_events(text, slots))
        mp.setattr(arena_tab, "ARENA", arena)
        mp.setattr(compare_tab, "ARENA", arena)
        mp.setattr(arena_tab, "BALLOTS", Ballots())
        # a stuffer tells the systems apart by their (deterministic) audio; here A is always the first one
        mp.setattr(arena_tab, "draw", lambda systems, excluded: tuple(sorted(systems, key=lambda s: s.system)[:2]))
        with gr.Blocks() as demo:
            arena_tab.build_tab()
        port = _free_port()
        app.serve(demo, server_name="127.0.0.1", server_port=port, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}", arena
        finally:
            demo.close()
            arena.close()


class Script:
    """A client of the page's own protocol: queue joins by event index, one session hash per call."""

    def __init__(self, url: str, address: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60, headers={"x-forwarded-for": address})
        config = self.http.get("/config").json()
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}

        def event(elem_id: str, trigger: str) -> int:
            # the event that runs on the server (a button may also carry a page-only js event)
            return next(
                d["id"] for d in config["dependencies"] if [ids[elem_id], trigger] in d["targets"] and d["backend_fn"]
            )

        self.new_pair, self.vote = event("arena-new", "click"), event("arena-vote-a", "click")
        self.report = event("arena-a-player-report", "change")
        self.trigger = {self.new_pair: ids["arena-new"], self.vote: ids["arena-vote-a"]}

    def call(self, session: str, fn_index: int, data: list) -> str:
        """Join the queue and read the session's stream to the event's end; the stream's text."""
        body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                "trigger_id": self.trigger.get(fn_index)}  # fmt: skip
        joined = self.http.post("/gradio_api/queue/join", json=body)
        assert joined.status_code == 200, joined.text
        seen = []
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                seen.append(line)
                if '"process_completed"' in line:
                    break
        return "\n".join(seen)

    def pair_and_listen(self, session: str, text: str) -> str:
        """A pair served to this session, its playback reported, the gate waited out; its challenge's nonce."""
        stream = self.call(session, self.new_pair, [text])
        nonce = re.search(r'nonce\\*"\s*:\s*\\*"([0-9a-f]{32})', stream)[1]
        runs = list(dict.fromkeys(re.findall(r'start\\*"[^{}]*?run\\*"\s*:\s*\\*"(\w+)', stream)))
        assert len(runs) == 2, stream[:3000]
        time.sleep(ballot.MIN_LISTEN_S + 0.3)  # the server's own clock must see the gate pass
        for a, b in (runs, runs[::-1]):  # which player is which is not needed: report both ways round
            played = [json.dumps({"run": r, "played_s": CLIP_S, "ended": True}) for r in (a, b)]
            self.call(session, self.report, [*played, None])
        return nonce

    def cast(self, session: str, proof: str) -> str:
        """Vote "A is better" with a proof; the notice the page shows."""
        stream = self.call(session, self.vote, [None, [], "all", "all", "built-in", proof])
        done = json.loads(next(line[5:] for line in stream.splitlines()[::-1] if '"process_completed"' in line))
        return done["output"]["data"][0]


def test_twenty_invented_sessions_from_one_address_get_at_most_the_address_cap(served):
    url, arena = served
    script = Script(url, "198.51.100.7")
    stored_before = len(arena.votes())

    def one(n: int) -> str:
        session = f"invented-{n:02d}"
        nonce = script.pair_and_listen(session, TEXTS[n])
        return script.cast(session, solve(nonce, BITS))

    with ThreadPoolExecutor(4) as pool:
        notices = list(pool.map(one, range(20)))
    stored = [n for n in notices if n.startswith("Vote stored")]
    refused = [n for n in notices if not n.startswith("Vote stored")]
    assert len(stored) == CAP and len(arena.votes()) - stored_before == CAP
    assert set(refused) == {ballot.TOO_MANY.format(n=CAP)}
    assert arena.trust()["counted"] <= CAP


def test_the_same_script_without_the_proof_of_work_gets_none(served):
    url, arena = served
    script = Script(url, "198.51.100.8")
    before = len(arena.votes())
    for n, proof in enumerate(("", "12345", "not a number")):
        script.pair_and_listen(f"lazy-{n}", TEXTS[n])
        assert script.cast(f"lazy-{n}", proof) == ballot.NO_PROOF
    assert len(arena.votes()) == before


def test_a_script_that_always_picks_one_system_is_flagged_after_five_votes_and_leaves_the_board(served, monkeypatch):
    url, arena = served
    monkeypatch.setenv("ARENA_VOTES_PER_HOUR", "10")  # room for the pattern to show (the server reads it live)
    for voter in range(4):  # listeners who heard three prompts each, before the script came
        for i, choice in enumerate(("a", "b", "b")):
            sides = [{"engine": "kokoro", "voice": v, "metrics": {"ttfa_s": 0.1}} for v in ("jf_alpha", "jm_kumo")]
            arena.record_vote(TEXTS[i], *sides, choice, voter=f"ip:192.0.2.{voter}", listened=True)
    before = [(r["system"], r["votes"], round(r["rating"], 6)) for r in arena.leaderboard()]
    script = Script(url, "198.51.100.9")
    notices = []
    for n in range(6):
        nonce = script.pair_and_listen(f"fan-{n}", TEXTS[20 + n])
        notices.append(script.cast(f"fan-{n}", solve(nonce, BITS)))
    assert all("A was **kokoro:jf_alpha**" in n for n in notices), notices  # the same system, every time
    theirs = arena.votes()[-6:]
    assert {v["flag"] for v in theirs} == {ONE_SIDED.format(share=0.8)} and {v["weight"] for v in theirs} == {0}
    assert [(r["system"], r["votes"], round(r["rating"], 6)) for r in arena.leaderboard()] == before
    audit = arena.export_audit()
    assert audit.count(ONE_SIDED.format(share=0.8)) == 6


def test_the_page_solves_the_challenge_while_the_clips_play_and_its_vote_is_taken(served, browser):
    url, arena = served
    before = len(arena.votes())
    page = browser.new_page()
    try:
        page.goto(url)
        page.locator("#arena-new").click()
        page.wait_for_function("() => !document.querySelector('#arena-vote-a').disabled", timeout=120_000)
        solved_ms = page.evaluate("async () => { await window.arenaPow.proof; return window.arenaPow.ms; }")
        page.locator("#arena-vote-a").click()
        page.locator("#arena-reveal", has_text="Vote stored").wait_for(timeout=60_000)
        assert len(arena.votes()) == before + 1
        # the default difficulty, timed in this browser over a few fresh nonces (reported, not asserted)
        default_ms = page.evaluate(
            """async (bits) => { const t = performance.now(); for (let i = 0; i < 5; i++)
                 await window.arenaPow.solve(crypto.randomUUID().replaceAll('-', ''), bits);
               return (performance.now() - t) / 5; }""",
            default("ARENA_POW_BITS"),
        )
        print(
            f"proof of work in Chromium: {BITS} bits {solved_ms:.0f} ms; "
            f"{default('ARENA_POW_BITS')} bits {default_ms:.0f} ms"
        )
    finally:
        page.close()
