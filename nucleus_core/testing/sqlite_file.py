"""Reading a SQLite ledger file behind the ledger's back (standard library only), for tests that check
what was stored: the streams in seq order and the newest ``_ledger`` record of required plugins."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any


def stored_streams(path: Path) -> list[tuple[int, str]]:
    """``(seq, stream)`` of every entry in the file, in seq order."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [(int(s), str(t)) for s, t in conn.execute("SELECT seq, stream FROM nucleus_entries ORDER BY seq")]


def newest_plugins_record(path: Path) -> dict[str, Any]:
    """The payload of the newest ``_ledger`` entry (``{"type": "plugins", "plugins": [...]}``)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (canonical,) = conn.execute(
            "SELECT canonical FROM nucleus_entries WHERE stream = '_ledger' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    payload: dict[str, Any] = json.loads(bytes(canonical))["payload"]
    return payload
