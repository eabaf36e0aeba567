"""Weight identity: the sha256 of a model's weight files, remembered between runs.

:attr:`~pipeline.models.ResolvedModel.weights_sha256` identifies the weights: a cache keyed on
it (the embedding cache) never reuses results of other weights under the same name. Hashing
hundreds of megabytes on every resolve would be slow, so file hashes are remembered by
(path, size, mtime) in memory and in a JSON file in the store; a file rewritten in place changes
size or mtime and is read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from pipeline.models.errors import ModelNotFoundError
from pipeline.models.store import default_store

HASH_BLOCK = 4 * 1024 * 1024
HASH_CACHE = "weights-sha256.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".onnx", ".pt", ".pth")
# Folders of alternative exports that a hub snapshot may hold next to the weights it loads.
EXPORT_FOLDERS = {"onnx", "openvino", "coreml", "tflite"}

_memory_hashes: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path, store: Path | None = None, *, rehash: bool = False) -> str:
    """sha256 of one file, remembered by (resolved path, size, mtime) in memory and in the store.

    A file rewritten in place changes size or mtime, so a stale hash is not returned; ``rehash``
    reads the file again anyway (to catch corruption that kept both).
    """
    real = path.resolve()
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key in _memory_hashes and not rehash:
        return _memory_hashes[key]
    cache_file = (store or default_store()) / HASH_CACHE
    cache = _read_json(cache_file)
    entry = None if rehash else cache.get(str(real))
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        digest = str(entry["sha256"])
    else:
        digest = _hash_file(real)
        _store_hash(cache_file, real, stat, digest)
    _memory_hashes[key] = digest
    return digest


def remember_sha256(path: Path, digest: str, store: Path | None = None) -> None:
    """Record a hash known without reading the file (after renaming a hashed file)."""
    real = path.resolve()
    stat = real.stat()
    _memory_hashes[(str(real), stat.st_size, stat.st_mtime_ns)] = digest
    _store_hash((store or default_store()) / HASH_CACHE, real, stat, digest)


def _store_hash(cache_file: Path, real: Path, stat: os.stat_result, digest: str) -> None:
    """Add one entry to the store's hash file, dropping entries of files that are gone."""
    cache = _read_json(cache_file)  # re-read: another process may have added entries
    cache = {path: entry for path, entry in cache.items() if Path(path).exists()}
    cache[str(real)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    _write_json(cache_file, cache)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    """Write atomically; a read-only store only costs re-hashing next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                         suffix=".tmp") as tmp:
            json.dump(data, tmp, indent=1, sort_keys=True)
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, path)
    except OSError:
        pass


def weight_files(path: Path) -> list[Path]:
    """The files holding a model's weights: what its identity is computed from.

    For a folder: its ``*.safetensors`` (sub-modules such as ``2_Dense/`` included), or failing
    those its ``*.bin``, ``*.gguf``, ... files, leaving out alternative exports (``onnx/``...)
    that loading does not read. A single file is its own weights.
    """
    if path.is_file():
        return [path]
    candidates = [p for p in path.rglob("*") if p.is_file()
                  and not EXPORT_FOLDERS.intersection(p.relative_to(path).parts[:-1])
                  and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    for suffix in WEIGHT_SUFFIXES:
        found = sorted(p for p in candidates if p.name.endswith(suffix))
        if found:
            return found
    return []


def weights_sha256(path: Path, store: Path | None = None) -> str:
    """The identity of a model's weights: the sha256 of its weight file, or for several files
    the sha256 of their ``relative-path sha256`` lines (sorted)."""
    path = Path(path)
    files = weight_files(path)
    if not files:
        raise ModelNotFoundError(f"{path} holds no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    if len(files) == 1:
        return file_sha256(files[0], store)
    lines = "".join(f"{f.relative_to(path).as_posix()} {file_sha256(f, store)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()
