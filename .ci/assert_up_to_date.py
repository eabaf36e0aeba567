"""Fail if a run did any work: everything it could have written is compared before and after.

    python .ci/assert_up_to_date.py snapshot WORKDIR > before.json
    make run ...
    python .ci/assert_up_to_date.py compare WORKDIR before.json

A snapshot holds every warehouse table's row count and an order-free hash of its rows
(:func:`pipeline.tables.table_versions`), and the size and modification time of every file of
the working area (indexes, trained readers, the submission, assembled models) except Dagster's
own records and the warehouse file itself, whose tables are compared instead. A run that
recomputed anything (retrieved, ranked, read, trained, indexed, wrote a file) changes one of
them; the steps' own "up to date" flags are not read.
"""

import json
import sys
from pathlib import Path

import duckdb

from pipeline.tables import table_versions

SKIPPED = ("dagster_home", "staging")  # Dagster's run records; scratch space
WAREHOUSE = "warehouse.duckdb"


def snapshot(workdir: Path) -> dict[str, dict]:
    with duckdb.connect(str(workdir / WAREHOUSE), read_only=True) as db:
        tables = table_versions(db)
    files = {}
    for path in sorted(workdir.rglob("*")):
        relative = path.relative_to(workdir)
        if path.is_file() and relative.parts[0] not in SKIPPED \
                and not relative.name.startswith(WAREHOUSE):
            stat = path.stat()
            files[str(relative)] = [stat.st_size, stat.st_mtime_ns]
    return {"tables": tables, "files": files}


def compare(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    changes = []
    for kind in ("tables", "files"):
        for name in sorted(before[kind].keys() | after[kind].keys()):
            old, new = before[kind].get(name), after[kind].get(name)
            if old != new:
                changes.append(f"{kind[:-1]} {name}: {old} -> {new}")
    return changes


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("snapshot", "compare"):
        print(__doc__)
        return 2
    workdir = Path(argv[1])
    if argv[0] == "snapshot":
        print(json.dumps(snapshot(workdir)))
        return 0
    before = json.loads(Path(argv[2]).read_text())
    changes = compare(before, snapshot(workdir))
    for change in changes:
        print(f"the run did work: {change}")
    if not changes:
        print(f"no table of the warehouse and no file of {workdir} changed: the run did no work")
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
