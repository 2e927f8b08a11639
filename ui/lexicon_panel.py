"""The "Pronunciation" accordion: the visitor's lexicon (word, Kokoro phonemes, Qwen3-TTS respelling),
edited on the page, tried aloud with and without the entry, and checked by ear (the ASR round trip).

The lexicon is the visitor's own, like their saved voices (`ui.owner`: the owner token kept in the
browser, or the signed-in account): every event here takes the page's owner token. The tabs' own
runs take it from `with_visitor_lexicon`, which `ui.streaming.levelled_run` calls: when the page
learns a visitor's owner (on load) this module remembers it for that page session (Gradio's
`session_hash`, at most `MAX_SESSIONS` of them and `MAX_SESSIONS_PER_ADDRESS` per client address:
`ui.sessions.Bindings`), and a run of that session speaks with
that owner's lexicon. Compare, Batch, `/v1` and the CLI pass their owner's lexicon themselves.
"""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import numpy as np
from gradio.context import Context, LocalContext

from engines import lexicon
from engines.base import SAMPLE_RATE, InputError, SynthesisRequest
from engines.runtime import registry
from engines.runtime.weights import kokoro_vocabulary
from evaluation.lexicon_check import carrier, heard_as
from service import lexicon as lexicons
from service import speech

from .caller import caller
from .common import user_errors
from .owner import owner_of, signed_in_user
from .sessions import Bindings

HEADERS = ["word", "Kokoro phonemes", "Qwen3-TTS respelling"]
OWNER_ELEM_ID = "owner-token"  # `ui.owner.build`'s hidden token component
MAX_SESSIONS = 1000
_sessions = Bindings(MAX_SESSIONS)  # page session -> owner id, bounded per client address
HELP = (
    "Words you want said your way, on every tab, in Batch, Compare and your API calls. **Kokoro** takes "
    "phonemes in its own alphabet (misaki, e.g. `kˈOkəɹO`; the Kokoro tab's phonemes show what it says now); "
    "**Qwen3-TTS** takes a respelling (e.g. `Nguyen` → `win`). A word matches whole, in any case."
)


def _table(entries) -> list[list[str]]:
    return [[e.word, e.phonemes, e.respelling] for e in entries] or [["", "", ""]]


def remember(owner_token: str, request: gr.Request | None = None) -> list[list[str]]:
    """On load: remember this page session's owner (for `with_visitor_lexicon`) and show their lexicon."""
    owner = owner_of(owner_token, request)
    session = getattr(request, "session_hash", None)
    if session and owner:
        _sessions.put(caller(owner_token, request).address, session, owner)
    return _table(lexicon.load(owner))


def visitor() -> str | None:
    """The owner of the page session whose event is running (None outside a page event)."""
    page = LocalContext.request.get(None)
    if page is None:
        return None
    owner = _sessions.get(getattr(page, "session_hash", None) or "")
    return owner or signed_in_user(page)


def with_visitor_lexicon(engine_id: str, request: SynthesisRequest) -> SynthesisRequest:
    """`request` with its owner's (else the page visitor's) lexicon for this engine, unless it has one."""
    if request.lexicon:
        return request
    owner = request.owner or visitor()
    words = lexicon.owner_mapping(owner, registry.capabilities(engine_id).lexicon) if owner else {}
    return replace(request, lexicon=words) if words else request


@user_errors
def save_entry(word: str, phonemes: str, respelling: str, owner_token: str = "", request: gr.Request | None = None):
    """Add or replace one word of your pronunciation lexicon (phonemes for Kokoro, respelling for Qwen3-TTS)."""
    entry = lexicon.check_entry(word, phonemes, respelling, kokoro_vocabulary())
    saved = lexicons.put(caller(owner_token, request), entry)
    gr.Info(f"Saved the pronunciation of {entry.word!r}.")
    return _table(saved)


@user_errors
def delete_entry(word: str, owner_token: str = "", request: gr.Request | None = None):
    """Delete one word of your pronunciation lexicon."""
    if not (word or "").strip():
        raise InputError("Type the word whose entry you want to delete.")
    kept = lexicons.remove(caller(owner_token, request), word)
    gr.Info(f"Deleted the pronunciation of {word.strip()!r}.")
    return _table(kept)


def pick(table, event: gr.SelectData):
    """A row clicked in the table fills the word, phonemes and respelling boxes."""
    rows = table.values.tolist() if hasattr(table, "values") else table
    row = rows[event.index[0]] if rows and 0 <= event.index[0] < len(rows) else ["", "", ""]
    return tuple(str(cell or "") for cell in (list(row) + ["", "", ""])[:3])


def try_voice(engine_id: str) -> str:
    """The voice a "Try it" speaks with: the engine's default among its usable voices."""
    usable = [v.id for v in registry.info(engine_id).voices if v.available]
    voice = registry.capabilities(engine_id).preferred_voice(usable) or next(iter(usable), "")
    if not voice:
        raise InputError(f"{registry.capabilities(engine_id).name} has no voice usable here to try the word with.")
    return voice


def try_entry(engine_id: str, word: str, phonemes: str, respelling: str, owner_token: str = "", request=None):
    """Speak the word (in a short sentence) without and with the entry typed (or, boxes empty, the saved
    one), then say what the recogniser heard each time."""
    who = caller(owner_token, request)
    word = (word or "").strip()
    if not (phonemes or "").strip() and not (respelling or "").strip():
        saved = {e.word.lower(): e for e in lexicon.load(owner_of(owner_token, request))}
        if word.lower() not in saved:
            raise InputError(f"Type the phonemes or the respelling to try, or save an entry for {word!r} first.")
        phonemes, respelling = saved[word.lower()].phonemes, saved[word.lower()].respelling
    entry = lexicon.check_entry(word, phonemes, respelling, kokoro_vocabulary())
    capabilities = registry.capabilities(engine_id)
    words = lexicon.mapping([entry], capabilities.lexicon)
    if not words:
        raise InputError(f"This entry has no {capabilities.lexicon or 'pronunciation'} for {capabilities.name}.")
    voice, text = try_voice(engine_id), carrier(entry.word)
    clips, lines = [], []
    for label, used in (("Without the entry", {}), ("With the entry", words)):
        audio, _, _ = speech.synthesize(who, engine_id, SynthesisRequest(text=text, voice=voice, lexicon=used))
        clips.append((SAMPLE_RATE, np.asarray(audio, dtype=np.float32)))
        lines.append(f"**{label}:** " + _verdict(audio, entry))
    return clips[0], clips[1], "\n\n".join(lines)


def _verdict(audio: np.ndarray, entry: lexicon.Entry) -> str:
    """One line on what the recogniser heard at the word's place (or why it could not listen)."""
    try:
        heard = heard_as(audio, SAMPLE_RATE, entry.word, [entry.word, entry.respelling])
    except Exception:  # no ASR here: the clips still play
        return "the words could not be checked here (no speech recogniser)."
    said = f"heard “{heard.heard}”" if heard.heard else "the word was not heard"
    return f"{said} — {'as written ✓' if heard.as_written else 'not as written'} (all: “{heard.transcript}”)."


def _owner_component() -> gr.components.Component | None:
    """The page's owner token (`ui.owner.build`), found in the page being built."""
    root = Context.root_block
    blocks = getattr(root, "blocks", {}) if root is not None else {}
    return next((b for b in blocks.values() if getattr(b, "elem_id", None) == OWNER_ELEM_ID), None)


def build(engine_id: str, owner: gr.components.Component | None = None) -> None:
    """The accordion, inside a tab; "Try it" speaks with `engine_id`. `owner`: the page's owner token
    (default: the one `ui.owner.build` put on the page)."""
    owner = owner or _owner_component()
    with gr.Accordion("Pronunciation", open=False, elem_id=f"{engine_id}-lexicon"):
        gr.Markdown(HELP)
        table = gr.Dataframe(
            _table(()), headers=HEADERS, interactive=False, label="Your lexicon", elem_id=f"{engine_id}-lexicon-table"
        )
        with gr.Row():
            word = gr.Textbox(label="Word", max_lines=1, elem_id=f"{engine_id}-lexicon-word")
            phonemes = gr.Textbox(label="Kokoro phonemes", max_lines=1, elem_id=f"{engine_id}-lexicon-phonemes")
            respelling = gr.Textbox(
                label="Qwen3-TTS respelling", max_lines=1, elem_id=f"{engine_id}-lexicon-respelling"
            )
        with gr.Row():
            save = gr.Button("Save", variant="primary", elem_id=f"{engine_id}-lexicon-save")
            delete = gr.Button("Delete", elem_id=f"{engine_id}-lexicon-delete")
            trial = gr.Button("Try it", elem_id=f"{engine_id}-lexicon-try")
        with gr.Row():
            without = gr.Audio(label="Without the entry", interactive=False, elem_id=f"{engine_id}-lexicon-without")
            with_it = gr.Audio(label="With the entry", interactive=False, elem_id=f"{engine_id}-lexicon-with")
        verdict = gr.Markdown(elem_id=f"{engine_id}-lexicon-verdict")
    tokens = [owner] if owner is not None else []
    save.click(save_entry, [word, phonemes, respelling, *tokens], table, api_visibility="private")
    delete.click(delete_entry, [word, *tokens], table, api_visibility="private")
    table.select(pick, table, [word, phonemes, respelling], api_visibility="private")

    @user_errors
    def tried(word, phonemes, respelling, owner_token="", request: gr.Request = None):
        return try_entry(engine_id, word, phonemes, respelling, owner_token, request)

    trial.click(
        tried, [word, phonemes, respelling, *tokens], [without, with_it, verdict], api_visibility="private",
        concurrency_id=engine_id, concurrency_limit=None,  # admitted and ordered by the engine's work queue
    )  # fmt: skip
    if owner is not None:
        owner.change(remember, owner, table, api_visibility="private", show_progress="hidden", queue=False)
