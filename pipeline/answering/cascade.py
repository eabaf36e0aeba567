"""The confidence cascade: the heavy reader reads only the questions the cheap blend is least
sure of, within a budget, and joins the blend for those.

Why: the 1.5B causal LM is the strongest reader these machines can run and far too slow to read
every question on a CPU (about 7 s a question against well under one for all the cheap readers
together). The 5th-place team's answer: let the cheap blend rank every question and spend the
heavy reader where the cheap blend is unsure. What that buys depends on how well the cheap blend
knows when it is wrong, so every step here works on *calibrated* probabilities
(:meth:`pipeline.answering.blend.FittedBlend.log_probabilities`), and the rule is fitted on the
blend questions' out-of-fold probabilities, where a question's own answer never shaped its score.

* :func:`fit_rule` picks the uncertainty measure (:data:`MEASURES`: the top-two margin, the
  entropy, one minus the top probability) that best tells the cheap blend's misses from its hits
  on the blend questions (ROC AUC of "the top option is wrong").
* :func:`escalate` takes, per role, the most uncertain questions first, never more than
  :func:`budget_count` of them.
* :func:`fit_combination` fits how much the heavy reader's letter log-probabilities count
  against the cheap blend's on the escalated blend questions (a conditional logit, as the blend
  itself); :func:`combine` applies it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from pipeline.answering import reading_cache
from pipeline.answering.blend import answer_indices, fit_logit, log_softmax
from pipeline.answering.heavy_settings import HeavySettings
from pipeline.answering.readers import heavy, pad
from pipeline.answering.reading_list import ReadingList
from pipeline.metrics import top1_hits
from pipeline.models import ResolvedModel
from pipeline.questions.question import Question

MEASURES = ("margin", "entropy", "top")
# Below this many escalated blend questions the combination is not fitted: the heavy reader's
# log-probabilities and the cheap blend's are added as they are (a product of two experts).
MIN_COMBINATION_QUESTIONS = 12
PRIOR_COMBINATION = {"cheap": 1.0, "heavy": 1.0}
COMBINATION_L2 = 0.01


def uncertainty(log_probabilities: np.ndarray, measure: str) -> np.ndarray:
    """Per question, how unsure the blend is (higher: less sure) under ``measure``; the options
    a question does not have (NaN) count as probability 0."""
    log_p = np.nan_to_num(np.asarray(log_probabilities, dtype=np.float64), nan=-np.inf)
    p = np.exp(log_p)
    top = np.sort(p, axis=1)[:, ::-1]
    if measure == "margin":
        return -(top[:, 0] - top[:, 1])
    if measure == "entropy":
        return -(p * np.where(p > 0, log_p, 0.0)).sum(axis=1)
    if measure == "top":
        return 1.0 - top[:, 0]
    raise ValueError(f"unknown uncertainty measure {measure!r}: use one of {MEASURES}")


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` for the boolean ``positive`` (ties count half); 0.5 if undefined."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return 0.5
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@dataclass(frozen=True)
class EscalationRule:
    """Which uncertainty measure orders the questions, and how each measure did when fitted."""

    measure: str
    auc: dict[str, float]

    def order(self, log_probabilities: np.ndarray) -> np.ndarray:
        """Question indices, least sure first (ties: earlier question first)."""
        return np.argsort(-uncertainty(log_probabilities, self.measure), kind="stable")


def fit_rule(oof_log_probabilities: np.ndarray, answers: Sequence[str]) -> EscalationRule:
    """The measure whose uncertainty best predicts the cheap blend's top-1 misses (ROC AUC) on
    labelled questions scored out of fold; ties go to the earlier of :data:`MEASURES`."""
    gold = answer_indices(answers)
    if len(gold) != len(oof_log_probabilities):
        raise ValueError(f"{len(oof_log_probabilities)} questions but {len(gold)} answers")
    wrong = ~top1_hits(oof_log_probabilities, gold) if len(gold) else np.zeros(0, bool)
    auc = {m: _auc(uncertainty(oof_log_probabilities, m), wrong) for m in MEASURES}
    best = max(MEASURES, key=lambda m: auc[m] - 1e-9 * MEASURES.index(m))
    return EscalationRule(best, auc)


def budget_count(questions: int, share: float) -> int:
    """How many of ``questions`` a ``share`` (0 to 1) may escalate: never more than the share."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the escalated share must be between 0 and 1, not {share}")
    return min(questions, math.floor(share * questions + 1e-9))


def escalate(log_probabilities: np.ndarray, rule: EscalationRule, share: float) -> np.ndarray:
    """Indices of the questions to escalate: the least sure first, at most the budget."""
    return rule.order(log_probabilities)[: budget_count(len(log_probabilities), share)]


@dataclass(frozen=True)
class Combination:
    """Exponents of the two experts on an escalated question: the final log-score is
    ``cheap * log p_cheap + heavy * log p_heavy``. ``fitted`` says whether they were fitted on
    escalated blend questions or are the prior (too few of those)."""

    cheap: float
    heavy: float
    fitted: bool
    questions: int


def fit_combination(cheap_log_probabilities: np.ndarray, heavy_logits: np.ndarray,
                    answers: Sequence[str]) -> Combination:
    """Weights of the cheap blend and the heavy reader, fitted by a penalised conditional logit
    on escalated *blend* questions (never on what the result is scored on)."""
    n = len(answers)
    if n < MIN_COMBINATION_QUESTIONS:
        return Combination(PRIOR_COMBINATION["cheap"], PRIOR_COMBINATION["heavy"], False, n)
    stack = np.stack([log_softmax(cheap_log_probabilities), log_softmax(heavy_logits)])
    cheap, heavy = fit_logit(stack, answer_indices(answers), l2=COMBINATION_L2)
    if cheap + heavy <= 0:  # neither helps: keep the prior rather than a constant blend
        return Combination(PRIOR_COMBINATION["cheap"], PRIOR_COMBINATION["heavy"], False, n)
    return Combination(float(cheap), float(heavy), True, n)


def combine(cheap_log_probabilities: np.ndarray, heavy_logits: np.ndarray,
            combination: Combination) -> np.ndarray:
    """Final log-scores of escalated questions: the two experts weighted, renormalised."""
    return log_softmax(combination.cheap * log_softmax(cheap_log_probabilities)
                       + combination.heavy * log_softmax(heavy_logits))



# ----------------------------------------------------------------------------------------------
# Reading the escalated questions.

DEFAULT_SHARE = 0.3
# A question waiting for its batch: (role, id), its reading-cache key, the question, its context.
Waiting = tuple[tuple[str, str], str, Question, str]


class HeavyReading:
    """Reads escalated questions with the heavy reader, per question cached, within the time
    budget. The model is loaded only when some question is not in the cache."""

    def __init__(self, db: duckdb.DuckDBPyConnection, settings: HeavySettings,
                 model: ResolvedModel | None, log: Callable[[str], None] = print,
                 name: str = "heavy reader") -> None:
        self.db, self.settings, self.model, self.log, self.name = db, settings, model, log, name
        self.reader: heavy.LetterReader | None = None
        self.read_now = self.reused = self.over_time = 0
        self.seconds: list[float] = []
        self.key: str | None = None
        self.setup: heavy.Setup | None = None

    def read(self, lists: Mapping[str, ReadingList], chosen: Mapping[str, Sequence[str]]
             ) -> dict[tuple[str, str], np.ndarray]:
        """Logits of the ``chosen`` question ids of each role (least sure first), taken in
        turns across roles so that a time budget shortens every role alike."""
        if not any(chosen.values()):
            return {}
        if self.model is None:
            raise ValueError("questions are escalated but no heavy model is configured")
        setup = self.settings.setup(self.model)
        key = self.key = reading_cache.reader_key(self.model.weights_sha256,
                                                  self.settings.cache_settings(setup))
        items = {}
        for role, ids in chosen.items():
            listed = dict(zip((qid for _, qid in lists[role].keys), lists[role].pairs(),
                              strict=True))
            items[role] = [(qid, *listed[qid]) for qid in ids]
        item_keys = {(role, qid): reading_cache.item_key(question, text)
                     for role, entries in items.items() for qid, question, text in entries}
        cached = reading_cache.lookup(self.db, key, sorted(set(item_keys.values())))
        out: dict[tuple[str, str], np.ndarray] = {}
        started = time.perf_counter()
        turns = max(len(entries) for entries in items.values())
        total = sum(len(entries) for entries in items.values())
        # Questions read together in one forward pass (transformers; llama.cpp reads one).
        size = self.settings.batch_size if setup.runtime == "transformers" else 1
        pending: list[Waiting] = []
        for position in range(turns):
            for role, entries in items.items():
                if position >= len(entries):
                    continue
                qid, question, text = entries[position]
                item = item_keys[(role, qid)]
                if item in cached:
                    out[(role, qid)] = cached[item]
                    self.reused += 1
                    continue
                if self._out_of_time(time.perf_counter() - started, len(pending) + 1):
                    self.over_time += 1
                    continue
                pending.append(((role, qid), item, question, text))
                if len(pending) == size:
                    self._read_batch(setup, key, pending, cached, out, total)
                    pending = []
        if pending:
            self._read_batch(setup, key, pending, cached, out, total)
        return out

    def _read_batch(self, setup: heavy.Setup, key: str,
                    pending: list[Waiting],
                    cached: dict[str, np.ndarray], out: dict[tuple[str, str], np.ndarray],
                    total: int) -> None:
        """Read ``pending`` questions in one batch; store each reading as soon as it is made
        (a kill loses at most this batch), with its share of the batch's seconds."""
        reader = self._reader(setup)
        began = time.perf_counter()
        rows, tokens = reader.score_batch([(question, text) for _, _, question, text in pending])
        spent = (time.perf_counter() - began) / len(pending)
        for (where, item, _, _), row, used in zip(pending, rows, tokens, strict=True):
            scores = pad([row])[0]
            reading_cache.store(self.db, key, item, scores, spent, used, setup.as_dict())
            cached[item] = out[where] = scores
            self.read_now += 1
            self.seconds.append(spent)
            if self.read_now % 10 == 0:
                self._progress(total)

    def _out_of_time(self, elapsed: float, waiting: int = 1) -> bool:
        """Whether ``waiting`` more questions (the next and those waiting for its batch), at
        the median pace so far, would end past ``max_seconds`` (with no limit, never)."""
        limit = self.settings.max_seconds
        if limit is None:
            return False
        pace = float(np.median(self.seconds)) if self.seconds else 0.0
        return elapsed + waiting * pace > limit or elapsed >= limit

    def _progress(self, total: int) -> None:
        """A progress line: questions done of all, the pace, and the time left at that pace."""
        done = self.read_now + self.reused + self.over_time
        pace = float(np.median(self.seconds))
        left = (total - done) * pace
        limit = self.settings.max_seconds
        if limit is not None:
            left = min(left, max(0.0, limit - sum(self.seconds)))
        self.log(f"{self.name}: [{done}/{total}] {100 * done / total:.0f}% "
                 f"({self.read_now} read now, {self.reused} cached), {pace:.1f} s a question, "
                 f"about {left / 60:.0f} min left")

    def _reader(self, setup: heavy.Setup) -> heavy.LetterReader:
        if self.reader is None:
            assert self.model is not None
            self.log(f"loading the heavy reader {self.model.reference} on {setup.runtime} "
                     f"({setup.device}, {setup.dtype})")
            self.reader = heavy.load(self.model, setup.runtime,  # type: ignore[arg-type]
                                     context_tokens=self.settings.context_tokens,
                                     permutations=self.settings.permutations,
                                     threads=self.settings.threads, device=self.settings.device,
                                     precision=self.settings.precision,
                                     scoring=self.settings.scoring,
                                     batch_size=self.settings.batch_size)
        self.setup = setup
        return self.reader

    def metadata(self) -> dict[str, Any]:
        """Counts of the work done (read now, reused from the cache, left out by the time
        budget) and the median seconds a question."""
        return {"heavy_read": self.read_now, "heavy_reused": self.reused,
                "heavy_over_time_budget": self.over_time,
                **({f"heavy_{k}": v for k, v in self.setup.as_dict().items()}
                   if self.setup else {}),
                "heavy_seconds_per_question": round(float(np.median(self.seconds)), 2)
                if self.seconds else None}
