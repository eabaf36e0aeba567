"""Blend weights fitted to maximise MAP@3 on *training* questions (:func:`fit_weights`).

MAP@3 is piecewise constant in the weights (only the order of options counts), so gradients
are no use on it directly. The search starts from the optimum of a smooth surrogate, the
multinomial log-likelihood of the softmax of the blend (fitted with L-BFGS-B under
non-negativity, where the weights' sum acts as a temperature), and from equal weights, each
single reader and a few random points of the simplex (a fixed seed), and refines each by
coordinate search on the simplex, accepting only strict MAP@3 gains. The best MAP@3 wins, ties
going to the earlier start (surrogate first, then equal weights): where MAP@3 cannot tell
weights apart, the likelihood's choice uses the most information. Because equal weights are
among the starts, the fitted blend never scores below the equal blend *on the training
questions*; whether it does better on new ones is for held-out questions to say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from pipeline.answering.blend.normalisation import Normalisation, checked_sources, normalise
from pipeline.metrics import answer_indices, average_precisions

# The surrogate's weights are bounded so that perfectly separable training data (where the
# likelihood grows without limit as the weights do) still gives a finite optimum.
MAX_SURROGATE_WEIGHT = 100.0
SEARCH_STEPS = (0.5, 0.25, 0.1, 0.05, 0.02, 0.01)


def surrogate_weights(stack: np.ndarray, gold: np.ndarray, l2: float = 0.0) -> np.ndarray:
    """Non-negative weights maximising the log-likelihood of softmax(sum_s w_s * stack[s]),
    less ``l2`` times their squared norm (``stack`` is ``(sources, n, MAX_OPTIONS)``, NaN past
    each question's options: those get no probability)."""
    sources, n, _ = stack.shape
    rows = np.arange(n)
    absent = np.where(np.isnan(stack[0]), -np.inf, 0.0)
    stack = np.nan_to_num(stack, nan=0.0)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        blended = np.tensordot(w, stack, axes=1) + absent
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


def _coordinate_search(start: np.ndarray, evaluate: Callable[[np.ndarray], float]
                       ) -> tuple[np.ndarray, float]:
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
    arrays = checked_sources(per_source_logits)
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
    starts = [_on_simplex(surrogate_weights(stack, gold)), np.full(len(names), 1 / len(names)),
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
