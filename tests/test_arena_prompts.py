"""The arena's prompt categories: the classifier of typed texts, the built-in prompt set and drawing from it."""

from __future__ import annotations

import random

import pytest

from engines.base import InputError
from evaluation import prompts
from evaluation.prompts import CATEGORIES, LONG_MIN_CHARS, Kind, classify


def test_every_built_in_prompt_is_classified_into_its_own_category_and_language():
    for prompt in prompts.prompts():
        assert classify(prompt.text) == Kind(prompt.category, prompt.language), prompt.text


def test_the_built_in_set_has_enough_prompts_per_category_and_long_ones_are_long():
    for category in CATEGORIES:
        texts = [p.text for p in prompts.prompts(category)]
        assert len(texts) >= 8 and len(set(texts)) == len(texts), category
    assert all(len(p.text) >= LONG_MIN_CHARS for p in prompts.prompts("long"))
    assert all(len(p.text) < LONG_MIN_CHARS for c in CATEGORIES if c != "long" for p in prompts.prompts(c))
    # non-English prompts in languages both engines speak (Kokoro and Qwen3-TTS: es fr it pt ja zh)
    assert {p.language for p in prompts.prompts("non_english")} == {"es", "fr", "it", "pt", "ja", "zh"}


@pytest.mark.parametrize(
    "text, category, language",
    [
        ("Hello there.", "short", "en"),
        ("The birch canoe slid on the smooth planks.", "short", "en"),
        ("Please call Stella and ask her to bring these things with her from the store.", "short", "en"),
        ("It is easy to tell the depth of a well. " * 11, "long", "en"),
        ("Meet me at 10:30 on 2024-05-01.", "numbers", "en"),
        ("The docs live at www.example.com now.", "numbers", "en"),
        ("Write to someone@example.org today.", "numbers", "en"),
        ("12345", "numbers", None),
        ("I told Mary that John would come.", "names", "en"),
        ("Dr. Okafor and Dr. Lindqvist disagreed.", "names", "en"),
        ("I think I'll go. I'm tired.", "short", "en"),  # "I" is not a name
        ("Hola, ¿cómo estás? Hace mucho que no te veo.", "non_english", "es"),
        ("Bonjour à tous, merci d'être venus ce soir.", "non_english", "fr"),
        ("Guten Morgen, wie geht es dir heute?", "non_english", "de"),
        ("吾輩は猫である。名前はまだ無い。", "non_english", "ja"),
        ("你好，世界。", "non_english", "zh"),
        ("Привет, как дела?", "non_english", "ru"),
        ("“Ready?” she asked. “Always,” he said.", "dialogue", "en"),
        ('"Ready?" she asked. "Always," he said.', "dialogue", "en"),
        ("- Ready?\n- Always.", "dialogue", "en"),
        ("Ann: Ready?\nBob: Always.", "dialogue", "en"),
        ("“Ready?” she asked.", "short", "en"),  # one quoted span is not a dialogue
    ],
)
def test_a_typed_text_is_classified(text, category, language):
    assert classify(text) == Kind(category, language)


def test_long_form_wins_over_every_other_trait_and_non_english_over_dialogue():
    long_spanish = "El tren salió temprano y llegamos a la ciudad antes del mediodía. " * 7
    assert classify(long_spanish) == Kind("long", "es")
    assert classify("«¿Vienes?» preguntó ella. «Ahora voy», dijo él.").category == "non_english"


def test_drawing_a_prompt_follows_the_category_and_does_not_repeat_while_others_are_left():
    rng = random.Random(0)
    seen: list[str] = []
    for _ in range(len(prompts.prompts("names"))):
        prompt = prompts.draw("Names", recent=seen, rng=rng)
        assert prompt.category == "names" and prompt.text not in seen
        seen.append(prompt.text)
    assert prompts.draw("names", recent=seen, rng=rng).category == "names"  # all heard: any again
    assert {prompts.draw("any", rng=rng).category for _ in range(60)} == set(CATEGORIES)


@pytest.mark.parametrize("bad", ["poetry", "", None, "x" * 500])
def test_a_bad_category_gets_one_sentence(bad):
    with pytest.raises(InputError) as caught:
        prompts.draw(bad) if bad is not None and bad != "" else prompts.category_key(bad)
    message = str(caught.value)
    assert message.startswith("A prompt category is one of short, long, numbers") and message.count(".") <= 2
    assert len(message) < 160 and "\n" not in message


def test_category_and_language_spellings():
    assert prompts.category_key("Non-English") == "non_english"
    assert prompts.category_key("numbers, dates, urls") == "numbers"
    assert prompts.category_key("ALL", allow_any=True) == prompts.ANY
    assert prompts.language_key("Spanish") == "es" and prompts.language_key("all") is None
    assert prompts.language_name("ja") == "Japanese" and prompts.language_name(None) == "unknown"
    with pytest.raises(InputError, match="A language is an ISO code"):
        prompts.language_key("klingon")
