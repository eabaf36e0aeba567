"""A multiple-choice question with 2 to 10 options, and the errors of a file that holds them.

Exams differ in how many options a question has: Kaggle's LLM Science Exam five, MMLU, SciQ and
OpenBookQA four, ARC three to five, some sets up to ten. A question keeps exactly the options it
has, lettered from A; nothing downstream invents the others. Per-question option scores travel
as ``(n, MAX_OPTIONS)`` arrays whose columns past a question's last option are NaN: a missing
option is masked (never ranked, never named), not padded with a score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H", "I", "J")
MAX_OPTIONS = len(LETTERS)
MIN_OPTIONS = 2
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Question:
    """One multiple-choice question.

    ``row`` is the 0-based data row (or record) in its file: it is what the gold passage titles
    number. ``source`` names the set, by default the file's stem (``stem_1k``). ``passage`` is a
    format's own gold passage (SciQ's ``support``): kept apart, and shown to no reader unless a
    user asks for it (``questions.show_passages``).
    """

    id: str
    prompt: str
    options: tuple[str, ...]
    answer: str | None
    source: str
    row: int
    passage: str | None = None

    @property
    def letters(self) -> tuple[str, ...]:
        """The letters this question's options carry, A onwards."""
        return LETTERS[: len(self.options)]

    def option(self, letter: str) -> str:
        return self.options[self.letters.index(letter)]


def letters_for(count: int) -> str:
    """``"A, B, C"`` for 3: the letters a question of ``count`` options may be answered with."""
    return ", ".join(LETTERS[:count])


def option_count_fault(count: int) -> str | None:
    """Why ``count`` options cannot make a question, or None if they can."""
    if count < MIN_OPTIONS:
        return f"has {count} option(s); a question needs at least {MIN_OPTIONS}"
    if count > MAX_OPTIONS:
        return f"has {count} options; at most {MAX_OPTIONS} (A-J) are supported"
    return None


@dataclass(frozen=True)
class Problem:
    """One fault of a file: where (line, and data row or record) and what."""

    line: int
    data_row: int | None
    message: str

    def describe(self, path: str) -> str:
        where = f"line {self.line}"
        if self.data_row is not None:
            where += f" (data row {self.data_row}, counting from 1)"
        return f"{path}, {where}: {self.message}"


class QuestionFileError(ValueError):
    """A question file that breaks its format; ``problems`` lists every fault found."""

    def __init__(self, path: str, problems: Sequence[Problem]):
        self.path = path
        self.problems = list(problems)
        shown = [p.describe(path) for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        more = len(self.problems) - len(shown)
        if more:
            shown.append(f"... and {more} more problems in {path}")
        super().__init__("\n".join(shown))
