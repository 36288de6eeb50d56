"""What witnessing costs a ledger's writes, next to a baseline measured in the same run.

    python bench/bench_witnessing.py [--appends 400] [--timeout 2] [--interval 0]

Three real witnesses (``nucleus witness serve`` processes on loopback) witness a ledger that issues
a checkpoint after every commit (``--interval 0``, the default here: a submission to every witness
per append, the most the ledger ever sends, and a cosignature written per witness per append; the
ledger's own default is one checkpoint a second at most). Single-record appends,
durability="full" on SQLite files, interleaved with a baseline ledger that signs the same
checkpoints but has no witnesses, alternating who goes first. Measured:

1. append time with three answering witnesses vs the baseline (goal: ratio without / with >= 0.9:
   the submissions run in the ledger's worker threads, never in the write);
2. the same with one of the three a *stalled* witness (a socket that accepts connections and never
   answers: every request waits for its timeout), the case a synchronous design would suffer most;
3. then, apart from the timed appends, how long after an append returns its checkpoint carries the
   cosignatures of the answering witnesses (p50 / p99), on loopback.

Records are ~300 bytes canonical, as in bench_sqlite.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_sqlite import CTX, record

from nucleus_core import create_ledger
from nucleus_core.checkpoint import CosignatureSigner, NoteSigner, write_key_file

ORIGINS = {tag: f"bench.example.com/{tag}" for tag in ("up", "stalled")}
"""One origin per run: each run's ledger is a new history, which the witnesses would refuse under one origin."""


def start_witness(work: Path, name: str, log_vkeys: dict[str, str]) -> tuple[subprocess.Popen[str], str, str]:
    """A ``nucleus witness serve`` process witnessing the ORIGINS: the process, its URL and its vkey."""
    folder = work / name
    folder.mkdir()
    signer = CosignatureSigner.generate(f"{name}.example.org")
    write_key_file(folder / "witness.key", signer)
    (folder / "witness.toml").write_text(
        f'[witness]\nkey_file = "{folder / "witness.key"}"\nstate = "{folder / "state.db"}"\nport = 0\n'
        f'log_level = "warning"\n'
        + "".join(f'\n[[logs]]\norigin = "{origin}"\nvkeys = ["{vkey}"]\n' for origin, vkey in log_vkeys.items()),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "nucleus_core", "witness", "serve", "--config", str(folder / "witness.toml")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "listening on " in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep its pipe drained
            return process, line.rsplit("listening on ", 1)[1].strip() + "/", signer.vkey
    raise SystemExit(f"witness {name} did not start")


def stalled_witness() -> tuple[socket.socket, str, str]:
    """A listening socket that never accepts: connections succeed (the backlog), answers never come."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/", CosignatureSigner.generate("stalled.example.org").vkey


def run(
    work: Path, appends: int, witnesses: list[tuple[str, str]], timeout: float, tag: str, interval: float
) -> tuple[float, list[float]]:
    """Append ``appends`` records to a witnessed and a baseline ledger, interleaved; the ratio of
    their append times (baseline / witnessed) and the witnessed ledger's cosigning delays."""
    key = work / f"{tag}.key"
    common = {"origin": ORIGINS[tag], "key_files": [str(key)], "key_env": None, "interval": interval}
    witnessed = create_ledger(
        id="witnessed", storage=f"sqlite:///{work / f'witnessed-{tag}.db'}",
        checkpoint={**common, "witness_quorum": 2, "witness_timeout": timeout,
                    "witnesses": [{"url": url, "vkey": vkey} for url, vkey in witnesses]},
    )
    baseline = create_ledger(id="baseline", storage=f"sqlite:///{work / f'baseline-{tag}.db'}", checkpoint=common)
    times = {"witnessed": 0.0, "baseline": 0.0}
    delays: list[float] = []
    answering = [vkey for url, vkey in witnesses if "stalled" not in vkey]
    try:
        pair = [("witnessed", witnessed), ("baseline", baseline)]
        for i in range(appends):
            for name, ledger in pair if i % 2 else pair[::-1]:
                t0 = time.perf_counter()
                ledger.append(record(i, prefix=tag), CTX)
                times[name] += time.perf_counter() - t0
        # Then, apart from the timed appends: how long until a checkpoint carries the cosignatures.
        store = witnessed.checkpoint_issuer.cosignature_store  # type: ignore[union-attr]
        for i in range(appends, appends + max(10, appends // 20)):
            witnessed.append(record(i, prefix=tag), CTX)
            witnessed.issue_checkpoint()  # whatever the interval: this append's checkpoint, now
            t0 = time.perf_counter()
            while len(set(store.cosignatures(i + 1)).intersection(answering)) < len(answering):  # type: ignore[union-attr]
                time.sleep(0.0005)
            delays.append(time.perf_counter() - t0)
        assert witnessed.verify().ok
    finally:
        witnessed.close()
        baseline.close()
    return times["baseline"] / times["witnessed"], delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=400)
    parser.add_argument("--timeout", type=float, default=2.0, help="the witnesses' request timeout (seconds)")
    parser.add_argument("--interval", type=float, default=0.0, help="the ledgers' checkpoint interval (seconds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        vkeys = {}
        for tag, origin in ORIGINS.items():
            log = NoteSigner.generate(origin)
            write_key_file(work / f"{tag}.key", log)
            vkeys[origin] = log.vkey
        started = [start_witness(work, f"w{i}", vkeys) for i in (1, 2, 3)]
        stalled, stalled_url, stalled_vkey = stalled_witness()
        try:
            witnesses = [(url, vkey) for _, url, vkey in started]
            ratio, delays = run(work, args.appends, witnesses, args.timeout, "up", args.interval)
            ms = sorted(d * 1000 for d in delays)
            print(f"append with 3 witnesses answering / without witnesses (x{args.appends}, durability=full, "
                  f"interval {args.interval:g} s): "
                  f"ratio {ratio:.3f} (goal >= 0.9); then cosigned by all 3 after the append returned: "
                  f"p50 {statistics.median(ms):.1f} ms, p99 {ms[int(len(ms) * 0.99)]:.1f} ms (x{len(ms)})")
            with_stall = [*witnesses[:2], (stalled_url, stalled_vkey)]
            ratio, delays = run(work, args.appends, with_stall, args.timeout, "stalled", args.interval)
            print(f"append with 2 witnesses answering and 1 stalled ({args.timeout:g} s timeout) / without: "
                  f"ratio {ratio:.3f} (goal >= 0.9)")
        finally:
            stalled.close()
            for process, _, _ in started:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


if __name__ == "__main__":
    main()
