"""The sentence-embedder resource: the recipe's two embedders, resolved through the model store."""

from collections.abc import Callable
from functools import cache
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.models import ResolvedModel
from pipeline.retrieval.embeddings import Embedder, embedder_key
from resources.models import ModelStore

Role = Literal["prompt", "option"]


class SentenceEmbedders(ConfigurableResource):
    """Which sentence-transformers models embed what.

    ``prompt``: chunks and prompts, for dense retrieval and prompt↔passage similarity. The
    4th-place recipe used msmarco-bert-base-dot-v5, which no package carries here; the fallback,
    all-MiniLM-L6-v2, is what runs on these machines, and the asset metadata says so.
    ``option``: options against the best passages. The recipe used all-mpnet-base-v2 (bundled
    here); on these CPUs the default is all-MiniLM-L6-v2, whose vectors of the passages the
    corpus embedding already holds: on the sample it put the source passage first as often
    (recall@1 0.653 against 0.649 on the 225 validation questions) and into the context as often
    (0.978 both), in 23 s where all-mpnet-base-v2 took 14 min 49 s. Name all-mpnet-base-v2 on a
    GPU. Each name is a hub id or a local path; a user with the recipe's models points at them.
    """

    prompt_model: str = "sentence-transformers/msmarco-bert-base-dot-v5"
    prompt_fallbacks: list[str] = Field(
        default_factory=lambda: ["sentence-transformers/all-MiniLM-L6-v2"])
    option_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    option_fallbacks: list[str] = Field(default_factory=list)
    batch_size: int = 64
    threads: int | None = Field(default=None, description="torch threads (default: torch's).")
    device: str = Field(default="auto", description="torch device; auto: a GPU if there is one.")
    runtime: Literal["fp32", "int8", "int8-partial"] = Field(
        default="fp32",
        description="int8 runs faster on a CPU but moves rankings (docs/benchmarks.md).")

    def references(self, role: Role) -> tuple[str, tuple[str, ...]]:
        if role == "prompt":
            return self.prompt_model, tuple(self.prompt_fallbacks)
        return self.option_model, tuple(self.option_fallbacks)

    def resolve(self, role: Role, models: ModelStore,
                log: Callable[[str], None] = print) -> ResolvedModel:
        """The model a role uses (cheap once assembled: nothing is loaded)."""
        model, fallbacks = self.references(role)
        return models.resolve(model, fallbacks, log=log)

    def key(self, model: ResolvedModel) -> str:
        """The key of the vectors ``model`` gives under this runtime, without loading it."""
        return embedder_key(model, self.runtime) or self.load(model).key

    def load(self, model: ResolvedModel) -> Embedder:
        """The loaded embedder: once per process, however many assets use it."""
        return _embedder(model, self.batch_size, self.threads, self.runtime, self.device)


@cache
def _embedder(model: ResolvedModel, batch_size: int, threads: int | None,
              runtime: str, device: str) -> Embedder:
    return Embedder(model, batch_size=batch_size, threads=threads, runtime=runtime,
                    device=device)
