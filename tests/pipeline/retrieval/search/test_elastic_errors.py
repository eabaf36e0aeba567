"""Client errors as this package's: the right class, the URL named, no secret, no server needed."""

from __future__ import annotations

from typing import Any

import elastic_transport
import pytest
from elasticsearch import ApiError, AuthenticationException, NotFoundError

from pipeline.retrieval.search.base import (
    IndexAuthenticationError,
    IndexNotBuiltError,
    IndexUnreachableError,
    IndexWriteError,
    LexicalIndexError,
)
from pipeline.retrieval.search.elastic_errors import (
    error_reason,
    error_type,
    item_error,
    item_failure,
    split_credentials,
    translate,
    translated,
)

URL = "http://127.0.0.1:9200"


def answered(cls: type[ApiError], status: int, body: Any) -> ApiError:
    """The client's exception for an HTTP ``status`` answer with ``body``."""
    meta = elastic_transport.ApiResponseMeta(
        status=status, http_version="1.1", headers=elastic_transport.HttpHeaders(), duration=0.0,
        node=elastic_transport.NodeConfig("http", "127.0.0.1", 9200))
    return cls("answered", meta, body)


@pytest.mark.parametrize(("url", "clean", "credentials"), [
    ("http://127.0.0.1:9200", "http://127.0.0.1:9200", None),
    ("https://elastic:p%40ss@es.example:9243/prefix?x=1",
     "https://es.example:9243/prefix?x=1", ("elastic", "p@ss")),
    ("http://user@[::1]:9200", "http://[::1]:9200", ("user", "")),
])
def test_credentials_are_split_from_the_url(url: str, clean: str,
                                            credentials: tuple[str, str] | None) -> None:
    assert split_credentials(url) == (clean, credentials)


def test_error_bodies_of_any_shape_give_a_type_and_reason() -> None:
    body = {"error": {"type": "mapper_parsing_exception", "reason": "x" * 400}, "status": 400}
    assert (error_type(body), error_reason(body)) == ("mapper_parsing_exception", "x" * 300)
    assert (error_type({"error": "plain"}), error_reason({"error": "plain"})) == ("error", "plain")
    assert (error_type("not json"), error_reason(None)) == ("error", "")
    assert item_failure({**body, "_id": "1-0", "status": 429}) == (
        f"1-0: HTTP 429 mapper_parsing_exception: {'x' * 300}")


def test_answers_become_the_matching_error() -> None:
    missing = answered(NotFoundError, 404, {"error": {"type": "index_not_found_exception"}})
    error = translate("searching chunks", missing, URL, "chunks", 3)
    assert isinstance(error, IndexNotBuiltError)
    assert str(error) == (f"searching chunks: no index or alias chunks at {URL}; "
                          "sync_index builds it")
    refused = answered(ApiError, 400, {"error": {"type": "illegal_argument_exception",
                                                 "reason": "bad"}})
    error = translate("indexing", refused, URL, "chunks", 3, refused=IndexWriteError)
    assert isinstance(error, IndexWriteError)
    assert str(error) == (f"indexing: Elasticsearch at {URL} answered HTTP 400 "
                          "illegal_argument_exception: bad")
    assert isinstance(item_error("searching", {"error": {"type": "index_not_found_exception"}},
                                 URL, "chunks"), IndexNotBuiltError)


def test_transport_failures_say_what_to_do() -> None:
    timeout = translate("counting", elastic_transport.ConnectionTimeout("timed out"), URL, "c", 2)
    assert isinstance(timeout, IndexUnreachableError) and "2 retries included" in str(timeout)
    tls = translate("counting", elastic_transport.TlsError("CERTIFICATE_VERIFY_FAILED"), URL,
                    "c", 2)
    assert isinstance(tls, IndexUnreachableError) and "pass ca_certs" in str(tls)
    down = translate("counting", elastic_transport.ConnectionError("refused"), URL, "c", 2)
    assert str(down) == f"counting: cannot connect to Elasticsearch at {URL} (refused)"
    other = translate("counting", elastic_transport.SerializationError("odd"), URL, "c", 2)
    assert type(other) is LexicalIndexError


def test_a_rejected_credential_is_raised_without_the_clients_exception() -> None:
    """The client's exception carries the request's headers, the credentials among them."""
    rejected = answered(AuthenticationException, 401, {"error": {"type": "security"}})
    with (pytest.raises(IndexAuthenticationError, match="rejected the credentials") as failure,
          translated("searching", URL, "chunks", 3)):
        raise rejected
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
    with (pytest.raises(IndexUnreachableError) as failure,
          translated("searching", URL, "chunks", 3)):
        raise elastic_transport.ConnectionError("refused")
    assert isinstance(failure.value.__cause__, elastic_transport.ConnectionError)
