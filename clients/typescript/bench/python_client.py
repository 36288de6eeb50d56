"""The Python side of bench/query.ts: times ``RemoteLedger.query`` pages on request.

Reads one JSON command a line on stdin, ``{"url", "token", "vkey"}`` first (making a plain and a
verifying ``RemoteLedger``), then ``{"client": "plain"|"verifying", "filters": [{...}, ...]}``;
answers each with a JSON line: the milliseconds of each query, in order.
"""

from __future__ import annotations

import json
import sys
import time

from nucleus_server.client import RemoteLedger


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    clients = {
        "plain": RemoteLedger(setup["url"], token=setup["token"]),
        "verifying": RemoteLedger(setup["url"], token=setup["token"], checkpoint_vkeys=[setup["vkey"]]),
    }
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        ledger = clients[command["client"]]
        times = []
        for filters in command["filters"]:
            start = time.perf_counter()
            page = ledger.query(filters)
            times.append((time.perf_counter() - start) * 1000)
            if len(page.entries) != filters["limit"]:
                raise SystemExit(f"short page: {len(page.entries)} entries for {filters}")
        print(json.dumps(times), flush=True)
    for ledger in clients.values():
        ledger.close()


if __name__ == "__main__":
    main()
