"""Clause splitting and the streaming chunk plan."""

from __future__ import annotations

from engines.text import COMMA, PARAGRAPH, SENTENCE, WORD, ChunkPlan, plan_chunks, split_clauses, split_words


def test_sentences_and_clauses_keep_their_punctuation():
    clauses = split_clauses("Hello there. I said hi, twice; then left!\n\nNew paragraph")
    assert [c.text for c in clauses] == ["Hello there.", "I said hi,", "twice;", "then left!", "New paragraph"]
    assert clauses[0].strength == SENTENCE and clauses[1].strength == COMMA
    assert clauses[3].strength == PARAGRAPH


def test_decimals_and_markup_are_not_cut():
    clauses = split_clauses("Pi is 3.14, roughly. Say [Kokoro](/kˈOkəɹO/). Done.")
    assert [c.text for c in clauses] == ["Pi is 3.14,", "roughly.", "Say [Kokoro](/kˈOkəɹO/).", "Done."]


def test_full_width_cjk_punctuation_splits_without_spaces():
    clauses = split_clauses("今日は。いい天気ですね、本当に！明日も")
    assert [c.text for c in clauses] == ["今日は。", "いい天気ですね、", "本当に！", "明日も"]
    assert not clauses[0].space_after


def test_split_words_balances_parts_and_cuts_cjk_between_characters():
    assert split_words("one two three four five six", 3) == ["one two", "three four", "five six"]
    assert "".join(split_words("今日はいい天気ですね", 3)) == "今日はいい天気ですね"
    assert len(split_words("今日はいい天気ですね", 3)) == 3


def _plan(lengths, strengths, plan=ChunkPlan()):
    return list(plan_chunks(zip(lengths, strengths), plan))


def test_first_chunk_is_short_and_later_chunks_grow():
    lengths = [20] * 40
    chunks = _plan(lengths, [SENTENCE] * 40)
    sizes = [sum(lengths[i] + 1 for i in c) - 1 for c in chunks]
    assert sizes[0] <= ChunkPlan().first_max
    assert sizes[1] > sizes[0] and sizes[2] >= sizes[1]
    assert max(sizes) <= ChunkPlan().hard_max
    assert [i for c in chunks for i in c] == list(range(40))


def test_first_chunk_stops_at_the_first_break_once_long_enough():
    assert _plan([10, 12, 30], [COMMA, COMMA, SENTENCE])[0] == [0, 1]


def test_chunks_prefer_to_end_at_a_sentence():
    # 30-phoneme first chunk, then a 100 budget: sentence, then clauses that would overflow.
    chunks = _plan([30, 50, 30, 40, 40], [SENTENCE, SENTENCE, COMMA, COMMA, SENTENCE])
    assert chunks[1] == [1]


def test_no_chunk_exceeds_the_model_window():
    lengths = [300, 300, 500, 10]
    chunks = _plan(lengths, [WORD, SENTENCE, SENTENCE, SENTENCE])
    assert all(sum(lengths[i] + 1 for i in c) - 1 <= 510 for c in chunks)


def test_empty_input_plans_nothing():
    assert _plan([], []) == []
