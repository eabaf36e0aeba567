"""The corpus stage: dump shards read, articles and sentence-aligned chunks kept in DuckDB."""
