"""The context budget resource: which tokenizer measures a packed context, and how long."""

from collections.abc import Callable
from functools import cache

from dagster import ConfigurableResource
from pydantic import Field

from resources.models import ModelStore


class ContextBudget(ConfigurableResource):
    """How contexts are packed: the reader's tokenizer and its token budget.

    One resource for the three rankings, so that their contexts are always comparable. The
    4th-place team went from 512 to 1280 tokens with deberta-v3-large on a GPU; the CPU default
    is the small encoder's tokenizer and a short budget.
    """

    tokenizer: str = Field(default="sentence-transformers/all-MiniLM-L6-v2",
                           description="Hub id or path of the reader whose tokenizer counts.")
    tokens: int = Field(default=384, description="Token budget of a packed context.")

    def counter(self, models: ModelStore, log: Callable[[str], None]) -> Callable[[str], int]:
        return _token_counter(str(models.resolve(self.tokenizer, log=log).path))


@cache
def _token_counter(path: str) -> Callable[[str], int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
