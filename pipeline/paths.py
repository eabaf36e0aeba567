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
