"""Discovery and streaming of Wikipedia CirrusSearch dump shards.

A CirrusSearch dump is a sequence of line pairs: an action line such as
``{"index":{"_type":"page","_id":"12"}}`` (older dumps) or ``{"index":{"_type":"_doc",...}}``
(newer ones), then the document. Shards come gzipped, bzip2-ed or plain. A full enwiki dump is
tens of gigabytes, so everything here streams line by line and never holds a shard in memory.

Faults fall in two classes. Faults local to one document (a malformed document line, bytes that
are not UTF-8, a document without ``text``, ``page_id`` or ``title``) are *skippable*: the document
is counted and left out, with the first few examples kept for the asset's metadata, until a
shard has more than ``max_faults`` of them. Faults that make the rest of the shard untrustworthy
(a truncated or corrupt compressed stream, an action line that is not one, a pair cut in half, an
empty file, too many skippable faults) raise :class:`ShardError`, and the caller rejects the
shard whole.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

SUFFIXES = (".json.gz", ".json.bz2", ".json")
EXAMPLES_KEPT = 5


class ShardError(Exception):
    """A fault that makes a whole shard unusable; the message names the file and line."""


@dataclass(frozen=True)
class Shard:
    """One dump file as found on disk; ``fingerprint`` changes when the file does."""

    name: str
    path: str
    bytes: int
    mtime_ns: int
    content_sha256: str | None = None  # set in the content-hash mode only

    @property
    def fingerprint(self) -> str:
        # By default size and modification time, as make and rsync use: hashing tens of
        # gigabytes on every run would cost more than the ingestion it is meant to save. A file
        # edited in place with its size and mtime kept needs the content-hash mode.
        if self.content_sha256:
            return f"sha256:{self.content_sha256[:16]}"
        key = f"{self.path}|{self.bytes}|{self.mtime_ns}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    @classmethod
    def from_path(cls, path: Path, hash_contents: bool = False) -> Shard:
        stat = path.stat()
        return cls(name=path.name, path=str(path.resolve()), bytes=stat.st_size,
                   mtime_ns=stat.st_mtime_ns,
                   content_sha256=_sha256(path) if hash_contents else None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Article:
    """A namespace-0 document, with the fields the pipeline keeps."""

    page_id: int
    title: str
    text: str
    opening_text: str | None
    categories: list[str]
    redirects: list[str]
    popularity_score: float | None
    timestamp: datetime | None
    version: int | None
    line: int

    @property
    def content_hash(self) -> str:
        """Hash of what chunking reads (title and text): equal hashes give equal chunks."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.title.encode())
        digest.update(b"\x00")
        digest.update(self.text.encode())
        return digest.hexdigest()


@dataclass
class ShardReport:
    """What reading one shard found: counts, skippable faults and a few examples of each."""

    shard: str
    lines: int = 0
    documents: int = 0
    articles: int = 0
    other_namespaces: int = 0
    uncompressed_bytes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def fault(self, kind: str, line: int, detail: str) -> None:
        self.faults[kind] += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(f"{self.shard} line {line}: {kind}: {detail}")


def discover_shards(location: str, hash_contents: bool = False) -> list[Shard]:
    """Shards at ``location``: a folder (its dump files), one file, or a glob pattern.

    Sorted by name, which is dump order, so ties between shards resolve the same way every run.
    ``hash_contents`` fingerprints each shard by the sha256 of its bytes (it reads them all)
    instead of its size and modification time.
    """
    path = Path(location).expanduser()
    if path.is_dir():
        candidates = [p for p in path.iterdir() if p.is_file()]
    elif path.is_file():
        candidates = [path]
    else:
        candidates = [Path(p) for p in glob.glob(str(path), recursive=True)]
        candidates = [p for p in candidates if p.is_file()]
    shards = [Shard.from_path(p, hash_contents) for p in candidates
              if p.name.endswith(SUFFIXES)]
    names = Counter(s.name for s in shards)
    clashes = sorted(n for n, c in names.items() if c > 1)
    if clashes:
        raise ValueError(f"{location}: several shards share a file name: {', '.join(clashes)}")
    return sorted(shards, key=lambda s: s.name)


def open_shard(path: str) -> IO[bytes]:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _lines(path: str, report: ShardReport) -> Iterator[tuple[int, bytes]]:
    """Numbered raw lines, turning decompression failures into a :class:`ShardError`."""
    lineno = 0
    try:
        with open_shard(path) as stream:
            for lineno, raw in enumerate(stream, start=1):
                report.uncompressed_bytes += len(raw)
                yield lineno, raw
    except (EOFError, OSError, zlib.error) as exc:
        raise ShardError(
            f"{path}: compressed stream is truncated or corrupt after line {lineno}: {exc}"
        ) from exc
    report.lines = lineno


def _action(path: str, lineno: int, raw: bytes) -> dict[str, Any]:
    try:
        action = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{path} line {lineno}: expected an action line, got invalid JSON "
                         f"({exc}); the line pairs are out of step") from exc
    if not (isinstance(action, dict) and isinstance(action.get("index"), dict)):
        raise ShardError(f"{path} line {lineno}: expected an action line like "
                         f'{{"index":{{"_type":"_doc","_id":...}}}}, got {raw[:80]!r}')
    return action["index"]


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    # Old dumps store redirects as objects {"namespace": 0, "title": ...}; newer ones as strings.
    return [v["title"] if isinstance(v, dict) else str(v) for v in value
            if isinstance(v, str) or (isinstance(v, dict) and "title" in v)]


def read_shard(path: str, report: ShardReport, max_faults: int = 100) -> Iterator[Article]:
    """Yield the namespace-0 articles of one shard, filling ``report`` as it goes.

    Raises :class:`ShardError` on a fault that rejects the shard; the caller must then discard
    anything it took from this generator.
    """
    lines = _lines(path, report)
    for lineno, raw in lines:
        if not raw.strip():
            continue
        action = _action(path, lineno, raw)
        try:
            doc_lineno, doc_raw = next(lines)
        except StopIteration:
            raise ShardError(f"{path} line {lineno}: action line without its document: "
                             "the shard ends in the middle of a pair") from None
        report.documents += 1
        article = _article(path, doc_lineno, doc_raw, action, report)
        if report.faults.total() > max_faults:
            raise ShardError(f"{path}: more than {max_faults} faulty documents "
                             f"({dict(report.faults)}); the shard looks corrupt. First: "
                             + "; ".join(report.examples))
        if article is not None:
            report.articles += 1
            yield article
    if report.documents == 0:
        raise ShardError(f"{path}: contains no documents (empty or blank file)")


def _article(path: str, lineno: int, raw: bytes, action: dict[str, Any],
             report: ShardReport) -> Article | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.fault("invalid_utf8", lineno, f"byte {exc.start}: {raw[exc.start:exc.start + 8]!r}")
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        report.fault("malformed_json", lineno, str(exc))
        return None
    if not isinstance(doc, dict):
        report.fault("not_an_object", lineno, f"got {type(doc).__name__}")
        return None
    if isinstance(doc.get("index"), dict):
        raise ShardError(f"{path} line {lineno}: expected a document, found another action line: "
                         "a pair is cut in half")
    if doc.get("namespace", 0) != 0:
        report.other_namespaces += 1
        return None
    body = doc.get("text")
    if not isinstance(body, str):
        report.fault("missing_text", lineno, f"page {doc.get('page_id', action.get('_id'))}")
        return None
    title = doc.get("title")
    page_id = doc.get("page_id", action.get("_id"))
    try:
        page_id = int(page_id)
    except (TypeError, ValueError):
        report.fault("missing_page_id", lineno, f"page_id {page_id!r}")
        return None
    if not isinstance(title, str) or not title:
        report.fault("missing_title", lineno, f"page {page_id}")
        return None
    popularity = doc.get("popularity_score")
    version = doc.get("version")
    opening = doc.get("opening_text")
    return Article(
        page_id=page_id,
        title=title,
        text=body,
        opening_text=opening if isinstance(opening, str) else None,
        categories=_string_list(doc.get("category")),
        redirects=_string_list(doc.get("redirect")),
        popularity_score=float(popularity) if isinstance(popularity, int | float) else None,
        timestamp=_timestamp(doc.get("timestamp")),
        version=version if isinstance(version, int) else None,
        line=lineno,
    )
