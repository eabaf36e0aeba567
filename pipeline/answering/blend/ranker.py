"""A learned ranker: a gradient-boosted classifier over one row per option (:func:`fit_ranker`).

scikit-learn's ``HistGradientBoostingClassifier`` sees each reader's normalised logit, its rank
and gap within the question, and any extra per-option signals (such as the lexical reader's),
with the target "this option is correct". It is fitted with K-fold cross-validation grouped by
question, so that no question's options are split between fitting and scoring, and only on the
*training* questions passed in: score new questions with :meth:`LearnedRanker.score`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GroupKFold

from pipeline.answering.blend.normalisation import (
    Normalisation,
    checked_sources,
    normalise,
    present,
)
from pipeline.answering.blend.scores import ranked_options
from pipeline.metrics import answer_indices, average_precisions
from pipeline.questions.question import MAX_OPTIONS

DEFAULT_RANKER_PARAMS: dict[str, Any] = {
    "max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 20,
    "l2_regularization": 1.0, "early_stopping": False,
}


def option_features(per_source_logits: Mapping[str, np.ndarray],
                    extra: Mapping[str, np.ndarray] | None = None,
                    normalisation: Normalisation = "softmax"
                    ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One row per option a question has (question-major: question 0's options, then question
    1's...), with the ``(n, MAX_OPTIONS)`` mask of which cells the rows are.

    Per source: its normalised logit, the option's rank within the question under that source
    (0 = best, ties to the earlier letter) and its gap to the question's best normalised logit.
    Per extra ``(n, MAX_OPTIONS)`` signal: its raw value and its per-question z-score (raw
    values such as BM25 sums are not comparable across questions; the z-score is).
    """
    arrays = checked_sources(per_source_logits)
    extras = checked_sources(extra) if extra else {}
    n = len(next(iter(arrays.values())))
    if extras and len(next(iter(extras.values()))) != n:
        raise ValueError("extra signals cover a different number of questions than the logits")
    columns: list[np.ndarray] = []
    names: list[str] = []
    mask = present(next(iter(arrays.values())))
    for name, array in arrays.items():
        normalised = normalise(array, normalisation)
        ranks = np.empty((n, MAX_OPTIONS))
        np.put_along_axis(ranks, ranked_options(array), np.arange(MAX_OPTIONS)[None, :], axis=1)
        gap = np.nanmax(normalised, axis=1, keepdims=True) - normalised
        columns += [normalised, ranks, gap]
        names += [f"{name}:{normalisation}", f"{name}:rank", f"{name}:gap"]
    for name, array in extras.items():
        array = np.where(mask, array, np.nan)
        columns += [array, normalise(array, "zscore")]
        names += [f"{name}:raw", f"{name}:zscore"]
    features = np.stack([c[mask] for c in columns], axis=1)
    return features, names, mask


@dataclass
class LearnedRanker:
    """A fitted option classifier; :meth:`score` gives ``(n, MAX_OPTIONS)`` scores for new
    questions (NaN past each question's options)."""

    estimator: HistGradientBoostingClassifier
    sources: tuple[str, ...]
    extras: tuple[str, ...]
    normalisation: Normalisation
    feature_names: tuple[str, ...]

    def score(self, per_source_logits: Mapping[str, np.ndarray],
              extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Probability that each option is correct, shape ``(n, MAX_OPTIONS)``; rank with it."""
        extra = extra or {}
        if tuple(per_source_logits) != self.sources or tuple(extra) != self.extras:
            raise ValueError(f"the ranker was fitted on sources {self.sources} and extras "
                             f"{self.extras}, not {tuple(per_source_logits)} and {tuple(extra)}")
        features, _, mask = option_features(per_source_logits, extra, self.normalisation)
        scores = np.full(mask.shape, np.nan)
        scores[mask] = self.estimator.predict_proba(features)[:, 1]
        return scores


@dataclass
class RankerFit:
    """The ranker fitted on all training questions and its out-of-fold evaluation.

    ``oof_scores`` scores each training question with the model of the fold that did not see
    it; ``oof_map_at_3`` is their MAP@3, the number to compare with blends' held-out MAP@3.
    ``folds`` gives each question's fold.
    """

    model: LearnedRanker
    oof_scores: np.ndarray
    oof_map_at_3: float
    folds: np.ndarray


def _classifier(params: Mapping[str, Any] | None, seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(**{**DEFAULT_RANKER_PARAMS, "random_state": seed,
                                             **(params or {})})


def _ranker_rows(per_source_logits: Mapping[str, np.ndarray], answers: Sequence[str],
                 extra: Mapping[str, np.ndarray] | None, normalisation: Normalisation
                 ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Option rows, their feature names, 0/1 targets ("this option is the answer") and the
    question each row belongs to."""
    gold = answer_indices(answers)
    features, names, mask = option_features(per_source_logits, extra, normalisation)
    n = len(mask)
    if len(gold) != n:
        raise ValueError(f"{n} questions but {len(gold)} answers")
    target = np.zeros(mask.shape, dtype=np.int64)
    target[np.arange(n), gold] = 1
    groups = np.broadcast_to(np.arange(n)[:, None], mask.shape)[mask]
    return features, names, target[mask], groups


def train_ranker(per_source_logits: Mapping[str, np.ndarray], answers: Sequence[str],
                 extra: Mapping[str, np.ndarray] | None = None, *, seed: int = 0,
                 normalisation: Normalisation = "zscore",
                 params: Mapping[str, Any] | None = None) -> LearnedRanker:
    """The learned ranker fitted on every one of these *training* questions."""
    features, names, target, _ = _ranker_rows(per_source_logits, answers, extra, normalisation)
    return LearnedRanker(_classifier(params, seed).fit(features, target),
                         tuple(per_source_logits), tuple(extra or {}), normalisation,
                         tuple(names))


def fit_ranker(per_source_logits: Mapping[str, np.ndarray], answers: Sequence[str],
               extra: Mapping[str, np.ndarray] | None = None, *, folds: int = 5, seed: int = 0,
               normalisation: Normalisation = "softmax",
               params: Mapping[str, Any] | None = None) -> RankerFit:
    """Fit the learned ranker on these *training* questions, with grouped K-fold estimates.

    Rows are options, grouped by question (``GroupKFold``, shuffled with ``seed``), so each
    fold's model is scored only on questions none of whose options it was fitted on. The
    returned model is refitted on every training question; score new questions with
    :meth:`LearnedRanker.score`, never these.
    """
    gold = answer_indices(answers)
    features, _, target, groups = _ranker_rows(per_source_logits, answers, extra, normalisation)
    n = len(gold)
    if not 2 <= folds <= n:
        raise ValueError(f"need 2 <= folds <= questions ({n}), not {folds}")

    oof = np.zeros(len(features), dtype=np.float64)
    fold_of = np.zeros(n, dtype=np.int64)
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (fit_rows, held_rows) in enumerate(splitter.split(features, target, groups)):
        classifier = _classifier(params, seed).fit(features[fit_rows], target[fit_rows])
        oof[held_rows] = classifier.predict_proba(features[held_rows])[:, 1]
        fold_of[groups[held_rows]] = k
    oof_scores = np.full((n, MAX_OPTIONS), np.nan)
    oof_scores[present(next(iter(checked_sources(per_source_logits).values())))] = oof

    model = train_ranker(per_source_logits, answers, extra, seed=seed,
                         normalisation=normalisation, params=params)
    return RankerFit(model, oof_scores, float(average_precisions(oof_scores, gold).mean()),
                     fold_of)
