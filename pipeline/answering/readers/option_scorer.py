"""The multiple-choice reader's network: one encoder, mean-pooled, options against sentences.

Kept apart from :mod:`pipeline.answering.readers.multiple_choice` so that importing the reader (as
the Dagster definitions do) does not import torch; only training and scoring load this module.

Questions have 2 to 10 options, and a batch mixes them: the options of a batch are one flat list
with the question each belongs to (``option_owner``) and its place in that question
(``option_slot``), and the logits come back as ``(n, MAX_OPTIONS)`` with :data:`ABSENT` where a
question has no option. ``ABSENT`` is a large but finite negative number rather than ``-inf`` or
NaN: a softmax gives such a slot exactly 0 in float32 (``exp(-1e4)`` underflows), so
cross-entropy and the KL term equal those over the question's own options, while no ``-inf -
-inf`` or ``0 * inf`` can make a NaN in the loss or its gradients. ``-1e4`` is far below any
real logit (a cosine times the learnt scale, which starts at 20), stays finite in float16 and
bfloat16, and stays finite after the division by a distillation temperature in float32. The
numpy logits handed out of the reader put NaN there (the pipeline's mark of a missing option).
"""

from __future__ import annotations

import math

import torch

from pipeline.questions.question import MAX_OPTIONS

INITIAL_SCALE = 20.0  # cosine similarities times this are the logits; it is learnt
ABSENT = -1e4  # the logit of an option a question does not have (see the module docstring)


class OptionScorer(torch.nn.Module):
    """Scores each option by its best cosine similarity to a sentence of the question's context.

    Options and sentences go through the same encoder and the attention-masked mean of its last
    hidden states (what sentence-transformers encoders were trained to produce), normalised to
    unit length; an option's logit is its largest similarity to any sentence of its own
    question's context, times a learnt scale. Untrained, this is the similarity reader; training
    moves the encoder so that the correct option lands nearest its evidence.
    """

    kind = "dual_encoder"

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(INITIAL_SCALE)))

    def head_parameters(self) -> list[torch.nn.Parameter]:
        """What the encoder lacks and is trained at the head rate: the similarity scale."""
        return [self.log_scale]

    def body_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return list(self.encoder.named_parameters())

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors of a batch of tokenised texts."""
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def forward(self, options: dict[str, torch.Tensor], sentences: dict[str, torch.Tensor],
                owner: torch.Tensor, option_owner: torch.Tensor, option_slot: torch.Tensor,
                counts: torch.Tensor) -> torch.Tensor:
        """``(n, MAX_OPTIONS)`` logits, :data:`ABSENT` past each question's options.

        ``options`` holds every question's options, flattened in order; ``option_owner`` and
        ``option_slot`` say which question each belongs to and where in it; ``counts`` how many
        options each of the ``n`` questions has. ``sentences`` holds every question's context
        sentences, ``owner`` the question index of each sentence.
        """
        option_vectors = self.embed(options)
        similarities = option_vectors @ self.embed(sentences).T  # (options, sentences)
        own = owner.unsqueeze(0) == option_owner.unsqueeze(1)
        best = similarities.masked_fill(~own, -2.0).max(dim=1).values
        # A question whose context has no sentence gets 0 for every option, not -2.
        best = torch.where(own.any(dim=1), best, torch.zeros_like(best))
        scores = best * self.log_scale.exp()
        absent = torch.full((counts.shape[0], MAX_OPTIONS), ABSENT, dtype=scores.dtype,
                            device=scores.device)
        return absent.index_put((option_owner, option_slot), scores)


def present(logits: torch.Tensor) -> torch.Tensor:
    """Where ``logits`` (as :meth:`OptionScorer.forward` gives them) hold a real option."""
    return logits > ABSENT / 2


def mixed_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
               gold_weight: float, temperature: float,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """The distillation objective, averaged over the questions that carry any target.

    ``logits`` is ``(n, MAX_OPTIONS)`` (any width works), ``mask`` marks the options each
    question has (by default: where ``logits`` are not :data:`ABSENT`). ``labels`` holds the gold
    option (-1: none), ``teacher`` the teacher's letter log-probabilities, NaN where the question
    has no option (a row NaN over the question's options: no teacher). A question with both
    costs ``gold_weight`` times the cross-entropy on its gold option plus ``1 - gold_weight``
    times the KL divergence from the teacher's distribution to the student's, both softened by
    ``temperature`` and scaled by its square (Hinton et al., 2015: the gradients of the soft
    term then keep their size as the temperature changes). A question with only one of the two
    learns from that one alone. Both terms range over the question's own options only: the
    absent ones get :data:`ABSENT` on both sides (probability 0) and are left out of the KL sum.
    """
    functional = torch.nn.functional
    if mask is None:
        mask = present(logits)
    mask = mask.to(torch.bool)
    logits = logits.masked_fill(~mask, ABSENT)
    has_gold = labels >= 0
    has_teacher = ~(torch.isnan(teacher) & mask).any(dim=1)
    cross_entropy = functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    # ABSENT is put in after the division by the temperature, so it stays finite at any one.
    student = functional.log_softmax((logits / temperature).masked_fill(~mask, ABSENT), dim=1)
    target = functional.log_softmax((teacher.nan_to_num(0.0).to(logits.dtype) / temperature)
                                    .masked_fill(~mask, ABSENT), dim=1)
    gap = (target - student).masked_fill(~mask, 0.0)
    divergence = (target.exp().masked_fill(~mask, 0.0) * gap).sum(dim=1) * temperature ** 2
    both = has_gold & has_teacher
    gold = torch.where(both, gold_weight, has_gold.to(logits.dtype))
    soft = torch.where(both, 1.0 - gold_weight, has_teacher.to(logits.dtype))
    counted = (has_gold | has_teacher).sum().clamp(min=1)
    return (gold * cross_entropy + soft * divergence).sum() / counted
