"""The cross-encoder network: ``AutoModelForMultipleChoice`` over (question + option, context).

Why: every top solution of the Kaggle science exam read the retrieved context with a
cross-encoder, the question and one option in the first segment and the context in the second,
one logit per option from the model's multiple-choice head and a softmax over the options
(the 4th place fine-tuned deberta-v3-large so at 512, 768 and 1280 tokens). Here any encoder
with a multiple-choice head in transformers works by hub id or folder (BERT, MPNet, DeBERTa-v2/v3,
RoBERTa, ...); the head's new layers are trained from scratch, the encoder fine-tuned.

Layout of a pair: ``"<question> <option>"`` then the context, cut with ``longest_first`` to
``max_length`` tokens: tokens come off the longer segment first, so the question and option stay
whole (up to half the budget, which nearly every one is) and the context fills the rest.

Questions have 2 to 10 options and a batch mixes them. A multiple-choice head scores every
choice on its own (the softmax over choices is the loss's, not the model's), so the batch's
pairs are one flat list passed as ``(pairs, 1, tokens)`` (one choice each: no question is padded
with pairs it does not have), and the logits are put back as ``(n, MAX_OPTIONS)`` with
:data:`~pipeline.answering.readers.option_scorer.ABSENT` past each question's options, as the
dual encoder's are, so the same loss and distillation apply unchanged.

Kept apart from :mod:`pipeline.answering.readers.multiple_choice` (which the Dagster definitions
import) so that only training and scoring import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.answering.readers.option_scorer import ABSENT
from pipeline.questions.question import MAX_OPTIONS, Question


def pair_texts(question: Question, context: str) -> list[tuple[str, str]]:
    """The (question + option, context) pair of each option the question has, in order."""
    return [(f"{question.prompt.strip()} {option.strip()}", context.strip())
            for option in question.options]


class PairScorer(torch.nn.Module):
    """A multiple-choice model scoring each (question + option, context) pair of a batch."""

    kind = "cross_encoder"

    def __init__(self, model: torch.nn.Module, new_parameters: Sequence[str] = ()) -> None:
        super().__init__()
        self.model = model
        # The layers the checkpoint did not have (the head, usually): trained at the head rate.
        self.new_parameters = frozenset(new_parameters)

    @property
    def encoder(self) -> torch.nn.Module:
        """The transformers model (gradient checkpointing and saving go through it)."""
        return self.model

    def head_parameters(self) -> list[torch.nn.Parameter]:
        return [p for name, p in self.model.named_parameters() if name in self.new_parameters]

    def body_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(name, p) for name, p in self.model.named_parameters()
                if name not in self.new_parameters]

    def forward(self, pairs: dict[str, torch.Tensor], option_owner: torch.Tensor,
                option_slot: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``(n, MAX_OPTIONS)`` logits, :data:`ABSENT` past each question's options.

        ``pairs`` holds every question's pairs, flattened in order; ``option_owner`` and
        ``option_slot`` say which question each belongs to and where in it; ``counts`` how many
        options each of the ``n`` questions has.
        """
        scores = self.model(**{key: value.unsqueeze(1) for key, value in pairs.items()}
                            ).logits[:, 0]
        absent = torch.full((counts.shape[0], MAX_OPTIONS), ABSENT, dtype=scores.dtype,
                            device=scores.device)
        return absent.index_put((option_owner, option_slot), scores)


def load(folder: Path, *, fresh_head: bool) -> tuple[PairScorer, Any]:
    """A :class:`PairScorer` and its tokenizer from ``folder``, in float32 (AdamW updates
    underflow in half-precision parameters; mixed precision is autocast's). With ``fresh_head``
    the layers the checkpoint lacks are remembered as the head."""
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model, info = AutoModelForMultipleChoice.from_pretrained(folder, dtype=torch.float32,
                                                             output_loading_info=True)
    return PairScorer(model.float(), info["missing_keys"] if fresh_head else ()), tokenizer


def save(scorer: PairScorer, tokenizer: Any, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    scorer.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
