"""Labelled questions to learn from: cleaned, kept apart from what is scored, and split in two.

The readers that learn (the multiple-choice encoder) and the blend that weighs the readers need
labelled questions of their own, and neither may ever see the questions it is scored on. The
pool is read from the configured training files, in any format :mod:`pipeline.questions.formats`
reads (by default the train side of the stem_1k split; the 2nd-place team's mix of OpenBookQA,
ARC, SciQ and MMLU is as many paths away), each question keeping its set (``source``), and
cleaned:

* a row with a fault (an empty option, an answer outside its options, a duplicate id, a short or
  blank row) is dropped, with its file, line and reason, where a test or validation file would
  fail;
* a question asked twice (the same prompt and options, however spaced or cased, in one file or
  across files) is kept once;
* a question whose prompt is also a test or validation prompt is dropped: the public sets
  overlap, and a question trained on must not be scored.

The clean pool is then ordered by a keyed hash of each question's set and id (a fixed, random-
looking order that survives reordering or extending a file) and cut into two roles (or, when a
user names labelled questions of the test's own kind for the blend, ``blend_paths``, the blend
questions come from those files and the training files give the train role alone):

``blend``
    the first ``blend_size``: the readers score them and the blend is fitted on their logits.
    A reader's logits on its own training questions would be overconfident, so these are never
    trained on.
``train``
    the next ``train_size``: the multiple-choice reader is fine-tuned on them.

Ids are unique only within a file, so pooled questions get ``{set}:{id}`` ids.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pipeline.questions.csv_format import split_questions
from pipeline.questions.formats import scan_questions
from pipeline.questions.question import Problem, Question

POOL_KEY = b"science-exam/training-pool/v1"
MAX_EXAMPLES = 5


@dataclass
class TrainingPool:
    """The blend and train questions, and what cleaning dropped (counts and a few examples)."""

    blend: list[Question]
    train: list[Question]
    read: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def drop(self, reason: str, example: str) -> None:
        self.dropped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)


def normalised(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation: what makes two texts 'the same'."""
    return re.sub(r"\s+", " ", text).strip(" .?!").lower()


def fault_kind(message: str) -> str:
    """A row fault without its particulars ("answer 'F' is not..." -> "answer … is not..."),
    so that faults of one kind are counted together."""
    return re.sub(r"'[^']*'|\b\d+\b", "…", re.sub(r"\s*\(.*\)", "", message)).strip()


def question_key(question: Question) -> tuple[str, ...]:
    return (normalised(question.prompt), *(normalised(o) for o in question.options))


def pool_order(question: Question) -> bytes:
    return hashlib.blake2b(f"{question.source}\0{question.id}".encode(), digest_size=8,
                           key=POOL_KEY).digest()


def _scan(path: str, pool: TrainingPool, file_format: str | None) -> list[Question]:
    """The sound questions of one file (of stem_1k, its train side); faulty rows are dropped
    into ``pool`` with their file, line and reason."""
    questions, problems = scan_questions(path, format=file_format)
    faulty: dict[int, list[Problem]] = {}
    for problem in problems:
        faulty.setdefault(problem.line, []).append(problem)
    for row_problems in faulty.values():
        pool.drop(fault_kind(row_problems[0].message),
                  "; ".join(p.describe(path) for p in row_problems))
    if questions and questions[0].source == "stem_1k":
        questions = split_questions(questions)["train"]
    pool.read += len(questions) + len(faulty)
    return questions


def _cleaned(paths: Sequence[str], pool: TrainingPool, excluded: Iterable[Question],
             excluded_reason: tuple[str, str], *, answered: bool,
             formats: Mapping[str, str] | None = None) -> list[Question]:
    """The sound questions of ``paths`` in pool order, with ``{set}:{id}`` ids: faulty rows,
    repeated questions, questions whose prompt is an ``excluded`` one (dropped as
    ``excluded_reason``: the reason and why) and, when ``answered``, unanswered ones are
    dropped into ``pool``."""
    excluded_prompts = {normalised(q.prompt) for q in excluded}
    seen: set[tuple[str, ...]] = set()
    kept: list[Question] = []
    for path in paths:
        for question in _scan(path, pool, (formats or {}).get(path)):
            where = f"{path}, data row {question.row + 1}"
            if answered and question.answer is None:
                pool.drop("no answer column", f"{where}: the file has no answer column")
                continue
            key = question_key(question)
            if key[0] in excluded_prompts:
                pool.drop(excluded_reason[0], f"{where}: {excluded_reason[1]}")
            elif key in seen:
                pool.drop("duplicate question", f"{where}: asked before")
            else:
                seen.add(key)
                kept.append(replace(question, id=f"{question.source}:{question.id}"))
    return sorted(kept, key=pool_order)


def read_pool(paths: Sequence[str], scored: Iterable[Question], *, blend_size: int,
              train_size: int | None, blend_paths: Sequence[str] = (),
              formats: Mapping[str, str] | None = None) -> TrainingPool:
    """Clean the labelled files at ``paths`` and cut them into blend and train questions.

    ``scored`` are the test and validation questions, whose prompts must not be learnt from.
    A stem_1k file contributes only the train side of its fixed split (the other side is the
    validation set). ``train_size`` None keeps every remaining question for training. With
    ``blend_paths`` the blend questions are the first ``blend_size`` of those files' clean pool
    (a question in both is kept for the blend, never trained on). ``formats`` names a file's
    format where detection should not decide.
    """
    pool = TrainingPool(blend=[], train=[])
    scored = list(scored)
    reason = ("a test or validation question", "its prompt is scored")
    if blend_paths:
        pool.blend = _cleaned(blend_paths, pool, scored, reason, answered=True,
                              formats=formats)[:blend_size]
        rest = _cleaned(paths, pool, [*scored, *pool.blend], reason, answered=True,
                        formats=formats)
    else:
        kept = _cleaned(paths, pool, scored, reason, answered=True, formats=formats)
        pool.blend = kept[:blend_size]
        rest = kept[blend_size:]
    pool.train = rest if train_size is None else rest[:train_size]
    return pool


def read_teacher_pool(paths: Sequence[str], taken: Iterable[Question], *,
                      size: int | None, formats: Mapping[str, str] | None = None
                      ) -> TrainingPool:
    """Extra questions for the teacher to label (the ``teacher`` role), answered or not.

    ``taken`` are the questions of every other role: a question whose prompt is a test or
    validation prompt (scored) or a blend prompt (the student's choice is made on those) is
    dropped, and so is a train question already in the pool. Cleaned and ordered like the
    training pool, the first ``size`` are kept (None: all), in ``TrainingPool.train``.
    """
    pool = TrainingPool(blend=[], train=[])
    kept = _cleaned(paths, pool, taken, ("a question of another role", "its prompt is a test, "
                                         "validation, blend or train prompt"), answered=False,
                    formats=formats)
    pool.train = kept if size is None else kept[:size]
    return pool
