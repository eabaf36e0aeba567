"""The teacher's labels: the heavy reader's five-letter distribution over a pool of questions,
for the distilled student (:mod:`pipeline.answering.distillation`) to learn from.

Why a pool and a budget: the heavy reader is the strongest reader these machines run and the
slowest step a user starts on a CPU (about 3 to 7 s a question), while the student it teaches
reads a question in a fraction of a second. The pool is the train questions by default and any
question files a user adds (``questions.teacher_paths``, labelled or not: generated questions
need no answers to be taught); every reading goes through the reading cache, so growing the pool
by ten questions reads ten, and a budget (questions, seconds) bounds one run's work.

The teacher reads each question with the context the student trains on (the training ranking's
packed context), cut to its own ``context_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import numpy as np

from pipeline.answering import logit_table
from pipeline.answering.cascade import HeavyReading
from pipeline.answering.heavy_settings import HeavySettings
from pipeline.answering.reading_list import ReadingList, reading_list
from pipeline.metrics import average_precisions, top1_hits
from pipeline.models import ResolvedModel
from pipeline.questions.question import MAX_OPTIONS
from pipeline.questions.roles import TRAIN_RANKING
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import content_version, option_columns

TEACHER_SOURCE = "teacher"
POOL_ROLES = ("train", "teacher")


def pool(db: duckdb.DuckDBPyConnection, roles: Sequence[str] = POOL_ROLES) -> ReadingList:
    """The pool's questions with their training contexts, role by role in ``roles`` order (so
    a budget takes the labelled train questions before any extra ones), each role in the
    questions table's order."""
    lists = [reading_list(db, TRAIN_RANKING, roles=(role,)) for role in roles]
    return ReadingList([k for one in lists for k in one.keys],
                       [q for one in lists for q in one.questions],
                       [c for one in lists for c in one.contexts])


def pool_inputs(db: duckdb.DuckDBPyConnection, roles: Sequence[str]) -> dict[str, str]:
    """What the teacher reads: the pool's questions and their contexts, nothing else (a new
    test file does not concern it)."""
    listed = ", ".join(f"'{role}'" for role in roles)
    return {"pool": content_version(
        db, f"(SELECT q.role, q.id, q.prompt, {option_columns('q.')}, c.context "
            f"FROM questions q LEFT JOIN packed_contexts c ON c.role = q.role AND "
            f"c.question_id = q.id AND c.ranking = '{TRAIN_RANKING}' "
            f"WHERE q.role IN ({listed}))", f"role, id, prompt, {option_columns()}, context")}


def _of_role(items: ReadingList, role: str) -> ReadingList:
    kept = [i for i, (r, _) in enumerate(items.keys) if r == role]
    return ReadingList([items.keys[i] for i in kept], [items.questions[i] for i in kept],
                       [items.contexts[i] for i in kept])


def budgeted(keys: Sequence[tuple[str, str]], max_questions: int | None
             ) -> dict[str, list[str]]:
    """The question ids of each role the teacher may read: the first ``max_questions`` of the
    pool (None: all of it)."""
    if max_questions is not None and max_questions < 0:
        raise StepError(f"teacher_logits.max_questions must be >= 0, not {max_questions}")
    chosen: dict[str, list[str]] = {}
    for role, qid in keys[:max_questions]:
        chosen.setdefault(role, []).append(qid)
    return chosen


def build(db: duckdb.DuckDBPyConnection, model: ResolvedModel, settings: HeavySettings,
          max_questions: int | None, roles: Sequence[str] = POOL_ROLES,
          log: Callable[[str], None] = print) -> Work:
    """Read the budgeted part of the pool with the teacher (cached readings are free) and
    store its letters' log-probabilities as the ``teacher`` source of the training ranking."""
    unknown = sorted(set(roles) - set(POOL_ROLES))
    if unknown:
        raise StepError(f"teacher_logits.roles: {unknown} cannot be taught from (test, "
                        "validation and blend questions are scored); use train and teacher")
    items = pool(db, roles)
    chosen = budgeted(items.keys, max_questions)
    reading = HeavyReading(db, settings, model, log, name="teacher")
    read = reading.read({role: _of_role(items, role) for role in chosen}, chosen)
    keys = [key for key in items.keys if key in read]
    logit_table.write_logits(db, TEACHER_SOURCE, TRAIN_RANKING, keys,
                             np.array([read[k] for k in keys]).reshape(-1, MAX_OPTIONS))
    log(f"teacher: {len(keys)} of the pool's {len(items.keys)} questions labelled "
        f"({reading.read_now} read now, {reading.reused} from the cache, "
        f"{reading.over_time} left out by max_seconds)")
    return Work(stored_version(db), undone=reading.over_time, metadata={
        "pool_questions": len(items.keys), "budget_questions": sum(map(len, chosen.values())),
        "teacher_read": reading.read_now, "teacher_reused": reading.reused,
        "teacher_over_time_budget": reading.over_time,
        "teacher_seconds_per_question": round(float(np.median(reading.seconds)), 2)
        if reading.seconds else None, **model.metadata()})


def labels(db: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], np.ndarray]:
    """The teacher's log-probabilities by (role, question id)."""
    logit_table.create(db)
    rows = db.execute(f"SELECT role, question_id, {option_columns()} FROM reader_logits "
                      "WHERE reader = ? AND ranking = ?", [TEACHER_SOURCE, TRAIN_RANKING]
                      ).fetchall()
    return {(r[0], r[1]): np.array(r[2:], dtype=np.float64) for r in rows}


def stored_version(db: duckdb.DuckDBPyConnection) -> str:
    logit_table.create(db)
    return content_version(
        db, f"(SELECT * FROM reader_logits WHERE reader = '{TEACHER_SOURCE}' AND ranking = "
            f"'{TRAIN_RANKING}')", logit_table.VERSION_COLUMNS)


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """How many questions of each role carry the teacher's labels, and how the teacher does on
    the labelled ones (its accuracy and MAP@3 on the pool's gold answers: how good a teacher
    it is on these contexts)."""
    logit_table.create(db)
    rows = db.execute(
        f"SELECT l.role, {option_columns('l.')}, q.answer FROM reader_logits l "
        "JOIN questions q ON q.role = l.role AND q.id = l.question_id "
        "WHERE l.reader = ? AND l.ranking = ?", [TEACHER_SOURCE, TRAIN_RANKING]).fetchall()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[0]] = counts.get(row[0], 0) + 1
    labelled = [r for r in rows if r[-1] is not None]
    out: dict[str, Any] = {"row_count": len(rows),
                           **{f"{role}_labelled": n for role, n in sorted(counts.items())}}
    if labelled:
        logits = np.array([r[1:-1] for r in labelled], dtype=np.float64)
        gold = [r[-1] for r in labelled]
        out["pool_accuracy"] = round(float(top1_hits(logits, gold).mean()), 4)
        out["pool_map_at_3"] = round(float(average_precisions(logits, gold).mean()), 4)
        out["summary"] = Markdown(
            f"The teacher labelled {len(rows)} questions; on the {len(labelled)} with a gold "
            f"answer it is right {out['pool_accuracy']:.1%} of the time (MAP@3 "
            f"{out['pool_map_at_3']:.3f}) with these contexts.")
    return out
