"""The lexical reader on hand-made questions: it must find the option the context states."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.readers import Reader, score_each
from pipeline.answering.readers.lexical import SIGNAL_NAMES, LexicalReader, sentence_idf, zscore
from pipeline.questions.question import MAX_OPTIONS, Question

CONTEXT = (
    "The Krebs cycle takes place in the mitochondrial matrix of eukaryotic cells. "
    "It oxidises acetyl-CoA to carbon dioxide and reduces NAD+ to NADH. "
    "Glycolysis, by contrast, happens in the cytoplasm and splits glucose into pyruvate."
)


def question(*options: str, prompt: str = "Where does the Krebs cycle take place?") -> Question:
    return Question("q1", prompt, tuple(options), "A", "test", 0)  # type: ignore[arg-type]


def test_option_stated_verbatim_gets_the_top_logit() -> None:
    q = question("In the cytoplasm of bacteria only",
                 "In the nucleus, alongside DNA replication",
                 "In the mitochondrial matrix of eukaryotic cells",
                 "On the outer surface of the chloroplast",
                 "In the Golgi apparatus during protein sorting")
    logits = LexicalReader().score(q, CONTEXT)
    assert logits.shape == (5,)
    assert int(np.argmax(logits)) == 2
    signals = LexicalReader().signals(q, CONTEXT)
    assert signals.coverage[2] == pytest.approx(1.0)
    assert signals.edit[2] == pytest.approx(1.0)
    assert signals.bm25[2] == signals.bm25.max() > 0
    assert signals.coverage[1] == 0.0  # nucleus, dna, replication: none in the context


def test_word_order_counts_in_the_edit_signal_but_not_in_coverage() -> None:
    q = question("acetyl-CoA oxidised to carbon dioxide",
                 "dioxide carbon to oxidised acetyl-CoA",
                 "glucose", "pyruvate", "NADH")
    signals = LexicalReader().signals(q, "It oxidises acetyl-CoA to carbon dioxide. Glucose.")
    assert signals.coverage[0] == signals.coverage[1]
    assert signals.edit[0] > signals.edit[1]


def test_length_signal_favours_the_longest_option_and_is_relative() -> None:
    q = question("short", "a much longer option than the rest", "mid length", "x", "tiny")
    signals = LexicalReader().signals(q, "")
    assert int(np.argmax(signals.length)) == 1
    assert float(np.exp(signals.length).mean()) == pytest.approx(1.0)
    # no context: only the length prior speaks, so the longest option still wins
    logits = LexicalReader().score(q, "")
    assert np.all(np.isfinite(logits))
    assert int(np.argmax(logits)) == 1
    assert np.all(signals.coverage == 0) and np.all(signals.bm25 == 0)


def test_a_passed_in_idf_weights_rare_words_over_common_ones() -> None:
    q = question("energy levels", "quark colour", "nothing here", "nor here", "nor there")
    context = "Energy is conserved. A quark carries charge but never appears alone."
    idf = {"energy": 0.1, "quark": 10.0}
    with_idf = LexicalReader(idf=idf).signals(q, context)
    assert with_idf.coverage[1] > with_idf.coverage[0]
    assert with_idf.coverage[0] == pytest.approx(0.1 / 10.1)
    assert with_idf.coverage[1] == pytest.approx(0.5)


def test_sentence_idf_is_lower_for_words_in_more_sentences() -> None:
    idf, unseen = sentence_idf([["cell", "wall"], ["cell", "membrane"], ["cell"]])
    assert idf["cell"] < idf["wall"] < unseen
    assert idf["wall"] == idf["membrane"]


def test_fixed_weights_can_be_changed_and_signals_exposed_for_many() -> None:
    q = question("In the mitochondrial matrix", "In the cytoplasm", "nucleus", "ribosome",
                 "a very long distractor that names nothing from the passage at all")
    only_length = LexicalReader(weights={"length": 1.0})
    assert int(np.argmax(only_length.score(q, CONTEXT))) == 4
    assert int(np.argmax(LexicalReader().score(q, CONTEXT))) == 0
    with pytest.raises(ValueError, match="unknown lexical signals"):
        LexicalReader(weights={"bogus": 1.0}).score(q, CONTEXT)

    reader = LexicalReader()
    many = reader.signals_many([(q, CONTEXT), (q, "")])
    assert set(many) == set(SIGNAL_NAMES)
    assert all(v.shape == (2, MAX_OPTIONS) for v in many.values())
    assert all(np.isnan(v[:, 5:]).all() and np.isfinite(v[:, :5]).all() for v in many.values())
    np.testing.assert_allclose(many["coverage"][0, :5], reader.signals(q, CONTEXT).coverage)


def test_reader_protocol_and_default_batch_loop() -> None:
    reader = LexicalReader()
    assert isinstance(reader, Reader)
    q = question("In the mitochondrial matrix", "In the cytoplasm", "nucleus", "ribosome",
                 "Golgi")
    batch = reader.score_many([(q, CONTEXT), (q, "Glycolysis happens in the cytoplasm.")])
    assert batch.shape == (2, MAX_OPTIONS) and np.isnan(batch[:, 5:]).all()
    np.testing.assert_allclose(batch[1, :5],
                               reader.score(q, "Glycolysis happens in the cytoplasm."))
    assert int(np.nanargmax(batch[1])) == 1
    assert score_each(reader, []).shape == (0, MAX_OPTIONS)


def test_zscore_of_equal_values_is_zero() -> None:
    assert np.all(zscore(np.full(5, 3.0)) == 0)
    z = zscore(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)


def test_a_batch_of_three_four_and_five_options_is_nan_exactly_past_each() -> None:
    three = question("In the cytoplasm", "In the mitochondrial matrix", "nucleus")
    four = question("ribosome", "In the cytoplasm", "In the mitochondrial matrix of cells",
                    "Golgi")
    five = question("In the mitochondrial matrix", "In the cytoplasm", "nucleus", "ribosome",
                    "Golgi")
    reader = LexicalReader()
    items = [(three, CONTEXT), (four, CONTEXT), (five, CONTEXT)]
    batch = reader.score_many(items)
    signals = reader.signals_many(items)
    assert batch.shape == (3, MAX_OPTIONS)
    for i, (q, context) in enumerate(items):
        k = len(q.options)
        alone = reader.score(q, context)
        assert alone.shape == (k,)
        assert np.isfinite(batch[i, :k]).all() and np.isnan(batch[i, k:]).all()
        np.testing.assert_allclose(batch[i, :k], alone)
        for name in SIGNAL_NAMES:
            assert np.isfinite(signals[name][i, :k]).all() and np.isnan(signals[name][i, k:]).all()
            np.testing.assert_allclose(signals[name][i, :k],
                                       getattr(reader.signals(q, context), name))
    assert [int(np.nanargmax(row)) for row in batch] == [1, 2, 0]


def test_signals_are_z_scored_over_the_question_own_options_only() -> None:
    q = question("In the mitochondrial matrix", "nucleus", "a much longer option about cells")
    reader = LexicalReader()
    signals = reader.signals(q, CONTEXT)
    assert signals.matrix().shape == (3, len(SIGNAL_NAMES))
    # the length prior is relative to the question's own three options
    chars = np.array([len(o) for o in q.options], dtype=np.float64) + 1.0
    np.testing.assert_allclose(signals.length, np.log(chars / chars.mean()))
    expected = sum(weight * zscore(getattr(signals, name))
                   for name, weight in reader.weights.items())
    np.testing.assert_allclose(reader.score(q, CONTEXT), expected)
    z = zscore(signals.edit)
    assert z.shape == (3,) and z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)


def test_a_two_option_question_works() -> None:
    q = question("In the mitochondrial matrix", "In the nucleus")
    logits = LexicalReader().score(q, CONTEXT)
    assert logits.shape == (2,) and np.isfinite(logits).all()
    assert int(np.argmax(logits)) == 0
