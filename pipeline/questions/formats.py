"""Question sets in the formats public science multiple-choice sets ship in, validated per record.

Other sets than the competition's are how the pipeline is measured on questions it was not tuned
on, and each ships in its own shape: MMLU's header-less CSV and its Hugging Face records, ARC and
OpenBookQA's nested ``question.stem``/``choices``, SciQ's correct answer plus distractors. Records
come as JSON lines, a JSON list, Parquet, or Arrow (a file or a ``datasets`` ``save_to_disk``
directory); the shape is told from the first record's fields, so a set works whichever container
it was saved in. Every format becomes the same :class:`Question`, options lettered from A in the
order the set gives them (SciQ aside: see :data:`SHUFFLE_KEY`).

As in :func:`scan_csv`, problems are collected over the whole file, each naming the line (of a
text file; the record's number, from 1, for Parquet and Arrow) and the field at fault, and a bad
record is left out while the rest are kept: one run shows every bad record.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from pipeline.questions.csv_format import scan_csv
from pipeline.questions.question import (
    LETTERS,
    MAX_OPTIONS,
    Problem,
    Question,
    QuestionFileError,
    letters_for,
    option_count_fault,
)

FORMATS: tuple[str, ...] = ("kaggle_csv", "mmlu_csv", "arc", "mmlu", "sciq")
CSV_FORMATS = ("kaggle_csv", "mmlu_csv")
# Record shapes; "kaggle_csv" here is the Kaggle columns (id, prompt, A.., answer) in a table.
RECORD_FORMATS = ("kaggle_csv", "arc", "mmlu", "sciq")
RECORD_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")

# SciQ puts the correct answer in its own field, so any fixed order would put every answer at
# one letter, a position a model can learn. Options are ordered by a keyed hash of question and
# option text instead: the same file always gives the same letters, and the key keeps the order
# unrelated to any other use of the hash. Changing it relabels every SciQ question: do not.
SHUFFLE_KEY = b"science-exam/sciq-option-order/v1"

_JSON_SPACE = (" ", "\t", "\n", "\r")


def detect_format(path: str | Path) -> str:
    """The format (one of :data:`FORMATS`) of a question file, from its extension and fields.

    Raises :class:`QuestionFileError` naming the file and what was seen when it cannot tell, so
    a wrong file fails at once instead of as a problem in every record.
    """
    path = Path(path)
    if _container(path) == "csv":
        return _csv_format(path)
    with closing(_records(path)) as records:
        return _shape(path, _first_record(path, records))


def default_source(path: str | Path) -> str:
    """The set a file's questions belong to unless named: its stem, or a folder's name (a
    ``datasets`` save)."""
    path = Path(path)
    return path.name if path.is_dir() else path.stem


def scan_questions(path: str | Path, source: str | None = None, allow_empty_options: bool = False,
                   format: str | None = None) -> tuple[list[Question], list[Problem]]:
    """Every valid question of a file in any of :data:`FORMATS`, and every problem found.

    ``format=None`` detects it (:func:`detect_format`). ``source`` defaults to the file's stem (a
    directory's name). ``allow_empty_options`` lets an empty option text stand, as in
    :func:`scan_csv`. A file that is unlabelled throughout (a test split) gives questions with no
    answer; in a file where some records have an answer, a record without one is a problem.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown question format {format!r}; known: {', '.join(FORMATS)}")
    path = Path(path)
    source = source if source is not None else default_source(path)
    container = _container(path)
    if container == "csv":
        chosen = format or _csv_format(path)
        if chosen not in CSV_FORMATS:
            raise QuestionFileError(str(path), [Problem(
                1, None, f"format {chosen!r} is not a CSV format ({', '.join(CSV_FORMATS)})")])
        if chosen == "kaggle_csv":
            return scan_csv(path, source=source, allow_empty_options=allow_empty_options)
        return _scan_mmlu_csv(path, source, allow_empty_options)
    if format is not None and format not in RECORD_FORMATS:
        raise QuestionFileError(str(path), [Problem(
            1, None, f"format {format!r} reads .csv files only, not {container} records")])
    records: Iterator[tuple[int, object, str | None]] = iter(_records(path))
    head: list[tuple[int, object, str | None]] = []
    if format is None:
        for item in records:
            head.append(item)
            if isinstance(item[1], dict):
                break
        format = _shape(path, _first_record(path, iter(head)))
    return _scan_records(itertools.chain(head, records), _PARSERS[format], source,
                         allow_empty_options)


def read_questions(path: str | Path, source: str | None = None, allow_empty_options: bool = False,
                   format: str | None = None) -> list[Question]:
    """The questions of a file that is valid throughout; otherwise :class:`QuestionFileError`
    listing every problem, so that no run goes on with part of a set."""
    questions, problems = scan_questions(path, source, allow_empty_options, format)
    if problems:
        raise QuestionFileError(str(path), problems)
    return questions


# --- containers ---------------------------------------------------------------------------------

def _container(path: Path) -> str:
    """The container a path is, by extension: csv, jsonl, json, parquet, arrow, or directory (a
    ``datasets`` save_to_disk directory). Told before any reading, so a stray file fails fast."""
    if path.is_dir():
        return "directory"
    suffix = path.suffix.lower()
    if suffix == ".csv" or suffix in RECORD_SUFFIXES:
        return suffix[1:]
    raise QuestionFileError(str(path), [Problem(
        1, None, f"cannot tell the question format: extension {suffix or '(none)'!r} is none of "
                 f".csv, {', '.join(RECORD_SUFFIXES)}, and it is not a directory")])


def _csv_format(path: Path) -> str:
    """Kaggle's CSV has a header naming ``id`` and ``prompt``; MMLU's has no header at all."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if header is None:
        raise QuestionFileError(str(path), [Problem(
            1, None, "cannot tell the question format: the file is empty")])
    fields = {name.strip() for name in header}
    if "prompt" not in fields:
        return "mmlu_csv"
    if "id" in fields:
        return "kaggle_csv"
    raise QuestionFileError(str(path), [Problem(
        1, None, f"cannot tell the question format: the header {header!r} names 'prompt' but "
                 "not 'id' (Kaggle's CSV has both; MMLU's has no header)")])


def _records(path: Path) -> Iterator[tuple[int, object, str | None]]:
    """``(line, record, fault)`` per record in file order; a record that cannot be read has
    ``fault`` set. Parquet and Arrow are read a batch at a time, never whole."""
    container = _container(path)
    if container in ("jsonl", "json"):
        yield from _json_records(path)
        return
    if container == "parquet":
        batches: Iterable[pa.RecordBatch] = _parquet_batches(path)
    elif container == "arrow":
        batches = _ipc_batches(path)
    else:
        files = sorted(path.glob("data-*.arrow"))
        if not files:
            raise QuestionFileError(str(path), [Problem(
                1, None, "cannot tell the question format: the directory holds no data-*.arrow "
                         "files (as a datasets save_to_disk directory does)")])
        batches = itertools.chain.from_iterable(_ipc_batches(file) for file in files)
    line = 1
    for batch in batches:
        for record in batch.to_pylist():
            yield line, record, None
            line += 1


def _json_records(path: Path) -> Iterator[tuple[int, object, str | None]]:
    """JSON lines, or a JSON list of records (a ``.json`` file starting with ``[``); ``datasets``
    writes JSON lines into ``.json`` files too. A line that is not JSON is that record's fault."""
    with open(path, encoding="utf-8-sig") as handle:
        if path.suffix.lower() == ".json":
            text = handle.read()
            if text.lstrip().startswith("["):
                yield from _json_list(path, text)
                return
            lines: Iterable[str] = text.split("\n")
        else:
            lines = handle
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line), None
            except json.JSONDecodeError as error:
                yield number, None, f"not valid JSON: {error.msg} (column {error.colno})"


def _json_list(path: Path, text: str) -> Iterator[tuple[int, object, str | None]]:
    """A list decoded one element at a time, to know the line each record starts on. A fault in
    the list's own syntax leaves no way to find the next record, so it fails the file."""
    decoder, line, counted = json.JSONDecoder(), 1, 0

    def skip(start: int) -> int:
        """The first position at or after ``start`` that is not JSON whitespace."""
        while text[start:start + 1] in _JSON_SPACE:
            start += 1
        return start

    try:
        position = skip(skip(0) + 1)
        while text[position:position + 1] != "]":
            record, end = decoder.raw_decode(text, position)
            line += text.count("\n", counted, position)
            counted = position
            yield line, record, None
            position = skip(end)
            if text[position:position + 1] == ",":
                position = skip(position + 1)
            elif text[position:position + 1] != "]":
                raise json.JSONDecodeError("Expecting ',' delimiter or ']'", text, position)
        if skip(position + 1) != len(text):
            raise json.JSONDecodeError("Extra data", text, skip(position + 1))
    except json.JSONDecodeError as error:
        raise QuestionFileError(str(path), [Problem(
            error.lineno, None, f"not valid JSON: {error.msg} (column {error.colno})")]) from None


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        yield from pq.ParquetFile(path).iter_batches()
    except (pa.ArrowInvalid, OSError) as error:
        raise QuestionFileError(str(path), [Problem(
            1, None, f"not a readable Parquet file: {error}")]) from None


def _ipc_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """An Arrow IPC file or stream (``datasets`` writes streams into ``.arrow`` files)."""
    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_file(source)
        except pa.ArrowInvalid:
            reader = None
        if reader is not None:
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index)
            return
        source.seek(0)
        try:
            stream = pa.ipc.open_stream(source)
        except pa.ArrowInvalid as error:
            raise QuestionFileError(str(path), [Problem(
                1, None, f"not an Arrow IPC file or stream: {error}")]) from None
        yield from stream


def _first_record(path: Path, records: Iterable[tuple[int, object, str | None]]) -> dict:
    for _, record, _ in records:
        if isinstance(record, dict):
            return record
    raise QuestionFileError(str(path), [Problem(
        1, None, "cannot tell the question format: the file holds no record (JSON object)")])


def _shape(path: Path, record: dict) -> str:
    """Which record format the fields of ``record`` are."""
    fields = set(record)
    if {"prompt", "A"} <= fields:
        return "kaggle_csv"
    if "answerKey" in fields or "question_stem" in fields or isinstance(record.get("question"),
                                                                          dict):
        return "arc"
    if "correct_answer" in fields:
        return "sciq"
    if {"question", "choices"} <= fields:
        return "mmlu"
    raise QuestionFileError(str(path), [Problem(
        1, None, f"cannot tell the question format from the first record's fields "
                 f"{', '.join(sorted(fields)) or '(none)'}: expected ARC/OpenBookQA (question.stem "
                 "or question_stem, choices, answerKey), MMLU (question, choices, answer), SciQ "
                 "(question, correct_answer, distractor1-3) or Kaggle (id, prompt, A, B, ...)")])


# --- records ------------------------------------------------------------------------------------

@dataclass
class _Parsed:
    """A record's question fields, the field each came from (for messages), and its faults."""

    qid: str
    prompt: object
    prompt_field: str
    options: list[object]
    options_field: str
    answer_field: str
    answer: int | None = None  # index into options
    labelled: bool = False  # the answer field is present and not null
    passage: str | None = None
    faults: list[str] = field(default_factory=list)


def _scan_records(records: Iterable[tuple[int, object, str | None]],
                  parse: Callable[[dict, int], _Parsed], source: str,
                  allow_empty: bool) -> tuple[list[Question], list[Problem]]:
    """Parse and check every record; a record with a fault is reported and left out."""
    questions: list[Question] = []
    problems: list[Problem] = []
    unlabelled: list[tuple[int, int, str]] = []  # line, row and answer field of each
    any_labelled = False
    seen: dict[str, int] = {}
    for row, (line, record, fault) in enumerate(records):
        if fault is not None or not isinstance(record, dict):
            problems.append(Problem(line, row + 1, fault or (
                f"not a record (JSON object) but {type(record).__name__}")))
            continue
        parsed = parse(record, row)
        faults = parsed.faults + _common_faults(parsed, allow_empty)
        if parsed.qid in seen:
            faults.append(f"id: duplicate id {parsed.qid!r} "
                          f"(first at data row {seen[parsed.qid] + 1})")
        elif parsed.qid.strip():
            seen[parsed.qid] = row
        problems.extend(Problem(line, row + 1, f) for f in faults)
        any_labelled = any_labelled or parsed.labelled
        if not parsed.labelled:
            unlabelled.append((line, row, parsed.answer_field))
        if not faults:
            answer = None if parsed.answer is None else LETTERS[parsed.answer]
            questions.append(Question(
                id=parsed.qid, prompt=str(parsed.prompt), options=tuple(map(str, parsed.options)),
                answer=answer, source=source, row=row, passage=parsed.passage))
    if any_labelled and unlabelled:
        # Labelled in part: a record without an answer is more likely broken than a test row.
        rows = {row for _, row, _ in unlabelled}
        questions = [q for q in questions if q.row not in rows]
        problems.extend(Problem(line, row + 1, f"{name}: no answer, though other records of the "
                                "file have one") for line, row, name in unlabelled)
        problems.sort(key=lambda p: (p.line, p.data_row or 0))
    return questions, problems


def _common_faults(parsed: _Parsed, allow_empty: bool) -> list[str]:
    """The checks every format shares: id, question text, option count and texts."""
    faults = []
    if not parsed.qid.strip():
        faults.append("id: empty id")
    if not isinstance(parsed.prompt, str):
        faults.append(f"{parsed.prompt_field}: "
                      + ("missing" if parsed.prompt is None else "not text"))
    elif not parsed.prompt.strip():
        faults.append(f"{parsed.prompt_field}: empty question")
    count_fault = option_count_fault(len(parsed.options))
    if count_fault:
        faults.append(f"{parsed.options_field}: {count_fault}")
    for letter, option in zip(LETTERS, parsed.options, strict=False):
        if not isinstance(option, str):
            faults.append(f"{parsed.options_field}: option {letter} is not text")
        elif not allow_empty and not option.strip():
            faults.append(f"{parsed.options_field}: option {letter} is empty")
    return faults


def _record_id(record: dict, row: int, required: bool, faults: list[str]) -> str:
    """The record's ``id`` as text; where the format has none, the 0-based row."""
    value = record.get("id")
    if value is None:
        if required:
            faults.append("id: missing")
        return str(row)
    return str(value)


def _letter_answer(value: object, count: int, name: str, faults: list[str]) -> int | None:
    """Index of an answer given as a letter (Kaggle, MMLU's CSV, some MMLU copies)."""
    letter = str(value).strip()
    if letter in LETTERS[:count]:
        return LETTERS.index(letter)
    faults.append(f"{name}: {value!r} is not one of {letters_for(min(count, MAX_OPTIONS))}")
    return None


def _arc(record: dict, row: int) -> _Parsed:
    """ARC and OpenBookQA: AI2's nested form, or Hugging Face's flat one with columnar choices.
    Options keep the choices' order; the answer is the position of ``answerKey`` among the
    labels, whatever the labels are (A-E, 1-4)."""
    faults: list[str] = []
    question = record.get("question")
    if isinstance(question, dict):
        prompt_field, prompt = "question.stem", question.get("stem")
        choices_field, choices = "question.choices", question.get("choices")
    else:
        prompt_field = "question_stem" if "question_stem" in record else "question"
        prompt, choices_field, choices = record.get(prompt_field), "choices", record.get("choices")
    labels: list[object] = []
    texts: list[object] = []
    if isinstance(choices, dict) and isinstance(choices.get("label"), list) \
            and isinstance(choices.get("text"), list) \
            and len(choices["label"]) == len(choices["text"]):
        labels, texts = choices["label"], choices["text"]
    elif isinstance(choices, list) and all(isinstance(c, dict) for c in choices):
        labels, texts = [c.get("label") for c in choices], [c.get("text") for c in choices]
    else:
        faults.append(f"{choices_field}: missing, or neither a list of {{label, text}} nor "
                      "{label: [...], text: [...]}")
    labels = [str(label).strip() for label in labels]
    if len(set(labels)) != len(labels):
        faults.append(f"{choices_field}: labels {', '.join(labels)} repeat")
    key = record.get("answerKey")
    answer = None
    if key is not None and texts:
        if str(key).strip() in labels:
            answer = labels.index(str(key).strip())
        else:
            faults.append(f"answerKey: {key!r} is not one of the labels {', '.join(labels)}")
    return _Parsed(_record_id(record, row, True, faults), prompt, prompt_field, texts,
                   choices_field, "answerKey", answer, key is not None, faults=faults)


def _mmlu(record: dict, row: int) -> _Parsed:
    """MMLU as Hugging Face has it: ``answer`` a 0-based index into ``choices`` (or a letter)."""
    faults: list[str] = []
    choices = record.get("choices")
    if not isinstance(choices, list):
        faults.append("choices: missing or not a list")
        choices = []
    value = record.get("answer")
    answer = None
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < min(len(choices), MAX_OPTIONS):
            answer = value
        else:
            faults.append(f"answer: {value} is not an index of the {len(choices)} choices")
    elif value is not None:
        answer = _letter_answer(value, len(choices), "answer", faults)
    return _Parsed(_record_id(record, row, False, faults), record.get("question"), "question",
                   choices, "choices", "answer", answer, value is not None, faults=faults)


def _sciq(record: dict, row: int) -> _Parsed:
    """SciQ: the correct answer and up to three distractors, in the order of :data:`SHUFFLE_KEY`;
    ``support`` (the passage the question was written from) goes to ``passage`` only."""
    faults: list[str] = []
    prompt = record.get("question")
    candidates = []
    for name in ("correct_answer", "distractor1", "distractor2", "distractor3"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            faults.append(f"{name}: not text")
        elif name == "correct_answer" and not (value or "").strip():
            faults.append("correct_answer: " + ("missing" if value is None else "empty"))
        elif value and value.strip():
            candidates.append(value)
    text = prompt if isinstance(prompt, str) else ""
    order = sorted(range(len(candidates)), key=lambda i: hashlib.blake2b(
        f"{text}\x00{candidates[i]}".encode(), digest_size=8, key=SHUFFLE_KEY).digest())
    support = record.get("support")
    passage = support if isinstance(support, str) and support.strip() else None
    return _Parsed(_record_id(record, row, False, faults), prompt, "question",
                   [candidates[i] for i in order], "correct_answer/distractor1-3",
                   "correct_answer", order.index(0) if 0 in order and not faults else None,
                   True, passage, faults)


def _kaggle(record: dict, row: int) -> _Parsed:
    """The Kaggle columns in a table: as :func:`scan_csv`, trailing empty options are options
    the question does not have."""
    faults: list[str] = []
    letters = list(itertools.takewhile(lambda x: x in record, LETTERS))
    options = ["" if record[x] is None else record[x] for x in letters]
    while options and isinstance(options[-1], str) and not options[-1].strip():
        options.pop()
    value = record.get("answer")
    answer = None if value is None else _letter_answer(value, len(options), "answer", faults)
    return _Parsed(_record_id(record, row, True, faults), record.get("prompt"), "prompt",
                   options, "A-" + (letters[-1] if letters else "B"), "answer", answer,
                   value is not None, faults=faults)


_PARSERS: dict[str, Callable[[dict, int], _Parsed]] = {
    "arc": _arc, "mmlu": _mmlu, "sciq": _sciq, "kaggle_csv": _kaggle}


def _scan_mmlu_csv(path: Path, source: str,
                   allow_empty: bool) -> tuple[list[Question], list[Problem]]:
    """MMLU's own CSV: no header; question, the options, the answer letter last. The id is the
    0-based row, as MMLU has no ids."""
    problems: list[Problem] = []
    questions: list[Question] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        start_line = 1
        for row, record in enumerate(reader):
            line, start_line = start_line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                problems.append(Problem(line, row + 1, "blank row"))
                continue
            faults: list[str] = []
            options: list[object] = list(record[1:-1])
            while options and not str(options[-1]).strip():
                options.pop()
            answer = _letter_answer(record[-1], len(options), "answer (last column)", faults)
            parsed = _Parsed(str(row), record[0], "question (column 1)", options,
                             "options (columns 2 to last but one)", "answer", answer, True,
                             faults=faults)
            faults += _common_faults(parsed, allow_empty)
            problems.extend(Problem(line, row + 1, f) for f in faults)
            if not faults:
                questions.append(Question(id=str(row), prompt=record[0],
                                          options=tuple(record[1:1 + len(options)]),
                                          answer=LETTERS[answer] if answer is not None else None,
                                          source=source, row=row))
    return questions, problems
