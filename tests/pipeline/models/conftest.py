"""Fixtures of the model store tests: an empty Hugging Face cache and a fresh store.

The hub is never contacted (the tests pass ``online=False``) and the local Hugging Face cache is
taken to be empty, so the results do not depend on the machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.models import resolution


@pytest.fixture(autouse=True)
def no_hf_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as on a machine whose Hugging Face cache is empty."""

    def not_cached(reference: str, local_only: bool) -> Path:
        raise FileNotFoundError(f"{reference} is not in the (empty) cache")

    monkeypatch.setattr(resolution, "_hub_snapshot", not_cached)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "models"
