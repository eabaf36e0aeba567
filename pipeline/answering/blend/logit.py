"""The conditional-logit blend and temperature calibration: blends whose scores are probabilities.

:func:`fit_logit` weights normalised sources by penalised maximum likelihood (the surrogate of
:mod:`pipeline.answering.blend.weights`, with an L2 penalty), so its softmax is calibrated on
the questions it was fitted on; :func:`fit_temperature` calibrates any other scores (fitted on
out-of-fold scores), and :func:`calibrated` applies it. The cascade's confidence needs both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

from pipeline.answering.blend.normalisation import checked_logits, log_softmax
from pipeline.answering.blend.weights import surrogate_weights
from pipeline.metrics import answer_indices

# The conditional-logit blend's L2 penalty on its weights (per question, on z-scored sources):
# enough to keep a dozen correlated sources from trading large opposite weights on 150
# questions, too little to matter where a source is clearly useful.
LOGIT_L2 = 0.01


def fit_logit(stack: np.ndarray, gold: np.ndarray, l2: float = LOGIT_L2) -> np.ndarray:
    """Non-negative weights of a conditional logit: ``P(k) = softmax_k(sum_s w_s stack[s, :, k])``
    fitted by penalised maximum likelihood (``stack`` is ``(sources, n, MAX_OPTIONS)``, NaN
    past each question's options).

    The weights' scale is the blend's temperature, so the probabilities come out calibrated on
    the questions it was fitted on; that is what the cascade's confidence needs.
    """
    return surrogate_weights(stack, gold, l2=l2)


def calibrated(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``log softmax(scores / temperature)`` per question, over its options."""
    return log_softmax(checked_logits(scores, "scores") / temperature)


def fit_temperature(scores: np.ndarray, answers: Sequence[str]) -> float:
    """The temperature that makes ``softmax(scores / T)`` most likely on these questions."""
    array, gold = checked_logits(scores, "scores"), answer_indices(answers)
    if not len(gold):
        return 1.0

    def nll(log_t: float) -> float:
        return float(-calibrated(array, float(np.exp(log_t)))[np.arange(len(gold)), gold].mean())

    result = minimize(lambda x: nll(x[0]), np.zeros(1), method="L-BFGS-B",
                      bounds=[(-6.0, 6.0)])
    return float(np.exp(result.x[0]))
