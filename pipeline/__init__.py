"""Domain logic of the science-exam pipeline, in plain Python: no Dagster, no ``assets``, no
``resources`` imports. One package per stage (corpus, questions, retrieval, rankings,
answering) plus the model store; the Dagster layer in ``assets/`` calls into it.
"""
