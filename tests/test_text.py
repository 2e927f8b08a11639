"""Clause splitting and the streaming chunk plan."""

from __future__ import annotations

import pytest

from engines.text import (
    COMMA,
    PARAGRAPH,
    SENTENCE,
    WORD,
    ChunkPlan,
    length_groups,
    plan_chunks,
    split_clauses,
    split_words,
)


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


def _plan(lengths, strengths, plan=None):
    return list(plan_chunks(zip(lengths, strengths, strict=True), plan or ChunkPlan()))


def _sizes(lengths, chunks):
    return [sum(lengths[i] + 1 for i in c) - 1 for c in chunks]


def test_first_chunk_is_short_and_later_chunks_grow():
    lengths = [20] * 60
    sizes = _sizes(lengths, _plan(lengths, [SENTENCE] * 60))
    assert sizes[0] <= ChunkPlan().first_max
    assert sizes[:-1] == sorted(sizes[:-1]) and max(sizes) > 4 * sizes[0]
    assert max(sizes) <= ChunkPlan().hard_max
    assert sum(sizes) == sum(lengths) + len(lengths) - len(sizes)


@pytest.mark.parametrize(("overhead", "per_phoneme"), [(0.0, 0.01), (0.38, 0.032), (0.2, 0.045)])
def test_each_chunk_is_ready_before_the_audio_before_it_ends(overhead, per_phoneme):
    """Simulate a sequential engine with a fixed cost per chunk plus a cost per phoneme."""
    plan = ChunkPlan(overhead_s=overhead, compute_s_per_phoneme=per_phoneme, audio_s_per_phoneme=0.065)
    lengths = [7, 25, 12, 40, 9, 33, 18, 60, 5, 80, 22, 14, 90, 35, 28, 11, 70, 45] * 3
    strengths = [COMMA, SENTENCE, WORD, SENTENCE, COMMA, PARAGRAPH] * 9
    sizes = _sizes(lengths, _plan(lengths, strengths, plan))
    ready = played_until = 0.0
    for k, size in enumerate(sizes):
        ready += overhead + per_phoneme * size
        if k == 0:
            played_until = ready
        else:
            assert ready <= played_until + 1e-9, (k, sizes)
        played_until = max(played_until, ready) + 0.065 * size


def test_a_first_chunk_sized_for_its_time_is_what_the_measured_costs_render_in_it():
    # 0.3 s per call + 0.01 s per phoneme: 0.6 s buys 30 phonemes
    plan = ChunkPlan(first_audio_s=0.6).calibrated(0.3, 0.01, 0.05)
    assert plan.first_max == 30 and plan.first_min == 20
    assert plan.overhead_s == pytest.approx(0.375) and plan.compute_s_per_phoneme == pytest.approx(0.0125)
    assert ChunkPlan(first_audio_s=0.6, first_floor=10).calibrated(0.3, 0.02, 0.05).first_max == 15
    assert ChunkPlan(first_audio_s=0.6).calibrated(0.9, 0.05, 0.05).first_max == ChunkPlan().first_floor
    assert ChunkPlan(first_audio_s=0.6).calibrated(0.0, 0.001, 0.05).first_max == ChunkPlan().first_max
    assert ChunkPlan().calibrated(0.3, 0.02, 0.05).first_max == ChunkPlan().first_max  # no aim: unchanged


def test_costs_per_second_rendered_charge_each_call_its_boundary_silence():
    # 0.35 s of compute per second rendered, 0.9 s of silence per call, 0.05 s of speech per phoneme
    overhead, per_phoneme, audio = ChunkPlan.costs_from_rate(0.35, 0.9, 0.05)
    assert (overhead, per_phoneme, audio) == pytest.approx((0.315, 0.0175, 0.05))
    # a first chunk of 16 phonemes renders 0.9 + 0.8 s of audio: 0.595 s of compute, inside 0.6 s
    assert ChunkPlan(first_audio_s=0.6, first_floor=10).calibrated(overhead, per_phoneme, audio).first_max == 16


def test_a_turn_bounds_each_chunks_compute_by_the_measured_costs_but_never_under_a_sentence():
    # 0.2 s per call + 0.01 s per phoneme: a 2-second turn holds 180 phonemes
    plan = ChunkPlan(turn_s=2.0).calibrated(0.2, 0.01, 0.065)
    assert plan.hard_max == 180
    lengths, strengths = [40] * 60, [SENTENCE] * 60
    sizes = _sizes(lengths, _plan(lengths, strengths, plan))
    assert max(sizes) <= 180 and sorted(i for c in _plan(lengths, strengths, plan) for i in c) == list(range(60))
    assert ChunkPlan(turn_s=2.0).calibrated(0.2, 0.0001, 0.065).hard_max == 510  # a fast engine: the window
    assert ChunkPlan(turn_s=2.0).calibrated(0.5, 0.05, 0.065).hard_max == ChunkPlan().turn_floor  # a slow one
    assert ChunkPlan().calibrated(0.2, 0.01, 0.065).hard_max == 510  # no turn: unchanged


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


# ----- grouping texts of similar length ------------------------------------------------------------


def test_length_groups_keep_the_order_and_give_every_position_once():
    texts = ["a" * n for n in (40, 10, 12, 90, 11, 13, 15, 30)]
    groups = length_groups(texts, size=4)
    assert [i for g in groups for i in g] == list(range(len(texts)))  # a stream plays them in this order
    assert groups == [[0], [1, 2], [3], [4, 5, 6], [7]]


def test_sorted_length_groups_are_fuller_and_still_map_back_to_positions():
    texts = ["a" * n for n in (40, 10, 12, 90, 11, 13, 15, 30)]
    groups = length_groups(texts, size=4, sort=True)
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))
    assert groups[0] == [1, 4, 2, 5]  # 10, 11, 12, 13 characters
    for group in groups:
        lengths = [len(texts[i]) for i in group]
        assert len(group) <= 4 and max(lengths) <= 2 * min(lengths) and lengths == sorted(lengths)


def test_length_groups_of_nothing_is_nothing_and_size_one_is_one_by_one():
    assert length_groups([]) == []
    assert length_groups(["aa", "bb", "cc"], size=1) == [[0], [1], [2]]
