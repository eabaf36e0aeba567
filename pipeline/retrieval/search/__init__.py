"""Lexical (BM25) search over chunks: one interface, an embedded and an Elasticsearch backend."""
