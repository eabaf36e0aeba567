"""Names a warehouse may hold from before they were renamed, as (old, new) pairs.

The tables that store them rename old rows when they are opened for writing
(:func:`pipeline.answering.logit_table.create`, :func:`pipeline.rankings.context_table.create`),
so an older warehouse keeps its rows and its cached readings under the new names.
"""

# The heavy reader's logits were stored as ``causal_lm`` whichever runtime read them.
RENAMED_READERS = (("causal_lm", "heavy"),)
# The lexical search score's ranking was ``es`` (the recipe's name) whichever backend searched.
RENAMED_RANKINGS = (("es", "search"),)
