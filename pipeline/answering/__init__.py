"""The answering stage: readers, their logits, the blend, the cascade, the score."""
