"""The similarity reader with the real all-MiniLM-L6-v2: it picks the option the context states."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.readers import Reader
from pipeline.answering.readers.similarity import SimilarityReader, context_sentences, top_k_mean
from pipeline.models import resolve
from pipeline.questions.question import MAX_OPTIONS, Question
from pipeline.retrieval.embeddings import Embedder
from tests.pipeline.answering.readers.ragged import assert_rows_as_alone

MITOCHONDRIA = Question(
    "q1", "What is the main role of mitochondria?",
    ("They generate most of the cell's chemical energy",
     "They store the cell's genetic information",
     "They digest worn-out proteins with enzymes",
     "They capture sunlight for photosynthesis",
     "They transport proteins to the cell membrane"),
    "A", "test", 0)
MITOCHONDRIA_CONTEXT = (
    "The nucleus is separated from the cytoplasm by a double membrane. "
    "Mitochondria produce most of the adenosine triphosphate that powers a cell's reactions. "
    "Ribosomes are found both free in the cytosol and bound to the endoplasmic reticulum.")

VOLCANO = Question(
    "q2", "Which volcano destroyed Pompeii?",
    ("Mount Etna", "Mount Vesuvius", "Krakatoa", "Mount Fuji", "Mauna Loa"),
    "B", "test", 1)
VOLCANO_CONTEXT = ("Pompeii was an ancient Roman city near Naples. "
                   "It was buried under ash when Mount Vesuvius erupted in AD 79.")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    model = resolve("sentence-transformers/all-MiniLM-L6-v2",
                    store=tmp_path_factory.mktemp("models"), online=False)
    return Embedder(model, batch_size=32, threads=1)


def test_picks_the_option_the_context_states_in_other_words(embedder: Embedder) -> None:
    reader = SimilarityReader(embedder)
    assert isinstance(reader, Reader)
    logits = reader.score(MITOCHONDRIA, MITOCHONDRIA_CONTEXT)
    assert logits.shape == (5,)
    assert int(np.argmax(logits)) == 0
    assert np.all(logits <= 1.0 + 1e-6) and np.all(logits >= -1.0 - 1e-6)
    # with the prompt prefixed, and with a top-2 mean, the stated option still wins
    for variant in (SimilarityReader(embedder, with_prompt=True),
                    SimilarityReader(embedder, top_k=2)):
        assert int(np.argmax(variant.score(MITOCHONDRIA, MITOCHONDRIA_CONTEXT))) == 0


def test_batch_scores_equal_single_scores(embedder: Embedder) -> None:
    reader = SimilarityReader(embedder)
    items = [(MITOCHONDRIA, MITOCHONDRIA_CONTEXT), (VOLCANO, VOLCANO_CONTEXT),
             (VOLCANO, "")]
    batch = reader.score_many(items)
    assert batch.shape == (3, MAX_OPTIONS) and np.isnan(batch[:, 5:]).all()
    np.testing.assert_allclose(batch[0, :5], reader.score(*items[0]), atol=1e-5)
    np.testing.assert_allclose(batch[1, :5], reader.score(*items[1]), atol=1e-5)
    assert int(np.nanargmax(batch[1])) == 1
    assert np.all(batch[2, :5] == 0)  # no context, no evidence
    assert reader.score_many([]).shape == (0, MAX_OPTIONS)


def test_similarities_are_the_cosines_of_options_and_sentences(embedder: Embedder) -> None:
    reader = SimilarityReader(embedder)
    (sims,) = reader.similarities([(VOLCANO, VOLCANO_CONTEXT)])
    sentences = context_sentences(VOLCANO_CONTEXT)
    assert sims.shape == (5, len(sentences)) == (5, 2)
    expected = embedder.encode(list(VOLCANO.options)) @ embedder.encode(sentences).T
    np.testing.assert_allclose(sims, expected, atol=1e-5)


def test_top_k_mean() -> None:
    sims = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    np.testing.assert_allclose(top_k_mean(sims, 1), [0.9, 0.3])
    np.testing.assert_allclose(top_k_mean(sims, 2), [0.7, 0.25])
    np.testing.assert_allclose(top_k_mean(sims, 10), [0.5, 0.2])
    assert top_k_mean(np.zeros((5, 0)), 1).shape == (5,)
    with pytest.raises(ValueError):
        SimilarityReader(None, top_k=0)  # type: ignore[arg-type]


def test_a_batch_of_three_four_and_five_options_is_nan_exactly_past_each(
        embedder: Embedder) -> None:
    reader = SimilarityReader(embedder)
    three = Question("q3", VOLCANO.prompt, ("Krakatoa", "Mount Vesuvius", "Mount Fuji"), "B",
                     "test", 2)
    four = Question("q4", MITOCHONDRIA.prompt, MITOCHONDRIA.options[1:], None, "test", 3)
    items = [(three, VOLCANO_CONTEXT), (four, MITOCHONDRIA_CONTEXT),
             (MITOCHONDRIA, MITOCHONDRIA_CONTEXT), (three, "")]
    batch = reader.score_many(items)
    assert_rows_as_alone(batch, items, reader.score, atol=1e-5)
    assert int(np.nanargmax(batch[0])) == 1
    assert np.all(batch[3, :3] == 0)
    sims = reader.similarities(items)
    assert [s.shape for s in sims] == [(3, 2), (4, 3), (5, 3), (3, 0)]


def test_a_two_option_question_works(embedder: Embedder) -> None:
    two = Question("q2", VOLCANO.prompt, ("Mount Fuji", "Mount Vesuvius"), "B", "test", 4)
    logits = SimilarityReader(embedder).score(two, VOLCANO_CONTEXT)
    assert logits.shape == (2,) and int(np.argmax(logits)) == 1
