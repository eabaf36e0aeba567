"""The multiple-choice reader's network: an encoder, mean-pooled, and a linear head.

Kept apart from :mod:`pipeline.readers.multiple_choice` so that importing the reader (as the
Dagster definitions do) does not import torch; only training and scoring load this module.
"""

from __future__ import annotations

import torch


class OptionScorer(torch.nn.Module):
    """One logit per (question + option, context) pair: the attention-masked mean of the
    encoder's last hidden states (what sentence-transformers encoders were trained to produce),
    through dropout and a linear layer."""

    def __init__(self, encoder: torch.nn.Module, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **extra: torch.Tensor) -> torch.Tensor:
        """``(n, 5, length)`` inputs to ``(n, 5)`` logits."""
        n, options, length = input_ids.shape
        flat = {k: v.reshape(n * options, length) for k, v in
                {"input_ids": input_ids, "attention_mask": attention_mask, **extra}.items()}
        hidden = self.encoder(**flat).last_hidden_state
        mask = flat["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled)).view(n, options)
