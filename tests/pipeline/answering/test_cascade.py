"""The confidence cascade: who escalates, within what budget, how the heavy reader joins, and
that its readings are cached per question."""

from __future__ import annotations

from typing import ClassVar

import duckdb
import numpy as np
import pytest

from pipeline.answering.cascade import (
    MEASURES,
    MIN_COMBINATION_QUESTIONS,
    EscalationRule,
    HeavyReading,
    HeavySettings,
    budget_count,
    combine,
    escalate,
    fit_combination,
    fit_rule,
    uncertainty,
)
from pipeline.answering.reading_list import ReadingList
from pipeline.metrics import top1_hits
from pipeline.questions.question import LETTERS, Question
from tests.pipeline.answering.blend.synthetic import padded


def log_probs(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, dtype=np.float64)
    return padded(np.log(p / p.sum(axis=1, keepdims=True)))


def test_escalate_takes_exactly_the_least_sure_questions_within_the_budget() -> None:
    # Margins between the top two: 0.5, 0.05, 0.3, 0.0, 0.2, 0.1
    cheap = log_probs([[0.7, 0.2, 0.05, 0.03, 0.02], [0.35, 0.3, 0.2, 0.1, 0.05],
                       [0.5, 0.2, 0.1, 0.1, 0.1], [0.3, 0.3, 0.2, 0.1, 0.1],
                       [0.4, 0.2, 0.2, 0.1, 0.1], [0.3, 0.2, 0.2, 0.2, 0.1]])
    rule = EscalationRule("margin", {})
    assert escalate(cheap, rule, 0.5).tolist() == [3, 1, 5]
    assert escalate(cheap, rule, 0.34).tolist() == [3, 1]  # floor(0.34 * 6) = 2
    assert escalate(cheap, rule, 0.0).tolist() == []
    assert escalate(cheap, rule, 1.0).tolist() == [3, 1, 5, 4, 2, 0]


@pytest.mark.parametrize("share", [0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.99, 1.0])
def test_the_budget_is_never_exceeded(share: float) -> None:
    rng = np.random.default_rng(0)
    for n in range(0, 60):
        cheap = padded(np.log(rng.dirichlet(np.ones(5), size=n)).reshape(n, 5))
        chosen = escalate(cheap, EscalationRule("entropy", {}), share)
        assert len(chosen) == budget_count(n, share) <= share * n + 1e-9
        assert len(set(chosen.tolist())) == len(chosen)
    with pytest.raises(ValueError, match="between 0 and 1"):
        budget_count(10, 1.5)


def test_the_rule_picks_the_measure_that_tells_misses_from_hits() -> None:
    """The blend's misses here are two-way toss-ups (a small top-two margin, yet a high top
    probability and a low entropy); its hits have a clear lead over a flat field. Only the
    margin separates them, and the rule must find that on these questions."""
    rows, answers = [], []
    for i in range(40):
        wrong = i % 2 == 0
        rows.append([0.5, 0.45, 0.03, 0.01, 0.01] if wrong else [0.4, 0.15, 0.15, 0.15, 0.15])
        answers.append("B" if wrong else "A")
    rule = fit_rule(log_probs(rows), answers)
    assert rule.measure == "margin" and set(rule.auc) == set(MEASURES)
    assert rule.auc["margin"] == 1.0 and rule.auc["top"] == 0.0 and rule.auc["entropy"] == 0.0


def test_uncertainty_measures_order_a_sure_question_before_an_unsure_one() -> None:
    cheap = log_probs([[0.96, 0.01, 0.01, 0.01, 0.01], [0.2, 0.2, 0.2, 0.2, 0.2]])
    for measure in MEASURES:
        sure, unsure = uncertainty(cheap, measure)
        assert unsure > sure


def test_a_reliable_heavy_reader_gets_the_larger_weight_once_there_is_enough_to_fit() -> None:
    rng = np.random.default_rng(3)
    n = 60
    gold = rng.integers(0, 5, size=n)
    cheap = padded(np.log(rng.dirichlet(np.ones(5), size=n)))
    heavy = rng.normal(size=(n, 5))
    heavy[np.arange(n), gold] += 3.0
    heavy = padded(heavy)
    answers = [LETTERS[g] for g in gold]
    fitted = fit_combination(cheap, heavy, answers)
    assert fitted.fitted and fitted.heavy > fitted.cheap
    few = fit_combination(cheap[:5], heavy[:5], answers[:5])
    assert not few.fitted and few.questions == 5 < MIN_COMBINATION_QUESTIONS
    combined = combine(cheap, heavy, fitted)
    np.testing.assert_allclose(np.nansum(np.exp(combined), axis=1), 1.0)
    assert top1_hits(combined, answers).mean() > top1_hits(cheap, answers).mean()


def test_options_a_question_does_not_have_take_no_part_in_the_cascade() -> None:
    """A two-option question's uncertainty is that of its two options (a 50/50 split is as
    unsure as it gets), and combining keeps the missing options missing."""
    cheap = np.vstack([log_probs([[0.5, 0.5]]), log_probs([[0.9, 0.05, 0.05]])])
    for measure in MEASURES:
        two, three = uncertainty(cheap, measure)
        assert np.isfinite(two) and two > three
    combined = combine(cheap, cheap, fit_combination(cheap, cheap, ["A", "A"]))
    assert np.array_equal(np.isnan(combined), np.isnan(cheap))
    rule = fit_rule(cheap, ["B", "A"])
    assert set(rule.auc) == set(MEASURES)


# ----------------------------------------------------------------------------------------------
# Reading with the real (small) GGUF model through llama.cpp, counted per question.


def _questions(n: int) -> ReadingList:
    questions = [Question(f"q{i}", f"Which number is {i}?",
                          tuple(str(i + k) for k in range(5)), "A", "handmade", i)
                 for i in range(n)]
    return ReadingList([("validation", q.id) for q in questions], questions,
                       [f"The number is {q.id[1:]}." for q in questions])


class CountingReading(HeavyReading):
    """A HeavyReading whose real reader is wrapped to count the questions it actually reads."""

    calls = 0
    batches: ClassVar[list[int]] = []

    def _reader(self, runtime):
        fresh = self.reader is None
        reader = super()._reader(runtime)
        if not fresh:
            return reader
        score_batch = reader.score_batch

        def counted(items):
            CountingReading.calls += len(items)
            CountingReading.batches.append(len(items))
            return score_batch(items)

        reader.score_batch = counted
        return reader


def test_readings_are_cached_per_question_and_the_time_budget_is_kept(smollm) -> None:
    db = duckdb.connect()
    listed = _questions(6)
    settings = HeavySettings(context_tokens=32)
    CountingReading.calls = 0
    first = CountingReading(db, settings, smollm, log=lambda _: None)
    got = first.read({"validation": listed}, {"validation": ["q0", "q1", "q2"]})
    assert CountingReading.calls == 3
    assert sorted(got) == [("validation", f"q{i}") for i in range(3)]
    assert all(v.shape == (10,) and np.isfinite(v[:5]).all() and np.isnan(v[5:]).all()
               for v in got.values())

    # Growing the escalated set by two reads two; the three already read come from the cache.
    again = CountingReading(db, settings, smollm, log=lambda _: None)
    more = again.read({"validation": listed}, {"validation": ["q0", "q1", "q2", "q3", "q4"]})
    assert CountingReading.calls == 5 and len(more) == 5
    np.testing.assert_array_equal(more[("validation", "q1")], got[("validation", "q1")])

    # Another prompt setting is another reading: nothing is reused across settings.
    other = CountingReading(db, HeavySettings(context_tokens=16), smollm, log=lambda _: None)
    other.read({"validation": listed}, {"validation": ["q0"]})
    assert CountingReading.calls == 6

    # With no time left nothing new is read, and what is left out is counted, not faked.
    broke = CountingReading(db, HeavySettings(context_tokens=32, max_seconds=0.0), smollm,
                            log=lambda _: None)
    partial = broke.read({"validation": listed}, {"validation": ["q5", "q0"]})
    assert CountingReading.calls == 6 and list(partial) == [("validation", "q0")]
    assert broke.metadata()["heavy_over_time_budget"] == 1


def test_a_reading_made_on_another_runtime_or_device_is_never_reused(smollm) -> None:
    """The same weights read through llama.cpp (Q4_1 kernels) and through transformers
    (dequantised to float32) give different numbers: a change of runtime reads again, and each
    cached reading records the setup it was made with. A device change is another key too."""
    db = duckdb.connect()
    listed = _questions(2)
    CountingReading.calls = 0
    on_llama = CountingReading(db, HeavySettings(context_tokens=32, runtime="llama.cpp"),
                               smollm, log=lambda _: None)
    on_llama.read({"validation": listed}, {"validation": ["q0", "q1"]})
    on_torch = CountingReading(db, HeavySettings(context_tokens=32, runtime="transformers",
                                                 device="cpu"), smollm, log=lambda _: None)
    on_torch.read({"validation": listed}, {"validation": ["q0", "q1"]})
    assert CountingReading.calls == 4 and on_torch.reused == 0
    setups = sorted(row[0] for row in db.execute(
        "SELECT DISTINCT setup->>'runtime' || '/' || (setup->>'device') || '/' || "
        "(setup->>'dtype') FROM reading_cache").fetchall())
    assert setups == ["llama.cpp/cpu/gguf", "transformers/cpu/float32"]
    assert on_torch.metadata()["heavy_runtime"] == "transformers"
    settings = HeavySettings(runtime="transformers")
    cpu = settings.cache_settings(HeavySettings(runtime="transformers", device="cpu")
                                  .setup(smollm))
    gpu = settings.cache_settings(HeavySettings(runtime="transformers", device="cuda")
                                  .setup(smollm))
    assert (cpu["device"], gpu["device"]) == ("cpu", "cuda") and gpu["dtype"] != "float32"


def test_the_transformers_runtime_reads_several_questions_a_pass_as_one_at_a_time(smollm
                                                                                 ) -> None:
    """batch_size 3 reads five questions in two passes (3, then 2), each reading stored with
    its own key, equal to reading one at a time; the batch size is not part of the key."""
    listed = _questions(5)
    wanted = {"validation": [f"q{i}" for i in range(5)]}
    readings = {}
    for batch_size in (1, 3):
        db = duckdb.connect()
        CountingReading.calls, CountingReading.batches = 0, []
        reading = CountingReading(db, HeavySettings(context_tokens=32, runtime="transformers",
                                                    device="cpu", batch_size=batch_size),
                                  smollm, log=lambda _: None)
        readings[batch_size] = reading.read({"validation": listed}, wanted)
        assert CountingReading.batches == ([1] * 5 if batch_size == 1 else [3, 2])
        assert db.execute("SELECT count(*) FROM reading_cache").fetchone()[0] == 5
        keys = {row[0] for row in db.execute("SELECT DISTINCT reader_key FROM reading_cache")
                .fetchall()}
        readings[f"key{batch_size}"] = keys
    assert readings["key1"] == readings["key3"]
    for where, scores in readings[1].items():
        np.testing.assert_allclose(readings[3][where], scores, atol=1e-4)
