"""What a question is for (its role), and which roles each ranking ranks.

Roles: ``test`` (answered for the submission), ``validation`` (scored, never learned from),
``blend`` (scored by the readers to fit their blend), ``train`` (a reader's fine-tuning set) and
``teacher`` (extra questions, answered or not, that the distillation's teacher labels).
"""

from __future__ import annotations

# The roles whose questions every reader scores: the submission's, the score's and the blend's.
SCORED_ROLES = ("test", "validation", "blend")
# The ranking whose contexts the multiple-choice reader is trained on. Only this ranking ranks
# the train questions: the cheapest one, since the semantic ranking's option embedder costs
# about a second a question on a CPU, and the reader learns to read from the edit-distance
# contexts as well (they hold the gold passage for about 0.8 of the questions).
TRAIN_RANKING = "edit_distance"


def ranked_roles(ranking: str) -> tuple[str, ...] | None:
    """The roles a ranking ranks: every role (None) for the training ranking, else the scored
    ones."""
    return None if ranking == TRAIN_RANKING else SCORED_ROLES
