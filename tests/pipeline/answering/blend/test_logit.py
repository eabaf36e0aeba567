"""Calibration: the fitted temperature matches the blend's confidence to its hit rate."""

from __future__ import annotations

import numpy as np

from pipeline.answering.blend.logit import calibrated, fit_temperature
from pipeline.questions.csv_format import LETTERS
from tests.pipeline.answering.blend.synthetic import synthetic


def test_the_calibrated_temperature_matches_the_confidence_to_the_hit_rate() -> None:
    answers, signal, _ = synthetic(2000, 1.5, seed=5)
    temperature = fit_temperature(signal * 10.0, answers)  # far too confident as given
    assert temperature > 5.0
    probabilities = np.exp(calibrated(signal * 10.0, temperature))
    top = probabilities.max(axis=1)
    hits = probabilities.argmax(axis=1) == [LETTERS.index(x) for x in answers]
    assert abs(top.mean() - hits.mean()) < 0.03
