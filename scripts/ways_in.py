"""Every way in, metered: the app's HTTP routes and Gradio events, each with its metering decision.

`python scripts/ways_in.py` builds the page (without serving it) and prints the README section "Every way
in, metered" as Markdown: each route or event, the use case of `service/` it calls, what it costs and
which limits meet it. The decisions are the tables below, keyed by route and by event handler;
`tests/test_ways_in.py` fails when the app has a route or an event that no table decides.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = "a place in the engine's line (fair share, `MAX_WAITING_PER_CALLER`)"
REQUEST = "1 request (`API_RATE_PER_MIN`)"
COMPUTE = "compute s: characters × the engine's measured s/char (`CALLER_COMPUTE_S_PER_MIN`)"

# route -> (use case, cost, limits besides the door's: routes, keys, cross-site writes, body size)
ROUTES: dict[str, tuple[str, str, str]] = {
    "POST /v1/audio/speech": ("`service.speech` (with `voices`: `service.script`)", f"{REQUEST}; {COMPUTE}", LINE),
    "GET /v1/models": ("read", "none", "—"),
    "GET /v1/models/{model}": ("read", "none", "—"),
    "GET /v1/audio/voices": ("read", "none", "—"),
    "POST /v1/audio/voices": ("`service.voices.save`", f"{REQUEST}; bytes stored (`CALLER_UPLOAD_MB_PER_MIN`)",
                              "voice quotas (`engines.voice_library`)"),
    "GET /v1/audio/lexicon": ("`service.lexicon.read`", "none", "—"),
    "PUT /v1/audio/lexicon": ("`service.lexicon.replace`", REQUEST, "`MAX_LEXICON_ENTRIES`"),
    "GET /kokoro/assets/{name:path}": ("read (static files)", "none", "—"),
    "GET /kokoro/plan": ("`service.plan`", f"{REQUEST}; compute s: characters × the G2P's s/char", "—"),
    "POST /kokoro/plan": ("`service.plan`", f"{REQUEST}; compute s: characters × the G2P's s/char", "—"),
}  # fmt: skip

SPEAK = ("`service.speech`", f"{REQUEST}; {COMPUTE}", LINE)
PAIR = ("`service.pair`", f"{REQUEST}; compute s of both slots", LINE + ", each slot")
# event handler (its function's name) -> (use case, cost, limits)
EVENTS: dict[str, tuple[str, str, str]] = {
    "stream": SPEAK, "kokoro_stream": SPEAK, "kokoro_synthesize": SPEAK, "preset_stream": SPEAK,
    "clone_stream": SPEAK, "tried": SPEAK, "design_stream": SPEAK, "try_found_voice": SPEAK,
    "keep_designed": ("`service.voices.save`", f"{REQUEST}; bytes stored", "voice quotas"),
    "find_kokoro_voice": ("voice search (`evaluation.voice_search`)", f"{REQUEST}; compute s: its whole budget",
                          "one search at a time on the server"),
    "save_entry": ("`service.lexicon.put`", REQUEST, "`MAX_LEXICON_ENTRIES`"),
    "delete_entry": ("`service.lexicon.remove`", REQUEST, "—"),
    "save_reference": ("`service.voices.save`", f"{REQUEST}; bytes stored", "voice quotas"),
    "save_from_page": ("`service.voices.save`", f"{REQUEST}; bytes stored", "voice quotas"),
    "replace_from_page": ("`service.voices.save`", f"{REQUEST}; bytes stored", "voice quotas"),
    "delete_saved": ("`service.voices.delete`", REQUEST, "—"),
    "batch_render": ("`service.batch`", f"{REQUEST}; compute s of every item, admitted before the first",
                     LINE + ", each group"),
    "script_render": ("`service.script`", f"{REQUEST}; compute s of every line left, admitted before the first",
                      LINE + ", each piece"),
    "script_play": ("`service.script`", f"{REQUEST}; compute s of every line left, admitted before the first",
                    LINE + ", each piece"),
    "compare_stream": PAIR, "compare_api": PAIR, "cross_clone": PAIR, "play_pair": PAIR,
    "kind_line": ("`service.arena.classify`", "characters (`CALLER_CHARS_PER_MIN`)", "—"),
    "on_vote": ("`service.arena.vote`", REQUEST, "votes per hour (`evaluation.ballot`)"),
    "owner_token": ("`service.owners.issue`", REQUEST, "—"),
    "transcribe_reference": ("`service.voices.transcribe`", "1 request; bytes (`CALLER_UPLOAD_MB_PER_MIN`); compute s: "
                             "seconds heard × the recogniser's s per s (`CALLER_COMPUTE_S_PER_MIN`)", "—"),
    "export": ("`service.arena.export`", REQUEST, "bounded by the vote store"),
}  # fmt: skip

# handlers that run no use case: UI updates, page loads and reads of the visitor's own small state
FREE = {
    "_keep_or_mint", "load_example", "visitor_phonemes", "<lambda>", "pick", "remember", "engine_banner",
    "_asked", "my_library", "on_engine", "on_owner", "with_ears", "pick_prompt", "board_line", "on_report",
    "leaderboard", "better_measured_chosen", "on_refresh", "stopped_now",
}  # fmt: skip


def routes() -> list[str]:
    """`METHOD path` of every HTTP route the app adds to Gradio's."""
    from api import kokoro_in_browser
    from api import router as api_router

    return [
        f"{method} {r.path}"
        for r in [*api_router.routes, *kokoro_in_browser.router.routes]
        for method in sorted(r.methods)
    ]


def events(demo) -> list[tuple[str, str, str]]:
    """(api name, handler name, visibility) of every event of the page that runs Python."""
    found = []
    for block_fn in demo.fns.values():
        if block_fn.fn is None:
            continue  # the browser's own JavaScript: nothing runs here
        found.append((block_fn.api_name, block_fn.fn.__name__, getattr(block_fn, "api_visibility", "")))
    return found


def undecided(demo) -> list[str]:
    """Routes and events that no table decides (what the test reports)."""
    missing = [f"route {r}" for r in routes() if r not in ROUTES]
    missing += [f"event {api} ({name})" for api, name, _ in events(demo) if name not in EVENTS and name not in FREE]
    return missing


def table(demo) -> str:
    """The README section, in Markdown."""
    lines = [
        "## Every way in, metered",
        "",
        "Generated by `python scripts/ways_in.py` from the code. Every request passes the door first",
        "(`api.guard`: the routes this app uses, API keys on /v1, no cross-site writes, body sizes); the",
        "limits are met where the work starts (`service.admission`), with the caller resolved once per request.",
        "",
        "| way in | use case | cost | also |",
        "| --- | --- | --- | --- |",
    ]
    for route in routes():
        use, cost, also = ROUTES.get(route, ("**undecided**", "", ""))
        lines.append(f"| `{route}` | {use} | {cost} | {also} |")
    seen = set()
    for api, name, visibility in events(demo):
        if name in FREE or (api, name) in seen:
            continue
        seen.add((api, name))
        use, cost, also = EVENTS.get(name, ("**undecided**", "", ""))
        way = f"Gradio event `{api}`" + (" (page only)" if visibility == "private" else " (API, MCP)")
        lines.append(f"| {way} | {use} | {cost} | {also} |")
    free = sorted({name for _, name, _ in events(demo) if name in FREE})
    lines += [
        "",
        "Events that run no use case (UI updates, page loads, reads): " + ", ".join(f"`{n}`" for n in free) + ".",
    ]
    return "\n".join(lines)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    import app

    demo = app.build()
    print(table(demo))
    missing = undecided(demo)
    for line in missing:
        print(f"undecided: {line}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
