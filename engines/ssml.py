"""The SSML subset this app speaks: one document in, spoken pieces and pauses out.

Parsed with a real XML parser (`defusedxml`: no DTDs, no entities, no external references), never
with patterns. The subset, the same for every engine:

- `<speak>` (the root), `<p>` (a paragraph: a pause after it), `<s>` (a sentence);
- `<break time="500ms"/>` or `<break strength="x-weak|weak|medium|strong|x-strong"/>`: a pause;
- `<prosody rate="slow|x-fast|120%|0.9">`: the speed of what it holds;
- `<say-as interpret-as="characters|cardinal|ordinal|date|telephone">`: the text as it is said;
- `<phoneme alphabet="ipa|kokoro" ph="...">word</phoneme>`: the word's phonemes, carried as the
  pronunciation lexicon carries them (an engine that takes phonemes checks them against its
  vocabulary; one that does not says the word, and the piece says so in its notes);
- `<voice name="...">`: another voice of the line's engine for what it holds;
- `<sub alias="...">text</sub>`: the alias is said instead of the text.

Anything else (an unknown tag, an unknown attribute value, a document over the bounds) is refused
with one sentence (`InputError`). Bounds are checked before parsing (size) and while walking
(depth, elements, attribute length), so the work is linear in the document's size.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from engines.base import MAX_SPEED, MIN_SPEED, InputError
from engines.runtime import registry

MAX_DOCUMENT_CHARS = 100_000
MAX_ATTRIBUTE_CHARS = 1_000
MAX_DEPTH = 32
MAX_ELEMENTS = 5_000
MAX_BREAK_S = 10.0
PARAGRAPH_PAUSE_S = 0.6
STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.4, "strong": 0.7, "x-strong": 1.2}
RATES = {"x-slow": 0.7, "slow": 0.85, "medium": 1.0, "default": 1.0, "fast": 1.2, "x-fast": 1.4}
SAY_AS = ("characters", "spell-out", "cardinal", "number", "ordinal", "date", "telephone")
TAGS = {"speak", "p", "s", "break", "prosody", "say-as", "phoneme", "voice", "sub"}


@dataclass(frozen=True)
class Pause:
    """Silence of `seconds` at this place."""

    seconds: float


@dataclass(frozen=True)
class Piece:
    """Text said in one voice at one speed; `phonemes` maps its `<phoneme>` words to their phonemes."""

    text: str
    voice: str | None = None  # None: the line's own voice
    speed: float = 1.0
    phonemes: dict[str, str] = field(default_factory=dict)


Part = Piece | Pause


def looks_like_ssml(text: str) -> bool:
    """Whether `text` holds markup: a `<` followed by a letter or `/` (plain "3 < 4" does not)."""
    at = text.find("<")
    while at != -1:
        nxt = text[at + 1 : at + 2]
        if nxt.isalpha() or nxt == "/":
            return True
        at = text.find("<", at + 1)
    return False


def parse(document: str) -> list[Part]:
    """The pieces and pauses of an SSML document (a `<speak>` root; a fragment is wrapped in one)."""
    if not isinstance(document, str):
        raise InputError("The SSML must be text.")
    if len(document) > MAX_DOCUMENT_CHARS:
        raise InputError(f"The SSML is {len(document):,} characters long; the limit is {MAX_DOCUMENT_CHARS:,}.")
    text = document.strip()
    if not text.startswith(("<speak", "<?xml", "<!")):
        text = f"<speak>{text}</speak>"
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise InputError("The SSML declares a DTD or an entity; those are not accepted.") from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise InputError(f"The SSML is not well-formed XML (line {line}, column {column}).") from None
    if _tag(root) != "speak":
        raise InputError("An SSML document must have <speak> as its root element.")
    walker = _Walker()
    walker.walk(root, voice=None, speed=1.0, depth=0)
    return _merged(walker.parts)


def plain_text(parts: list[Part]) -> str:
    """What the pieces say, joined (for scoring the words and for the manifest)."""
    return " ".join(p.text for p in parts if isinstance(p, Piece)).strip()


class _Walker:
    """Walks the tree once, keeping the parts in document order and counting elements."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.elements = 0

    def say(self, text: str | None, voice: str | None, speed: float, phonemes: dict[str, str] | None = None) -> None:
        if text and text.strip():
            self.parts.append(Piece(" ".join(text.split()), voice, speed, dict(phonemes or {})))

    def walk(self, node: Element, voice: str | None, speed: float, depth: int) -> None:
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise InputError(f"The SSML has over {MAX_ELEMENTS:,} elements; please split it.")
        if depth > MAX_DEPTH:
            raise InputError(f"The SSML nests elements over {MAX_DEPTH} deep.")
        tag = _tag(node)
        if tag not in TAGS:
            raise InputError(f"The SSML tag <{tag}> is not supported; use {', '.join(sorted(TAGS))}.")
        for name, value in node.attrib.items():
            if len(value) > MAX_ATTRIBUTE_CHARS:
                raise InputError(
                    f"The attribute {_local(name)!r} of <{tag}> is over {MAX_ATTRIBUTE_CHARS:,} characters."
                )
        if tag == "break":
            self.parts.append(Pause(round(_break_seconds(node), 3)))
        elif tag == "say-as":
            self.say(_say_as(node), voice, speed)
        elif tag == "sub":
            alias = node.attrib.get("alias", "").strip()
            if not alias:
                raise InputError("<sub> needs an alias attribute: the text to say.")
            self.say(alias, voice, speed)
        elif tag == "phoneme":
            word = "".join(node.itertext()).strip()
            ph = node.attrib.get("ph", "").strip()
            alphabet = node.attrib.get("alphabet", "ipa").strip().lower()
            if alphabet not in alphabets():
                raise InputError(
                    f"<phoneme> alphabet {alphabet[:40]!r} is not supported; use {' or '.join(alphabets())}."
                )
            if not word or not ph or len(word.split()) != 1:
                raise InputError("<phoneme> needs one word inside it and its phonemes in ph.")
            self.say(word, voice, speed, {word: ph})
        else:
            if tag == "voice":
                voice = node.attrib.get("name", "").strip() or voice
            elif tag == "prosody":
                speed = _rate(node.attrib.get("rate"), speed)
            self.say(node.text, voice, speed)
            for child in node:
                self.walk(child, voice, speed, depth + 1)
                self.say(child.tail, voice, speed)
            if tag == "p":
                self.parts.append(Pause(PARAGRAPH_PAUSE_S))
            return
        # leaf elements: their tail text is said by the parent's loop


def alphabets() -> tuple[str, ...]:
    """The `<phoneme alphabet>` names: "ipa", and each engine whose lexicon takes phonemes (its own
    alphabet, named after it: "kokoro"), all checked against that engine's vocabulary."""
    own = [e for e in registry.ENGINES if registry.capabilities(e).lexicon == "phonemes"]
    return ("ipa", *own)


def _merged(parts: list[Part]) -> list[Part]:
    """Neighbouring pieces of one voice and speed joined (one model call keeps their prosody whole);
    neighbouring pauses added; empty pauses dropped. Linear: each run is joined once."""
    out: list[Part] = []
    run: list[Piece] = []

    def flush() -> None:
        if run:
            phonemes: dict[str, str] = {}
            for piece in run:
                phonemes.update(piece.phonemes)
            out.append(Piece(" ".join(p.text for p in run), run[0].voice, run[0].speed, phonemes))
            run.clear()

    for part in parts:
        if isinstance(part, Pause):
            flush()
            last = out[-1] if out else None
            if isinstance(last, Pause):
                out[-1] = Pause(round(min(MAX_BREAK_S, last.seconds + part.seconds), 3))
            else:
                out.append(part)
            continue
        head = run[0] if run else None
        clash = head is not None and any(q.phonemes.get(w, p) != p for q in run[-1:] for w, p in part.phonemes.items())
        if head is not None and ((head.voice, head.speed) != (part.voice, part.speed) or clash):
            flush()
        run.append(part)
    flush()
    return [p for p in out if not (isinstance(p, Pause) and p.seconds <= 0)]


def _tag(node: Element) -> str:
    return _local(str(node.tag)).lower()


def _local(name: str) -> str:
    """A name without its `{namespace}` (SSML documents often declare the W3C namespace)."""
    return name.rsplit("}", 1)[-1]


def _seconds(value: str) -> float | None:
    value = value.strip().lower()
    for unit, scale in (("ms", 0.001), ("s", 1.0)):
        if value.endswith(unit):
            try:
                return float(value[: -len(unit)]) * scale
            except ValueError:
                return None
    return None


def _break_seconds(node: Element) -> float:
    if "time" in node.attrib:
        seconds = _seconds(node.attrib["time"])
        if seconds is None or not 0 <= seconds <= MAX_BREAK_S:
            raise InputError(f'<break time> must be like "500ms" or "1.5s", at most {MAX_BREAK_S:g} s.')
        return seconds
    strength = node.attrib.get("strength", "medium").strip().lower()
    if strength not in STRENGTHS:
        raise InputError(f"<break strength> must be one of {', '.join(STRENGTHS)}.")
    return STRENGTHS[strength]


def _rate(value: str | None, speed: float) -> float:
    if value is None:
        return speed
    value = value.strip().lower()
    if value in RATES:
        rate = RATES[value]
    else:
        try:
            rate = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise InputError(f"<prosody rate> {value[:40]!r} is not a rate (x-slow … x-fast, 120%, 0.9).") from None
    return min(MAX_SPEED, max(MIN_SPEED, speed * rate))


def _say_as(node: Element) -> str:
    kind = node.attrib.get("interpret-as", "").strip().lower()
    text = "".join(node.itertext()).strip()
    if kind not in SAY_AS:
        raise InputError(f"<say-as interpret-as> must be one of {', '.join(SAY_AS)}.")
    if len(text) > MAX_ATTRIBUTE_CHARS:
        raise InputError(f"<say-as> holds over {MAX_ATTRIBUTE_CHARS:,} characters.")
    if kind in ("characters", "spell-out"):
        return ", ".join(ch.upper() if ch.isalpha() else ch for ch in text if not ch.isspace()) + "."
    if kind == "telephone":
        groups = ["".join(ch for ch in g if ch.isdigit()) for g in text.replace("-", " ").replace(".", " ").split()]
        return ", ".join(" ".join(g) for g in groups if g) + "."
    from num2words import num2words

    if kind in ("cardinal", "number", "ordinal"):
        digits = text.replace(",", "").replace("_", "")
        if not (digits.lstrip("-").isdigit() and len(digits) <= 30):
            raise InputError(f"<say-as interpret-as={kind!r}> needs a whole number; got {text[:40]!r}.")
        return num2words(int(digits), to="ordinal" if kind == "ordinal" else "cardinal")
    try:  # date: ISO form YYYY-MM-DD
        day = _dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"<say-as interpret-as='date'> needs a date like 2024-03-05; got {text[:40]!r}.") from None
    return f"{day.strftime('%B')} {num2words(day.day, to='ordinal')}, {num2words(day.year, to='year')}"
