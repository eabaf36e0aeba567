"""What a pipeline step hands back to whoever runs it, in plain Python.

The domain computes a table and says what it wrote; the orchestrator (Dagster, in ``assets/``)
turns that into a materialisation. Keeping these three types here keeps the domain free of
Dagster: a step returns :class:`Work`, marks Markdown metadata with :class:`Markdown`, and
raises :class:`StepError` for a problem the user must fix (missing inputs, bad config), which
the asset layer reports as a clean failure rather than a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Work:
    """What a step computed: the data version of what it wrote, metadata about the work, and
    how much it left ``undone`` (questions a time budget left unread): a step that left work
    undone is not complete, so the next run with the same inputs and config does the rest."""

    data_version: str
    metadata: dict[str, Any] = field(default_factory=dict)
    undone: int = 0


class Markdown(str):
    """Metadata text to be shown as Markdown (a table, a preview), not as plain text."""


class StepError(RuntimeError):
    """A step cannot run as configured, for a reason the message tells the user how to fix."""
