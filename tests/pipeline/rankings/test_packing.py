"""Packing ranked passages into a context of a token budget."""

from __future__ import annotations

import pytest

from pipeline.rankings.orders import RankedPassage
from pipeline.rankings.packing import pack_context
from tests.pipeline.rankings.test_orders import passage, words_count


def test_pack_takes_whole_passages_while_they_fit() -> None:
    passages = [passage("a", "One two three."), passage("b", "Four five."),
                passage("c", "Six seven eight nine.")]
    packed = pack_context(passages, words_count, budget=9, separator="\n\n")
    assert packed.text == "One two three.\n\nFour five.\n\nSix seven eight nine."
    assert packed.passage_ids == ("a", "b", "c")
    assert packed.titles == ("Title a", "Title b", "Title c")
    assert not packed.truncated
    assert packed.tokens == 9


def test_pack_cuts_the_first_misfit_at_a_sentence_end_and_stops() -> None:
    passages = [passage("a", "One two three."),
                passage("b", "Four five. Six seven. Eight nine ten."),
                passage("c", "Eleven.")]
    packed = pack_context(passages, words_count, budget=8, separator=" | ")
    # 3 words, the separator (1 token), then "Four five. Six seven." (4 words) = 8.
    assert packed.text == "One two three. | Four five. Six seven."
    assert packed.passage_ids == ("a", "b")
    assert packed.truncated
    assert packed.tokens == 8


def test_pack_falls_back_to_a_word_end_when_no_sentence_fits() -> None:
    passages = [passage("a", "Alpha beta."),
                passage("b", "Gamma delta epsilon zeta eta theta. Iota.")]
    packed = pack_context(passages, words_count, budget=5, separator=" ")
    assert packed.text == "Alpha beta. Gamma delta epsilon"
    assert packed.truncated


def test_pack_counts_the_whole_context_and_honours_the_budget() -> None:
    chars = len  # a tokenizer that counts characters, so the separator costs its length
    passages = [RankedPassage(passage(p, "Word " * 10 + "end."), 1.0) for p in "abcdef"]
    for budget in range(1, 200, 7):
        packed = pack_context(passages, chars, budget, separator="\n--\n")
        assert packed.tokens == chars(packed.text) <= budget
        assert packed.text.startswith("Word") or packed.text == ""
        assert len(packed.passages) == packed.text.count("\n--\n") + (1 if packed.text else 0)


def test_pack_with_nothing_that_fits() -> None:
    packed = pack_context([passage("a", "Supercalifragilistic.")], len, budget=3)
    assert (packed.text, packed.passages, packed.truncated, packed.tokens) == ("", (), False, 0)
    with pytest.raises(ValueError):
        pack_context([], len, budget=0)
