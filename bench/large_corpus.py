"""What the large-corpus configuration costs in recall, and what it saves in embedding.

Materialises the corpus, retrieval and rankings assets on the sample twice, in-process and each
in a fresh warehouse: once with the default configuration (every chunk embedded, dense
retrieval adding 10 chunks a question) and once with config/large_corpus.yaml's settings
(`chunk_embeddings.whole_corpus: false`, `candidate_passages.dense_k: 0`: only candidates are
embedded, by the semantic ranking). Prints, for each, the chunk texts embedded, the wall time
of the retrieval and rankings steps, and recall@1/5/20 and gold-in-context of every ranking on
the validation questions (the stem_1k split, whose source pages the sample holds).

    .venv/bin/python bench/large_corpus.py
"""

import tempfile
import time
from pathlib import Path

import duckdb
from dagster import DagsterInstance, RunConfig, materialize

import resources
from assets.corpus import DumpConfig, dump_files, wiki_articles, wiki_chunks
from assets.questions import QuestionsConfig, questions
from assets.rankings import RANKINGS as RANKING_ASSETS
from assets.rankings import ranking_edit_distance, ranking_search, ranking_semantic
from assets.retrieval import (
    CandidateConfig,
    EmbeddingsConfig,
    candidate_passages,
    chunk_embeddings,
    lexical_index,
)
from pipeline.paths import QUESTIONS, SAMPLE_DUMP
from pipeline.rankings.context_table import gold_in_candidates, retrieval_quality

CORPUS = [dump_files, wiki_articles, wiki_chunks, questions]
RETRIEVAL = [lexical_index, chunk_embeddings, candidate_passages, ranking_search,
             ranking_edit_distance, ranking_semantic]
RANKINGS = tuple(RANKING_ASSETS)  # the rankings' names, as the assets define them


def measure(root: Path, whole_corpus: bool, dense_k: int) -> dict[str, object]:
    database = root / "warehouse.duckdb"
    connections = {"warehouse": resources.Warehouse(database=str(database)),
                 "lexical_search": resources.LexicalSearch(path=str(root / "index")),
                 "vector_search": resources.VectorSearch(),
                 "models": resources.ModelStore(), "context_budget": resources.ContextBudget(),
                 "embedders": resources.SentenceEmbedders()}
    config = {"dump_files": DumpConfig(location=str(SAMPLE_DUMP)),
              "questions": QuestionsConfig(test_path=str(QUESTIONS / "extra_500.csv"),
                                           test_limit=0, train_paths=[]),
              "chunk_embeddings": EmbeddingsConfig(whole_corpus=whole_corpus),
              "candidate_passages": CandidateConfig(dense_k=dense_k)}
    with DagsterInstance.ephemeral() as instance:
        materialize(CORPUS, instance=instance, resources=connections,
                    run_config=RunConfig({k: v for k, v in config.items()
                                          if k in ("dump_files", "questions")}))
        started = time.perf_counter()
        materialize([*CORPUS, *RETRIEVAL], selection=RETRIEVAL, instance=instance,
                    resources=connections,
                    run_config=RunConfig({k: v for k, v in config.items()
                                          if k in ("chunk_embeddings", "candidate_passages")}))
        seconds = time.perf_counter() - started
    with duckdb.connect(str(database), read_only=True) as db:
        chunks = db.execute("SELECT count(DISTINCT content_hash) FROM wiki_chunks").fetchone()[0]
        embedded = db.execute("SELECT count(DISTINCT e.content_hash) FROM text_embeddings e "
                              "JOIN wiki_chunks c USING (content_hash)").fetchone()[0]
        return {"seconds": seconds, "chunks": chunks, "embedded": embedded,
                "candidates": gold_in_candidates(db)[0],
                **{ranking: retrieval_quality(db, ranking) for ranking in RANKINGS}}


def main() -> None:
    results = {}
    for name, whole, dense in (("default (whole corpus, dense_k 10)", True, 10),
                               ("large corpus (candidates only, dense_k 0)", False, 0)):
        with tempfile.TemporaryDirectory() as folder:
            results[name] = measure(Path(folder), whole, dense)
    for name, r in results.items():
        print(f"{name}: {r['embedded']} of {r['chunks']} chunk texts embedded; retrieval and "
              f"rankings {r['seconds']:.0f}s; gold among candidates {r['candidates']:.3f}")
        print(f"  {'ranking':15}{'R@1':>7}{'R@5':>7}{'R@20':>7}{'in context':>12}{'95% CI':>18}")
        for ranking in RANKINGS:
            q = r[ranking]
            print(f"  {ranking:15}{q['recall_at_1']:7.3f}{q['recall_at_5']:7.3f}"
                  f"{q['recall_at_20']:7.3f}{q['gold_in_context']:12.3f}"
                  f"   [{q['gold_in_context_low']:.3f}, {q['gold_in_context_high']:.3f}]")
    default, large = results.values()
    print(f"chunk texts embedded: {large['embedded'] / max(default['embedded'], 1):.3f}x; "
          f"retrieval and rankings time: {large['seconds'] / default['seconds']:.2f}x")


if __name__ == "__main__":
    main()
