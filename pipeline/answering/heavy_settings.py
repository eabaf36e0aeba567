"""How the heavy reader reads: the one definition of its settings and their defaults.

The cascade, the teacher and the scorecard read with these (through the ``heavy_reader``
resource, whose defaults are read from here). A module of its own, importing only the readers:
the resource imports it, and every asset module imports the resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.answering.readers import heavy
from pipeline.models import ResolvedModel
from pipeline.source_version import source_version

# The code of the heavy readers (prompt, runtime, letter scoring): cached readings made by other
# code are not reused.
READER_CODE = source_version("pipeline.answering.readers.heavy")


@dataclass(frozen=True)
class HeavySettings:
    """How the heavy reader reads, and how long it may take (``max_seconds``: None, no limit)."""

    runtime: str = "auto"
    context_tokens: int = heavy.llama_cpp.DEFAULT_CONTEXT_TOKENS
    permutations: int = 1
    threads: int | None = None
    device: str = "auto"
    max_seconds: float | None = None
    precision: str = "auto"
    scoring: str = "letter"
    batch_size: int = 1

    def setup(self, model: ResolvedModel) -> heavy.Setup:
        """The runtime, device type and precision ``model`` is read with under these settings."""
        return heavy.setup(model, self.runtime, self.device,  # type: ignore[arg-type]
                           self.precision)

    def cache_settings(self, setup: heavy.Setup) -> dict[str, Any]:
        """What a reading depends on besides the weights and the question: the setup it is
        made with (runtime, device type, precision), the prompt settings and the code; not the
        threads or the batch size, which change the speed, not the answer."""
        return {**setup.as_dict(), "context_tokens": self.context_tokens,
                "permutations": self.permutations, "scoring": self.scoring, "code": READER_CODE}
