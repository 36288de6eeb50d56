"""``nucleus remote tail`` (from nucleus-server, entry point ``remote`` of group ``nucleus.cli``)
against a real ``nucleus serve --dev`` on loopback, both in subprocesses: the entries another
client appends, as the JSON lines of ``nucleus tail``; verified with the server's checkpoint key
(a wrong key stops it before any line); filters; the token only from the environment."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nucleus_server.client import RemoteLedger

from nucleus_core import Record
from nucleus_core.checkpoint import NoteSigner, read_key_file
from nucleus_core.cli import EXIT_INTEGRITY, EXIT_USAGE

from .test_serve import Served, clean_env, start

TOKEN = "dev:oid:dev:user:tailer"


@pytest.fixture
def processes() -> Iterator[list[Served]]:
    """The servers a test starts, each stopped by SIGTERM at teardown (one worker each)."""
    started: list[Served] = []
    yield started
    for served in (s for s in started if s.proc.poll() is None):
        served.stop()


def tail(url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """``nucleus remote tail --url URL ARGS`` in a subprocess (its stdout and stderr kept)."""
    return subprocess.Popen(
        [sys.executable, "-m", "nucleus_core", "remote", "tail", "--url", url, *args],
        env=clean_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def records(prefix: str, count: int, stream: str = "notes") -> list[Record]:
    return [Record(id=f"{prefix}{i}", stream=stream, timestamp=1_700_000_000_000 + i, payload={"i": i})
            for i in range(count)]


def dev_vkey(tmp_path: Path) -> str:
    """The verifier key of the checkpoint key ``nucleus serve --dev`` made beside its database."""
    signer = read_key_file(tmp_path / "nucleus.db.checkpoint.key")
    assert isinstance(signer, NoteSigner)
    return signer.vkey


def test_follows_a_served_ledger_verified_with_its_checkpoint_key(tmp_path: Path, processes: list[Served]) -> None:
    served = start(processes, ["--dev", "--workers", "1"], tmp_path)
    vkey = dev_vkey(tmp_path)
    with RemoteLedger(served.url, token=TOKEN) as writer:
        before = writer.append_batch(records("old", 2))
        # From the head on (the default), verified, only the stream "notes", until 3 such entries.
        follower = tail(served.url, "--key", vkey, "--stream", "notes", "--count", "3", "--token-env", "TAIL_TOKEN",
                        TAIL_TOKEN=TOKEN)
        # From the start, unverified, stops after 5 s without an entry.
        everything = tail(served.url, "--after", "0", "--timeout", "5", NUCLEUS_TOKEN=TOKEN)
        appended = []
        while follower.poll() is None and len(appended) < 12:
            appended += writer.append_batch([*records(f"n{len(appended)}-", 1), *records(f"o{len(appended)}-", 1,
                                                                                         stream="other")])
            with contextlib.suppress(subprocess.TimeoutExpired):
                follower.wait(0.5)
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        rest, err2 = everything.communicate(timeout=120)
        assert everything.returncode == 0, err2
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3 and {line["record"]["stream"] for line in lines} == {"notes"}
    notes = [e.to_dict() for e in appended if e.record.stream == "notes"]
    assert all(line in notes for line in lines)  # the entries as appended, hashes and all
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
    assert all(line["seq"] > before[-1].seq for line in lines)
    every = [json.loads(line) for line in rest.splitlines()]
    assert [line["seq"] for line in every] == list(range(1, len(every) + 1))  # from the first entry, in order
    assert {e.to_dict()["hash"] for e in [*before, *appended]} <= {line["hash"] for line in every}
    assert TOKEN not in err and TOKEN not in err2


def test_a_wrong_key_stops_before_any_line(tmp_path: Path, processes: list[Served]) -> None:
    served = start(processes, ["--dev", "--workers", "1"], tmp_path)
    with RemoteLedger(served.url, token=TOKEN) as writer:
        writer.append_batch(records("r", 3))
        ledger_id = writer.id
    stranger = NoteSigner.generate(f"nucleus.invalid/{ledger_id}").vkey
    refused = tail(served.url, "--key", stranger, "--after", "0", "--count", "3", "--json", NUCLEUS_TOKEN=TOKEN)
    out, err = refused.communicate(timeout=120)
    assert refused.returncode == EXIT_INTEGRITY, err
    assert out == ""
    assert json.loads(err.strip().splitlines()[-1])["error"]["code"]


def test_the_token_comes_from_the_environment(tmp_path: Path, processes: list[Served]) -> None:
    served = start(processes, ["--dev", "--workers", "1"], tmp_path)
    missing = tail(served.url, "--after", "0", "--count", "1", "--token-env", "NO_SUCH_VARIABLE")
    out, err = missing.communicate(timeout=60)
    assert missing.returncode == EXIT_USAGE and "NO_SUCH_VARIABLE" in err and out == ""
    loose = tail(served.url, "--trusted-state", str(tmp_path / "state"), NUCLEUS_TOKEN=TOKEN)
    out, err = loose.communicate(timeout=60)
    assert loose.returncode == EXIT_USAGE and "go with --key" in err
