"""A process for the failed-open race tests (run as a script, never imported by pytest).

Usage: ``python discard_race.py ROLE STORAGE_URL [SCHEMA]``

``flaky``: ``create_ledger(id="main")`` with a plugin whose ``nucleus_ledger_opened`` waits until
the file ``STORAGE_URL``'s marker says the other process appended, then raises (the open fails).
``append``: waits for the ledger, opens it, appends 3 records and prints ``ack SEQ ID`` for each.
The two synchronise through marker files named by the environment (``RACE_DIR``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from nucleus_core import Record, create_ledger, hookimpl, open_ledger
from nucleus_core.errors import LedgerNotFoundError
from nucleus_core.testing import make_context


def storage(url: str, schema: str | None) -> Any:
    if schema is None:
        return url
    from nucleus_storage_postgres import postgres_storage

    return postgres_storage(url, schema=schema, pool_size=2)


class Flaky:
    def __init__(self, marks: Path) -> None:
        self.marks = marks

    @hookimpl
    def nucleus_ledger_opened(self, ledger: Any) -> None:
        (self.marks / "opened").touch()
        deadline = time.monotonic() + 60
        while not (self.marks / "appended").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise RuntimeError("flaky plugin refuses after opening")


def main(argv: list[str]) -> int:
    role, url = argv[:2]
    schema = argv[2] if len(argv) > 2 else None
    marks = Path(os.environ["RACE_DIR"])
    if role == "flaky":
        try:
            create_ledger(id="main", storage=storage(url, schema), plugins=[Flaky(marks)])
        except RuntimeError as err:
            print(f"failed {err}")
            return 0
        return 1
    deadline = time.monotonic() + 60
    while not (marks / "opened").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ctx = make_context()
    while True:
        try:
            ledger = open_ledger(id="main", storage=storage(url, schema))
            break
        except LedgerNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with ledger:
        for i in range(3):
            entry = ledger.append(Record(id=f"p2-{i}", stream="s", payload={"i": i}, timestamp=1), ctx)
            print(f"ack {entry.seq} {entry.record.id}", flush=True)
        (marks / "appended").touch()
        time.sleep(1)  # still open while the other process fails and discards
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
