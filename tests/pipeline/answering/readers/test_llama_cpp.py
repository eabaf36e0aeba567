"""The heavy reader's llama.cpp runtime, on the real (small) SmolLM2 GGUF: letter scores, the
reused prefix cache, the context budget, and the runtime choice."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.readers import heavy, llama_cpp
from pipeline.answering.readers.causal_lm import rotation
from pipeline.questions.question import LETTERS, Question
from tests.pipeline.answering.readers.ragged import assert_rows_as_alone

QUESTION = Question("q", "Which planet is known as the Red Planet?",
                    ("Venus", "Mars", "Jupiter", "Saturn", "Mercury"), "B", "handmade", 0)
CONTEXT = ("Mars is the fourth planet from the Sun. It is often called the Red Planet because "
           "iron oxide on its surface gives it a reddish look.")


@pytest.fixture(scope="module")
def reader(smollm) -> llama_cpp.LlamaCppReader:
    return llama_cpp.LlamaCppReader(smollm, context_tokens=64, threads=1)


FOUR = Question("q4", "Which planet is known as the Red Planet?",
                ("Venus", "Mars", "Jupiter", "Saturn"), "B", "handmade", 1)
THREE = Question("q3", "Which planet is known as the Red Planet?", ("Jupiter", "Venus", "Mars"),
                 "C", "handmade", 2)
TWO = Question("q2", "Is Mars called the Red Planet?", ("Yes", "No"), "A", "handmade", 3)
LABELS = {f"{letter}." for letter in LETTERS}


def test_scores_are_the_five_letters_log_softmax(reader: llama_cpp.LlamaCppReader) -> None:
    scores = reader.score(QUESTION, CONTEXT)
    assert scores.shape == (5,) and np.isfinite(scores).all()
    assert np.exp(scores).sum() == pytest.approx(1.0)


def test_a_four_option_prompt_lists_exactly_its_four_options(
        reader: llama_cpp.LlamaCppReader) -> None:
    text = reader.prompt_text(FOUR, CONTEXT)
    listed = [line for line in text.splitlines() if line[:2] in LABELS]
    assert listed == ["A. Venus", "B. Mars", "C. Jupiter", "D. Saturn"]
    assert "E." not in text
    # what is evaluated is that text: the tokens decode to the same four options
    tokens = reader.prompt_tokens(FOUR, CONTEXT)
    decoded = reader.llm.detokenize(tokens, special=True).decode()
    assert "D. Saturn" in decoded and "E." not in decoded


def test_four_options_are_four_letters_log_softmax(reader: llama_cpp.LlamaCppReader) -> None:
    scores = reader.score(FOUR, CONTEXT)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    assert np.exp(scores).sum() == pytest.approx(1.0)  # no mass left on an "E" it lacks


def test_a_two_option_question_works(reader: llama_cpp.LlamaCppReader) -> None:
    scores = reader.score(TWO, CONTEXT)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert np.exp(scores).sum() == pytest.approx(1.0)
    assert "C." not in reader.prompt_text(TWO, CONTEXT)


def test_a_batch_of_three_four_and_five_options_is_nan_exactly_past_each(smollm) -> None:
    rotating = llama_cpp.LlamaCppReader(smollm, context_tokens=32, threads=1, permutations=5)
    items = [(THREE, CONTEXT), (FOUR, CONTEXT), (QUESTION, CONTEXT)]
    assert_rows_as_alone(rotating.score_many(items).logits, items, rotating.score, atol=1e-3)
    # three options are asked in their three rotations only, not five
    rotating.score(THREE, CONTEXT)
    three = rotating.last_tokens
    assert three == sum(len(rotating.prompt_tokens(THREE, rotating.cut_context(CONTEXT),
                                                   rotation(THREE.options, shift)))
                        for shift in range(3))
    # and the rotations cancel the order of a three-option question too
    shifted = Question("q3", THREE.prompt, tuple(rotation(THREE.options, 1)), "B", "handmade", 2)
    np.testing.assert_allclose(rotating.score(shifted, CONTEXT),
                               rotating.score(THREE, CONTEXT)[[1, 2, 0]], atol=1e-3)


def test_a_reused_prefix_gives_the_scores_of_a_fresh_evaluation(smollm) -> None:
    warm = llama_cpp.LlamaCppReader(smollm, context_tokens=64, threads=1)
    other = Question("o", "What gas do plants release?", ("Oxygen", "Argon", "Neon", "Xenon",
                                                          "Radon"), "A", "handmade", 1)
    warm.score(other, "Plants release oxygen.")  # leaves the system prompt in the cache
    before = warm.tokens_evaluated
    reused = warm.score(QUESTION, CONTEXT)
    full = len(warm.prompt_tokens(QUESTION, warm.cut_context(CONTEXT)))
    assert warm.tokens_evaluated - before < full  # the shared beginning was not evaluated again
    fresh = llama_cpp.LlamaCppReader(smollm, context_tokens=64, threads=1).score(QUESTION,
                                                                                CONTEXT)
    np.testing.assert_allclose(reused, fresh, atol=1e-3)


def test_the_context_is_cut_to_its_budget_from_the_end(reader: llama_cpp.LlamaCppReader) -> None:
    long = CONTEXT + " Filler sentence about nothing in particular." * 50
    cut = reader.cut_context(long)
    assert long.startswith(cut[:40]) and len(cut) < len(long)
    tokens = reader.llm.tokenize(cut.encode(), add_bos=False, special=False)
    assert len(tokens) <= 64 + 1  # re-tokenising the cut text may merge one boundary token
    assert reader.cut_context("short") == "short"


def test_five_rotations_make_the_scores_independent_of_where_the_options_start(smollm) -> None:
    """Every option once in every slot: a question asked with its options rotated gets the same
    scores per option (one rotation alone does not: small LMs favour some letters)."""
    rotating = llama_cpp.LlamaCppReader(smollm, context_tokens=32, threads=1, permutations=5)
    shifted = Question("q", QUESTION.prompt, tuple(rotation(QUESTION.options, 2)), "E",
                       "handmade", 0)
    original = rotating.score(QUESTION, CONTEXT)
    moved = rotating.score(shifted, CONTEXT)
    np.testing.assert_allclose(moved, original[[2, 3, 4, 0, 1]], atol=1e-3)
    once = llama_cpp.LlamaCppReader(smollm, context_tokens=32, threads=1, permutations=1)
    assert not np.allclose(once.score(shifted, CONTEXT),
                           once.score(QUESTION, CONTEXT)[[2, 3, 4, 0, 1]], atol=1e-3)


def test_auto_runtime_takes_llama_cpp_for_a_gguf_on_the_cpu(smollm) -> None:
    assert heavy.choose_runtime(smollm, "auto", "cpu") == "llama.cpp"
    assert heavy.choose_runtime(smollm, "transformers", "cpu") == "transformers"
    folder = type(smollm)(smollm.requested, smollm.reference, smollm.name, smollm.path,
                          smollm.source, smollm.weights_sha256, None)
    assert heavy.choose_runtime(folder, "auto", "cpu") == "transformers"
    with pytest.raises(ValueError, match="not a GGUF"):
        llama_cpp.gguf_path(folder)


def test_per_option_scoring_proposes_each_option_alone_over_a_shared_prefix(smollm) -> None:
    """The yes/no form: one prompt per option, each holding that option alone, all sharing
    the context's tokens (evaluated once); scores are log-softmaxed log-odds of " yes" over
    " no", one per option the question has."""
    reader = llama_cpp.LlamaCppReader(smollm, context_tokens=64, threads=1, scoring="option")
    prompts = [reader.proposal_text(FOUR, CONTEXT, option) for option in FOUR.options]
    for option, prompt in zip(FOUR.options, prompts, strict=True):
        assert f"Proposed answer: {option}\n" in prompt
        assert all(other not in prompt.split("Question:")[1] for other in FOUR.options
                   if other != option)
    reader.tokens_evaluated = 0
    scores = reader.score(FOUR, CONTEXT)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    assert np.exp(scores).sum() == pytest.approx(1.0)
    prompts = [reader.prompt_tokens(FOUR, reader.cut_context(CONTEXT), option=o)
               for o in FOUR.options]
    shared = next(i for i, column in enumerate(zip(*prompts, strict=False))
                  if len(set(column)) > 1)
    each = [len(p) for p in prompts]
    assert reader.tokens_evaluated <= sum(each) - 3 * shared + 3  # the prefix once, not 4 times
    assert reader.last_tokens == sum(each)
    with pytest.raises(ValueError, match="unknown scoring"):
        llama_cpp.LlamaCppReader(smollm, scoring="rank")
