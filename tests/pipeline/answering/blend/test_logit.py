"""Calibration: the fitted temperature matches the blend's confidence to its hit rate."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.blend.logit import calibrated, fit_temperature
from pipeline.metrics import top1_hits
from tests.pipeline.answering.blend.synthetic import synthetic


@pytest.mark.parametrize("ragged", [False, True])
def test_the_calibrated_temperature_matches_the_confidence_to_the_hit_rate(ragged: bool) -> None:
    answers, signal, _ = synthetic(2000, 1.5, seed=5, ragged=ragged)
    temperature = fit_temperature(signal * 10.0, answers)  # far too confident as given
    assert temperature > 5.0
    probabilities = np.exp(calibrated(signal * 10.0, temperature))
    assert np.isnan(probabilities).sum() == np.isnan(signal).sum()  # no option invented
    top = np.nanmax(probabilities, axis=1)
    hits = top1_hits(probabilities, answers)
    assert abs(top.mean() - hits.mean()) < 0.03
