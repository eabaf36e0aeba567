"""The heavy reader's llama.cpp runtime, on the real (small) SmolLM2 GGUF: letter scores, the
reused prefix cache, the context budget, and the runtime choice."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.readers import heavy, llama_cpp
from pipeline.answering.readers.causal_lm import rotation
from pipeline.questions.csv_format import Question

QUESTION = Question("q", "Which planet is known as the Red Planet?",
                    ("Venus", "Mars", "Jupiter", "Saturn", "Mercury"), "B", "handmade", 0)
CONTEXT = ("Mars is the fourth planet from the Sun. It is often called the Red Planet because "
           "iron oxide on its surface gives it a reddish look.")


@pytest.fixture(scope="module")
def reader(smollm) -> llama_cpp.LlamaCppReader:
    return llama_cpp.LlamaCppReader(smollm, context_tokens=64, threads=1)


def test_scores_are_the_five_letters_log_softmax(reader: llama_cpp.LlamaCppReader) -> None:
    scores = reader.score(QUESTION, CONTEXT)
    assert scores.shape == (5,) and np.isfinite(scores).all()
    assert np.exp(scores).sum() == pytest.approx(1.0)


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
