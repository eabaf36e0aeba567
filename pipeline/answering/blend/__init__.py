"""Blending readers: per-question normalisation, blend weights, predictions, a learned ranker.

Each reader (:mod:`pipeline.answering.readers`) gives an ``(n, MAX_OPTIONS)`` array of logits on
its own scale (NaN past each question's options, which every function here keeps masked), so logits
are first normalised within each question (:mod:`.normalisation`). A blend is then a weighted sum
of the normalised arrays, and any such scores rank into the submission's ``"A B C"`` strings
(:mod:`.scores`). Three ways to learn the blend, all from *training* questions passed in
explicitly: MAP@3-searched weights (:mod:`.weights`), a gradient-boosted ranker over one row per
option (:mod:`.ranker`) and a conditional logit with temperature calibration (:mod:`.logit`);
:mod:`.choice` picks among them (and equal weights) by cross-validation on the blend questions. No
function here fits on anything but the arrays and answers it is given, and the caller must never
pass the questions that the fitted weights or model will score (use out-of-fold or held-out
questions to compare blends).

MAP@3 itself lives in :mod:`pipeline.metrics` (``average_precisions`` is re-exported here for
the callers that score blends); it breaks ties between options by letter (A before B), as
:func:`predictions` does, so a reported MAP@3 is the one the predictions score.
"""

from pipeline.answering.blend.choice import (
    METHODS,
    MIN_RANKER_QUESTIONS,
    BlendChoice,
    FittedBlend,
    choose_blend,
    fit_method,
)
from pipeline.answering.blend.logit import LOGIT_L2, calibrated, fit_logit, fit_temperature
from pipeline.answering.blend.normalisation import Normalisation, log_softmax, normalise
from pipeline.answering.blend.ranker import (
    DEFAULT_RANKER_PARAMS,
    LearnedRanker,
    RankerFit,
    fit_ranker,
    option_features,
    train_ranker,
)
from pipeline.answering.blend.scores import apply, equal_weights, predictions, ranked_options
from pipeline.answering.blend.weights import fit_weights
from pipeline.metrics import answer_indices, average_precisions

__all__ = [
    "DEFAULT_RANKER_PARAMS",
    "LOGIT_L2",
    "METHODS",
    "MIN_RANKER_QUESTIONS",
    "BlendChoice",
    "FittedBlend",
    "LearnedRanker",
    "Normalisation",
    "RankerFit",
    "answer_indices",
    "apply",
    "average_precisions",
    "calibrated",
    "choose_blend",
    "equal_weights",
    "fit_logit",
    "fit_method",
    "fit_ranker",
    "fit_temperature",
    "fit_weights",
    "log_softmax",
    "normalise",
    "option_features",
    "predictions",
    "ranked_options",
    "train_ranker",
]
