"""Sentence splitting and packing into bounded, overlapping chunks."""

import blingfire
import pytest

from pipeline.corpus.chunking import (
    chunk_text,
    sections,
    sentence_offsets,
    sentences,
    split_sentences,
)

TEXT = ("Water boils at 100 degrees Celsius at sea level. It freezes at zero degrees. "
        "Pressure changes both points. ==Properties== Water is a polar molecule. "
        "It dissolves many salts. Ice floats because it is less dense than liquid water.")


def test_sentences_are_character_spans_of_the_text() -> None:
    spans = sentences(TEXT)
    assert [TEXT[a:b] for a, b in spans][:3] == [
        "Water boils at 100 degrees Celsius at sea level.", "It freezes at zero degrees.",
        "Pressure changes both points."]
    assert all("==" not in TEXT[a:b] for a, b in spans)


def test_heading_markup_splits_sections() -> None:
    assert [TEXT[a:b][:12] for a, b in sections(TEXT)] == ["Water boils ", "Water is a p"]


@pytest.mark.parametrize("max_chars", [40, 80, 120, 512])
@pytest.mark.parametrize("overlap", [0, 1, 2])
def test_chunks_respect_the_bound_and_their_offsets(max_chars: int, overlap: int) -> None:
    chunks = chunk_text(TEXT, max_chars, overlap)
    assert chunks, "every non-empty text gives chunks"
    for i, chunk in enumerate(chunks):
        assert chunk.ordinal == i
        assert chunk.text == TEXT[chunk.start:chunk.end]
        assert 0 < len(chunk.text) <= max_chars
        assert "==" not in chunk.text and chunk.text == chunk.text.strip()


def test_chunks_do_not_cross_headings_and_cover_every_sentence() -> None:
    chunks = chunk_text(TEXT, 120, 0)
    heading = TEXT.index("==Properties==")
    assert all(c.end <= heading or c.start > heading for c in chunks)
    covered = " ".join(c.text for c in chunks)
    assert all(TEXT[a:b] in covered for a, b in sentences(TEXT))


def test_overlap_repeats_the_last_sentence_of_the_previous_chunk() -> None:
    without = chunk_text(TEXT, 90, 0)
    with_overlap = chunk_text(TEXT, 90, 1)
    assert len(with_overlap) >= len(without)
    first, second = with_overlap[0], with_overlap[1]
    assert second.start < first.end, "the second chunk starts inside the first"
    assert first.text.endswith(TEXT[second.start:first.end])


def test_a_sentence_longer_than_the_bound_is_cut_at_whitespace() -> None:
    text = "word " * 100 + "end."
    chunks = chunk_text(text, 64, 1)
    assert all(len(c.text) <= 64 for c in chunks)
    assert all(not c.text.startswith("ord") for c in chunks), "cuts fall between words"
    assert "".join(c.text.replace(" ", "") for c in chunks) == text.replace(" ", "")


def test_chunking_is_deterministic_and_hashes_follow_content() -> None:
    a, b = chunk_text(TEXT), chunk_text(TEXT)
    assert a == b and a[0].content_hash == b[0].content_hash
    assert chunk_text(TEXT.replace("Water", "Steam"))[0].content_hash != a[0].content_hash


def test_blank_text_has_no_chunks_and_bad_settings_are_refused() -> None:
    assert chunk_text("   ") == []
    with pytest.raises(ValueError):
        chunk_text(TEXT, 0)


@pytest.mark.parametrize("text", [
    TEXT,
    "Café au lait costs 3 €. Zürich is in Switzerland! Ω is the last letter; 東京 is a city.",
    "Emoji 😀 count as one character. So does ﬁ. The end",
])
def test_sentence_offsets_match_blingfires_own_wrapper(text: str) -> None:
    _, expected = blingfire.text_to_sentences_and_offsets(text)
    assert sentence_offsets(text) == expected
    assert sentence_offsets("") == []


def test_split_sentences_handles_blank_text() -> None:
    assert split_sentences("   ") == []
    assert split_sentences("One. Two!") == ["One.", "Two!"]
