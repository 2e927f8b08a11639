"""The arena's prompts: six categories, a built-in prompt set per category, and the classifier of typed texts.

A blind pair says either a built-in prompt (the visitor picks a category, or "any" for one drawn at
random) or the visitor's own text, which `classify` puts in a category: long-form (at least
`LONG_MIN_CHARS` characters), non-English (the script says so — kana, hangul, Han, Cyrillic,
Devanagari — or, for Latin letters, py3langid's identifier is confident the text is Spanish, French,
Italian, Portuguese or German), dialogue (two or more quoted spans, or lines opening with a dash or a
speaker's name), numbers/dates/URLs (digits, a URL, an e-mail address, a currency sign), names (two
or more capitalised words that do not open a sentence), else short. The first that applies wins, in
that order. Every built-in prompt is classified into its own category (tested), so a vote's category
is always what `classify` says of the text that was played.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from engines.base import InputError
from engines.language import ISO_CODES, script_language

log = logging.getLogger(__name__)

CATEGORIES: dict[str, str] = {
    "short": "Short",
    "long": "Long-form (400+ characters)",
    "numbers": "Numbers, dates, URLs",
    "names": "Names",
    "non_english": "Non-English",
    "dialogue": "Dialogue",
}
ANY = "any"  # a category drawn at random
LONG_MIN_CHARS = 400
LATIN_DETECTED = ("en", "es", "fr", "it", "pt", "de")  # what the identifier may answer for Latin letters
MIN_CONFIDENCE = 0.9  # below this, Latin text counts as English (names and numbers fool the identifier)

# The classifier reads visitors' text: every pattern runs in linear time. A repeat that could rescan
# the rest of the text from every position is bounded (a quotation longer than a "long" text is not
# one; an e-mail's parts have RFC lengths), and line patterns never cross a line break in their
# leading blanks ("\n" * 20,000 took 48 s with `^\s*`).
_Q = LONG_MIN_CHARS
_QUOTED = re.compile(
    rf"“[^”]{{1,{_Q}}}”|\"[^\"]{{1,{_Q}}}\"|«[^»]{{1,{_Q}}}»|„[^“”]{{1,{_Q}}}[“”]|「[^」]{{1,{_Q}}}」|『[^』]{{1,{_Q}}}』"
)
_DASH_LINE = re.compile(r"^[^\S\n]*+[—–-][^\S\n]*+\S", re.MULTILINE)
_SPEAKER_LINE = re.compile(r"^[^\S\n]*+[A-Z][\w .'-]{0,30}:[^\S\n]++\S", re.MULTILINE)
_NUMBERS = re.compile(
    r"\d|https?://|\bwww\.|\b[\w.+-]{1,64}@[\w-]{1,63}\.\w|\b[\w-]{1,63}\.(?:com|org|net|io|dev|edu|gov)\b|[$€£¥%]",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_OPENS = re.compile(r"^[\"“«„(—–-]")  # a token that opens a quotation or a dash line opens a sentence
_ABBREVIATIONS = frozenset({"Dr", "Mr", "Mrs", "Ms", "Prof", "St", "Mt", "Jr", "Sr"})
_NOT_NAMES = frozenset({"I", "I'm", "I’m", "I'd", "I’d", "I'll", "I’ll", "I've", "I’ve", "OK", "TV"})


@dataclass(frozen=True)
class Prompt:
    """A built-in prompt: its text, category and ISO 639-1 language."""

    text: str
    category: str
    language: str = "en"


@dataclass(frozen=True)
class Kind:
    """What a text is: its category and language (ISO 639-1; None when the text has no letters)."""

    category: str
    language: str | None

    def describe(self) -> str:
        """e.g. "Names · English"."""
        return f"{CATEGORIES[self.category]} · {language_name(self.language)}"


def category_key(value: object, allow_any: bool = False) -> str:
    """A category's key from its key or its label, any case; one sentence for anything else."""
    wanted = str(value if value is not None else "").strip().lower()
    if allow_any and wanted in (ANY, "all", ""):
        return ANY
    for key, label in CATEGORIES.items():
        if wanted in (key, label.lower(), key.replace("_", "-"), key.replace("_", " ")):
            return key
    allowed = ", ".join(CATEGORIES) + (f" or {ANY}" if allow_any else "")
    raise InputError(f"A prompt category is one of {allowed}; got {str(value)[:40]!r}.")


def language_name(code: str | None) -> str:
    """An ISO code as a word ("es" -> "Spanish"); "unknown" for None."""
    if not code:
        return "unknown"
    name = next((n for n, c in ISO_CODES.items() if c == code and len(n) > 1 and " " not in n), code)
    return name.title()


def language_key(value: object) -> str | None:
    """An ISO 639-1 code from a code or a name ("es", "Spanish"); None for all/empty; one sentence else."""
    wanted = str(value if value is not None else "").strip().lower()
    if wanted in ("", ANY, "all"):
        return None
    codes = sorted(set(ISO_CODES.values()))
    if wanted in codes:
        return wanted
    if wanted in ISO_CODES:
        return ISO_CODES[wanted]
    raise InputError(f"A language is an ISO code such as {', '.join(codes)}; got {str(value)[:40]!r}.")


# --- the classifier --------------------------------------------------------------------------------------


def classify(text: str) -> Kind:
    """The category and language of a text (see the module's docstring for the rules)."""
    text = str(text or "")
    language = detect_language(text)
    if len(text.strip()) >= LONG_MIN_CHARS:
        return Kind("long", language)
    if language not in ("en", None):
        return Kind("non_english", language)
    if is_dialogue(text):
        return Kind("dialogue", language)
    if _NUMBERS.search(text):
        return Kind("numbers", language)
    if len(capitalised_names(text)) >= 2:
        return Kind("names", language)
    return Kind("short", language)


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of a text: from its script where that says it (`engines.language.script_language`),
    else from py3langid over `LATIN_DETECTED` when it is confident, else English; None without letters."""
    if not any(ch.isalpha() for ch in text):
        return None
    by_script = script_language(text)
    if by_script is not None:
        return by_script
    identifier = _identifier()
    if identifier is None:
        return "en"
    code, confidence = identifier.classify(text)
    return code if code in LATIN_DETECTED and confidence >= MIN_CONFIDENCE else "en"


def is_dialogue(text: str) -> bool:
    """Two or more quoted spans, or two or more lines opening with a dash or with "Name:"."""
    return (
        len(_QUOTED.findall(text)) >= 2 or len(_DASH_LINE.findall(text)) >= 2 or len(_SPEAKER_LINE.findall(text)) >= 2
    )


def capitalised_names(text: str) -> list[str]:
    """Capitalised words that do not open a sentence, a quotation or a line (nor "I" and its
    contractions): likely names."""
    found, opening = [], True
    for token in text.split():
        word = _WORD.search(token)
        if word is not None:
            w = word.group().rstrip(".'’-")
            if not opening and not _OPENS.match(token) and w[:1].isupper() and w not in _NOT_NAMES:
                found.append(w)
        bare = token.rstrip("\"”»)'’")
        opening = bare.endswith(("!", "?", "…", ":", ";")) or (bare.endswith(".") and bare[:-1] not in _ABBREVIATIONS)
    return found


_lock = threading.Lock()
_loaded: list = []


def _identifier():
    """py3langid's identifier restricted to `LATIN_DETECTED`, loaded once (about a second); None if the
    package is missing (Latin text then counts as English)."""
    with _lock:
        if not _loaded:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                identifier.set_languages(list(LATIN_DETECTED))
            except ImportError:
                log.warning("py3langid is not installed: Latin-script prompts are classified as English")
                identifier = None
            _loaded.append(identifier)
        return _loaded[0]


# --- the built-in prompts ----------------------------------------------------------------------------


def prompts(category: str | None = None) -> list[Prompt]:
    """The built-in prompts, of one category or all."""
    if category is None:
        return [p for group in PROMPTS.values() for p in group]
    return list(PROMPTS[category_key(category)])


def draw(category: object = ANY, recent: Iterable[str] = (), rng: random.Random | None = None) -> Prompt:
    """A built-in prompt of a category ("any": a category at random first), none of `recent` (texts
    already heard) while the category has others."""
    rng = rng or random.Random()
    key = category_key(category, allow_any=True)
    if key == ANY:
        key = rng.choice(list(CATEGORIES))
    seen = set(recent)
    fresh = [p for p in PROMPTS[key] if p.text not in seen]
    return rng.choice(fresh or list(PROMPTS[key]))


def _group(category: str, *texts: str, language: str = "en") -> tuple[Prompt, ...]:
    return tuple(Prompt(t, category, language) for t in texts)


PROMPTS: dict[str, tuple[Prompt, ...]] = {
    "short": _group(
        "short",
        "The kettle clicked off just as the rain began.",
        "Please leave the parcel by the green door.",
        "We missed the last train, so we walked home.",
        "Her laugh filled the quiet kitchen.",
        "The ink had faded, but the promise was still there.",
        "Could you turn the music down a little?",
        "A cold wind swept across the empty harbour.",
        "He folded the letter twice and put it away.",
        "Nobody expected the old bridge to hold.",
        "The bread is still warm, so eat it now.",
        "Thank you for waiting; we are almost ready.",
        "The lanterns swayed gently above the market.",
    ),
    "long": _group(
        "long",
        "The lighthouse keeper had kept the same routine for thirty years. Every evening he climbed the "
        "spiral stairs, wiped the salt from the great lens, and lit the lamp before the sun touched the "
        "water. Ships passed without ever knowing his name, and he liked it that way. But on the night "
        "the storm arrived, the lamp flickered and died, and for the first time he had to decide whether "
        "to stay in the tower or row out into the dark to warn the fishing boats himself.",
        "When you first start learning to cook, recipes feel like strict laws. Measure this, stir that, "
        "bake for exactly twenty minutes. Over time you begin to notice that the best cooks rarely look "
        "at the page. They taste as they go, they listen to the sound of the pan, and they adjust the heat "
        "by instinct. The recipe becomes a suggestion rather than a command, and the kitchen turns from a "
        "laboratory into a place where small experiments are welcome, even when they fail.",
        "Our galaxy is a spinning disc of stars, gas and dust, so wide that light takes a hundred thousand "
        "years to cross it. The Sun sits in a quiet suburb, far from the crowded centre, circling it once "
        "every couple of hundred million years. Most of what holds the galaxy together cannot be seen at "
        "all. Astronomers infer its presence from the way the outer stars move far too quickly, as though "
        "an invisible mass were pulling on them from every direction at once.",
        "The meeting had gone on for nearly three hours when someone finally opened a window. Fresh air "
        "drifted in, carrying the smell of cut grass and the distant noise of traffic. People stretched, "
        "checked their phones, and pretended not to be tired. The chair cleared her throat and suggested "
        "that they take a short break, but nobody moved. Everyone knew that the real decision was still "
        "ahead of them, and nobody wanted to be the first to leave the table and lose their place in it.",
        "Walking through an old forest in late autumn is like reading a book written in a language you "
        "only half understand. The fallen leaves tell you which trees stand above you, the moss shows "
        "where the moisture gathers, and the tracks in the mud hint at visitors who passed by before "
        "dawn. Nothing announces itself loudly. You have to slow down, look closely, and let the small "
        "details add up, until the whole place begins to feel less like scenery and more like a story.",
        "Learning a musical instrument as an adult is humbling. Your hands refuse to do what your head "
        "already understands, and progress is measured in tiny steps that seem invisible from one week "
        "to the next. Then, one evening, a passage that used to trip you up simply flows, and you realise "
        "that the weeks of clumsy practice were quietly rebuilding something inside you. That moment is "
        "rare and brief, but it is usually enough to carry you through another month of patient work.",
        "The village library was never large, but it was always full. Children sprawled on the carpet "
        "with picture books, students claimed the long table by the radiator, and retired teachers "
        "argued softly over the newspapers. When the council announced that the building would close, "
        "the protest was polite but stubborn. People wrote letters, organised readings, and stocked the "
        "shelves with donated books until it became clear that the library belonged to the whole town.",
        "Sleep is one of the strangest things we do. For hours each night we lie still, cut off from the "
        "world, while the brain sorts through the day, strengthening some memories and letting others "
        "fade away. Without enough of it, attention slips, moods darken, and even simple decisions feel "
        "heavy. Yet many of us treat rest as a luxury, trading it for late work or one more episode, and "
        "then wonder why the following morning feels so slow, foggy and unusually hard to get through.",
    ),
    "numbers": _group(
        "numbers",
        "The meeting moved from 9:30 to 11:15 on Tuesday, March 4th, 2025.",
        "Your order number is 48213, and it should arrive within 3 to 5 days.",
        "Visit https://example.org/help for the full guide.",
        "The recipe needs 250 grams of flour and 1.5 litres of milk.",
        "Call 0800 123 4567 before 6 pm, or write to help@example.com.",
        "Tickets cost $12.50 for adults and $7 for children under 12.",
        "The train leaves platform 9 at 07:42 and arrives at 10:05.",
        "Prices rose by 3.2% in 2023, after 8.1% the year before.",
        "The summit is 8,849 metres high, about 29,032 feet.",
        "Chapter 14 begins on page 203 of the 2nd edition.",
        "Born on 17 June 1982, she moved to flat 3B in 2004.",
        "The file is 2.4 GB; see www.example.net/downloads for mirrors.",
    ),
    "names": _group(
        "names",
        "Siobhan and Niamh met Saoirse outside the theatre in Galway.",
        "Yesterday Xiomara drove from Albuquerque to Tucumcari with Guillermo.",
        "The prize went to Chidimma Okonkwo, ahead of Bartholomew Fairweather.",
        "We flew from Reykjavik to Ouagadougou by way of Frankfurt.",
        "Tchaikovsky and Dvorak shared a programme with Saint-Saens.",
        "Later, Aoife introduced Thandiwe to Krzysztof and Magdalena.",
        "The expedition crossed Kyrgyzstan before reaching Samarkand.",
        "Dr. Nguyen asked Professor Wojciechowski about the Loughborough results.",
        "Our guide, Eilidh, pointed towards Schiehallion and Ben Lawers.",
        "The novel follows Hermione, Persephone and Gwendolyn through Llandudno.",
        "Please welcome Oluwaseun Adeyemi and Ngozi Chukwu to Worcestershire.",
        "From Chichester we cycled to Bournemouth with Ffion and Rhys.",
    ),
    "non_english": (
        *_group(
            "non_english",
            "El tren salió temprano y llegamos a la ciudad antes del mediodía.",
            "Me gustaría un café con leche y un trozo de tarta, por favor.",
            language="es",
        ),
        *_group(
            "non_english",
            "Il pleuvait depuis le matin, alors nous sommes restés à la maison.",
            "Pourriez-vous me dire où se trouve la gare, s'il vous plaît ?",
            language="fr",
        ),
        *_group(
            "non_english",
            "La cena era pronta, ma nessuno aveva ancora fame.",
            "Domani andremo al mare se il tempo sarà bello.",
            language="it",
        ),
        *_group(
            "non_english",
            "Amanhã vamos visitar os meus avós no campo.",
            "O livro que você me emprestou é muito interessante.",
            language="pt",
        ),
        *_group("non_english", "今日はとても良い天気ですね。", "駅までの道を教えていただけますか。", language="ja"),
        *_group("non_english", "今天天气很好，我们去公园散步吧。", "这本书非常有意思，我已经读了两遍。", language="zh"),
    ),
    "dialogue": _group(
        "dialogue",
        "“Are you coming?” she asked. “In a minute,” he said, not looking up.",
        "“It's late,” said the guard. “Then we had better hurry,” replied the girl.",
        "— Where did you put the keys?\n— On the hook by the door, as always.",
        "“I can't believe it worked!” he shouted. “Told you so,” she grinned.",
        "Anna: Have you seen my umbrella?\nBen: It's behind the sofa, I think.",
        "“Do you hear that?” “Hear what?” “Exactly. It's far too quiet.”",
        "— Is the shop still open?\n— Only for another few minutes, so be quick.",
        "“Tea or coffee?” asked the waiter. “Surprise me,” she answered.",
        "Mia: Did you finish the painting?\nLeo: Almost, it just needs a frame.",
        "“We're lost,” he admitted. “No,” she said, “we're exploring.”",
    ),
}
