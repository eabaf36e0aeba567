"""The Elasticsearch lexical index: chunks behind an alias, rebuilt blue-green.

Searches and incremental writes go through an alias (``name``). A full build creates a new
concrete index ``{name}-g{timestamp}-{uuid}``, bulk-loads it with refreshes off, refreshes it,
checks its document count, and only then moves the alias in one ``update_aliases`` request
(remove the old index, add the new one; ``must_exist`` makes the request fail whole if someone
moved the alias meanwhile). The old index is deleted afterwards. A build that fails at any point
deletes its half-built index and leaves the alias where it was, so it never serves. The
concrete index name is the generation :func:`~pipeline.retrieval.search.sync.sync_index`
records.

The index's settings, mapping and analysis are in
:mod:`~pipeline.retrieval.search.elastic_mapping`; how client errors are reported, in
:mod:`~pipeline.retrieval.search.elastic_errors`.

Credentials (API key, or user and password, or ones embedded in the URL) go to the client and
nowhere else: not into attributes, reprs, log lines or exception messages; authentication
failures are raised without the client's exception chained.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from os import PathLike
from typing import Any

import elastic_transport
from elasticsearch import ApiError, Elasticsearch, NotFoundError
from elasticsearch.helpers import streaming_bulk

from pipeline.retrieval.search.base import (
    Doc,
    Hit,
    IndexMappingError,
    IndexWriteError,
    LexicalIndex,
    LexicalIndexError,
    new_generation,
)
from pipeline.retrieval.search.elastic_errors import (
    item_error,
    item_failure,
    split_credentials,
    translated,
)
from pipeline.retrieval.search.elastic_mapping import (
    MAPPINGS,
    index_settings,
    mapping_problems,
    query_body,
    source,
)

log = logging.getLogger(__name__)


def connect(url: str, *, api_key: str | tuple[str, str] | None = None,
            username: str | None = None, password: str | None = None,
            ca_certs: str | PathLike[str] | None = None, request_timeout: float = 30.0,
            max_retries: int = 3) -> tuple[Elasticsearch, str]:
    """A client of the cluster at ``url`` and the URL without credentials (for messages).

    Authentication: ``api_key`` (the encoded key, or an ``(id, key)`` pair), or ``username``
    and ``password``, or ``https://user:password@host`` in the URL; ``ca_certs`` (https only)
    is the CA file that signed the server's certificate. Requests are retried ``max_retries``
    times on connection errors and timeouts.
    """
    clean, url_auth = split_credentials(url)
    if username is None and url_auth is not None:
        username, password = url_auth
    options: dict[str, Any] = {}
    if api_key is not None:
        options["api_key"] = api_key
    elif username is not None:
        options["basic_auth"] = (username, password or "")
    if ca_certs is not None and clean.startswith("https:"):
        options["ca_certs"] = str(ca_certs)
    return Elasticsearch(clean, request_timeout=request_timeout, max_retries=max_retries,
                         retry_on_timeout=True, **options), clean


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
        self.client, self.url = connect(url, api_key=api_key, username=username,
                                        password=password, ca_certs=ca_certs,
                                        request_timeout=request_timeout, max_retries=max_retries)
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
            response = self.client.search(index=self._name, **query_body(query, k))
        return _hits(response.body)

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """One ``_msearch`` request per ``msearch_size`` queries."""
        results: list[list[Hit]] = []
        for start in range(0, len(queries), self.msearch_size):
            searches: list[dict[str, Any]] = []
            for query in queries[start:start + self.msearch_size]:
                searches += [{}, query_body(query, k)]
            with self._errors(f"searching {self._name}"):
                response = self.client.msearch(index=self._name, searches=searches)
            for item in response.body["responses"]:
                if "error" in item:
                    raise item_error(f"searching {self._name}", item, self.url, self._name)
                results.append(_hits(item))
        return results

    def upsert(self, docs: Sequence[Doc]) -> None:
        # require_alias: a write never creates an index when the alias has gone.
        self._bulk(_index_actions(self._name, docs), f"indexing into {self._name}",
                   require_alias=True)

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
                self._bulk(_index_actions(new, docs), doing)
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

    def _errors(self, doing: str, refused: type[LexicalIndexError] = LexicalIndexError
                ) -> AbstractContextManager[None]:
        """Client errors of the block raised as this package's (see ``translated``)."""
        return translated(doing, self.url, self._name, self.max_retries, refused)

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
        return mapping_problems(next(iter(body.values()), {}).get("mappings", {}))

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
                    failures.append(item_failure(result))
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


def _index_actions(index: str, docs: Iterable[Doc]) -> Iterator[dict[str, Any]]:
    """Bulk actions that (re)index ``docs`` into ``index``, each under its chunk id."""
    for doc in docs:
        yield {"_op_type": "index", "_index": index, "_id": doc.chunk_id, "_source": source(doc)}


def _hits(body: dict[str, Any]) -> list[Hit]:
    return [Hit(hit["_id"], hit["_score"]) for hit in body["hits"]["hits"]]
