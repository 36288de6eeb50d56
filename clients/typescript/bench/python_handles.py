"""The Python side of bench/handles.ts: times ``RemoteLedger.modules`` handle calls on request.

Reads one JSON command a line on stdin, ``{"url", "token", "vkey"}`` first (a plain and a
verifying ``RemoteLedger``, each with the token module's handle), then ``{"client": "plain" |
"verifying", "op": "balance" | "history", "args": [...], "count": n}``; answers each with a JSON
line: the milliseconds of each of the ``count`` calls, in order.
"""

from __future__ import annotations

import json
import sys
import time

from nucleus_module_token import TokenModule
from nucleus_server.client import RemoteLedger


def main() -> None:
    setup = json.loads(sys.stdin.readline())
    clients = {
        "plain": RemoteLedger(setup["url"], token=setup["token"]),
        "verifying": RemoteLedger(setup["url"], token=setup["token"], checkpoint_vkeys=[setup["vkey"]]),
    }
    handles = {name: ledger.modules.get("token", TokenModule) for name, ledger in clients.items()}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        call = getattr(handles[command["client"]], command["op"])
        times = []
        for _ in range(command["count"]):
            start = time.perf_counter()
            result = call(*command["args"])
            times.append((time.perf_counter() - start) * 1000)
            if command["op"] == "history" and len(result) != command["expect"]:
                raise SystemExit(f"history of {len(result)} entries, expected {command['expect']}")
        print(json.dumps(times), flush=True)
    for ledger in clients.values():
        ledger.close()


if __name__ == "__main__":
    main()
