"""Languages, written one way: "automatic" has one spelling, names and codes map to ISO 639-1, and a
text's script can name its language.

Requests, engines, the comparison and its metrics, and the tabs all pass a language as a string
that a person or a caller chose: a name ("Japanese", "British English", "Chinese (Beijing
dialect)"), an ISO code or locale ("ja", "pt-BR"), or one of Kokoro's one-letter codes ("j").
"No language" (follow the voice or the text) is `None` once `normalize`d: `None`, `""`, blanks and
"auto" in any case all mean it; the page's dropdowns show it as `AUTO`. `iso_code` gives the ISO
639-1 code of any of those spellings (Whisper's language codes are the same), and `script_language`
the code that a text's script implies.
"""

from __future__ import annotations

AUTO = "Auto"  # how the page's language dropdowns show "automatic"
MAX_NAME_CHARS = 64  # longer than any language name or locale ("Chinese (Beijing dialect)" is 25)

# Lower-cased names and codes the engines use (Kokoro's names and one-letter codes, which are also
# the first letter of its voice ids; Qwen3-TTS's names and its speakers' native languages) -> ISO 639-1.
ISO_CODES: dict[str, str] = {
    "english": "en", "american english": "en", "british english": "en", "a": "en", "b": "en",
    "spanish": "es", "e": "es", "french": "fr", "f": "fr", "hindi": "hi", "h": "hi",
    "italian": "it", "i": "it", "portuguese": "pt", "brazilian portuguese": "pt", "p": "pt",
    "japanese": "ja", "j": "ja", "chinese": "zh", "mandarin chinese": "zh", "z": "zh", "cmn": "zh",
    "korean": "ko", "german": "de", "russian": "ru",
}  # fmt: skip
# Scripts that name a language on their own, first match wins (kana before Han: Japanese mixes both):
# (first, last code point, ISO code, the voice's languages that may read the script instead).
SCRIPTS = (
    ("\u3040", "\u30ff", "ja", ()),  # hiragana, katakana
    ("\u1100", "\u11ff", "ko", ()),  # hangul jamo
    ("\uac00", "\ud7a3", "ko", ()),  # hangul syllables
    ("\u3400", "\u9fff", "zh", ("ja",)),  # Han without kana: Chinese, or kanji read by a Japanese voice
    ("\u0400", "\u04ff", "ru", ()),  # Cyrillic
    ("\u0900", "\u097f", "hi", ()),  # Devanagari
)
LATIN_LANGUAGES = frozenset({"es", "fr", "it", "pt", "de"})  # besides English, written in Latin letters


def is_auto(language: object) -> bool:
    """Whether a language value means "automatic": None, empty or blank, or "auto" in any case."""
    return language is None or not str(language).strip() or str(language).strip().lower() == "auto"


def normalize(language: object) -> str | None:
    """The one spelling of a language value: None for automatic, else the text without outer blanks."""
    return None if is_auto(language) else str(language).strip()


def label(language: object) -> str:
    """A language value as the page shows it: `AUTO` for automatic."""
    return normalize(language) or AUTO


def iso_code(language: object) -> str | None:
    """The ISO 639-1 code of a language name or code ("Japanese", "j", "pt-br", "Chinese (Beijing
    dialect)"); None for automatic, a language not in `ISO_CODES`, or a value longer than any
    language's name (`MAX_NAME_CHARS`: a caller's 256 KiB "language" is not read at all)."""
    text = str(language or "")
    if len(text) > MAX_NAME_CHARS:
        return None
    key = without_parentheses(text).strip().lower()
    if key in ISO_CODES:
        return ISO_CODES[key]
    code = key.replace("_", "-").partition("-")[0]
    return code if code in ISO_CODES.values() else None


def without_parentheses(text: str) -> str:
    """`text` without its parenthesised parts ("Chinese (Beijing dialect)" -> "Chinese "), in one pass
    (a pattern like `\\(.*?\\)` is quadratic: 20,000 "(" took 6.9 s holding the GIL)."""
    kept, rest = [], text
    while True:
        head, opened, tail = rest.partition("(")
        close = tail.find(")") if opened else -1
        if close < 0:
            kept.append(rest)
            return "".join(kept)
        kept.append(head)
        rest = tail[close + 1 :]


def script_language(text: str, voice_language: str | None = None) -> str | None:
    """The ISO code that `text`'s script implies (`SCRIPTS`: kana ja, hangul ko, Han zh, or ja for a
    Japanese voice, Cyrillic ru, Devanagari hi), given the ISO code of the voice's language. Latin text
    is in the voice's language when that is a Latin-script one other than English (`LATIN_LANGUAGES`);
    else None: the text alone does not say."""
    for first, last, code, also in SCRIPTS:
        if any(first <= ch <= last for ch in text):
            return voice_language if voice_language in also else code
    return voice_language if voice_language in LATIN_LANGUAGES else None


def has_kana_or_han(text: str) -> bool:
    """Whether the text holds Japanese kana or Chinese characters (the scripts Kokoro's ja and zh voices read)."""
    return any("\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff" for ch in text)
