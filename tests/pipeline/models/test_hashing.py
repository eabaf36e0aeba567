"""Weight identity: one hash for a model's weight files, remembered until a file changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.models import hashing
from pipeline.models.hashing import weights_sha256


def test_weights_hash_is_stable_cached_and_follows_changes(tmp_path: Path, store: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    (folder / "2_Dense").mkdir(parents=True)
    (folder / "onnx").mkdir()
    (folder / "model.safetensors").write_bytes(b"a" * 5000)
    (folder / "2_Dense" / "model.safetensors").write_bytes(b"b" * 3000)
    (folder / "onnx" / "model.safetensors").write_bytes(b"c" * 10)  # an export: not loaded
    (folder / "config.json").write_text("{}")
    reads: list[Path] = []
    real_hash = hashing._hash_file
    monkeypatch.setattr(hashing, "_hash_file", lambda p: reads.append(p) or real_hash(p))

    first = weights_sha256(folder, store)
    lines = "".join(f"{name} {hashlib.sha256(data).hexdigest()}\n" for name, data in
                    [("2_Dense/model.safetensors", b"b" * 3000),
                     ("model.safetensors", b"a" * 5000)])
    assert first == hashlib.sha256(lines.encode()).hexdigest()
    assert len(reads) == 2
    assert weights_sha256(folder, store) == first
    hashing._memory_hashes.clear()  # a new process: the store's hash file still knows them
    assert weights_sha256(folder, store) == first
    assert len(reads) == 2

    (folder / "model.safetensors").write_bytes(b"a" * 4999 + b"z")
    assert weights_sha256(folder, store) != first
    assert len(reads) == 3
