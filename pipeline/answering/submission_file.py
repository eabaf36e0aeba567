"""submission.csv: ``id,prediction`` with the three best letters per test question, best
first, in the test file's order; written atomically (a reader never sees half a file)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from pipeline.answering import blend, option_scores
from pipeline.steps import Markdown, StepError, Work


def build(db: duckdb.DuckDBPyConnection, path: Path, log: Callable[[str], None] = print) -> Work:
    ids, scores, _ = option_scores.read_scores(db, "answer_scores", "test")
    expected = db.execute("SELECT count(*) FROM questions WHERE role = 'test'").fetchone()[0]
    if len(ids) != expected:
        raise StepError(f"the answers cover {len(ids)} of {expected} test questions; "
                        "materialise the cascade again")
    text = "id,prediction\n" + "".join(
        f"{qid},{prediction}\n"
        for qid, prediction in zip(ids, blend.predictions(scores), strict=True))
    write_atomically(path, text)
    log(f"wrote {len(ids)} predictions to {path}")
    return Work(text_version(text), {"path": str(path)})


def text_version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def file_version(path: Path) -> str | None:
    """The version of the file as it is on disk: a deleted or edited file is written again."""
    return text_version(path.read_text()) if path.is_file() else None


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: a reader never sees half a submission."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def describe(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"path": str(path)}
    lines = path.read_text().splitlines()
    return {"path": str(path), "row_count": len(lines) - 1,
            "preview": Markdown("```\n" + "\n".join(lines[:6]) + "\n```")}
