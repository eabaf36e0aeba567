"""How the Elasticsearch client's errors become this package's :class:`LexicalIndexError` ones.

Every message names what was being done and the server's URL, and never a credential: URLs are
split from their ``user:password@`` part before they reach the client (:func:`split_credentials`),
and authentication failures are raised without the client's exception chained, because it
carries the request's headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import elastic_transport
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    NotFoundError,
    UnsupportedProductError,
)

from pipeline.retrieval.search.base import (
    IndexAuthenticationError,
    IndexNotBuiltError,
    IndexUnreachableError,
    LexicalIndexError,
)

INDEX_NOT_FOUND = "index_not_found_exception"


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
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


@contextmanager
def translated(doing: str, url: str, name: str, max_retries: int,
               refused: type[LexicalIndexError] = LexicalIndexError) -> Iterator[None]:
    """Raise client errors of the block as this package's, naming ``url`` and never a secret.

    ``refused`` is the class for a request the server refused (HTTP 4xx/5xx, other than 401,
    403 and a missing index ``name``).
    """
    try:
        yield
    except (ApiError, elastic_transport.TransportError) as exc:
        error = translate(doing, exc, url, name, max_retries, refused)
        if isinstance(error, IndexAuthenticationError):
            raise error from None  # the client's exception carries the request's headers
        raise error from exc


def translate(doing: str, exc: Exception, url: str, name: str, max_retries: int,
              refused: type[LexicalIndexError] = LexicalIndexError) -> LexicalIndexError:
    """The error to raise for the client's ``exc`` while ``doing`` something to index ``name``."""
    if isinstance(exc, AuthenticationException):
        return IndexAuthenticationError(
            f"{doing}: Elasticsearch at {url} rejected the credentials (HTTP 401); "
            "check the API key, or the user name and password")
    if isinstance(exc, AuthorizationException):
        return IndexAuthenticationError(
            f"{doing}: the credentials lack a privilege at {url} (HTTP 403, "
            f"{error_type(exc.body)})")
    if isinstance(exc, NotFoundError) and error_type(exc.body) == INDEX_NOT_FOUND:
        return _not_built(doing, url, name)
    if isinstance(exc, UnsupportedProductError):
        return IndexUnreachableError(f"{doing}: {url} is not Elasticsearch")
    if isinstance(exc, ApiError):
        return refused(f"{doing}: Elasticsearch at {url} answered HTTP "
                       f"{exc.status_code} {error_type(exc.body)}: {error_reason(exc.body)}")
    if isinstance(exc, elastic_transport.TlsError):
        return IndexUnreachableError(
            f"{doing}: TLS with {url} failed ({transport_reason(exc)}); pass ca_certs, the CA "
            "file that signed the server's certificate")
    if isinstance(exc, elastic_transport.ConnectionTimeout):
        return IndexUnreachableError(
            f"{doing}: Elasticsearch at {url} did not answer in time, "
            f"{max_retries} retries included")
    if isinstance(exc, elastic_transport.ConnectionError):
        return IndexUnreachableError(
            f"{doing}: cannot connect to Elasticsearch at {url} ({transport_reason(exc)})")
    return LexicalIndexError(f"{doing}: request to {url} failed ({transport_reason(exc)})")


def item_error(doing: str, item: dict[str, Any], url: str, name: str) -> LexicalIndexError:
    """The error for one failed item of a multi-request answer (``_msearch``)."""
    kind = error_type(item)
    if kind == INDEX_NOT_FOUND:
        return _not_built(doing, url, name)
    return LexicalIndexError(f"{doing}: Elasticsearch at {url} answered HTTP "
                             f"{item.get('status')} {kind}: {error_reason(item)}")


def item_failure(result: dict[str, Any]) -> str:
    """One rejected bulk item, for the message that reports the first of them."""
    return (f"{result.get('_id')}: HTTP {result.get('status')} {error_type(result)}: "
            f"{error_reason(result)}")


def _not_built(doing: str, url: str, name: str) -> IndexNotBuiltError:
    return IndexNotBuiltError(f"{doing}: no index or alias {name} at {url}; "
                              "sync_index builds it")


def error_type(body: Any) -> str:
    """The ``error.type`` of an answer's body, ``"error"`` when it has none."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("type", "error"))
    return "error"


def error_reason(body: Any) -> str:
    """The ``error.reason`` (or plain ``error`` string) of an answer's body, short."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("reason", ""))[:300]
        if isinstance(error, str):
            return error[:300]
    return ""


def transport_reason(exc: elastic_transport.TransportError) -> str:
    """The innermost cause of a transport error, short (URLs in it carry no credentials)."""
    return str(exc.message if hasattr(exc, "message") else exc)[:300]
