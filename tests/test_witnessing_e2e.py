"""Witnessed checkpoints end to end on loopback, with SQLite and PostgreSQL ledgers: ledger servers
(uvicorn on 127.0.0.1) signing with a real key, three real witnesses (``nucleus witness serve``,
each its own process with its own key and state file), and the ledger's workers between them.

- An honest ledger: cosigned checkpoints accumulate as it grows, every one accepted by a client
  requiring 2 of the 3 witnesses; one witness down, still 2 of 3; two down, the latest checkpoint
  is served without meeting the policy (refused by the client) while ``?cosigned=2`` answers the
  last one that does; the witnesses back, the next checkpoint gets all three again.
- A dishonest operator: a second database served under the same key and origin (another history
  of a smaller, the same or a larger size) never gets a cosignature: the witnesses answer 409
  and then 422 (or a 409 naming a larger size), and the client refuses it.
- A restart: the ledger knows what each witness last cosigned from its database, and recovers it
  from a 409 answer when that was lost.
- A witness whose answer is not a valid cosignature by its configured key, or that does not know
  the log (404), is refused and logged, never stored.

Checkpoints and cosignatures are checked by ``tests/c2sp_reference.py`` (the tests' own verifier,
written from the C2SP texts) and by the client-side policy object
(:class:`nucleus_core.cosignature.CosignaturePolicy`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("nucleus_witness")
pytest.importorskip("nucleus_server")
pytest.importorskip("nucleus_storage_sqlite")
pytest.importorskip("psycopg")

from nucleus_server import create_app
from nucleus_storage_postgres import postgres_storage

from nucleus_core import Ledger, Record, RequestContext, create_ledger, open_ledger
from nucleus_core.checkpoint import CosignatureSigner, NoteSigner, write_key_file
from nucleus_core.cosignature import CosignaturePolicy, CosignaturePolicyError
from nucleus_core.testing.postgres import drop_schema, temporary_database

ROOT = Path(__file__).resolve().parents[1]
ALICE = RequestContext(oid="oid:wit:user:alice", source="dev")
WAIT = 60.0  # seconds a witness round may take at most (never reached when things work)
LOGS = 20  # origins the witnesses are configured for: each test takes its own


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ref = _load("c2sp_reference", ROOT / "tests" / "c2sp_reference.py")
ServerThread = _load("nucleus_witness_e2e_server_helpers", ROOT / "plugins/server/tests/conftest.py").ServerThread


# --- real `nucleus` processes: the witnesses, and ledger servers ---------------------------------------


class Command:
    """A long-running ``nucleus`` command, its stderr kept in :attr:`output`."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, *args: str, ready: str, env: dict[str, str] | None = None) -> str:
        """Start ``nucleus ARGS``; its first stderr line holding ``ready``."""
        assert self.process is None
        base = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nucleus_core", *args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env={**base, **(env or {})},
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.output.append(line)
            if ready in line:
                break
        else:
            raise AssertionError(f"nucleus {' '.join(args)} did not start: {''.join(self.output)}")
        stream = self.process.stderr
        self._drain = threading.Thread(target=lambda: self.output.extend(stream), daemon=True)
        self._drain.start()
        return line

    def stop(self) -> None:
        """What SIGTERM does: a graceful stop."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
            self._drain.join(30)  # its stderr reached the end
            assert self.process.stderr is not None
            self.process.stderr.close()
            self.process = None


class WitnessProcess(Command):
    """One witness: its key, its witness.toml (the logs it witnesses) and its process."""

    def __init__(self, folder: Path, name: str, logs: list[tuple[str, str]]) -> None:
        super().__init__()
        folder.mkdir()
        self.signer = CosignatureSigner.generate(name)
        write_key_file(folder / "witness.key", self.signer)
        tables = "".join(f'\n[[logs]]\norigin = "{origin}"\nvkeys = ["{vkey}"]\n' for origin, vkey in logs)
        self.config = folder / "witness.toml"
        self.config.write_text(
            f'[witness]\nkey_file = "{folder / "witness.key"}"\nstate = "{folder / "state.db"}"\n'
            f'host = "127.0.0.1"\nport = 0\nlog_level = "warning"\n{tables}',
            encoding="utf-8",
        )
        self.port = 0

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def begin(self) -> WitnessProcess:
        """Start it (again on the port it had, so the ledgers' configuration stays right)."""
        line = self.start("witness", "serve", "--config", str(self.config), "--port", str(self.port),
                          ready="listening on http://")
        self.port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        return self

    def checkpoint_of(self, origin: str) -> httpx.Response:
        """Its monitoring answer: the latest checkpoint it cosigned for ``origin``."""
        return httpx.get(f"{self.url}{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint")


class Log:
    """An origin the witnesses witness, with its signing key in a file."""

    def __init__(self, folder: Path, origin: str) -> None:
        self.origin = origin
        self.signer = NoteSigner.generate(origin)
        self.key_file = folder / f"{origin.replace('/', '_')}.key"
        write_key_file(self.key_file, self.signer)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three witnesses, each configured for LOGS origins; the logs (key files) to hand out."""
    folder = tmp_path_factory.mktemp("witnesses")
    logs = [Log(folder, f"ledger{i}.example.com/main") for i in range(LOGS)]
    table = [(log.origin, log.signer.vkey) for log in logs]
    witnesses = [WitnessProcess(folder / f"w{i}", f"w{i}.example.org", table).begin() for i in (1, 2, 3)]
    try:
        yield {"logs": logs, "witnesses": witnesses}
    finally:
        for witness in witnesses:
            witness.stop()


@pytest.fixture
def log(world: dict[str, Any]) -> Log:
    """An origin no other test used (the witnesses keep state per origin)."""
    return world["logs"].pop()


@pytest.fixture
def witnesses(world: dict[str, Any]) -> Iterator[list[WitnessProcess]]:
    """The three witnesses, all running; a test that stopped one gets it back afterwards."""
    yield world["witnesses"]
    for witness in world["witnesses"]:
        if witness.process is None:
            witness.begin()


# --- the ledgers: SQLite files and PostgreSQL schemas ----------------------------------------------


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with temporary_database("nucleus_witnessing") as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """``place(name)``: the storage of the database ``name`` (the same database for the same name)."""
    schemas: list[str] = []
    if request.param == "sqlite":
        yield lambda name: f"sqlite:///{tmp_path / name}.db"
        return
    dsn = request.getfixturevalue("pg_dsn")
    names: dict[str, str] = {}

    def storage(name: str) -> Any:
        schema = names.setdefault(name, f"w_{uuid.uuid4().hex[:10]}")
        if schema not in schemas:
            schemas.append(schema)
        return postgres_storage(dsn, schema=schema)

    yield storage
    for schema in schemas:
        drop_schema(dsn, schema)


def ledger_config(log: Log, witnesses: list[WitnessProcess], quorum: int = 2, **more: Any) -> dict[str, Any]:
    return {
        "origin": log.origin, "key_files": [str(log.key_file)], "key_env": None, "interval": 0,
        "witness_quorum": quorum, "witness_timeout": 10,
        "witnesses": [{"url": w.url, "vkey": w.vkey} for w in witnesses], **more,
    }


@pytest.fixture
def serve() -> Iterator[Callable[[Ledger], Any]]:
    """``serve(ledger)``: uvicorn on 127.0.0.1 serving it (owning it); all stop at teardown."""
    started: list[Any] = []

    def start(ledger: Ledger) -> Any:
        server = ServerThread(create_app(ledger, owns_ledger=True)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.thread.is_alive():
            server.stop()


def grow(ledger: Ledger, count: int, tag: str = "a") -> None:
    """Append ``count`` records in one batch (one checkpoint) and wait until every witness was sent
    that checkpoint."""
    start = ledger.length()
    records = [Record(id=f"{tag}{start + i}", stream="docs", timestamp=1_767_225_600_000, payload={})
               for i in range(count)]
    ledger.append_batch(records, ALICE)
    assert ledger.witnessing is not None and ledger.witnessing.wait(WAIT)


def fetch(server: Any, **params: int) -> httpx.Response:
    return httpx.get(f"{server.url}/checkpoint", params=params)


def cosigners(note: str, witnesses: list[WitnessProcess]) -> list[str]:
    """Which witnesses cosigned the note, each cosignature checked by the reference verifier."""
    return [w.signer.name for w in witnesses if ref.cosignature_timestamps(note, w.vkey)]


# --- an honest ledger -------------------------------------------------------------------------------


def test_cosigned_checkpoints_accumulate_and_a_2_of_3_client_accepts_them(
    place: Callable[[str], Any], log: Log, witnesses: list[WitnessProcess], serve: Callable[[Ledger], Any]
) -> None:
    ledger = create_ledger(id="main", storage=place("honest"), checkpoint=ledger_config(log, witnesses))
    server = serve(ledger)
    policy = CosignaturePolicy.from_vkeys(2, [w.vkey for w in witnesses])
    seen: list[tuple[int, str]] = []
    for round_size in (1, 3, 5):
        grow(ledger, round_size)
        note = fetch(server).text
        body = ref.checkpoint(note, log.signer.vkey)  # the ledger's own signature, by the reference
        assert body.origin == log.origin and body.size == ledger.length()
        assert cosigners(note, witnesses) == ["w1.example.org", "w2.example.org", "w3.example.org"]
        assert len(policy.check(note)) == 3
        assert fetch(server, cosigned=2).text == note == fetch(server, size=body.size, cosigned=3).text
        seen.append((body.size, note))
    # Every earlier checkpoint kept its cosignatures, and the witnesses hold the latest.
    for size, note in seen:
        assert fetch(server, size=size).text == note
    for witness in witnesses:
        held = witness.checkpoint_of(log.origin)
        assert held.status_code == 200 and ref.parse_checkpoint_text(ref.split_note(held.text).text).size == 9
    status = httpx.get(f"{server.url}/checkpoint/witnesses").json()
    assert status["quorum"] == 2
    assert [(w["vkey"], w["cosigned_size"], w["last_error"]) for w in status["witnesses"]] == [
        (w.vkey, 9, None) for w in witnesses
    ]

    # One witness down: still 2 of 3.
    witnesses[2].stop()
    grow(ledger, 2)
    note = fetch(server).text
    assert ref.checkpoint(note, log.signer.vkey).size == 11
    assert cosigners(note, witnesses) == ["w1.example.org", "w2.example.org"]
    assert len(policy.check(note)) == 2
    down = httpx.get(f"{server.url}/checkpoint/witnesses").json()["witnesses"][2]
    assert down["cosigned_size"] == 9 and down["submitted_size"] == 11 and "no answer" in down["last_error"]

    # Two down: the latest checkpoint is served without meeting the policy, and refused.
    witnesses[1].stop()
    grow(ledger, 1)
    note = fetch(server).text
    assert ref.checkpoint(note, log.signer.vkey).size == 12
    assert cosigners(note, witnesses) == ["w1.example.org"]
    with pytest.raises(CosignaturePolicyError) as refused:
        policy.check(note)
    assert (refused.value.found, refused.value.required) == (1, 2)
    last_good = fetch(server, cosigned=2)
    assert last_good.status_code == 200 and ref.checkpoint(last_good.text, log.signer.vkey).size == 11
    assert fetch(server, size=12, cosigned=2).status_code == 404
    assert fetch(server, cosigned=4).status_code == 400

    # Both back: the next checkpoint is sent at once, from what each last cosigned.
    witnesses[1].begin()
    witnesses[2].begin()
    grow(ledger, 1)
    note = fetch(server).text
    assert ref.checkpoint(note, log.signer.vkey).size == 13
    assert len(policy.check(note)) == 3


def test_a_remote_ledger_requiring_the_policy_accepts_and_refuses(
    place: Callable[[str], Any], log: Log, witnesses: list[WitnessProcess], serve: Callable[[Ledger], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The verifying client (``RemoteLedger(witness_policy=...)``, issue 14 item 1) over this server."""
    from nucleus_server.client import RemoteLedger

    from nucleus_core.errors import InclusionProofError, WitnessPolicyError

    monkeypatch.setenv("NUCLEUS_ENV", "development")
    ledger = create_ledger(
        id="main", storage=place("client"), plugins=["auth.dev"], checkpoint=ledger_config(log, witnesses)
    )
    server = serve(ledger)
    grow(ledger, 4)
    policy = CosignaturePolicy.from_vkeys(2, [w.vkey for w in witnesses])
    with RemoteLedger(
        server.url, token=f"dev:{ALICE.oid}", ledger_id="main", origin=log.origin,
        checkpoint_vkeys=[log.signer.vkey], witness_policy=policy, checkpoint_wait=0.5,
    ) as client:
        assert ref.checkpoint(client.checkpoint(), log.signer.vkey).size == 4
        assert client.get_by_id("a3") is not None  # verified against a checkpoint that meets the policy
        witnesses[2].stop()
        grow(ledger, 1)
        assert ref.checkpoint(client.checkpoint(), log.signer.vkey).size == 5  # still 2 of 3
        witnesses[1].stop()
        grow(ledger, 1)
        with pytest.raises(WitnessPolicyError, match="size 6"):
            client.checkpoint()
        entry = client.get_by_id("a4")  # seq 5: in the last checkpoint 2 of 3 cosigned
        assert entry is not None and entry.seq == 5
        with pytest.raises(InclusionProofError) as refused:  # seq 6: in none such
            client.get_by_id("a5")
        assert refused.value.seq == 6


def test_cosigned_selects_among_the_configured_witnesses_only(
    place: Callable[[str], Any], log: Log, witnesses: list[WitnessProcess]
) -> None:
    """``cosigned=K`` counts the configured witnesses; a 1-of-1 policy over one of them."""
    config = ledger_config(log, witnesses[:1], quorum=1)
    with create_ledger(id="main", storage=place("one"), checkpoint=config) as ledger:
        grow(ledger, 2)
        note = ledger.checkpoint(cosigned=1)
        assert cosigners(note, witnesses) == ["w1.example.org"]
        CosignaturePolicy.from_vkeys(1, [witnesses[0].vkey]).check(note)
        with pytest.raises(CosignaturePolicyError):
            CosignaturePolicy.from_vkeys(1, [witnesses[1].vkey]).check(note)


# --- a dishonest operator: two histories under one key ----------------------------------------------


@pytest.mark.parametrize("second_size", [3, 5, 8])
def test_a_second_history_under_the_same_key_is_never_cosigned(
    place: Callable[[str], Any], log: Log, witnesses: list[WitnessProcess], serve: Callable[[Ledger], Any],
    second_size: int, caplog: pytest.LogCaptureFixture,
) -> None:
    config = ledger_config(log, witnesses)
    policy = CosignaturePolicy.from_vkeys(2, [w.vkey for w in witnesses])
    first = create_ledger(id="main", storage=place("first"), checkpoint=config)
    alice_server = serve(first)
    grow(first, 5, tag="alice-")
    shown_to_alice = fetch(alice_server).text
    assert len(policy.check(shown_to_alice)) == 3

    # The same key file and origin over another database: another history.
    second = create_ledger(id="main", storage=place("second"), checkpoint=config)
    bob_server = serve(second)
    with caplog.at_level(logging.INFO, logger="nucleus_core.witnessing"):
        grow(second, second_size, tag="bob-")
    shown_to_bob = fetch(bob_server).text
    bob = ref.checkpoint(shown_to_bob, log.signer.vkey)  # signed by the very same key
    alice = ref.checkpoint(shown_to_alice, log.signer.vkey)
    assert bob.origin == alice.origin and bob.size == second_size
    if second_size == alice.size:
        assert bob.root != alice.root
    assert cosigners(shown_to_bob, witnesses) == []
    with pytest.raises(CosignaturePolicyError):
        policy.check(shown_to_bob)
    assert fetch(bob_server, cosigned=1).status_code == 404
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and all("refused the checkpoint of size" in e for e in errors)
    if second_size < 5:
        assert all("it cosigned size 5 of this log, larger than this checkpoint" in e for e in errors)
    else:  # sent from old 0, told 5 (409), sent again from 5: the proof (or the root) is refused
        assert all("(422)" in e for e in errors)
        assert sum("last cosigned size 5, not 0" in r.getMessage() for r in caplog.records) == 3
    for status in httpx.get(f"{bob_server.url}/checkpoint/witnesses").json()["witnesses"]:
        assert status["cosigned_size"] == 0 and status["last_error"]
    # The witnesses still hold alice's history, and go on cosigning it.
    for witness in witnesses:
        assert ref.split_note(witness.checkpoint_of(log.origin).text).text == ref.split_note(shown_to_alice).text
    grow(first, 1, tag="alice-")
    assert len(policy.check(fetch(alice_server).text)) == 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {WAIT:g} s: {what}")
        time.sleep(0.05)


def test_two_server_processes_under_one_key_and_only_the_first_history_is_cosigned(
    tmp_path: Path, log: Log, witnesses: list[WitnessProcess]
) -> None:
    """``nucleus serve --config`` twice, with one key file and origin over two SQLite databases."""
    from nucleus_server.client import RemoteLedger

    tables = "".join(f'\n[[ledger.checkpoint.witnesses]]\nurl = "{w.url}"\nvkey = "{w.vkey}"\n' for w in witnesses)
    servers: list[tuple[Command, str]] = []
    try:
        for name in ("alice", "bob"):
            port = _free_port()
            config = tmp_path / f"{name}.toml"
            config.write_text(
                f'[ledger]\nid = "main"\nstorage = "sqlite:///{tmp_path / name}.db"\n\n'
                f'[ledger.checkpoint]\norigin = "{log.origin}"\nkey_files = ["{log.key_file}"]\nkey_env = ""\n'
                f"interval = 0.1\nwitness_quorum = 2\n{tables}\n"
                # One process per history: the log lines counted below are that process's own.
                f'[server]\nport = {port}\nlog_level = "warning"\nworkers = 1\n',
                encoding="utf-8",
            )
            command = Command()
            servers.append((command, f"http://127.0.0.1:{port}"))
            command.start("serve", "--config", str(config), "--dev", ready="listening on",
                          env={"NUCLEUS_ENV": "development"})
            _until(f"{name}'s server answers", lambda url=servers[-1][1]: _answers(f"{url}/health"))
        (_, alice), (bob_process, bob) = servers

        def status(url: str) -> list[dict[str, Any]]:
            return list(httpx.get(f"{url}/checkpoint/witnesses").json()["witnesses"])

        sizes = {}
        for url, count in ((alice, 5), (bob, 8)):
            with RemoteLedger(url, token=f"dev:{ALICE.oid}") as client:
                client.append_batch(
                    [Record(id=f"r{i}", stream="docs", timestamp=1_767_225_600_000, payload={}) for i in range(count)]
                )
                sizes[url] = client.length()
        _until("alice's checkpoint is cosigned", lambda: all(w["cosigned_size"] == sizes[alice] for w in status(alice)))
        _until(
            "bob's checkpoint is refused by every witness",
            lambda: all(w["submitted_size"] == sizes[bob] and "(422)" in (w["last_error"] or "") for w in status(bob)),
        )
        shown_to_alice, shown_to_bob = (httpx.get(f"{url}/checkpoint").text for url in (alice, bob))
        assert ref.checkpoint(shown_to_alice, log.signer.vkey).size == sizes[alice]
        assert ref.checkpoint(shown_to_bob, log.signer.vkey).size == sizes[bob]  # the same key signed both
        assert cosigners(shown_to_alice, witnesses) == ["w1.example.org", "w2.example.org", "w3.example.org"]
        assert cosigners(shown_to_bob, witnesses) == []
        assert all(w["cosigned_size"] == 0 for w in status(bob))
        assert httpx.get(f"{bob}/checkpoint", params={"cosigned": 2}).status_code == 404
        bob_process.stop()
        refusals = [line for line in bob_process.output if f"refused the checkpoint of size {sizes[bob]}" in line]
        assert len(refusals) == 3, "".join(bob_process.output)  # once each: the log writes each line once
        assert all(line.startswith("ERROR nucleus_core.witnessing") for line in refusals)
    finally:
        for command, _url in servers:
            command.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


# --- restarts ---------------------------------------------------------------------------------------


def test_a_restarted_ledger_knows_what_each_witness_cosigned(
    place: Callable[[str], Any], log: Log, witnesses: list[WitnessProcess], caplog: pytest.LogCaptureFixture,
) -> None:
    config = ledger_config(log, witnesses)
    with create_ledger(id="main", storage=place("restart"), checkpoint=config) as ledger:
        grow(ledger, 4)
    with caplog.at_level(logging.INFO, logger="nucleus_core.witnessing"), open_ledger(
        id="main", storage=place("restart"), checkpoint=config
    ) as again:
        assert again.witnessing is not None and again.witnessing.wait(WAIT)
        assert [s.cosigned_size for s in again.witness_status()] == [4, 4, 4]
        assert [s.submitted_size for s in again.witness_status()] == [None, None, None]  # nothing to send
        grow(again, 2)
        assert [s.cosigned_size for s in again.witness_status()] == [6, 6, 6]
        assert cosigners(again.checkpoint(), witnesses) == ["w1.example.org", "w2.example.org", "w3.example.org"]
    assert not [r for r in caplog.records if "again from there" in r.getMessage()]  # no 409 was needed


def test_a_lost_cosignature_is_recovered_from_the_409(
    tmp_path: Path, log: Log, witnesses: list[WitnessProcess], caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    storage = f"sqlite:///{tmp_path / 'lost.db'}"
    config = ledger_config(log, witnesses)
    with create_ledger(id="main", storage=storage, checkpoint=config) as ledger:
        grow(ledger, 3)
    with sqlite3.connect(tmp_path / "lost.db") as db:  # a crash between the witness's answer and the write
        db.execute("DELETE FROM nucleus_cosignatures")
    with caplog.at_level(logging.INFO, logger="nucleus_core.witnessing"), open_ledger(
        id="main", storage=storage, checkpoint=config
    ) as again:
        assert again.witnessing is not None and again.witnessing.wait(WAIT)
        # The latest checkpoint was sent again from 0: each witness said 3 (409), then cosigned it.
        assert [s.cosigned_size for s in again.witness_status()] == [3, 3, 3]
        assert cosigners(again.checkpoint(), witnesses) == ["w1.example.org", "w2.example.org", "w3.example.org"]
        grow(again, 2)
        assert [s.cosigned_size for s in again.witness_status()] == [5, 5, 5]
    assert sum("last cosigned size 3, not 0" in r.getMessage() for r in caplog.records) == 3


# --- witnesses that answer wrong --------------------------------------------------------------------


def test_a_wrong_cosignature_and_an_unknown_log_are_refused_and_logged(
    tmp_path: Path, log: Log, witnesses: list[WitnessProcess], caplog: pytest.LogCaptureFixture
) -> None:
    impostor = CosignatureSigner.generate(witnesses[1].signer.name)  # w2's name, another key
    stranger = Log(tmp_path, "unknown.example.com/log")  # a log no witness is configured for
    config = ledger_config(log, witnesses, quorum=1)
    config["witnesses"][1]["vkey"] = impostor.vkey
    with caplog.at_level(logging.WARNING, logger="nucleus_core.witnessing"), create_ledger(
        id="main", storage=f"sqlite:///{tmp_path / 'wrong.db'}", checkpoint=config
    ) as ledger:
        grow(ledger, 2)
        note = ledger.checkpoint()
        assert cosigners(note, witnesses) == ["w1.example.org", "w3.example.org"]
        assert ref.cosignature_timestamps(note, impostor.vkey) == []
        (w2,) = [s for s in ledger.witness_status() if s.vkey == impostor.vkey]
        assert w2.cosigned_size == 0 and "holds no cosignature by" in (w2.last_error or "")
    assert any("trying again later" in r.getMessage() and "w2.example.org" in r.getMessage() for r in caplog.records)

    caplog.clear()
    unknown = ledger_config(stranger, witnesses, quorum=1)
    with caplog.at_level(logging.ERROR, logger="nucleus_core.witnessing"), create_ledger(
        id="main", storage=f"sqlite:///{tmp_path / 'unknown.db'}", checkpoint=unknown
    ) as ledger:
        grow(ledger, 1)
        assert all("(404)" in (s.last_error or "") for s in ledger.witness_status())
        assert cosigners(ledger.checkpoint(), witnesses) == []
    assert len([r for r in caplog.records if "refused the checkpoint of size 1" in r.getMessage()]) == 3
