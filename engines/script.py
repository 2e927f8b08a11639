"""Scripts: many voices in one take. The script format, the cast, and their checks.

A script is plain text, one line per paragraph: `Name: what they say` gives the line to a speaker; a
line without a speaker goes to the narrator (`NARRATOR`). A line may hold SSML inline
(`engines.ssml`), and a whole script may be one `<speak>` document (said by the narrator; its
`<voice>` elements choose other voices). The cast maps each speaker to an engine and a voice:
`{"Ann": {"engine": "kokoro", "voice": "jf_alpha"}, ...}`; a narrator missing from the cast speaks
with the default engine's preferred voice. A Markdown heading (`# Chapter one`) starts a chapter: the
narrator says its title, and every line after it belongs to it (a long text's chapters).

Parsing is linear (string methods, no patterns) and bounded: `MAX_SCRIPT_CHARS`, `MAX_LINES`, and
each line's text within the engines' own limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from engines import ssml
from engines.base import MAX_TEXT_CHARS, InputError
from engines.runtime import registry

NARRATOR = "Narrator"
MAX_SCRIPT_CHARS = 100_000
MAX_LINES = 2_000
MAX_SPEAKER_CHARS = 40
MAX_CAST = 50
MAX_CAST_BYTES = 64 * 1024


@dataclass(frozen=True)
class Line:
    """One line of a script: who says it, what they say (plain text or SSML), and its parts."""

    index: int
    speaker: str
    text: str
    parts: tuple  # engines.ssml.Piece | engines.ssml.Pause, in order
    chapter: str = ""  # the title of the Markdown heading it follows ("" before any heading)

    @property
    def spoken(self) -> str:
        return ssml.plain_text(list(self.parts))


@dataclass(frozen=True)
class Role:
    """A speaker's engine and voice."""

    engine: str
    voice: str


def _speaker(line: str) -> tuple[str, str]:
    """(speaker, text): the name before the first colon when it looks like a name, else the narrator."""
    head, colon, rest = line.partition(":")
    name = head.strip()
    if (
        colon
        and rest.strip()
        and 0 < len(name) <= MAX_SPEAKER_CHARS
        and "<" not in name
        and name[0].isalpha()
        and all(ch.isalnum() or ch in " _.'-" for ch in name)
        and not rest.startswith("//")  # "https://..." is not a speaker
    ):
        return name, rest.strip()
    return NARRATOR, line.strip()


def parse(text: str, limit: int = MAX_SCRIPT_CHARS) -> list[Line]:
    """The lines of a script, each with its parts; `InputError` with one sentence when it is unusable
    (`limit`: the caller's character allowance, at most `MAX_SCRIPT_CHARS`)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("The script is empty; write lines like 'Ann: Hello there.'")
    limit = min(limit, MAX_SCRIPT_CHARS)
    if len(text) > limit:
        raise InputError(f"The script is {len(text):,} characters long; the limit is {limit:,}.")
    body = text.strip()
    if body.startswith(("<speak", "<?xml")):
        raws = [(NARRATOR, body, "")]
    else:
        raws, chapter = [], ""
        for line in body.splitlines():
            if line.lstrip().startswith("#"):
                chapter = line.strip().lstrip("#").strip()[:200]
                if chapter:
                    raws.append((NARRATOR, chapter, chapter))
            elif line.strip():
                raws.append((*_speaker(line), chapter))
    if len(raws) > MAX_LINES:
        raise InputError(f"The script has {len(raws):,} lines; the limit is {MAX_LINES:,}.")
    lines = []
    for number, (speaker, said, chapter) in enumerate(raws, 1):
        try:
            parts = ssml.parse(said) if ssml.looks_like_ssml(said) else [ssml.Piece(" ".join(said.split()))]
        except InputError as exc:
            raise InputError(f"Line {number}: {exc}") from None
        for part in parts:
            if isinstance(part, ssml.Piece) and len(part.text) > MAX_TEXT_CHARS:
                raise InputError(f"Line {number} is over {MAX_TEXT_CHARS:,} characters; please split it.")
        if any(isinstance(p, ssml.Piece) for p in parts):
            lines.append(Line(number, speaker, said, tuple(parts), chapter))
    if not lines:
        raise InputError("The script has nothing to say.")
    return lines


def parse_cast(data: object) -> dict[str, Role]:
    """The cast from JSON text or a mapping: speaker -> {"engine", "voice"}; unknown engines refused."""
    if isinstance(data, str | bytes):
        if len(data) > MAX_CAST_BYTES:
            raise InputError(f"The cast is over {MAX_CAST_BYTES // 1024} KB.")
        try:
            data = json.loads(data) if str(data).strip() else {}
        except (ValueError, RecursionError):
            raise InputError(
                'The cast is not valid JSON; write it like {"Ann": {"engine": "kokoro", "voice": "jf_alpha"}}.'
            ) from None
    if not isinstance(data, dict):
        raise InputError("The cast must map each speaker to an engine and a voice.")
    if len(data) > MAX_CAST:
        raise InputError(f"The cast has {len(data)} speakers; the limit is {MAX_CAST}.")
    cast = {}
    for speaker, role in data.items():
        if (
            not isinstance(role, dict)
            or not isinstance(role.get("engine", ""), str)
            or not isinstance(role.get("voice", ""), str)
        ):
            raise InputError(f'The cast entry for {str(speaker)[:40]!r} must be {{"engine": ..., "voice": ...}}.')
        engine = role.get("engine") or registry.default_engine()
        if engine not in registry.ENGINES:
            known = ", ".join(registry.ENGINES)
            raise InputError(f"Unknown engine {engine[:40]!r} for {str(speaker)[:40]!r}; choose one of: {known}.")
        voice = role.get("voice") or default_voice(engine)
        cast[str(speaker).strip()] = Role(engine, voice)
    return cast


def default_voice(engine_id: str) -> str:
    """The engine's preferred voice among those usable here (its first usable one otherwise)."""
    caps = registry.capabilities(engine_id)
    try:
        usable = [v.id for v in registry.info(engine_id).voices if v.available]
    except Exception:  # an engine that cannot describe itself still has its defaults
        usable = []
    return caps.preferred_voice(usable) or (usable[0] if usable else caps.default_voice)


def roles(lines: list[Line], cast: dict[str, Role]) -> dict[str, Role]:
    """Every speaker of the script with its role; the narrator defaults, other speakers must be cast."""
    missing = sorted({ln.speaker for ln in lines} - set(cast) - {NARRATOR})
    if missing:
        raise InputError(f"The cast has no voice for {', '.join(missing[:5])}; add them to the cast.")
    out = dict(cast)
    if NARRATOR not in out:
        engine = registry.default_engine()
        out[NARRATOR] = Role(engine, default_voice(engine))
    return out
