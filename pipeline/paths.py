"""Where the project keeps its inputs and its working area."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DUMP = PROJECT_ROOT / "data" / "wiki"
QUESTIONS = PROJECT_ROOT / "data" / "questions"


def work_dir() -> Path:
    """The git-ignored working area: warehouse, indexes, models, Dagster home.

    ``SCIENCE_EXAM_WORKDIR`` moves it (to a bigger disk, say); the default is ``var/`` in the
    project.
    """
    return Path(os.environ.get("SCIENCE_EXAM_WORKDIR", PROJECT_ROOT / "var")).resolve()


def stored_path(path: Path) -> str:
    """``path`` as a table records it: relative to the working area when inside it, so a
    working area moved or copied elsewhere still finds what it recorded; else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(work_dir()))
    except ValueError:
        return str(resolved)


def recorded_path(text: str) -> Path:
    """A path recorded by :func:`stored_path`, back: a relative one is in the working area."""
    path = Path(text)
    return path if path.is_absolute() else work_dir() / path
