"""Packing a ranking's best passages into one context of the reader's token budget."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipeline.corpus.chunking import sentence_offsets
from pipeline.rankings.orders import RankedPassage
from pipeline.retrieval.passages import Passage


@dataclass(frozen=True)
class PackedContext:
    """A context and the passages it holds, in order; the last may be cut (``truncated``)."""

    text: str
    passages: tuple[Passage, ...]
    truncated: bool
    tokens: int

    @property
    def passage_ids(self) -> tuple[str, ...]:
        return tuple(p.passage_id for p in self.passages)

    @property
    def titles(self) -> tuple[str, ...]:
        return tuple(p.title for p in self.passages)


def pack_context(ranked_passages: Iterable[Passage | RankedPassage],
                 count_tokens: Callable[[str], int], budget: int,
                 separator: str = "\n\n") -> PackedContext:
    """The best passages joined by ``separator``, within ``budget`` tokens.

    Passages are taken in the given order while the whole context fits. The first that does
    not fit is cut to fill what is left, at the last sentence end that fits (at a word end if
    not even its first sentence fits), and packing stops there: later passages rank lower, and
    a context that ends mid-passage still ends on a whole sentence. Tokens are counted on the
    whole context, not summed per passage, because a tokenizer may merge across the joins.
    """
    if budget < 1:
        raise ValueError("budget must be positive")
    text, held, truncated = "", [], False
    for item in ranked_passages:
        passage = item.passage if isinstance(item, RankedPassage) else item
        prefix = text + separator if held else ""
        if count_tokens(prefix + passage.text) <= budget:
            text = prefix + passage.text
            held.append(passage)
            continue
        piece = _fit(passage.text, prefix, count_tokens, budget)
        if piece:
            text = prefix + piece
            held.append(passage)
            truncated = True
        break
    return PackedContext(text, tuple(held), truncated, count_tokens(text) if text else 0)


def _fit(text: str, prefix: str, count_tokens: Callable[[str], int], budget: int) -> str:
    """The longest sentence-aligned (else word-aligned) head of ``text`` that fits."""
    if not text.strip():
        return ""
    sentence_ends = [end for _, end in sentence_offsets(text)]
    head = _longest(text, sentence_ends, prefix, count_tokens, budget)
    if head:
        return head
    first_sentence = text[:sentence_ends[0]] if sentence_ends else text
    word_ends = [i for i in range(1, len(first_sentence) + 1)
                 if not first_sentence[i - 1].isspace()
                 and (i == len(first_sentence) or first_sentence[i].isspace())]
    return _longest(text, word_ends, prefix, count_tokens, budget)


def _longest(text: str, ends: list[int], prefix: str, count_tokens: Callable[[str], int],
             budget: int) -> str:
    """``text[:end]`` for the largest of the ascending ``ends`` that fits (binary search)."""
    low, high, best = 0, len(ends) - 1, ""
    while low <= high:
        middle = (low + high) // 2
        head = text[:ends[middle]]
        if count_tokens(prefix + head) <= budget:
            best, low = head, middle + 1
        else:
            high = middle - 1
    return best
