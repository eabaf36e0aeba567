"""Choosing the blend: cross-validation on the blend questions, never validation.

Four methods compete (:data:`METHODS`): the conditional logit (:mod:`.logit`), MAP@3-searched
weights (:mod:`.weights`), the learned ranker (:mod:`.ranker`) and equal weights.
:func:`choose_blend` fits each on all blend questions but one fold and scores the fold it did
not see; the best out-of-fold MAP@3 wins and is refitted on every blend question, with a
temperature fitted on its out-of-fold scores. Validation questions are not an argument: they
can only measure the choice, never make it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.answering.blend.logit import calibrated, fit_logit, fit_temperature
from pipeline.answering.blend.normalisation import Normalisation, checked_sources, normalise
from pipeline.answering.blend.ranker import LearnedRanker, train_ranker
from pipeline.answering.blend.scores import apply, equal_weights
from pipeline.answering.blend.weights import fit_weights
from pipeline.metrics import answer_indices, average_precisions
from pipeline.questions.question import MAX_OPTIONS

METHODS = ("logit", "weights", "ranker", "equal")
MIN_RANKER_QUESTIONS = 40


@dataclass
class FittedBlend:
    """One fitted blend: weights over normalised sources, or the learned ranker.

    ``temperature`` calibrates :meth:`log_probabilities` (fitted on out-of-fold scores).
    """

    method: str
    weights: dict[str, float]
    ranker: LearnedRanker | None = None
    normalisation: Normalisation = "zscore"
    temperature: float = 1.0

    def scores(self, per_source_logits: Mapping[str, np.ndarray],
               extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """``(n, MAX_OPTIONS)`` scores of new questions, higher is better (log-odds for the
        ranker)."""
        if self.ranker is not None:
            p = np.clip(self.ranker.score(per_source_logits, extra), 1e-9, 1 - 1e-9)
            return np.log(p / (1 - p))
        return apply(self.weights, per_source_logits, self.normalisation)

    def log_probabilities(self, per_source_logits: Mapping[str, np.ndarray],
                          extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Calibrated log-probabilities of each question's options."""
        return calibrated(self.scores(per_source_logits, extra), self.temperature)


def fit_method(method: str, per_source_logits: Mapping[str, np.ndarray],
               answers: Sequence[str], extra: Mapping[str, np.ndarray] | None = None, *,
               seed: int = 0, normalisation: Normalisation = "zscore") -> FittedBlend:
    """Fit one blend ``method`` on these *training* questions (see :data:`METHODS`)."""
    arrays = checked_sources(per_source_logits)
    if method == "equal":
        return FittedBlend(method, equal_weights(arrays), normalisation=normalisation)
    if method == "logit":
        names = list(arrays)
        stack = np.stack([normalise(arrays[name], normalisation) for name in names])
        w = fit_logit(stack, answer_indices(answers))
        return FittedBlend(method, {n: float(x) for n, x in zip(names, w, strict=True)},
                           normalisation=normalisation)
    if method == "weights":
        return FittedBlend(method, fit_weights(arrays, answers, normalisation=normalisation,
                                               seed=seed), normalisation=normalisation)
    if method == "ranker":
        ranker = train_ranker(arrays, answers, extra, seed=seed, normalisation=normalisation)
        return FittedBlend(method, {}, ranker, normalisation)
    raise ValueError(f"unknown blend method {method!r}: use one of {METHODS}")


@dataclass
class BlendChoice:
    """The blend a run uses, chosen by cross-validation on the blend (fit) questions alone.

    ``cv_map`` gives each candidate method's out-of-fold MAP@3 on the fit questions (the
    numbers the choice was made on); ``fitted`` is the chosen method refitted on every fit
    question; ``oof_log_probabilities`` are the chosen method's calibrated out-of-fold
    log-probabilities of the fit questions (what the cascade's rule is fitted on: a question's
    own answer never shaped its score).
    """

    method: str
    fitted: FittedBlend
    cv_map: dict[str, float]
    oof_log_probabilities: np.ndarray

    @property
    def weights(self) -> dict[str, float]:
        return self.fitted.weights


def choose_blend(fit_logits: Mapping[str, np.ndarray], fit_answers: Sequence[str],
                 fit_extra: Mapping[str, np.ndarray] | None = None, *, folds: int = 5,
                 seed: int = 0, methods: Sequence[str] = METHODS) -> BlendChoice:
    """Pick the blend method with the best out-of-fold MAP@3 on the fit questions; refit it.

    Each method is fitted ``folds`` times, each time on all fit questions but one fold, and
    scores the fold it did not see; the best out-of-fold MAP@3 wins, ties going to the earlier
    method of ``methods`` (simpler first after the logit). The ranker is left out below
    :data:`MIN_RANKER_QUESTIONS` questions. Validation questions are not an argument: they can
    only measure the choice, never make it. With no fit questions the blend is the equal one.
    """
    arrays = checked_sources(fit_logits)
    n = len(fit_answers)
    if n < max(folds, 2):
        equal = FittedBlend("equal", equal_weights(arrays))
        return BlendChoice("equal", equal, {}, np.zeros((0, MAX_OPTIONS)))
    gold = answer_indices(fit_answers)
    tried = [m for m in methods if m != "ranker" or n >= MIN_RANKER_QUESTIONS]
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % folds
    oof = {m: np.full((n, MAX_OPTIONS), np.nan) for m in tried}
    answers = list(fit_answers)
    for k in range(folds):
        train, held = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
        part = {name: array[train] for name, array in arrays.items()}
        part_extra = {name: array[train] for name, array in (fit_extra or {}).items()}
        held_sources = {name: array[held] for name, array in arrays.items()}
        held_extra = {name: array[held] for name, array in (fit_extra or {}).items()}
        for method in tried:
            model = fit_method(method, part, [answers[i] for i in train], part_extra or None,
                               seed=seed)
            oof[method][held] = model.scores(held_sources, held_extra or None)
    cv_map = {m: float(average_precisions(oof[m], gold).mean()) for m in tried}
    method = max(tried, key=lambda m: cv_map[m] - 1e-9 * tried.index(m))
    fitted = fit_method(method, arrays, answers, fit_extra, seed=seed)
    fitted.temperature = fit_temperature(oof[method], answers)
    return BlendChoice(method, fitted, cv_map, calibrated(oof[method], fitted.temperature))
