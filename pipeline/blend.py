"""Blending readers: per-question normalisation, blend weights, predictions, a learned ranker.

Each reader (:mod:`pipeline.readers`) gives an ``(n, 5)`` array of logits on its own scale, so
logits are first normalised within each question (:func:`normalise`): a softmax turns them into
the reader's probabilities over the five options, a z-score into their spread-free order.
A blend is then a weighted sum of the normalised arrays (:func:`apply`), and
:func:`predictions` turns any ``(n, 5)`` scores into the submission's ``"A B C"`` strings.

Two ways to learn the blend, both from *training* questions passed in explicitly: no function
here fits on anything but the arrays and answers it is given, and the caller must never pass
the questions that the fitted weights or model will score (use out-of-fold or held-out
questions to compare blends; :func:`fit_ranker` reports out-of-fold scores for that).

* :func:`fit_weights`: non-negative reader weights that maximise MAP@3 of the blend. MAP@3 is
  piecewise constant in the weights (only the order of options counts), so gradients are no
  use on it directly. The search starts from the optimum of a smooth surrogate, the
  multinomial log-likelihood of the softmax of the blend (fitted with L-BFGS-B under
  non-negativity, where the weights' sum acts as a temperature), and from equal weights, each
  single reader and a few random points of the simplex (a fixed seed), and refines each by
  coordinate search on the simplex, accepting only strict MAP@3 gains. The best MAP@3 wins,
  ties going to the earlier start (surrogate first, then equal weights): where MAP@3 cannot
  tell weights apart, the likelihood's choice uses the most information. Because equal
  weights are among the starts, the fitted blend never scores below the equal blend *on the
  training questions*; whether it does better on new ones is for held-out questions to say.
* :func:`fit_ranker`: a gradient-boosted classifier (scikit-learn's
  ``HistGradientBoostingClassifier``) over one row per option (each reader's normalised logit,
  its rank and gap within the question, and any extra per-option signals, such as the lexical
  reader's), target "this option is correct", fitted with K-fold cross-validation grouped by
  question so that no question's options are split between fitting and scoring.

Ties between options are broken by letter (A before B), in predictions and in every MAP@3
computed here alike, so a reported MAP@3 is the one the predictions score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GroupKFold

from pipeline.questions import LETTERS

Normalisation = Literal["softmax", "zscore"]
OPTIONS = len(LETTERS)
TOP = 3
MIN_SPREAD = 1e-9
# The surrogate's weights are bounded so that perfectly separable training data (where the
# likelihood grows without limit as the weights do) still gives a finite optimum.
MAX_SURROGATE_WEIGHT = 100.0
SEARCH_STEPS = (0.5, 0.25, 0.1, 0.05, 0.02, 0.01)


# ----------------------------------------------------------------------------------------------
# Normalisation, blending, predictions.


def _logits(array: np.ndarray, what: str = "logits") -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != OPTIONS:
        raise ValueError(f"{what} must have shape (n, {OPTIONS}), not {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} hold non-finite values")
    return array


def normalise(logits: np.ndarray, method: Normalisation = "softmax") -> np.ndarray:
    """Each question's logits made comparable across readers.

    ``"softmax"``: probabilities over the five options (a reader's confidence counts: a
    reader sure of one option outweighs one that barely prefers it). ``"zscore"``: centred
    and scaled to unit spread per question (only the reader's relative order and gaps count;
    a question where the reader gives all options the same logit gets zeros).
    """
    array = _logits(logits)
    if method == "softmax":
        return softmax(array, axis=1)
    if method == "zscore":
        centred = array - array.mean(axis=1, keepdims=True)
        spread = array.std(axis=1, keepdims=True)
        return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > MIN_SPREAD)
    raise ValueError(f"unknown normalisation {method!r}: use 'softmax' or 'zscore'")


def _check_sources(per_source_logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not per_source_logits:
        raise ValueError("no sources to blend")
    arrays = {name: _logits(array, f"logits of {name!r}")
              for name, array in per_source_logits.items()}
    sizes = {name: len(array) for name, array in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"sources cover different numbers of questions: {sizes}")
    return arrays


def equal_weights(per_source_logits: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Every source weighted alike (the baseline a fitted blend must beat on held-out data)."""
    names = list(per_source_logits)
    if not names:
        raise ValueError("no sources to weight")
    return dict.fromkeys(names, 1.0 / len(names))


def apply(weights: Mapping[str, float], per_source_logits: Mapping[str, np.ndarray],
          normalisation: Normalisation = "softmax") -> np.ndarray:
    """The ``(n, 5)`` weighted sum of the sources' per-question normalised logits.

    Every weighted source must be given and every given source weighted (a weight of 0 is
    fine): a silently dropped reader would change the blend unnoticed.
    """
    arrays = _check_sources(per_source_logits)
    if set(weights) != set(arrays):
        raise ValueError(f"weights for {sorted(weights)} but logits for {sorted(arrays)}")
    if any(w < 0 or not np.isfinite(w) for w in weights.values()):
        raise ValueError(f"weights must be finite and non-negative: {dict(weights)}")
    n = len(next(iter(arrays.values())))
    total = np.zeros((n, OPTIONS), dtype=np.float64)
    for name, array in arrays.items():
        total += weights[name] * normalise(array, normalisation)
    return total


def ranked_options(scores: np.ndarray) -> np.ndarray:
    """Per question, option indices best first; ties go to the earlier letter."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != OPTIONS:
        raise ValueError(f"scores must have shape (n, {OPTIONS}), not {array.shape}")
    array = np.where(np.isnan(array), -np.inf, array)
    return np.argsort(-array, axis=1, kind="stable")


def predictions(scores: np.ndarray) -> list[str]:
    """The submission strings: three distinct letters per question, best first (``"A B C"``)."""
    return [" ".join(LETTERS[i] for i in row[:TOP]) for row in ranked_options(scores)]


def answer_indices(answers: Sequence[str | None]) -> np.ndarray:
    """The answers as option indices 0 to 4; every question needs a letter to fit or score."""
    bad = [a for a in answers if a not in LETTERS]
    if bad:
        raise ValueError(f"answers must be letters {', '.join(LETTERS)}; got {bad[:5]!r}")
    return np.array([LETTERS.index(a) for a in answers], dtype=np.int64)


def average_precisions(scores: np.ndarray, answers: Sequence[str] | np.ndarray) -> np.ndarray:
    """Each question's AP@3 under the ranking :func:`predictions` gives (vectorised)."""
    array = np.asarray(scores, dtype=np.float64)
    array = np.where(np.isnan(array), -np.inf, array)
    gold = (np.asarray(answers, dtype=np.int64) if isinstance(answers, np.ndarray)
            else answer_indices(answers))
    if len(gold) != len(array):
        raise ValueError(f"{len(array)} questions scored but {len(gold)} answers")
    correct = array[np.arange(len(array)), gold][:, None]
    earlier = np.arange(OPTIONS)[None, :] < gold[:, None]
    rank = 1 + ((array > correct) | ((array == correct) & earlier)).sum(axis=1)
    return np.where(rank <= TOP, 1.0 / rank, 0.0)


def blend_map_at_3(weights: Mapping[str, float], per_source_logits: Mapping[str, np.ndarray],
                   answers: Sequence[str], normalisation: Normalisation = "softmax") -> float:
    """MAP@3 of the blend of ``weights`` on the given (labelled) questions."""
    return float(average_precisions(apply(weights, per_source_logits, normalisation),
                                    answers).mean())


# ----------------------------------------------------------------------------------------------
# Fitting blend weights.


def _surrogate_weights(stack: np.ndarray, gold: np.ndarray, l2: float = 0.0) -> np.ndarray:
    """Non-negative weights maximising the log-likelihood of softmax(sum_s w_s * stack[s]),
    less ``l2`` times their squared norm."""
    sources, n, _ = stack.shape
    rows = np.arange(n)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        blended = np.tensordot(w, stack, axes=1)
        log_norm = logsumexp(blended, axis=1)
        probabilities = np.exp(blended - log_norm[:, None])
        value = -(blended[rows, gold] - log_norm).mean() + l2 * float(w @ w)
        expected = np.einsum("snk,nk->sn", stack, probabilities)
        gradient = -(stack[:, rows, gold] - expected).mean(axis=1) + 2 * l2 * w
        return float(value), gradient

    result = minimize(loss, np.ones(sources), jac=True, method="L-BFGS-B",
                      bounds=[(0.0, MAX_SURROGATE_WEIGHT)] * sources)
    return np.asarray(result.x, dtype=np.float64)


def _on_simplex(w: np.ndarray) -> np.ndarray | None:
    w = np.clip(w, 0.0, None)
    total = w.sum()
    return w / total if total > 0 else None


def _coordinate_search(start: np.ndarray, evaluate: Any) -> tuple[np.ndarray, float]:
    """Hill-climb MAP@3 on the simplex: move one weight by shrinking steps, keep strict gains."""
    best_w, best = start, evaluate(start)
    for step in SEARCH_STEPS:
        improved = True
        while improved:
            improved = False
            for i in range(len(best_w)):
                for sign in (1.0, -1.0):
                    moved = best_w.copy()
                    moved[i] += sign * step
                    candidate = _on_simplex(moved)
                    if candidate is None:
                        continue
                    value = evaluate(candidate)
                    if value > best + 1e-12:
                        best_w, best, improved = candidate, value, True
    return best_w, best


def fit_weights(per_source_logits: Mapping[str, np.ndarray], answers: Sequence[str], *,
                normalisation: Normalisation = "softmax", restarts: int = 8,
                seed: int = 0) -> dict[str, float]:
    """Non-negative weights (summing to 1) maximising MAP@3 of the blend on these questions.

    ``per_source_logits`` and ``answers`` are the *training* questions; see the module
    docstring for the search (surrogate start, equal weights, single sources and ``restarts``
    random simplex points from ``seed``, each refined by coordinate search).
    """
    arrays = _check_sources(per_source_logits)
    gold = answer_indices(answers)
    names = list(arrays)
    if len(gold) != len(arrays[names[0]]):
        raise ValueError(f"{len(arrays[names[0]])} questions but {len(gold)} answers")
    if not len(gold):
        raise ValueError("cannot fit weights on no questions")
    if len(names) == 1:
        return {names[0]: 1.0}
    stack = np.stack([normalise(arrays[name], normalisation) for name in names])

    def evaluate(w: np.ndarray) -> float:
        return float(average_precisions(np.tensordot(w, stack, axes=1), gold).mean())

    rng = np.random.default_rng(seed)
    starts = [_on_simplex(_surrogate_weights(stack, gold)), np.full(len(names), 1 / len(names)),
              *np.eye(len(names)), *rng.dirichlet(np.ones(len(names)), size=restarts)]
    best_w, best = None, -1.0
    for start in starts:
        if start is None:  # the surrogate put every weight at 0: no source helps
            continue
        w, value = _coordinate_search(start, evaluate)
        if value > best + 1e-12:
            best_w, best = w, value
    assert best_w is not None
    return {name: float(w) for name, w in zip(names, best_w, strict=True)}


# ----------------------------------------------------------------------------------------------
# The learned ranker.


DEFAULT_RANKER_PARAMS: dict[str, Any] = {
    "max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 20,
    "l2_regularization": 1.0, "early_stopping": False,
}


def _zscore_rows(array: np.ndarray) -> np.ndarray:
    centred = array - array.mean(axis=1, keepdims=True)
    spread = array.std(axis=1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > MIN_SPREAD)


def option_features(per_source_logits: Mapping[str, np.ndarray],
                    extra: Mapping[str, np.ndarray] | None = None,
                    normalisation: Normalisation = "softmax") -> tuple[np.ndarray, list[str]]:
    """One row per option (question-major: question 0's A to E, then question 1's...).

    Per source: its normalised logit, the option's rank within the question under that source
    (0 = best, ties to the earlier letter) and its gap to the question's best normalised logit.
    Per extra ``(n, 5)`` signal: its raw value and its per-question z-score (raw values such
    as BM25 sums are not comparable across questions; the z-score is).
    """
    arrays = _check_sources(per_source_logits)
    extras = _check_sources(extra) if extra else {}
    n = len(next(iter(arrays.values())))
    if extras and len(next(iter(extras.values()))) != n:
        raise ValueError("extra signals cover a different number of questions than the logits")
    columns: list[np.ndarray] = []
    names: list[str] = []
    for name, array in arrays.items():
        normalised = normalise(array, normalisation)
        ranks = np.empty((n, OPTIONS))
        np.put_along_axis(ranks, ranked_options(array), np.arange(OPTIONS)[None, :], axis=1)
        gap = normalised.max(axis=1, keepdims=True) - normalised
        columns += [normalised, ranks, gap]
        names += [f"{name}:{normalisation}", f"{name}:rank", f"{name}:gap"]
    for name, array in extras.items():
        columns += [array, _zscore_rows(array)]
        names += [f"{name}:raw", f"{name}:zscore"]
    features = np.stack([c.reshape(-1) for c in columns], axis=1)
    return features, names


@dataclass
class LearnedRanker:
    """A fitted option classifier; :meth:`score` gives ``(n, 5)`` scores for new questions."""

    estimator: HistGradientBoostingClassifier
    sources: tuple[str, ...]
    extras: tuple[str, ...]
    normalisation: Normalisation
    feature_names: tuple[str, ...]

    def score(self, per_source_logits: Mapping[str, np.ndarray],
              extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Probability that each option is correct, shape ``(n, 5)``; rank with it."""
        extra = extra or {}
        if tuple(per_source_logits) != self.sources or tuple(extra) != self.extras:
            raise ValueError(f"the ranker was fitted on sources {self.sources} and extras "
                             f"{self.extras}, not {tuple(per_source_logits)} and {tuple(extra)}")
        features, _ = option_features(per_source_logits, extra, self.normalisation)
        return self.estimator.predict_proba(features)[:, 1].reshape(-1, OPTIONS)


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
                 ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Option rows, their feature names and 0/1 targets ("this option is the answer")."""
    gold = answer_indices(answers)
    features, names = option_features(per_source_logits, extra, normalisation)
    n = len(features) // OPTIONS
    if len(gold) != n:
        raise ValueError(f"{n} questions but {len(gold)} answers")
    target = np.zeros((n, OPTIONS), dtype=np.int64)
    target[np.arange(n), gold] = 1
    return features, names, target.reshape(-1)


def train_ranker(per_source_logits: Mapping[str, np.ndarray], answers: Sequence[str],
                 extra: Mapping[str, np.ndarray] | None = None, *, seed: int = 0,
                 normalisation: Normalisation = "zscore",
                 params: Mapping[str, Any] | None = None) -> LearnedRanker:
    """The learned ranker fitted on every one of these *training* questions."""
    features, names, target = _ranker_rows(per_source_logits, answers, extra, normalisation)
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
    features, _, target = _ranker_rows(per_source_logits, answers, extra, normalisation)
    n = len(gold)
    if not 2 <= folds <= n:
        raise ValueError(f"need 2 <= folds <= questions ({n}), not {folds}")
    groups = np.repeat(np.arange(n), OPTIONS)

    oof = np.zeros(n * OPTIONS, dtype=np.float64)
    fold_of = np.zeros(n, dtype=np.int64)
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (fit_rows, held_rows) in enumerate(splitter.split(features, target, groups)):
        classifier = _classifier(params, seed).fit(features[fit_rows], target[fit_rows])
        oof[held_rows] = classifier.predict_proba(features[held_rows])[:, 1]
        fold_of[groups[held_rows]] = k
    oof_scores = oof.reshape(n, OPTIONS)

    model = train_ranker(per_source_logits, answers, extra, seed=seed,
                         normalisation=normalisation, params=params)
    return RankerFit(model, oof_scores, float(average_precisions(oof_scores, gold).mean()),
                     fold_of)


# ----------------------------------------------------------------------------------------------
# Choosing the blend: cross-validation on the blend questions, never validation.

METHODS = ("logit", "weights", "ranker", "equal")
MIN_RANKER_QUESTIONS = 40
# The conditional-logit blend's L2 penalty on its weights (per question, on z-scored sources):
# enough to keep a dozen correlated sources from trading large opposite weights on 150
# questions, too little to matter where a source is clearly useful.
LOGIT_L2 = 0.01


def fit_logit(stack: np.ndarray, gold: np.ndarray, l2: float = LOGIT_L2) -> np.ndarray:
    """Non-negative weights of a conditional logit: ``P(k) = softmax_k(sum_s w_s stack[s, :, k])``
    fitted by penalised maximum likelihood (``stack`` is ``(sources, n, 5)``).

    The weights' scale is the blend's temperature, so the probabilities come out calibrated on
    the questions it was fitted on; that is what the cascade's confidence needs.
    """
    return _surrogate_weights(stack, gold, l2=l2)


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
        """``(n, 5)`` scores of new questions, higher is better (log-odds for the ranker)."""
        if self.ranker is not None:
            p = np.clip(self.ranker.score(per_source_logits, extra), 1e-9, 1 - 1e-9)
            return np.log(p / (1 - p))
        return apply(self.weights, per_source_logits, self.normalisation)

    def log_probabilities(self, per_source_logits: Mapping[str, np.ndarray],
                          extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Calibrated log-probabilities of the five options."""
        return calibrated(self.scores(per_source_logits, extra), self.temperature)


def calibrated(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``log softmax(scores / temperature)`` per question."""
    scaled = _logits(scores, "scores") / temperature
    return scaled - logsumexp(scaled, axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, answers: Sequence[str]) -> float:
    """The temperature that makes ``softmax(scores / T)`` most likely on these questions."""
    array, gold = _logits(scores, "scores"), answer_indices(answers)
    if not len(gold):
        return 1.0

    def nll(log_t: float) -> float:
        return float(-calibrated(array, float(np.exp(log_t)))[np.arange(len(gold)), gold].mean())

    result = minimize(lambda x: nll(x[0]), np.zeros(1), method="L-BFGS-B",
                      bounds=[(-6.0, 6.0)])
    return float(np.exp(result.x[0]))


def fit_method(method: str, per_source_logits: Mapping[str, np.ndarray],
               answers: Sequence[str], extra: Mapping[str, np.ndarray] | None = None, *,
               seed: int = 0, normalisation: Normalisation = "zscore") -> FittedBlend:
    """Fit one blend ``method`` on these *training* questions (see :data:`METHODS`)."""
    arrays = _check_sources(per_source_logits)
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
    arrays = _check_sources(fit_logits)
    n = len(fit_answers)
    if n < max(folds, 2):
        equal = FittedBlend("equal", equal_weights(arrays))
        return BlendChoice("equal", equal, {}, np.zeros((0, OPTIONS)))
    gold = answer_indices(fit_answers)
    tried = [m for m in methods if m != "ranker" or n >= MIN_RANKER_QUESTIONS]
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % folds
    oof = {m: np.zeros((n, OPTIONS)) for m in tried}
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
