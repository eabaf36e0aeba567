"""Question sets in the competition's CSV format, validated row by row, and the stem_1k split.

The format is the competition's: ``id,prompt,A,B,C,D,E`` and, in labelled sets, ``answer`` (a
letter). The option columns are the letters from A on that the header has (A and B at least, J at
most), and a row's trailing empty options are options it does not have: a Kaggle-style file of
four-option questions (``E`` left empty, or no ``E`` column) is read as four-option questions.
Other columns (the ``context`` of the public sets) are allowed and ignored: the
pipeline retrieves its own context, and a question must not smuggle its source passage in.

Rows are read with :mod:`csv` one record at a time, so a large set never needs a data frame in
memory, and a field may hold newlines. Problems are collected over the whole file and reported
together, each naming the file, the line where the record starts (1-based, the header is line
1) and the data row (1-based, the first record after the header is data row 1): one run shows
every bad row instead of one per attempt.

Where questions point into the corpus: the question sets ``stem_1k`` and ``extra_500`` were
written from passages that the sample dump holds as pages titled ``Passage stem-1k NNNN`` and
``Passage extra-500 NNNN``, NNNN being the question's 0-based data row. :attr:`Question.row`
keeps that row and :func:`gold_title` builds the title.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pipeline.questions.question import (
    LETTERS,
    MIN_OPTIONS,
    Problem,
    Question,
    QuestionFileError,
    letters_for,
    option_count_fault,
)

ANSWER_COLUMN = "answer"

# Title prefixes of the pages the question sets were written from, by set name (file stem).
GOLD_TITLE_PREFIXES = {"stem_1k": "Passage stem-1k", "extra_500": "Passage extra-500"}

# The stem_1k split. A question goes to validation when a keyed hash of its id falls below
# VALIDATION_SHARE. Hashing the id (not taking every k-th row) keeps each question's side fixed
# however the file is reordered, filtered or extended, and the key makes the split independent
# of any other use of the same hash. Changing either constant is a new split: do not.
# On stem_1k (999 questions) this puts 225 in validation (measuring retrieval against the gold
# passages, and MAP@3) and 774 in train (tuning and fine-tuning), the answer letters spread alike.
SPLIT_KEY = b"science-exam/stem_1k-split/v1"
VALIDATION_SHARE = 0.25

Split = Literal["validation", "train"]


def scan_csv(path: str | Path, source: str | None = None,
             allow_empty_options: bool = False) -> tuple[list[Question], list[Problem]]:
    """Every valid question of a Kaggle-style CSV and every problem found, each naming its
    line and data row.

    The file is read one record at a time and only the question fields are kept, so the
    ignored columns (a ``context`` can be a whole article) never pile up in memory. A row with
    a problem is left out; a file whose header is unusable raises :class:`QuestionFileError`.

    ``allow_empty_options`` lets an empty option *between* filled ones stand (as an empty
    text): the public sets hold a few (extra_500 data row 448; generated_6k data rows 2422,
    3525 and 4474), most likely an option such as "None" that a CSV writer turned into a
    missing value. Strict by default, since a hole among the options is usually a broken file.
    """
    path = str(path)
    source = source if source is not None else Path(path).stem
    problems: list[Problem] = []
    questions: list[Question] = []
    seen: dict[str, int] = {}
    _allow_long_fields()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise QuestionFileError(path, [Problem(1, None, "the file is empty (no header)")])
        columns = {name.strip(): i for i, name in enumerate(header)}
        missing = [c for c in ("id", "prompt", *LETTERS[:MIN_OPTIONS]) if c not in columns]
        if missing:
            raise QuestionFileError(path, [Problem(
                1, None, f"header lacks required column(s) {', '.join(missing)}")])
        letters = [x for x in itertools.takewhile(lambda x: x in columns, LETTERS)]
        labelled = ANSWER_COLUMN in columns
        start_line = reader.line_num + 1
        for row, record in enumerate(reader):
            line, data_row = start_line, row + 1
            start_line = reader.line_num + 1
            if not any(cell.strip() for cell in record):
                # A blank row would shift every later row number, and rows name gold passages.
                problems.append(Problem(line, data_row, "blank row"))
                continue
            if len(record) != len(header):
                problems.append(Problem(
                    line, data_row, f"has {len(record)} fields, the header has {len(header)}"))
                if len(record) < len(header):
                    continue
            qid = record[columns["id"]].strip()
            prompt = record[columns["prompt"]]
            options = [record[columns[x]] for x in letters]
            while options and not options[-1].strip():
                options.pop()
            answer = record[columns[ANSWER_COLUMN]].strip() if labelled else None
            faults = _check(qid, prompt, options, answer, allow_empty_options)
            if qid in seen:
                faults.append(f"duplicate id {qid!r} (first at data row {seen[qid] + 1})")
            elif qid:
                seen[qid] = row
            problems.extend(Problem(line, data_row, f) for f in faults)
            if not faults and len(record) == len(header):
                questions.append(Question(id=qid, prompt=prompt, options=tuple(options),
                                          answer=answer, source=source, row=row))
    return questions, problems


def _check(qid: str, prompt: str, options: list[str], answer: str | None,
           allow_empty_options: bool) -> list[str]:
    faults = []
    if not qid:
        faults.append("empty id")
    if not prompt.strip():
        faults.append("empty prompt")
    count_fault = option_count_fault(len(options))
    if count_fault:
        faults.append(count_fault)
    if not allow_empty_options:
        faults.extend(f"empty option {letter}" for letter, option
                      in zip(LETTERS[: len(options)], options, strict=True)
                      if not option.strip())
    if answer is not None and answer not in LETTERS[: len(options)]:
        faults.append(f"answer {answer!r} is not one of {letters_for(len(options))}")
    return faults


def _allow_long_fields() -> None:
    """Lift the csv module's 128 KiB field limit: a ``context`` cell can be a whole article."""
    if csv.field_size_limit() < 1 << 30:
        csv.field_size_limit(1 << 30)


def gold_title(question: Question) -> str | None:
    """Title of the corpus page the question was written from, where its set has one."""
    prefix = GOLD_TITLE_PREFIXES.get(question.source)
    return f"{prefix} {question.row:04d}" if prefix else None


def split_of(question_id: str) -> Split:
    """The fixed side of the stem_1k split a question id falls on (see ``SPLIT_KEY``)."""
    digest = hashlib.blake2b(question_id.encode(), digest_size=8, key=SPLIT_KEY).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return "validation" if fraction < VALIDATION_SHARE else "train"


def split_questions(questions: Sequence[Question]) -> dict[Split, list[Question]]:
    """Both sides of the split, each in file order."""
    parts: dict[Split, list[Question]] = {"validation": [], "train": []}
    for question in questions:
        parts[split_of(question.id)].append(question)
    return parts
