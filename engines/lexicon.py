"""Pronunciation lexicons: an owner's entries (word -> Kokoro phonemes, word -> Qwen3-TTS respelling),
their checks, their store, and how an engine applies the mapping a request carries.

An entry is a word (one word, matched whole and in any case) with phonemes in the misaki/Kokoro
alphabet, a respelling (plain text said instead), or both. A request carries one column
(`SynthesisRequest.lexicon`), the one its engine's `Capabilities.lexicon` names (`mapping`):
Kokoro's G2P takes the phonemes through its own `[word](/phonemes/)` markup (`with_phonemes`), so
the word keeps its place in the word timings; Qwen3-TTS speaks the text with each word respelled
(`respell`), its punctuation kept. Phonemes whose symbols Kokoro's vocabulary lacks are refused, in
one sentence, when an entry is saved and again when a request is spoken.

Each owner's lexicon is one JSON file, `lexicons/<owner folder>.json` under the voice library's
folder (`engines.voice_library`: the same owners, the same hashed folder names, `shared.json` with
`VOICE_LIBRARY_SHARED=1`), written to a temporary file and moved into place, within the owner's
storage quota and swept with the owner's voices when idle. No owner: no lexicon.
The file form, also what `/v1/audio/lexicon` and the CLI's `--lexicon FILE.json` read, is
`{"entries": [{"word", "phonemes", "respelling"}]}`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from engines.base import (
    MAX_LEXICON_ENTRIES,
    MAX_LEXICON_VALUE_CHARS,
    InputError,
    check_lexicon,
    check_lexicon_word,
    shown,
)
from engines.runtime.weights import kokoro_vocabulary
from engines.strict_json import BadJson
from engines.strict_json import parse as parse_json
from engines.text import MARKUP_PHONEMES_CHARS, MARKUP_WORD_CHARS
from engines.voice_library import (
    LEXICONS_FOLDER,
    OPERATOR,
    _atomic_write,
    check_room,
    library_dir,
    owner_folder,
    shared,
    touch,
)

log = logging.getLogger(__name__)

PHONEMES, RESPELLING = "phonemes", "respelling"  # the values of `Capabilities.lexicon`
FOLDER = LEXICONS_FOLDER
MAX_FILE_BYTES = 256 * 1024
# Vocabulary symbols an entry may not use: markup and quotes (they would end or break `[word](/.../)`).
_NOT_IN_ENTRIES = set('()[]/"“”')
_MARKS = set("ˈˌːʰʲ")  # stress and length marks: letters to Python, no sound of their own
# `[word](/phonemes/)` already in the text: left alone (bounded spans: linear in the text's length)
_MARKUP = re.compile(rf"\[[^\]]{{0,{MARKUP_WORD_CHARS}}}\]\([^)]{{0,{MARKUP_PHONEMES_CHARS}}}\)")
_EDGE = r"[\w'’-]"  # what may not touch a matched word on either side
_lock = threading.RLock()  # a change reads, then writes, the owner's file

G2P = Callable[[str], tuple]


@dataclass(frozen=True)
class Entry:
    """One word and how to say it: Kokoro phonemes, a Qwen3-TTS respelling, or both ("" for none)."""

    word: str
    phonemes: str = ""
    respelling: str = ""


# ----- checks ---------------------------------------------------------------------------------------
def check_phonemes(word: str, phonemes: str, symbols: Iterable[str]) -> str:
    """`phonemes` stripped, or `InputError` naming the symbols Kokoro's vocabulary lacks."""
    phonemes = phonemes.strip()
    allowed = set(symbols) - _NOT_IN_ENTRIES
    bad = sorted({ch for ch in phonemes if ch not in allowed and ch != " "})
    if bad:
        symbols_shown = " ".join(f"{ch!r}" for ch in bad[:8])
        raise InputError(
            f"The phonemes for {shown(word)} use symbols Kokoro cannot say ({symbols_shown}); "
            "write them in the misaki alphabet, such as kˈæt for cat."
        )
    if not any(ch.isalpha() and ch not in _MARKS for ch in phonemes):
        raise InputError(f"The phonemes for {shown(word)} have no sound in them.")
    return phonemes


def check_entry(word: object, phonemes: object = "", respelling: object = "", symbols: Iterable[str] = ()) -> Entry:
    """One entry checked: a word, and phonemes (in `symbols`, Kokoro's vocabulary) or a respelling."""
    word = check_lexicon_word(word)
    values = []
    for name, value in (("phonemes", phonemes), ("respelling", respelling)):
        value = "" if value is None else value
        if not isinstance(value, str):
            raise InputError(f"The {name} of {shown(word)} must be text.")
        value = value.strip()
        if len(value) > MAX_LEXICON_VALUE_CHARS or any(unicodedata.category(ch) == "Cc" for ch in value):
            raise InputError(
                f"The {name} of {word!r} must be one line of at most {MAX_LEXICON_VALUE_CHARS} characters."
            )
        values.append(value)
    if not any(values):
        raise InputError(f"The entry {shown(word)} needs Kokoro phonemes, a Qwen3-TTS respelling, or both.")
    if values[0]:
        values[0] = check_phonemes(word, values[0], symbols)
    return Entry(word, *values)


def entries_from_json(data: object, symbols: Iterable[str] | None = None) -> tuple[Entry, ...]:
    """Entries from the file form `{"entries": [{"word", "phonemes", "respelling"}]}`, each checked
    (phonemes against `symbols`, default Kokoro's vocabulary), at most `MAX_LEXICON_ENTRIES`, each word once."""
    rows = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise InputError('A lexicon is a JSON object {"entries": [{"word", "phonemes", "respelling"}, ...]}.')
    if len(rows) > MAX_LEXICON_ENTRIES:
        raise InputError(f"The lexicon has {len(rows)} entries; the limit is {MAX_LEXICON_ENTRIES}.")
    vocabulary = tuple(kokoro_vocabulary() if symbols is None else symbols)
    entries, seen = [], set()
    for row in rows:
        if not isinstance(row, dict):
            raise InputError('Each lexicon entry is an object {"word", "phonemes", "respelling"}.')
        entry = check_entry(row.get("word"), row.get("phonemes"), row.get("respelling"), vocabulary)
        if entry.word.lower() in seen:
            raise InputError(f"The lexicon has the word {shown(entry.word)} twice (words match in any case).")
        seen.add(entry.word.lower())
        entries.append(entry)
    return tuple(entries)


def entries_to_json(entries: Iterable[Entry]) -> dict:
    return {"entries": [asdict(e) for e in entries]}


def mapping(entries: Iterable[Entry], kind: str) -> dict[str, str]:
    """The column a request carries for an engine whose `Capabilities.lexicon` is `kind` ({} for "")."""
    if kind not in (PHONEMES, RESPELLING):
        return {}
    return {e.word: getattr(e, kind) for e in entries if getattr(e, kind)}


# ----- applying -------------------------------------------------------------------------------------
def _pattern(words: Iterable[str]) -> re.Pattern | None:
    """Whole words in any case, longest first; None for no words."""
    alternatives = sorted((re.escape(w) for w in words), key=len, reverse=True)
    if not alternatives:
        return None
    return re.compile(rf"(?<!{_EDGE})(?:{'|'.join(alternatives)})(?!{_EDGE})", re.IGNORECASE)


def _substitute(text: str, lexicon: Mapping[str, str], replace: Callable[[str, str], str]) -> str:
    """`text` with each lexicon word outside existing markup replaced by `replace(matched, value)`."""
    pattern = _pattern(lexicon)
    if pattern is None:
        return text
    values = {w.lower(): v for w, v in lexicon.items()}
    out, pos = [], 0
    for markup in [*_MARKUP.finditer(text), None]:
        end = markup.start() if markup else len(text)
        out.append(pattern.sub(lambda m: replace(m.group(0), values[m.group(0).lower()]), text[pos:end]))
        if markup:
            out.append(markup.group(0))
            pos = markup.end()
    return "".join(out)


def respell(text: str, lexicon: Mapping[str, str]) -> str:
    """The text Qwen3-TTS speaks: each lexicon word (whole, any case) replaced by its respelling, the
    punctuation around it kept; a capitalised word gives a capitalised respelling."""

    def replace(matched: str, value: str) -> str:
        return value[:1].upper() + value[1:] if matched[:1].isupper() else value

    return _substitute(text, lexicon, replace)


def with_phonemes(g2p: G2P, lexicon: Mapping[str, str], symbols: Iterable[str]) -> G2P:
    """Kokoro's G2P with the lexicon's phonemes for its words: each word becomes `[word](/phonemes/)`,
    the markup misaki's G2P (and `engines.kokoro.engine`'s for other languages) already follows, so the word
    keeps its place and its timing. Phonemes outside `symbols` (the model's vocabulary) are refused."""
    if not lexicon:
        return g2p
    checked = check_lexicon(lexicon)
    vocabulary = set(symbols)
    for word, phonemes in checked.items():
        check_phonemes(word, phonemes, vocabulary)

    def run(text: str) -> tuple:
        return g2p(_substitute(text, checked, lambda matched, value: f"[{matched}](/{value}/)"))

    return run


# ----- the store ------------------------------------------------------------------------------------
def lexicon_path(owner: str | None) -> Path | None:
    """Where an owner's lexicon lives (the shared one in shared mode); None: nowhere (no owner)."""
    if shared():
        return library_dir() / FOLDER / "shared.json"
    if not owner or owner == OPERATOR:
        return None
    return library_dir() / FOLDER / f"{owner_folder(owner)}.json"


def load(owner: str | None) -> tuple[Entry, ...]:
    """`owner`'s entries (none without an owner); a damaged file reads as empty and is logged."""
    path = lexicon_path(owner)
    if path is None or not path.is_file():
        return ()
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError("file too large")
        data = json.loads(path.read_text(encoding="utf-8"))
        touch(path)  # used: an idle owner's sweep waits (engines.voice_library)
        return entries_from_json(data, symbols=_stored_symbols(data))
    except (OSError, ValueError, InputError) as exc:
        log.warning("A pronunciation lexicon is unreadable (%s): %s", path.name, exc)
        return ()


def _stored_symbols(data: object) -> set[str]:
    """What stored phonemes were checked against when saved: they are trusted as symbols again."""
    rows = data.get("entries") if isinstance(data, dict) else None
    return {ch for row in rows or () if isinstance(row, dict) for ch in str(row.get("phonemes") or "")}


def save(owner: str | None, entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """Replace `owner`'s lexicon with `entries` (re-checked); returns what was saved."""
    path = lexicon_path(owner)
    if path is None:
        raise InputError(
            "Saving a lexicon needs an owner (a page visitor, a signed-in user or an API key); none came with it."
        )
    checked = entries_from_json(entries_to_json(entries))
    data = {"owner": None if shared() else owner, **entries_to_json(checked)}
    encoded = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
    with _lock:
        check_room(owner, len(encoded), path.stat().st_size if path.is_file() else 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, encoded)
    return checked


def put(owner: str | None, entry: Entry) -> tuple[Entry, ...]:
    """Add or replace (same word, any case) one entry of `owner`'s lexicon."""
    with _lock:
        kept = [e for e in load(owner) if e.word.lower() != entry.word.lower()]
        if len(kept) >= MAX_LEXICON_ENTRIES:
            raise InputError(f"Your lexicon has {MAX_LEXICON_ENTRIES} entries, the limit; delete one first.")
        return save(owner, [*kept, entry])


def remove(owner: str | None, word: str) -> tuple[Entry, ...]:
    """Delete `owner`'s entry for `word` (any case); `InputError` when there is none."""
    with _lock:
        entries = load(owner)
        kept = [e for e in entries if e.word.lower() != str(word).strip().lower()]
        if len(kept) == len(entries):
            raise InputError(f"Your lexicon has no entry for {shown(str(word).strip())}.")
        return save(owner, kept)


def owner_mapping(owner: str | None, kind: str) -> dict[str, str]:
    """What a request of `owner`'s carries for an engine whose `Capabilities.lexicon` is `kind`."""
    return mapping(load(owner), kind)


def read_file(path: Path) -> tuple[Entry, ...]:
    """A lexicon file (the CLI's `--lexicon`), checked; `InputError` in one sentence when it cannot be used."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read the lexicon file {Path(path).name}: {exc.strerror or 'unreadable'}.") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"The lexicon file is over {MAX_FILE_BYTES // 1024} KiB.")
    try:
        data = parse_json(raw)
    except BadJson:
        raise InputError("The lexicon file is not valid UTF-8 JSON.") from None
    return entries_from_json(data)
