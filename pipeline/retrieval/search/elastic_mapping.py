"""The chunk index as Elasticsearch sees it: settings, mapping, documents and queries.

Analysis: Elasticsearch's ``english`` analyzer rebuilt as a custom analyzer (its documented
recipe) with two deliberate changes so that tantivy can reproduce it token for token: tokens
are runs of letters and digits (tantivy's ``simple`` tokenizer) instead of the Unicode standard
tokenizer, and the stemmer is Snowball English (``porter2``, tantivy's) instead of the original
Porter stemmer. Stop words are Lucene's English list, in both.
"""

from __future__ import annotations

from typing import Any

from pipeline.retrieval.search.base import (
    ENGLISH_STOP_WORDS,
    SCHEMA_VERSION,
    SEARCH_FIELDS,
    TOKEN_SPLIT_PATTERN,
    Doc,
)

ANALYZER = "english_chunks"
SIMILARITY = "bm25_chunks"
ANALYSIS: dict[str, Any] = {
    "tokenizer": {"letters_digits": {"type": "pattern", "pattern": TOKEN_SPLIT_PATTERN}},
    "filter": {
        "english_stop": {"type": "stop", "stopwords": list(ENGLISH_STOP_WORDS)},
        "english_snowball": {"type": "stemmer", "language": "porter2"},
    },
    "analyzer": {ANALYZER: {"type": "custom", "tokenizer": "letters_digits",
                            "filter": ["lowercase", "english_stop", "english_snowball"]}},
}
TEXT_FIELD = {"type": "text", "analyzer": ANALYZER, "similarity": SIMILARITY,
              "index_options": "freqs"}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "_meta": {"schema_version": SCHEMA_VERSION},
    "properties": {
        "chunk_id": {"type": "keyword"},
        "content_hash": {"type": "keyword", "index": False},
        "title": TEXT_FIELD,
        "text": TEXT_FIELD,
    },
}
# What a live index must have for this code to write to and search it.
REQUIRED_FIELDS = {
    "chunk_id": {"type": "keyword"},
    "content_hash": {"type": "keyword"},
    "title": {"type": "text", "analyzer": ANALYZER},
    "text": {"type": "text", "analyzer": ANALYZER},
}


def index_settings(shards: int, replicas: int) -> dict[str, Any]:
    """Settings of a new concrete index. One shard by default: BM25 statistics are per shard,
    and a corpus of a few million short chunks fits one comfortably."""
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "similarity": {SIMILARITY: {"type": "BM25", "k1": 1.2, "b": 0.75}},
        "analysis": ANALYSIS,
    }


def mapping_problems(mapping: dict[str, Any]) -> list[str]:
    """What keeps an index with ``mapping`` (its ``mappings`` object) from serving this code:
    another schema version, or required fields missing or typed or analysed otherwise."""
    problems = []
    version = mapping.get("_meta", {}).get("schema_version")
    if version != SCHEMA_VERSION:
        problems.append(f"schema_version {version}, expected {SCHEMA_VERSION}")
    properties = mapping.get("properties", {})
    for field, required in REQUIRED_FIELDS.items():
        actual = properties.get(field)
        if actual is None:
            problems.append(f"field {field} missing")
            continue
        wrong = {key: actual.get(key) for key, value in required.items()
                 if actual.get(key) != value}
        if wrong:
            problems.append(f"field {field} has {wrong}, expected {required}")
    return problems


def source(doc: Doc) -> dict[str, str]:
    """The ``_source`` of a chunk's document."""
    return {"chunk_id": doc.chunk_id, "title": doc.title, "text": doc.text,
            "content_hash": doc.content_hash}


def query_body(query: str, k: int) -> dict[str, Any]:
    """The search request for the ``k`` best chunks for free text ``query``, ids and scores
    only."""
    # most_fields sums the per-field BM25 scores, as the tantivy backend does.
    return {"query": {"multi_match": {"query": query, "fields": list(SEARCH_FIELDS),
                                      "type": "most_fields"}},
            "size": k, "_source": False, "track_total_hits": False}
