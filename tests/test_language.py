"""The one language type: "automatic" spelled once, names and codes to ISO 639-1, a text's script."""

from __future__ import annotations

import pytest
from conftest import ROOT

from engines import language
from engines.base import SynthesisRequest


@pytest.mark.parametrize("automatic", [None, "", "  ", "Auto", "auto", "AUTO", " auto "])
def test_every_spelling_of_automatic_normalises_to_none(automatic):
    assert language.is_auto(automatic)
    assert language.normalize(automatic) is None
    assert language.label(automatic) == language.AUTO == "Auto"
    assert SynthesisRequest("Hello.", "af_heart", language=automatic).language is None


def test_a_chosen_language_keeps_its_spelling_without_outer_blanks():
    assert language.normalize(" Japanese ") == "Japanese" and not language.is_auto("Japanese")
    assert language.label("French") == "French"
    assert SynthesisRequest("Hello.", "af_heart", language=" en-gb ").language == "en-gb"


def test_names_codes_and_locales_map_to_one_iso_code():
    assert language.iso_code("Brazilian Portuguese") == language.iso_code("pt-BR") == language.iso_code("p") == "pt"
    assert language.iso_code("Chinese (Beijing dialect)") == language.iso_code("cmn") == "zh"
    assert language.iso_code("EN_us") == "en" and language.iso_code("Auto") is None


def test_every_language_name_the_engines_use_maps_to_a_whisper_code():
    import json

    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from engines.kokoro.voices import ALIASES, LANGUAGES, catalogue

    kokoro = {
        "American English": "en", "British English": "en", "Spanish": "es", "French": "fr", "Hindi": "hi",
        "Italian": "it", "Brazilian Portuguese": "pt", "Japanese": "ja", "Mandarin Chinese": "zh",
    }  # fmt: skip
    assert {name: language.iso_code(name) for name in LANGUAGES.values()} == kokoro
    for code, name in LANGUAGES.items():  # Kokoro's lang codes, a voice id's first letter
        assert language.iso_code(code) == kokoro[name]
    for alias, code in ALIASES.items():
        assert language.iso_code(alias) == kokoro[LANGUAGES[code]]
    for voice in catalogue().values():
        assert language.iso_code(voice["id"][0]) == language.iso_code(voice["language"])

    qwen = json.loads((ROOT / "voices" / "qwen.json").read_text(encoding="utf-8"))
    expected = {
        "Auto": None, "Chinese": "zh", "English": "en", "Japanese": "ja", "Korean": "ko", "German": "de",
        "French": "fr", "Russian": "ru", "Portuguese": "pt", "Spanish": "es", "Italian": "it",
    }  # fmt: skip
    assert {name: language.iso_code(name) for name in qwen["languages"]} == expected
    assert {name.lower(): language.iso_code(name.lower()) for name in expected} == {
        name.lower(): code for name, code in expected.items()
    }  # the loaded model names them in lower case
    natives = {s["native_language"]: language.iso_code(s["native_language"]) for s in qwen["speakers"]}
    assert natives["Chinese (Sichuan dialect)"] == "zh" and None not in natives.values()
    assert set(kokoro.values()) | set(natives.values()) | (set(expected.values()) - {None}) <= set(_LANGUAGE_CODES)
    assert language.iso_code(None) is language.iso_code("auto") is language.iso_code("Klingon")


def test_the_script_decides_the_language_when_none_is_set():
    assert language.script_language("こんにちは、東京") == "ja"
    assert language.script_language("東京都") == "zh"
    assert language.script_language("東京都", "ja") == "ja"  # kanji read by a Japanese voice
    assert language.script_language("안녕하세요") == "ko"
    assert language.script_language("Привет") == "ru" and language.script_language("नमस्ते") == "hi"
    assert language.script_language("Bonjour à tous", "fr") == "fr"
    assert language.script_language("Grüße aus München", "en") is None  # Whisper detects it


def test_qwen_takes_its_own_names_or_their_iso_codes_and_auto_in_any_spelling():
    from engines.base import InputError
    from engines.qwen.engine import QwenCustomEngine

    engine = QwenCustomEngine()  # not loaded: its languages come from voices/qwen.json
    assert [engine._language(x) for x in (None, "", "auto", "Auto")] == ["Auto"] * 4
    assert engine._language("japanese") == engine._language("ja") == "Japanese"
    assert engine._language("pt-BR") == "Portuguese"
    with pytest.raises(InputError, match="Unknown language 'Klingon'"):
        engine._language("Klingon")
