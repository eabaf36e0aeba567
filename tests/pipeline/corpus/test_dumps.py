"""Reading CirrusSearch shards: formats, discovery and every kind of bad input."""

import bz2
import gzip
import json
import shutil
from pathlib import Path

import pytest

from pipeline.corpus.dumps import ShardError, ShardReport, discover_shards, read_shard
from tests.conftest import FIXTURES


def doc(page_id: int, text: str | None = "Some text. More text.", **fields) -> dict:
    body = {"namespace": 0, "page_id": page_id, "title": f"Page {page_id}",
            "timestamp": "2026-08-01T00:00:00Z", "version": 1, "category": ["Physics"],
            "redirect": [], "popularity_score": 0.5, "opening_text": "Some text."}
    if text is not None:
        body["text"] = text
    body.update(fields)
    return body


def action(page_id: int, kind: str = "_doc") -> dict:
    return {"index": {"_type": kind, "_id": str(page_id)}}


def dump_lines(docs: list[dict], kind: str = "_doc") -> list[bytes]:
    lines = []
    for d in docs:
        lines.append(json.dumps(action(d.get("page_id", 0), kind)).encode() + b"\n")
        lines.append(json.dumps(d).encode() + b"\n")
    return lines


def write(path: Path, lines: list[bytes]) -> str:
    data = b"".join(lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif path.name.endswith(".bz2"):
        path.write_bytes(bz2.compress(data))
    else:
        path.write_bytes(data)
    return str(path)


def read(path: str, max_faults: int = 100) -> tuple[list, ShardReport]:
    report = ShardReport(Path(path).name)
    return list(read_shard(path, report, max_faults=max_faults)), report


@pytest.mark.parametrize(("name", "kind"), [("a.json.gz", "page"), ("a.json.bz2", "_doc"),
                                            ("a.json", "_doc")])
def test_reads_every_compression_and_action_type(tmp_path: Path, name: str, kind: str) -> None:
    lines = dump_lines([doc(1), doc(2, "Other. Text.")], kind)
    path = write(tmp_path / name, lines)
    articles, report = read(path)
    assert [a.page_id for a in articles] == [1, 2]
    assert articles[1].text == "Other. Text."
    assert articles[0].categories == ["Physics"]
    assert articles[0].timestamp.year == 2026
    assert report.documents == 2 and report.faults.total() == 0
    assert report.uncompressed_bytes == sum(len(line) for line in lines)


def test_reads_the_shipped_fixtures_of_real_wikipedia_text() -> None:
    gz, _report_gz = read(str(FIXTURES / "tiny-00000.json.gz"))
    bz, _report_bz = read(str(FIXTURES / "tiny-00001.json.bz2"))
    assert len(gz) == 12 and len(bz) == 5
    assert gz[0].title == "1989 Tiananmen Square protests and massacre"
    assert bz[0].title == "Passage stem-1k 0000"
    assert all(a.text and a.version for a in gz + bz)


def test_other_namespaces_are_counted_and_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", dump_lines([doc(1), doc(2, namespace=14), doc(3)]))
    articles, report = read(path)
    assert [a.page_id for a in articles] == [1, 3]
    assert report.other_namespaces == 1 and report.faults.total() == 0


def test_old_style_redirect_objects_become_titles(tmp_path: Path) -> None:
    redirects = [{"namespace": 0, "title": "Alias"}, "Other alias"]
    path = write(tmp_path / "a.json", dump_lines([doc(1, redirect=redirects)]))
    articles, _ = read(path)
    assert articles[0].redirects == ["Alias", "Other alias"]


@pytest.mark.parametrize(
    ("bad_line", "kind"),
    [(b"{not json\n", "malformed_json"),
     (b'{"namespace": 0, "title": "Caf\xe9", "text": "x"}\n', "invalid_utf8"),
     (json.dumps(doc(7, text=None)).encode() + b"\n", "missing_text"),
     (json.dumps(doc(7, title="")).encode() + b"\n", "missing_title"),
     (b"[1, 2]\n", "not_an_object")],
)
def test_skippable_faults_are_counted_with_file_and_line(tmp_path: Path, bad_line: bytes,
                                                          kind: str) -> None:
    lines = dump_lines([doc(1)])
    lines += [json.dumps(action(7)).encode() + b"\n", bad_line]
    lines += dump_lines([doc(2)])
    path = write(tmp_path / "shard.json.gz", lines)
    articles, report = read(path)
    assert [a.page_id for a in articles] == [1, 2]
    assert report.faults == {kind: 1}
    assert len(report.examples) == 1
    assert report.examples[0].startswith(f"shard.json.gz line 4: {kind}: ")


def test_too_many_skippable_faults_reject_the_shard(tmp_path: Path) -> None:
    lines = dump_lines([doc(1)])
    for i in range(4):
        lines += [json.dumps(action(10 + i)).encode() + b"\n", b"{broken\n"]
    path = write(tmp_path / "shard.json", lines)
    with pytest.raises(ShardError, match="more than 3 faulty documents"):
        read(path, max_faults=3)


def test_pair_cut_in_half_at_the_end(tmp_path: Path) -> None:
    lines = dump_lines([doc(1), doc(2)])[:-1]
    path = write(tmp_path / "cut.json.bz2", lines)
    with pytest.raises(ShardError, match=r"cut\.json\.bz2 line 3: action line without its "
                                         "document"):
        read(path)


def test_missing_line_in_the_middle_breaks_the_pairs(tmp_path: Path) -> None:
    lines = dump_lines([doc(1), doc(2), doc(3)])
    del lines[3]  # the document of page 2: its action line is followed by page 3's action
    path = write(tmp_path / "gap.json", lines)
    with pytest.raises(ShardError, match=r"gap\.json line 4: expected a document, found "
                                         "another action line"):
        read(path)


def test_malformed_action_line_rejects_the_shard(tmp_path: Path) -> None:
    lines = [*dump_lines([doc(1)]), b'{"index": oops\n', json.dumps(doc(2)).encode() + b"\n"]
    path = write(tmp_path / "bad.json", lines)
    with pytest.raises(ShardError, match=r"bad\.json line 3: expected an action line"):
        read(path)


@pytest.mark.parametrize("name", ["t.json.gz", "t.json.bz2"])
def test_truncated_compressed_stream_rejects_the_shard(tmp_path: Path, name: str) -> None:
    full = Path(write(tmp_path / name, dump_lines([doc(i, "Text. " * 200) for i in range(50)])))
    truncated = tmp_path / f"cut-{name}"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ShardError, match=rf"cut-{name}: compressed stream is truncated or "
                                         "corrupt after line"):
        read(str(truncated))


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_file_rejects_the_shard(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "empty.json.gz", [content])
    with pytest.raises(ShardError, match=r"empty\.json\.gz: contains no documents"):
        read(path)


def test_discovery_by_folder_file_and_glob(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "tiny-00000.json.gz", tmp_path / "b-00000.json.gz")
    shutil.copy(FIXTURES / "tiny-00001.json.bz2", tmp_path / "a-00001.json.bz2")
    (tmp_path / "README.md").write_text("not a shard")
    assert [s.name for s in discover_shards(str(tmp_path))] == ["a-00001.json.bz2",
                                                                "b-00000.json.gz"]
    assert [s.name for s in discover_shards(str(tmp_path / "b-00000.json.gz"))] == [
        "b-00000.json.gz"]
    assert [s.name for s in discover_shards(str(tmp_path / "*.gz"))] == ["b-00000.json.gz"]
    assert discover_shards(str(tmp_path / "nothing-*.json")) == []


def test_fingerprint_changes_when_the_file_does(tmp_path: Path) -> None:
    path = Path(write(tmp_path / "a.json", dump_lines([doc(1)])))
    before = discover_shards(str(path))[0].fingerprint
    write(path, dump_lines([doc(1), doc(2)]))
    assert discover_shards(str(path))[0].fingerprint != before
