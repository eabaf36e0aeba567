"""The chunk index's mapping: what it requires of a live index, and the bodies it sends."""

from __future__ import annotations

import copy

from pipeline.retrieval.search.base import SCHEMA_VERSION, Doc
from pipeline.retrieval.search.elastic_mapping import (
    ANALYZER,
    MAPPINGS,
    index_settings,
    mapping_problems,
    query_body,
    source,
)


def test_the_mapping_this_code_creates_is_one_it_accepts() -> None:
    assert mapping_problems(copy.deepcopy(MAPPINGS)) == []
    settings = index_settings(shards=2, replicas=1)
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == (2, 1)
    assert ANALYZER in settings["analysis"]["analyzer"]


def test_another_schema_or_analysis_is_named() -> None:
    mapping = copy.deepcopy(MAPPINGS)
    mapping["_meta"]["schema_version"] = "0"
    mapping["properties"]["text"] = {"type": "text", "analyzer": "standard"}
    del mapping["properties"]["chunk_id"]
    assert mapping_problems(mapping) == [
        f"schema_version 0, expected {SCHEMA_VERSION}",
        "field chunk_id missing",
        "field text has {'analyzer': 'standard'}, expected "
        f"{{'type': 'text', 'analyzer': '{ANALYZER}'}}",
    ]


def test_documents_and_queries() -> None:
    doc = Doc("1-0", "Quasar", "A quasar is bright.", "h")
    assert source(doc) == {"chunk_id": "1-0", "title": "Quasar", "text": "A quasar is bright.",
                           "content_hash": "h"}
    body = query_body("bright quasar", 5)
    assert body["size"] == 5 and body["_source"] is False
    assert body["query"]["multi_match"]["fields"] == ["title", "text"]
