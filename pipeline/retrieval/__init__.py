"""The retrieval stage: lexical index, dense embeddings and candidate passages per question."""
