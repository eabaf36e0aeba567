"""The question sets of a run: which files are read, and what each question is for.

A run answers its *test* questions, scores itself on labelled *validation* questions, and
learns from a cleaned pool of labelled questions split into *blend* (to fit the blend of the
readers) and *train* (to fine-tune a reader); see :mod:`pipeline.questions.training_pool`. The
whole test file stays out of training, answered or not, and so does every validation question.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipeline.questions.csv_format import split_questions
from pipeline.questions.formats import default_source, detect_format, read_questions
from pipeline.questions.question import Question, QuestionFileError
from pipeline.questions.question_table import VERSION_COLUMNS, write_questions
from pipeline.questions.training_pool import read_pool, read_teacher_pool
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import content_version, markdown_preview


@dataclass(frozen=True)
class QuestionSets:
    """Where a run's questions come from and how many of each role it keeps."""

    test_path: str
    validation_path: str
    train_paths: list[str]
    test_allow_empty_options: bool = True
    test_limit: int | None = None
    validation_split: bool = True
    blend_size: int = 150
    train_size: int | None = 300
    teacher_paths: list[str] = field(default_factory=list)
    teacher_size: int | None = None
    limit: int | None = None
    blend_paths: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    show_passages: bool = False

    def paths(self) -> list[str]:
        return [self.test_path, self.validation_path, *self.train_paths, *self.blend_paths,
                *self.teacher_paths]

    def file_contents(self) -> dict[str, Any]:
        """The sha256 of every question file named: a file replaced at the same path (how
        Kaggle hands out its test set) must be read again. They are small; hashing them costs
        milliseconds."""
        return {"files": {path: _digest(Path(path)) for path in self.paths()}}


def _digest(path: Path) -> str | None:
    """sha256 of a file, or of every file of a folder (a ``datasets`` save) by name."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        inner = {str(p.relative_to(path)): _digest(p) for p in sorted(path.rglob("*"))
                 if p.is_file()}
        return hashlib.sha256(repr(inner).encode()).hexdigest()
    return None


def _formats(sets: QuestionSets) -> dict[str, str]:
    """Every file's format, detected once (or as configured in ``formats``)."""
    try:
        return {path: sets.formats.get(path) or detect_format(path) for path in sets.paths()}
    except (QuestionFileError, OSError, ValueError) as exc:
        raise StepError(f"cannot read questions: {exc}") from exc


def _read(path: str, file_format: str, allow_empty_options: bool = False) -> list[Question]:
    try:
        return read_questions(path, allow_empty_options=allow_empty_options, format=file_format)
    except (QuestionFileError, OSError, ValueError) as exc:
        raise StepError(f"cannot read questions: {exc}") from exc


def _limited(size: int | None, limit: int | None) -> int | None:
    if limit is None:
        return size
    return limit if size is None else min(size, limit)


def build(db: duckdb.DuckDBPyConnection, sets: QuestionSets,
          log: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> Work:
    """Read and validate every file, split the roles, and replace the ``questions`` table."""
    formats = _formats(sets)
    test = _read(sets.test_path, formats[sets.test_path], sets.test_allow_empty_options)
    validation = _read(sets.validation_path, formats[sets.validation_path])
    if sets.validation_split:
        validation = split_questions(validation)["validation"]
    held_out = [*test, *validation]
    answered = test[: _limited(sets.test_limit, sets.limit)]
    if len(answered) < len(test):
        warn(f"answering {len(answered)} of the {len(test)} questions of {sets.test_path} "
             f"(test_limit {sets.test_limit}, limit {sets.limit}): a submission needs every "
             "one; set test_limit: null")
    left_out, test = len(test) - len(answered), answered
    validation = validation[: sets.limit]
    try:
        pool = read_pool(sets.train_paths, held_out,
                         blend_size=_limited(sets.blend_size, sets.limit),
                         train_size=_limited(sets.train_size, sets.limit),
                         blend_paths=sets.blend_paths, formats=formats)
        extra = read_teacher_pool(sets.teacher_paths,
                                  [*held_out, *pool.blend, *pool.train],
                                  size=_limited(sets.teacher_size, sets.limit),
                                  formats=formats)
    except (QuestionFileError, OSError, ValueError) as exc:
        raise StepError(f"cannot read training questions: {exc}") from exc
    write_questions(db, [("test", test), ("validation", validation), ("blend", pool.blend),
                         ("train", pool.train), ("teacher", extra.train)],
                    {default_source(path): fmt for path, fmt in formats.items()},
                    sets.show_passages)
    log(f"{len(test)} test, {len(validation)} validation, {len(pool.blend)} blend, "
        f"{len(pool.train)} train and {len(extra.train)} teacher-only questions; cleaning "
        f"dropped {dict(pool.dropped)} of the training files and {dict(extra.dropped)} of "
        "the teacher's")
    return Work(stored_version(db), {
        "teacher_questions_read": extra.read, "teacher_dropped": dict(extra.dropped),
        "teacher_dropped_examples": extra.examples,
        "test_path": sets.test_path, "validation_path": sets.validation_path,
        "test_questions_left_out": left_out, "pool_questions_read": pool.read,
        "pool_dropped": dict(pool.dropped), "pool_dropped_examples": pool.examples})


def stored_version(db: duckdb.DuckDBPyConnection) -> str:
    return content_version(db, "questions", VERSION_COLUMNS)


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    counts = dict(db.execute("SELECT role, count(*) FROM questions GROUP BY role").fetchall())
    by_set = db.execute(
        "SELECT role, source, count(*), count(gold_title), string_agg(DISTINCT kind, ', ' "
        "ORDER BY kind), count(passage) FROM questions GROUP BY role, source "
        "ORDER BY role, source").fetchall()
    table = ["| role | question set | questions | kinds (format/options) | with a recorded "
             "source passage | with the set's own passage (not shown to readers) |",
             "|---|---|---|---|---|---|"] + [
        f"| {r} | {s} | {n} | {k} | {g} | {p} |" for r, s, n, g, k, p in by_set]
    options = db.execute("SELECT role, options, count(*) FROM questions GROUP BY ALL "
                         "ORDER BY ALL").fetchall()
    return {
        "row_count": sum(counts.values()),
        **{f"{role}_questions": counts.get(role, 0)
           for role in ("test", "validation", "blend", "train", "teacher")},
        "questions_by_role_and_set": Markdown("\n".join(table)),
        "questions_by_option_count": {f"{role} with {n} options": count
                                      for role, n, count in options},
        "preview": Markdown(markdown_preview(
            db, "SELECT role, id, prompt, A, answer FROM questions ORDER BY role, row LIMIT 5")),
    }
