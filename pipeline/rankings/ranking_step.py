"""The step every ranking shares: rank the questions that need it, pack, store, describe.

A ranking is a function from questions and their candidate passages to ordered passages
(:data:`RankAll`); this module runs one over the questions whose rows are missing or stale
(per-question keys, :mod:`pipeline.questions.work_keys`), packs each question's best passages
into a context of the token budget (:mod:`pipeline.rankings.packing`) and stores both
(:mod:`pipeline.rankings.context_table`). The three rankings differ only in the function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from pipeline.questions import work_keys
from pipeline.questions.question import Question
from pipeline.questions.question_table import read_question_table
from pipeline.questions.roles import ranked_roles
from pipeline.rankings import context_table
from pipeline.rankings.orders import RankedPassage
from pipeline.rankings.packing import pack_context
from pipeline.retrieval.candidates import read_candidates
from pipeline.retrieval.passages import Passage
from pipeline.steps import Markdown, Work
from pipeline.tables import content_version, markdown_preview

Key = tuple[str, str]
Ranker = Callable[[Question, Sequence[Passage]], list[RankedPassage]]
RankAll = Callable[[duckdb.DuckDBPyConnection, list[tuple[str, Question]],
                    dict[Key, list[Passage]]], dict[Key, list[RankedPassage]]]


def per_question(rank: Ranker) -> RankAll:
    """A ranking that looks at one question at a time."""
    def rank_all(_db, asked, candidates):
        return {(role, q.id): rank(q, candidates.get((role, q.id), [])) for role, q in asked}
    return rank_all


def build(db: duckdb.DuckDBPyConnection, ranking: str, rank_all: RankAll, basis: str,
          token_counter: Callable[[], Callable[[str], int]], budget: int,
          log: Callable[[str], None] = print) -> Work:
    """Rank and pack the questions of ``ranking``'s roles whose rows ``basis`` (what every
    question's rows depend on alike) and their candidates no longer match; keep the rest.
    ``token_counter`` is called only when something is to be packed (it loads a tokenizer)."""
    roles = ranked_roles(ranking)
    asked = [(role, q) for role, q in read_question_table(db) if roles is None or role in roles]
    upstream = work_keys.item_keys(db, "candidate_passages")
    wanted = {(role, q.id): work_keys.derived_key(
        basis, upstream.get((role, q.id)) or work_keys.question_key(basis, role, q))
        for role, q in asked}
    todo = set(work_keys.prune(db, ["packed_contexts", "context_rankings"], wanted,
                               f"ranking = '{ranking}'"))
    asked = [(role, q) for role, q in asked if (role, q.id) in todo]
    if asked:
        count = token_counter()
        ranked = rank_all(db, asked, read_candidates(db))
        context_table.write_ranking(
            db, ranking, [(role, q.id, ranked[(role, q.id)],
                           pack_context(ranked[(role, q.id)], count, budget))
                          for role, q in asked], wanted)
    log(f"ranked {len(asked)} questions; {len(wanted) - len(asked)} kept their ranking")
    return Work(stored_version(db, ranking), {"questions_ranked": len(asked),
                                              "questions_reused": len(wanted) - len(asked)})


def stored_version(db: duckdb.DuckDBPyConnection, ranking: str) -> str:
    return content_version(db, f"(SELECT * FROM packed_contexts WHERE ranking = '{ranking}')",
                           "role, question_id, context")


def describe(db: duckdb.DuckDBPyConnection, ranking: str) -> dict[str, Any]:
    """Retrieval quality of the ranking (recall of the source passage, gold in context per
    question set) and what its contexts look like."""
    tokens = db.execute("SELECT round(avg(tokens), 1) FROM packed_contexts WHERE ranking = ?",
                        [ranking]).fetchone()[0]
    by_set = context_table.gold_in_context_by_set(db, ranking)
    table = ["| role | question set | questions with a source passage | gold in context |",
             "|---|---|---|---|"] + [f"| {role} | {source} | {n} | {share:.3f} |"
                                     for role, source, n, share in by_set]
    return {**context_table.retrieval_quality(db, ranking),
            **{f"gold_in_context_{role}_{source}": round(share, 4)
               for role, source, _, share in by_set},
            "gold_in_context_by_role_and_set": Markdown("\n".join(table)),
            "mean_context_tokens": tokens,
            "preview": Markdown(markdown_preview(
                db, f"SELECT question_id, titles, context FROM packed_contexts "
                    f"WHERE ranking = '{ranking}' ORDER BY role, question_id LIMIT 3",
                width=200))}
