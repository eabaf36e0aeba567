"""The two errors of the model store, in a module of their own.

Hashing, bundle assembly and resolution all raise them, and callers catch them without caring
which of those raised; keeping them here lets each of those modules import them without
importing the others.
"""

from __future__ import annotations

from collections.abc import Sequence


class ModelNotFoundError(LookupError):
    """No source could supply a model; the message lists each place that was tried."""

    def __init__(self, message: str, attempts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)

    def reason(self) -> str:
        """One line: the places tried, for asset metadata."""
        return "; ".join(self.attempts) if self.attempts else str(self).splitlines()[0]


class BundleError(RuntimeError):
    """Downloading or assembling a bundled model failed (network, disk, or a hash mismatch)."""
