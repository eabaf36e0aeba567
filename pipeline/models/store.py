"""Where the model store lives when a caller names none.

Every function that reads or writes the store takes ``store`` and falls back to
:func:`default_store`; it sits below hashing, bundles and resolution so that all of them can
use it.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.paths import work_dir


def default_store() -> Path:
    """Where bundled models are assembled: ``models/`` in the git-ignored working area."""
    return work_dir() / "models"
