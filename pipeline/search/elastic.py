"""The Elasticsearch lexical index: chunks behind an alias, rebuilt blue-green.

Searches and incremental writes go through an alias (``name``). A full build creates a new
concrete index ``{name}-g{timestamp}-{uuid}``, bulk-loads it with refreshes off, refreshes it,
checks its document count, and only then moves the alias in one ``update_aliases`` request
(remove the old index, add the new one; ``must_exist`` makes the request fail whole if someone
moved the alias meanwhile). The old index is deleted afterwards. A build that fails at any point
deletes its half-built index and leaves the alias where it was, so it never serves. The
concrete index name is the generation :func:`~pipeline.search.base.sync_index` records.

Analysis: Elasticsearch's ``english`` analyzer rebuilt as a custom analyzer (its documented
recipe) with two deliberate changes so that tantivy can reproduce it token for token: tokens
are runs of letters and digits (tantivy's ``simple`` tokenizer) instead of the Unicode standard
tokenizer, and the stemmer is Snowball English (``porter2``, tantivy's) instead of the original
Porter stemmer. Stop words are Lucene's English list, in both.

Credentials (API key, or user and password, or ones embedded in the URL) go to the client and
nowhere else: not into attributes, reprs, log lines or exception messages; authentication
failures are raised without the client's exception chained.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import elastic_transport
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    NotFoundError,
    UnsupportedProductError,
)
from elasticsearch.helpers import streaming_bulk

from pipeline.search.base import (
    ENGLISH_STOP_WORDS,
    SCHEMA_VERSION,
    SEARCH_FIELDS,
    TOKEN_SPLIT_PATTERN,
    Doc,
    Hit,
    IndexAuthenticationError,
    IndexMappingError,
    IndexNotBuiltError,
    IndexUnreachableError,
    IndexWriteError,
    LexicalIndex,
    LexicalIndexError,
    new_generation,
)

log = logging.getLogger(__name__)

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


class ElasticsearchIndex(LexicalIndex):
    """Chunks in Elasticsearch at ``url``, served through the alias ``name``.

    Authentication: ``api_key`` (the encoded key, or an ``(id, key)`` pair), or ``username``
    and ``password``, or ``https://user:password@host`` in the URL. ``ca_certs`` is the CA file
    that signed the server's certificate (https only). Every request has ``request_timeout``
    seconds (bulk requests ``bulk_timeout``) and is retried up to ``max_retries`` times on
    connection errors, timeouts and 429/502/503/504 answers; rejected bulk items (HTTP 429) are
    retried ``max_retries`` times with backoff from ``initial_backoff`` seconds.
    """

    backend = "elasticsearch"

    def __init__(self, url: str, name: str = "wiki_chunks", *,
                 api_key: str | tuple[str, str] | None = None, username: str | None = None,
                 password: str | None = None, ca_certs: str | PathLike[str] | None = None,
                 request_timeout: float = 30.0, bulk_timeout: float = 120.0,
                 max_retries: int = 3, initial_backoff: float = 2.0, bulk_docs: int = 1000,
                 bulk_bytes: int = 20 * 1024 * 1024, msearch_size: int = 100, shards: int = 1,
                 replicas: int = 0) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
            raise ValueError(f"{name!r} is not a valid index name (lowercase, digits, _ . -)")
        self.url, url_auth = _split_credentials(url)
        if username is None and url_auth is not None:
            username, password = url_auth
        self._name = name
        self.request_timeout = request_timeout
        self.bulk_timeout = bulk_timeout
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.bulk_docs = bulk_docs
        self.bulk_bytes = bulk_bytes
        self.msearch_size = msearch_size
        self.shards = shards
        self.replicas = replicas
        options: dict[str, Any] = {}
        if api_key is not None:
            options["api_key"] = api_key
        elif username is not None:
            options["basic_auth"] = (username, password or "")
        if ca_certs is not None and self.url.startswith("https:"):
            options["ca_certs"] = str(ca_certs)
        self.client = Elasticsearch(self.url, request_timeout=request_timeout,
                                    max_retries=max_retries, retry_on_timeout=True, **options)
        self._checked: str | None = None  # the concrete index whose mapping was checked

    def __repr__(self) -> str:
        return f"ElasticsearchIndex(url={self.url!r}, name={self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    def generation(self) -> str | None:
        targets = self._alias_targets()
        if not targets:
            return None
        if len(targets) > 1:
            raise IndexMappingError(f"alias {self._name} at {self.url} points at "
                                    f"{len(targets)} indices ({', '.join(targets)}), expected one")
        if self._checked != targets[0]:
            self._check_mapping(targets[0])
            self._checked = targets[0]
        return targets[0]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        with self._errors(f"searching {self._name}"):
            response = self.client.search(index=self._name, **self._query(query, k))
        return _hits(response.body)

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """One ``_msearch`` request per ``msearch_size`` queries."""
        results: list[list[Hit]] = []
        for start in range(0, len(queries), self.msearch_size):
            searches: list[dict[str, Any]] = []
            for query in queries[start:start + self.msearch_size]:
                searches += [{}, self._query(query, k)]
            with self._errors(f"searching {self._name}"):
                response = self.client.msearch(index=self._name, searches=searches)
            for item in response.body["responses"]:
                if "error" in item:
                    raise self._item_error(f"searching {self._name}", item)
                results.append(_hits(item))
        return results

    def upsert(self, docs: Sequence[Doc]) -> None:
        # require_alias: a write never creates an index when the alias has gone.
        self._bulk(({"_op_type": "index", "_index": self._name, "_id": doc.chunk_id,
                     "_source": _source(doc)} for doc in docs),
                   f"indexing into {self._name}", require_alias=True)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        self._bulk(({"_op_type": "delete", "_index": self._name, "_id": chunk_id}
                    for chunk_id in chunk_ids), f"deleting from {self._name}", require_alias=True)

    def commit(self) -> None:
        with self._errors(f"refreshing {self._name}"):
            self.client.indices.refresh(index=self._name)

    def rebuild(self, batches: Iterable[Sequence[Doc]]) -> str:
        old = self._alias_targets()
        self._drop_orphans(keep=old)
        new = f"{self._name}-{new_generation()}"
        with self._errors(f"creating index {new}", refused=IndexMappingError):
            self.client.indices.create(
                index=new, mappings=MAPPINGS,
                settings={**index_settings(self.shards, 0), "refresh_interval": "-1"})
        doing = f"building {new} (alias {self._name} stays on {', '.join(old) or 'nothing'})"
        try:
            sent = 0
            for docs in batches:
                self._bulk(({"_op_type": "index", "_index": new, "_id": doc.chunk_id,
                             "_source": _source(doc)} for doc in docs), doing)
                sent += len(docs)
            with self._errors(doing):
                self.client.indices.put_settings(index=new, settings={
                    "refresh_interval": None, "number_of_replicas": self.replicas})
                self.client.indices.refresh(index=new)
                indexed = self.client.count(index=new).body["count"]
            if indexed != sent:
                raise IndexWriteError(f"{doing}: {sent} documents sent, {indexed} indexed "
                                      "(duplicate chunk ids?); not switched")
            actions: list[dict[str, Any]] = [{"add": {"index": new, "alias": self._name}}]
            actions += [{"remove": {"index": index, "alias": self._name, "must_exist": True}}
                        for index in old]
            with self._errors(f"switching alias {self._name} to {new}"):
                self.client.indices.update_aliases(actions=actions)
        except BaseException:
            self._delete_quietly(new)
            raise
        for index in old:
            self._delete_quietly(index)
        self._checked = new
        return new

    def count(self) -> int:
        with self._errors(f"counting {self._name}"):
            return self.client.count(index=self._name).body["count"]

    def close(self) -> None:
        self.client.close()

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str,
                refused: type[LexicalIndexError] = LexicalIndexError) -> Iterator[None]:
        """Translate client errors into this package's, naming the URL and never a secret.

        ``refused`` is the class for a request the server refused (HTTP 4xx/5xx, other than
        401, 403 and a missing index).
        """
        try:
            yield
        except (ApiError, elastic_transport.TransportError) as exc:
            error = self._translate(doing, exc, refused)
            if isinstance(error, IndexAuthenticationError):
                raise error from None  # the client's exception carries the request's headers
            raise error from exc

    def _translate(self, doing: str, exc: Exception,
                   refused: type[LexicalIndexError]) -> LexicalIndexError:
        if isinstance(exc, AuthenticationException):
            return IndexAuthenticationError(
                f"{doing}: Elasticsearch at {self.url} rejected the credentials (HTTP 401); "
                "check the API key, or the user name and password")
        if isinstance(exc, AuthorizationException):
            return IndexAuthenticationError(
                f"{doing}: the credentials lack a privilege at {self.url} (HTTP 403, "
                f"{_error_type(exc.body)})")
        if isinstance(exc, NotFoundError) and _error_type(exc.body) == "index_not_found_exception":
            return IndexNotBuiltError(f"{doing}: no index or alias {self._name} at {self.url}; "
                                      "sync_index builds it")
        if isinstance(exc, UnsupportedProductError):
            return IndexUnreachableError(f"{doing}: {self.url} is not Elasticsearch")
        if isinstance(exc, ApiError):
            return refused(f"{doing}: Elasticsearch at {self.url} answered HTTP "
                           f"{exc.status_code} {_error_type(exc.body)}: "
                           f"{_error_reason(exc.body)}")
        if isinstance(exc, elastic_transport.TlsError):
            return IndexUnreachableError(
                f"{doing}: TLS with {self.url} failed ({_reason(exc)}); pass ca_certs, the CA "
                "file that signed the server's certificate")
        if isinstance(exc, elastic_transport.ConnectionTimeout):
            return IndexUnreachableError(
                f"{doing}: Elasticsearch at {self.url} did not answer in time, "
                f"{self.max_retries} retries included")
        if isinstance(exc, elastic_transport.ConnectionError):
            return IndexUnreachableError(
                f"{doing}: cannot connect to Elasticsearch at {self.url} ({_reason(exc)})")
        return LexicalIndexError(f"{doing}: request to {self.url} failed ({_reason(exc)})")

    def _item_error(self, doing: str, item: dict[str, Any]) -> LexicalIndexError:
        kind = _error_type(item)
        if kind == "index_not_found_exception":
            return IndexNotBuiltError(f"{doing}: no index or alias {self._name} at {self.url}; "
                                      "sync_index builds it")
        return LexicalIndexError(f"{doing}: Elasticsearch at {self.url} answered HTTP "
                                 f"{item.get('status')} {kind}: {_error_reason(item)}")

    def _query(self, query: str, k: int) -> dict[str, Any]:
        # most_fields sums the per-field BM25 scores, as the tantivy backend does.
        return {"query": {"multi_match": {"query": query, "fields": list(SEARCH_FIELDS),
                                          "type": "most_fields"}},
                "size": k, "_source": False, "track_total_hits": False}

    def _alias_targets(self) -> list[str]:
        """The concrete indices behind the alias; refuses a concrete index of that name."""
        with self._errors(f"reading alias {self._name}"):
            try:
                return sorted(self.client.indices.get_alias(name=self._name).body)
            except NotFoundError:
                pass
            if not self.client.indices.exists(index=self._name):
                return []
        problems = self._mapping_problems(self._name)
        raise IndexMappingError(
            f"{self._name} at {self.url} is a concrete index, not the alias this code manages"
            + (f", and its mapping is incompatible ({'; '.join(problems)})" if problems else "")
            + "; delete or rename it, or pick another name")

    def _check_mapping(self, index: str) -> None:
        problems = self._mapping_problems(index)
        if problems:
            raise IndexMappingError(
                f"index {index} behind alias {self._name} at {self.url} has an incompatible "
                f"mapping: {'; '.join(problems)}. Rebuild with sync_index(..., rebuild=True), "
                "which builds a new index and switches the alias")

    def _mapping_problems(self, index: str) -> list[str]:
        with self._errors(f"reading the mapping of {index}"):
            body = self.client.indices.get_mapping(index=index).body
        mapping = next(iter(body.values()), {}).get("mappings", {})
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

    def _bulk(self, actions: Iterable[dict[str, Any]], doing: str, **params: Any) -> None:
        """Send ``actions`` with the bulk helper; raise on the first rejected items.

        A bulk request that times out is retried by the client (``retry_on_timeout``): items
        carry their ``_id``, so a retry that repeats work the server had done is harmless.
        """
        client = self.client.options(request_timeout=self.bulk_timeout)
        failures: list[str] = []
        with self._errors(doing, refused=IndexWriteError):
            try:
                for ok, item in streaming_bulk(
                        client, actions, chunk_size=self.bulk_docs,
                        max_chunk_bytes=self.bulk_bytes, raise_on_error=False,
                        max_retries=self.max_retries, initial_backoff=self.initial_backoff,
                        yield_ok=False, **params):
                    op_type, result = next(iter(item.items()))
                    if ok or (op_type == "delete" and result.get("result") == "not_found"):
                        continue  # deleting what is not there is fine
                    failures.append(f"{result.get('_id')}: HTTP {result.get('status')} "
                                    f"{_error_type(result)}: {_error_reason(result)}")
            except elastic_transport.ConnectionTimeout as exc:
                raise IndexWriteError(
                    f"{doing}: a bulk request to {self.url} got no answer in "
                    f"{self.bulk_timeout} s, {self.max_retries} retries included") from exc
        if failures:
            raise IndexWriteError(f"{doing}: {len(failures)} documents rejected by {self.url}, "
                                  f"first: {failures[0]}")

    def _drop_orphans(self, keep: list[str]) -> None:
        """Delete indices left by builds that died before they could clean up.

        Only names of this alias's generation pattern are touched. There is one writer per
        alias at a time (the asset that syncs it), so no build can be running meanwhile.
        """
        pattern = re.compile(rf"^{re.escape(self._name)}-g\d{{8}}t\d{{6}}-[0-9a-f]{{8}}$")
        with self._errors(f"listing indices {self._name}-g*"):
            existing = self.client.indices.get(index=f"{self._name}-g*",
                                               expand_wildcards="all").body
        for index in existing:
            if pattern.match(index) and index not in keep:
                log.info("deleting %s, left behind by an unfinished build", index)
                self._delete_quietly(index)

    def _delete_quietly(self, index: str) -> None:
        """Best-effort delete: a failure leaves an unaliased index for the next build."""
        try:
            self.client.options(max_retries=0, ignore_status=404).indices.delete(index=index)
        except (ApiError, elastic_transport.TransportError) as exc:
            log.warning("could not delete index %s at %s: %s", index, self.url,
                        type(exc).__name__)


def _source(doc: Doc) -> dict[str, str]:
    return {"chunk_id": doc.chunk_id, "title": doc.title, "text": doc.text,
            "content_hash": doc.content_hash}


def _hits(body: dict[str, Any]) -> list[Hit]:
    return [Hit(hit["_id"], hit["_score"]) for hit in body["hits"]["hits"]]


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without ``user:password@``, and the pair when there was one."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username), unquote(parts.password or ""))


def _error_type(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("type", "error"))
    return "error"


def _error_reason(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("reason", ""))[:300]
        if isinstance(error, str):
            return error[:300]
    return ""


def _reason(exc: elastic_transport.TransportError) -> str:
    """The innermost cause of a transport error, short (URLs in it carry no credentials)."""
    return str(exc.message if hasattr(exc, "message") else exc)[:300]
