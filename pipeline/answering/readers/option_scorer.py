"""The multiple-choice reader's network: one encoder, mean-pooled, options against sentences.

Kept apart from :mod:`pipeline.answering.readers.multiple_choice` so that importing the reader (as
the Dagster definitions do) does not import torch; only training and scoring load this module.
"""

from __future__ import annotations

import math

import torch

INITIAL_SCALE = 20.0  # cosine similarities times this are the logits; it is learnt


class OptionScorer(torch.nn.Module):
    """Scores each option by its best cosine similarity to a sentence of the question's context.

    Options and sentences go through the same encoder and the attention-masked mean of its last
    hidden states (what sentence-transformers encoders were trained to produce), normalised to
    unit length; an option's logit is its largest similarity to any sentence of its own
    question's context, times a learnt scale. Untrained, this is the similarity reader; training
    moves the encoder so that the correct option lands nearest its evidence.
    """

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(INITIAL_SCALE)))

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors of a batch of tokenised texts."""
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def forward(self, options: dict[str, torch.Tensor], sentences: dict[str, torch.Tensor],
                owner: torch.Tensor) -> torch.Tensor:
        """``(n, 5)`` logits: ``options`` holds 5 texts per question in order, ``sentences``
        every question's context sentences, ``owner`` the question index of each sentence."""
        option_vectors = self.embed(options)
        n = option_vectors.shape[0] // 5
        similarities = option_vectors @ self.embed(sentences).T  # (n * 5, sentences)
        own = owner.unsqueeze(0) == torch.arange(n, device=owner.device).repeat_interleave(5)[
            :, None]
        best = similarities.masked_fill(~own, -2.0).max(dim=1).values
        # A question whose context has no sentence gets 0 for every option, not -2.
        best = torch.where(own.any(dim=1), best, torch.zeros_like(best))
        return (best * self.log_scale.exp()).view(n, 5)


def mixed_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
               gold_weight: float, temperature: float) -> torch.Tensor:
    """The distillation objective, averaged over the questions that carry any target.

    ``labels`` holds the gold option (-1: none), ``teacher`` the teacher's five letter
    log-probabilities (a row of NaN: none). A question with both costs ``gold_weight`` times the
    cross-entropy on its gold option plus ``1 - gold_weight`` times the KL divergence from the
    teacher's distribution to the student's, both softened by ``temperature`` and scaled by its
    square (Hinton et al., 2015: the gradients of the soft term then keep their size as the
    temperature changes). A question with only one of the two learns from that one alone.
    """
    functional = torch.nn.functional
    has_gold = labels >= 0
    has_teacher = ~torch.isnan(teacher).any(dim=1)
    cross_entropy = functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    student = functional.log_softmax(logits / temperature, dim=1)
    target = functional.log_softmax(teacher.nan_to_num(0.0) / temperature, dim=1)
    divergence = (target.exp() * (target - student)).sum(dim=1) * temperature ** 2
    both = has_gold & has_teacher
    gold = torch.where(both, gold_weight, has_gold.to(logits.dtype))
    soft = torch.where(both, 1.0 - gold_weight, has_teacher.to(logits.dtype))
    counted = (has_gold | has_teacher).sum().clamp(min=1)
    return (gold * cross_entropy + soft * divergence).sum() / counted
