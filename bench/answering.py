"""Readers and the blend on the current warehouse: cost per question, MAP@3, and where it is lost.

Prints, from the warehouse ``make run`` left:

* seconds per question of each reader (lexical, similarity, the trained multiple-choice encoder,
  and the heavy reader: Qwen2.5-Coder-1.5B through llama.cpp, and the same weights through
  transformers with ``--transformers``) on the first ``--questions`` validation questions with
  their semantic-ranking contexts, timed here in one process one after another (model loading
  excluded and reported apart), and each reader's MAP@3 on those questions;
* MAP@3 with its 95% bootstrap interval of every (reader, ranking) source and of the blend on
  all validation questions (the ``score`` asset's table);
* the blend's MAP@3 split by whether the best ranking's packed context holds the gold passage:
  how much is lost to retrieval misses and how much to reader errors.

    make run && .venv/bin/python bench/answering.py [--questions 50]
"""

import argparse
import time

import duckdb
import numpy as np

from pipeline.answering.readers import heavy, pad
from pipeline.answering.readers.lexical import LexicalReader
from pipeline.answering.readers.multiple_choice import MultipleChoiceReader
from pipeline.answering.readers.similarity import SimilarityReader
from pipeline.answering.reading_list import reading_list
from pipeline.metrics import average_precisions, estimate
from pipeline.models import resolve
from pipeline.paths import work_dir
from pipeline.retrieval.embeddings import Embedder
from resources import HeavyReader, ReaderSettings


def time_readers(db: duckdb.DuckDBPyConnection, count: int, transformers: bool,
                 context_tokens: int) -> None:
    items = reading_list(db, "semantic", roles=("validation",))
    pairs = items.pairs()[:count]
    answers = [q.answer for q, _ in pairs]
    settings = ReaderSettings()
    trained = db.execute("SELECT path, max_length FROM trained_readers "
                         "ORDER BY trained_at DESC LIMIT 1").fetchone()

    def letters(runtime: str):
        reader = heavy.load(resolve(heavy.DEFAULT_MODEL), runtime,  # type: ignore[arg-type]
                            context_tokens=context_tokens)
        return lambda batch: pad([reader.score(q, c) for q, c in batch])

    readers = {
        "lexical": lambda: LexicalReader().score_many,
        "similarity": lambda: SimilarityReader(
            Embedder(resolve(settings.similarity_model))).score_many,
        "multiple_choice": lambda: MultipleChoiceReader(trained[0],
                                                        max_length=trained[1]).score_many,
        "heavy (llama.cpp)": lambda: letters("llama.cpp"),
        **({"heavy (transformers)": lambda: letters("transformers")} if transformers else {}),
    }
    print(f"readers on {len(pairs)} validation questions, semantic contexts:")
    print(f"{'reader':22}{'load s':>8}{'s/question':>12}{'MAP@3':>8}")
    for name, build in readers.items():
        if name == "multiple_choice" and trained is None:
            print(f"{name:22}  (not trained: run make run first)")
            continue
        started = time.perf_counter()
        score_many = build()
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        logits = np.asarray(score_many(pairs))
        seconds = (time.perf_counter() - started) / len(pairs)
        print(f"{name:22}{loaded:8.1f}{seconds:12.3f}"
              f"{average_precisions(logits, answers).mean():8.3f}")


def scores(db: duckdb.DuckDBPyConnection) -> None:
    rows = db.execute("SELECT name, map_at_3, low, high, questions FROM scores "
                      "ORDER BY name = 'blend' DESC, map_at_3 DESC").fetchall()
    print(f"\nMAP@3 on {rows[0][4]} validation questions (95% bootstrap interval):")
    for name, value, low, high, _ in rows:
        print(f"  {name:32}{value:7.3f}   [{low:.3f}, {high:.3f}]")
    # The learned ranker has no per-source weights: its sources are listed with none.
    chosen = db.execute("SELECT source, weight, method FROM blend_weights "
                        "ORDER BY weight DESC NULLS LAST, source").fetchall()
    if chosen:
        print(f"blend: {chosen[0][2]} over " + ", ".join(
            s if w is None else f"{s} {w:.2f}" for s, w, _ in chosen))


def losses(db: duckdb.DuckDBPyConnection) -> None:
    rows = db.execute("""
        SELECT list_contains(c.titles, q.gold_title), r.gold_rank
        FROM questions q JOIN score_gold_ranks r ON r.question_id = q.id
        JOIN packed_contexts c ON c.role = q.role AND c.question_id = q.id
            AND c.ranking = 'semantic'
        WHERE q.role = 'validation' AND q.gold_title IS NOT NULL""").fetchall()
    if not rows:
        return
    print("\nthe blend's MAP@3 by retrieval outcome (semantic ranking's context):")
    for found in (True, False):
        ranks = np.array([rank for hit, rank in rows if bool(hit) == found])
        if not len(ranks):
            continue
        ap = np.where(ranks <= 3, 1.0 / ranks, 0.0)
        est = estimate(ap)
        label = "gold passage in context" if found else "gold passage missed"
        print(f"  {label:26}{len(ranks):5d} questions  MAP@3 {est.value:.3f} "
              f"[{est.low:.3f}, {est.high:.3f}]  lost: {(1 - ap).sum() / len(rows):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=str(work_dir() / "warehouse.duckdb"))
    parser.add_argument("--questions", type=int, default=30,
                        help="validation questions each reader is timed on")
    parser.add_argument("--transformers", action="store_true",
                        help="also time the heavy reader through transformers (fp32, slow)")
    parser.add_argument("--context-tokens", type=int, default=HeavyReader().context_tokens,
                        help="context tokens in the heavy reader's prompt (the cascade's "
                        "default unless given)")
    args = parser.parse_args()
    with duckdb.connect(args.warehouse, read_only=True) as db:
        time_readers(db, args.questions, args.transformers, args.context_tokens)
        scores(db)
        losses(db)


if __name__ == "__main__":
    main()
