"""Sentence splitting and packing of sentences into retrieval-sized chunks.

The open-book solutions of the LLM Science Exam split Wikipedia text into sentences with
blingfire and packed them into passages; the 4th-place team found passages of about 512
characters best. Chunks never cross a section heading (``==History==`` markup in CirrusSearch
text): a heading starts a new topic, and the markup itself is left out of every chunk. Offsets
are character offsets into the article text, so ``text[start:end]`` is the chunk.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from ctypes import Array, byref, c_char, c_char_p, c_int, c_int32, create_string_buffer, string_at
from dataclasses import dataclass

import blingfire
import numpy as np

HEADING = re.compile(r"(={2,6})[^=\n]{1,200}?\1")
WHITESPACE = re.compile(r"\s")

Span = tuple[int, int]


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    start: int
    end: int
    text: str

    @property
    def content_hash(self) -> str:
        return hashlib.blake2b(self.text.encode(), digest_size=16).hexdigest()


def sections(text: str) -> list[Span]:
    """Spans of ``text`` between heading markups, stripped of surrounding whitespace."""
    spans, start = [], 0
    for match in HEADING.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [s for s in (_strip(text, a, b) for a, b in spans) if s[0] < s[1]]


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentences(text: str) -> list[Span]:
    """Sentence spans of ``text``, section by section."""
    return [span for section in sections(text) for span in section_sentences(text, section)]


def section_sentences(text: str, section: Span) -> list[Span]:
    """Sentence spans of one section, as offsets into the whole ``text``."""
    start, end = section
    return [(start + a, start + b) for a, b in sentence_offsets(text[start:end]) if b > a]


_local = threading.local()


def _buffers(capacity: int) -> tuple[Array[c_char], Array[c_int32], Array[c_int32]]:
    """Output buffers for blingfire, reused across calls (per thread): allocating fresh ones
    for every text cost more than the splitting."""
    held = getattr(_local, "buffers", None)
    if held is None or len(held[0]) < capacity:
        size = max(capacity, 1 << 16)
        held = _local.buffers = (create_string_buffer(size), (c_int32 * size)(),
                                 (c_int32 * size)())
    return held


def sentence_offsets(text: str) -> list[Span]:
    """blingfire's sentence boundaries as character spans of ``text``.

    Same boundaries as ``blingfire.text_to_sentences_and_offsets``, whose Python wrapper maps
    UTF-8 byte offsets to characters in a per-byte Python loop and so dominated chunking time;
    here the mapping is one numpy pass, and skipped for ASCII text.
    """
    data = text.encode("utf-8")
    if not data:
        return []
    capacity = len(data) * 2
    output, starts, ends = _buffers(capacity)
    length = blingfire.blingfire.TextToSentencesWithOffsets(
        c_char_p(data), c_int(len(data)), byref(output), byref(starts), byref(ends),
        c_int(len(output)))
    if length < 0 or length > len(output):
        raise ValueError(f"blingfire could not split a text of {len(data)} bytes")
    count = string_at(output, length).count(b"\n") + 1
    first = np.frombuffer(starts, dtype=np.int32, count=count)
    last = np.frombuffer(ends, dtype=np.int32, count=count)  # inclusive byte offsets
    if len(data) != len(text):  # not ASCII: map byte offsets to character offsets
        char_of_byte = np.cumsum((np.frombuffer(data, np.uint8) & 0xC0) != 0x80) - 1
        first, last = char_of_byte[first], char_of_byte[last]
    return list(zip(first.tolist(), (last + 1).tolist(), strict=True))


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, split as the chunker splits them (blank ones dropped)."""
    return [text[a:b] for a, b in sentence_offsets(text) if text[a:b].strip()]


def _split_long(text: str, span: Span, max_chars: int) -> Iterator[Span]:
    """Cut a sentence longer than ``max_chars`` at whitespace (or hard, if it has none)."""
    start, end = span
    while end - start > max_chars:
        limit = start + max_chars
        cut = max((m.start() for m in WHITESPACE.finditer(text, start + 1, limit + 1)),
                  default=limit)
        yield _strip(text, start, cut)
        start, _ = _strip(text, cut, end)
    if end > start:
        yield start, end


def chunk_text(text: str, max_chars: int = 512, overlap_sentences: int = 1) -> list[Chunk]:
    """Pack consecutive sentences into chunks of at most ``max_chars`` characters.

    Each chunk after the first in a section repeats up to ``overlap_sentences`` trailing
    sentences of the previous one (fewer if they would not fit), so a fact spanning a chunk
    boundary stays retrievable. Every chunk holds at least one sentence the previous lacked.
    """
    if max_chars < 1 or overlap_sentences < 0:
        raise ValueError("max_chars must be positive and overlap_sentences non-negative")
    spans: list[Span] = []
    for section in sections(text):
        section_spans = []
        for start, end in section_sentences(text, section):
            section_spans.extend(_split_long(text, (start, end), max_chars))
        spans.extend(_pack(section_spans, max_chars, overlap_sentences))
    return [Chunk(i, a, b, text[a:b]) for i, (a, b) in enumerate(spans)]


def _pack(spans: list[Span], max_chars: int, overlap: int) -> Iterator[Span]:
    current: list[Span] = []
    for span in spans:
        if current and span[1] - current[0][0] > max_chars:
            yield current[0][0], current[-1][1]
            current = current[-overlap:] if overlap else []
            while current and span[1] - current[0][0] > max_chars:
                current.pop(0)
        current.append(span)
    if current:
        yield current[0][0], current[-1][1]
