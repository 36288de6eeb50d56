"""Module handles, in process and over HTTP: one set of scenarios, two runtimes, equal results.

The ledger (SQLite file, UAL, the four domain modules and a third-party module given as a plugin
object) holds data written by several principals. Each scenario runs against ``ledger.runtime``
and against ``RemoteLedger(...).modules`` talking to a real ``nucleus_server`` on loopback; what
the two answer must be equal. Then the HTTP surface of the handle routes (arguments, errors,
OpenAPI) and a verifying client that refuses a tampered entry in a handle answer.
"""

from __future__ import annotations

import enum
import inspect
import json
import sqlite3
import sys
import threading
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from nucleus_module_asset import AssetInfo, AssetModule
from nucleus_module_connect_grant import ConnectGrantModule, GrantInfo
from nucleus_module_proof import ProofInfo, ProofModule, ProofStatus
from nucleus_module_token import TokenInfo, TokenModule
from nucleus_server.app import create_app
from nucleus_server.asgi import parse_query
from nucleus_server.client import AnswerMismatchError, InclusionProofError, RemoteLedger, RemoteModules
from nucleus_server.errors import MalformedRequestError
from nucleus_server.wire import entry_from_json

from nucleus_core import (
    Entry,
    IntegrityError,
    Ledger,
    MissingRequesterError,
    Module,
    ModuleError,
    ModuleRuntime,
    ModuleSpec,
    Record,
    RequestContext,
    ValidationError,
    handle_operation,
    hookimpl,
    operations_of,
)
from nucleus_core.checkpoint import NoteSigner, default_origin
from nucleus_core.hashing import entry_hash_of_version
from nucleus_core.modules import DerivedState, StatefulModule

ROOT = "oid:hd:user:root"
ALICE = "oid:hd:user:alice"
BOB = "oid:hd:user:bob"
CAROL = "oid:hd:user:carol"
DAVE = "oid:hd:user:dave"  # given read grants by Alice
EVE = "oid:hd:user:eve"  # a stranger: sees nothing
APP = "oid:hd:app:calendar"
LEDGER = "handles-test"


def ctx(oid: str) -> RequestContext:
    return RequestContext(oid=oid, source="auth.dev", token=f"dev:{oid}")


# --- a third-party module: its operations are served with no server change ---------------------
class NoteKind(enum.Enum):
    MEMO = "memo"
    TODO = "todo"


@attrs.frozen(kw_only=True)
class NoteInfo:
    note_id: str
    author: str
    kind: NoteKind
    tags: tuple[str, ...]
    done: bool
    seq: int


class NotesModule(StatefulModule[NoteInfo]):
    """Notes: ``{"author": OID, "kind": "memo"|"todo", "tags": [str], "done": bool}``."""

    id = "notes"
    version = "1.0.0"
    streams = ("notes",)
    resource_kind = "note"

    def __init__(self) -> None:
        super().__init__()
        self._by_author: dict[str, list[str]] = {}

    def parse(self, record: Record) -> NoteInfo:
        p = record.payload if isinstance(record.payload, dict) else {}
        if set(p) != {"author", "kind", "tags", "done"}:
            self.reject(record, "needs exactly author, kind, tags, done")
        if p["kind"] not in ("memo", "todo"):
            self.reject(record, "must be memo or todo", "kind")
        if not isinstance(p["tags"], list) or not all(isinstance(t, str) for t in p["tags"]):
            self.reject(record, "must be a list of strings", "tags")
        return NoteInfo(
            note_id=record.id, author=str(p["author"]), kind=NoteKind(p["kind"]), tags=tuple(p["tags"]),
            done=p["done"] is True, seq=0,
        )

    def authorize(self, state: DerivedState, event: NoteInfo, record: Record, context: RequestContext) -> None:
        self.require_requester(record, context, event.author, "author")

    def fold(self, state: DerivedState, event: NoteInfo, record: Record, seq: int | None) -> None:
        state.set("note", record.id, attrs.evolve(event, seq=seq or 0))

    def index(self, event: NoteInfo, record: Record, seq: int) -> None:
        self._by_author.setdefault(event.author, []).append(record.id)

    def _readable(self, ids: list[str], context: RequestContext) -> list[NoteInfo]:
        ctx = self.reader(context)
        notes: list[NoteInfo] = [self.state.get("note", n) for n in ids]
        return [n for n in notes if self.can_read(n.seq, ctx)]

    @handle_operation
    def note(self, note_id: str, context: RequestContext) -> NoteInfo | None:
        """One note, or None."""
        found = self._readable([note_id] if self.state.get("note", note_id) else [], context)
        return found[0] if found else None

    @handle_operation(summary="An author's readable notes, oldest first")
    def by_author(
        self, author: str, context: RequestContext, *, kind: str | None = None, limit: int | None = None,
        done: bool | None = None,
    ) -> tuple[NoteInfo, ...]:
        notes = [
            n for n in self._readable(self._by_author.get(author, []), context)
            if (kind is None or n.kind.value == kind) and (done is None or n.done == done)
        ]
        return tuple(notes[:limit] if limit is not None else notes)

    @handle_operation
    def tag_counts(self, author: str, context: RequestContext) -> dict[str, int]:
        """How many readable notes of ``author`` carry each tag."""
        counts: dict[str, int] = {}
        for n in self._readable(self._by_author.get(author, []), context):
            for tag in n.tags:
                counts[tag] = counts.get(tag, 0) + 1
        return counts

    @handle_operation
    def entry(self, note_id: str, context: RequestContext) -> Entry | None:
        """The note's entry, or None."""
        ctx = self.reader(context)
        note: NoteInfo | None = self.state.get("note", note_id)
        return self.readable(note.seq, ctx) if note is not None else None

    @handle_operation
    def kinds(self, context: RequestContext) -> list[NoteKind]:
        """The kinds a note may have."""
        self.reader(context)
        return list(NoteKind)

    def not_an_operation(self, context: RequestContext) -> int:
        return 1


class NotesPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="notes", factory=lambda _context: NotesModule())]


# --- the ledger, its data, and the two runtimes ------------------------------------------------
def _rec(rid: str, stream: str, **payload: Any) -> Record:
    return Record(id=rid, stream=stream, timestamp=1_700_000_000_000, payload=payload)


def populate(ledger: Ledger) -> None:
    """Data written by several principals under the UAL: Alice and Bob may create resources of
    every kind; Alice gives Dave read on some of hers."""
    root = ctx(ROOT)
    creators = [
        {"resource_kind": kind, "resource_id": "*", "principal_oid": who, "scope": "create"}
        for kind in ("proof", "asset", "connect_grant", "token", "note") for who in (ALICE, BOB)
    ]
    ledger.acl.grant(creators, root)
    alice, bob = ctx(ALICE), ctx(BOB)
    issued = {"type": "issued", "issuer": ALICE, "proof_type": "kyc", "target": "account", "data": {"level": 2}}
    ledger.append_batch([
        _rec("p1", "proof", **issued, subject=BOB),
        _rec("p2", "proof", **issued, subject=CAROL),
        _rec("p3", "proof", **issued, subject=CAROL, expires_at=1_700_000_000_001),
    ], alice)
    ledger.append(_rec("p2-revoked", "proof", type="revoked", proof_id="p2", by=ALICE), alice)
    ledger.append(_rec("pb", "proof", **{**issued, "issuer": BOB}, subject=ALICE), bob)
    ledger.append_batch([
        _rec("a1-issued", "asset", type="issued", asset_id="a1", issuer=ALICE, owner=ALICE, asset_type="car"),
        _rec("a2-issued", "asset", type="issued", asset_id="a2", issuer=ALICE, owner=ALICE),
        _rec("a1-moved", "asset", type="transferred", asset_id="a1", to=BOB, **{"from": ALICE}),
    ], alice)
    ledger.append(_rec("ab-issued", "asset", type="issued", asset_id="ab", issuer=BOB, owner=BOB), bob)
    ledger.append(_rec("g1", "connect_grant", type="granted", subject=ALICE, app=APP, scopes=["read", "write"]), alice)
    ledger.append(_rec("g2", "connect_grant", type="granted", subject=BOB, app=APP, scopes=["read"]), bob)
    ledger.append_batch([
        _rec("t-created", "token", type="created", token_id="EUR", issuer=ALICE, symbol="EUR", decimals=2, cap=1000),
        _rec("t-mint", "token", type="minted", token_id="EUR", tx_id="tx1", to=ALICE, amount=100),
        _rec("t-pay", "token", type="transferred", token_id="EUR", tx_id="tx2", to=BOB, amount=30, **{"from": ALICE}),
    ], alice)
    ledger.acl.grant([{"resource_kind": "token", "resource_id": "EUR", "principal_oid": BOB, "scope": "write"}], alice)
    ledger.append(
        _rec("t-bob", "token", type="transferred", token_id="EUR", tx_id="tx3", to=CAROL, amount=10, **{"from": BOB}),
        bob,
    )
    ledger.append_batch([
        _rec("n1", "notes", author=ALICE, kind="memo", tags=["home", "work"], done=False),
        _rec("n2", "notes", author=ALICE, kind="todo", tags=["work"], done=True),
    ], alice)
    ledger.append(_rec("n3", "notes", author=BOB, kind="todo", tags=["x"], done=False), bob)
    read = [("proof", "p1"), ("asset", "a2"), ("connect_grant", "g1"), ("token", "EUR"), ("note", "n1")]
    ledger.acl.grant(
        [{"resource_kind": k, "resource_id": r, "principal_oid": DAVE, "scope": "read"} for k, r in read], alice
    )


PLUGINS = ("ual", "proof", "asset", "connect_grant", "token")


@pytest.fixture
def served(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> Iterator[tuple[Ledger, Any]]:
    ledger = open_ledger(*PLUGINS, NotesPlugin(), id=LEDGER, admins=[ROOT])
    populate(ledger)
    server = serve(ledger, owns_ledger=False)
    yield ledger, server
    ledger.close()


def runtime_of(kind: str, ledger: Ledger, url: str) -> Iterator[ModuleRuntime]:
    if kind == "local":
        yield ledger.runtime
        return
    # The client's token (a stranger's) only lists the modules: each call's context brings its own.
    with RemoteLedger(url, token=f"dev:{EVE}") as remote:
        yield remote.modules


# --- the scenarios: written once ---------------------------------------------------------------
def proof_scenario(rt: ModuleRuntime) -> dict[str, Any]:
    h = rt.get("proof", ProofModule)
    out: dict[str, Any] = {}
    for who in (ALICE, BOB, CAROL, DAVE, EVE):
        c = ctx(who)
        out[who] = {
            "get": [h.get(pid, c) for pid in ("p1", "p2", "p3", "pb", "nope")],
            "status": [h.status(pid, c, now_ms=1_700_000_000_000) for pid in ("p1", "p2", "p3", "nope")],
            "status_later": h.status("p3", c, now_ms=1_800_000_000_000),
            "by_subject": [h.by_subject(s, c) for s in (BOB, CAROL, ALICE)],
            "by_issuer": [h.by_issuer(i, c) for i in (ALICE, BOB)],
        }
    alice, eve, dave, bob = out[ALICE], out[EVE], out[DAVE], out[BOB]
    assert all(isinstance(p, ProofInfo) for p in alice["get"][:3]) and alice["get"][4] is None
    assert alice["status"] == [ProofStatus.ISSUED, ProofStatus.REVOKED, ProofStatus.ISSUED, None]
    assert alice["status_later"] is ProofStatus.EXPIRED
    assert [p.proof_id for p in alice["by_issuer"][0]] == ["p1", "p2", "p3"]
    assert eve == {"get": [None] * 5, "status": [None] * 4, "status_later": None,
                   "by_subject": [[], [], []], "by_issuer": [[], []]}
    assert [p is not None for p in dave["get"]] == [True, False, False, False, False]
    assert [p.proof_id for p in bob["by_subject"][0]] == ["p1"]  # the subject may read it (seeded)
    assert [p.proof_id for p in bob["by_issuer"][1]] == ["pb"]
    return out


def asset_scenario(rt: ModuleRuntime) -> dict[str, Any]:
    h = rt.get("asset", AssetModule)
    out: dict[str, Any] = {}
    for who in (ALICE, BOB, DAVE, EVE):
        c = ctx(who)
        out[who] = {
            "get": [h.get(a, c) for a in ("a1", "a2", "ab", "nope")],
            "owner": [h.owner(a, c) for a in ("a1", "a2", "ab", "nope")],
            "history": [h.history(a, c) for a in ("a1", "a2", "nope")],
            "assets_of": [h.assets_of(o, c) for o in (ALICE, BOB)],
        }
    alice, bob, dave, eve = out[ALICE], out[BOB], out[DAVE], out[EVE]
    assert alice["owner"] == [BOB, ALICE, None, None]  # the issuer keeps reading a1
    assert [[e.record.id for e in hist] for hist in alice["history"]] == [["a1-issued", "a1-moved"], ["a2-issued"], []]
    assert all(isinstance(e, Entry) for e in alice["history"][0])
    assert bob["owner"] == [BOB, None, BOB, None]
    assert [a.asset_id for a in bob["assets_of"][1]] == ["a1", "ab"]
    assert isinstance(alice["get"][0], AssetInfo) and alice["get"][0].asset_type == "car"
    assert dave["owner"] == [None, ALICE, None, None]
    assert eve == {"get": [None] * 4, "owner": [None] * 4, "history": [[], [], []], "assets_of": [[], []]}
    return out


def connect_grant_scenario(rt: ModuleRuntime) -> dict[str, Any]:
    h = rt.get("connect_grant", ConnectGrantModule)
    out: dict[str, Any] = {}
    for who in (ALICE, BOB, DAVE, EVE):
        c = ctx(who)
        out[who] = {
            "get": [h.get(g, c) for g in ("g1", "g2", "nope")],
            "for_subject": [h.active_for_subject(s, c) for s in (ALICE, BOB)],
            "for_app": h.active_for_app(APP, c),
            "for_app_later": h.active_for_app(APP, c, now_ms=1_900_000_000_000),
        }
    alice, bob, dave, eve = out[ALICE], out[BOB], out[DAVE], out[EVE]
    assert isinstance(alice["get"][0], GrantInfo) and alice["get"][0].scopes == ("read", "write")
    assert [g.grant_id for g in alice["for_app"]] == ["g1"] and [g.grant_id for g in bob["for_app"]] == ["g2"]
    assert [g is not None for g in dave["get"]] == [True, False, False]
    assert eve == {"get": [None] * 3, "for_subject": [[], []], "for_app": [], "for_app_later": []}
    return out


def token_scenario(rt: ModuleRuntime) -> dict[str, Any]:
    h = rt.get("token", TokenModule)
    out: dict[str, Any] = {}
    for who in (ALICE, BOB, DAVE, EVE):
        c = ctx(who)
        out[who] = {
            "token": [h.token(t, c) for t in ("EUR", "nope")],
            "balance": [h.balance("EUR", p, c) for p in (ALICE, BOB, CAROL, EVE)],
            "holders": h.holders("EUR", c),
            "history": h.history("EUR", c),
            "history_bob": h.history("EUR", c, holder=BOB),
            "transaction": [h.transaction(tx, c) for tx in ("tx1", "tx3", "nope")],
        }
    alice, dave, eve = out[ALICE], out[DAVE], out[EVE]
    assert alice["token"][0] == TokenInfo(
        token_id="EUR", issuer=ALICE, symbol="EUR", decimals=2, cap=1000, supply=100, seq=alice["token"][0].seq
    )
    assert alice["balance"] == [70, 20, 10, 0]
    assert alice["holders"] == {ALICE: 70, BOB: 20, CAROL: 10}
    assert [e.record.id for e in alice["history_bob"]] == ["t-pay", "t-bob"]
    assert [e.record.id if e else None for e in alice["transaction"]] == ["t-mint", "t-bob", None]
    assert dave["balance"] == alice["balance"]  # a read grant on the token
    assert eve == {"token": [None, None], "balance": [0] * 4, "holders": {}, "history": [], "history_bob": [],
                   "transaction": [None, None, None]}
    return out


def notes_scenario(rt: ModuleRuntime) -> dict[str, Any]:
    h = rt.get("notes", NotesModule)
    out: dict[str, Any] = {}
    for who in (ALICE, BOB, DAVE, EVE):
        c = ctx(who)
        out[who] = {
            "note": [h.note(n, c) for n in ("n1", "n2", "n3", "nope")],
            "by_author": h.by_author(ALICE, c),
            "todo": h.by_author(ALICE, c, kind="todo", done=True, limit=5),
            "first": h.by_author(ALICE, c, limit=1),
            "tags": h.tag_counts(ALICE, c),
            "entry": h.entry("n1", c),
            "kinds": h.kinds(c),
        }
    alice, dave, eve = out[ALICE], out[DAVE], out[EVE]
    assert isinstance(alice["by_author"], tuple) and [n.note_id for n in alice["by_author"]] == ["n1", "n2"]
    assert alice["note"][0].kind is NoteKind.MEMO and alice["note"][0].tags == ("home", "work")
    assert [n.note_id for n in alice["todo"]] == ["n2"] and [n.note_id for n in alice["first"]] == ["n1"]
    assert alice["tags"] == {"home": 1, "work": 2}
    assert isinstance(alice["entry"], Entry) and alice["entry"].record.id == "n1"
    assert [n is not None for n in dave["note"]] == [True, False, False, False]
    assert eve == {"note": [None] * 4, "by_author": (), "todo": (), "first": (), "tags": {}, "entry": None,
                   "kinds": [NoteKind.MEMO, NoteKind.TODO]}
    return out


def refusals_scenario(rt: ModuleRuntime) -> dict[str, Any]:
    """Unknown id, wrong type, missing/unknown/misplaced arguments, an attribute that is no operation."""
    out: dict[str, Any] = {}
    with pytest.raises(ModuleError) as unknown:
        rt.get("nope")
    with pytest.raises(ModuleError) as unknown_typed:
        rt.get("nope", TokenModule)
    with pytest.raises(ModuleError) as wrong:
        rt.get("token", ProofModule)
    with pytest.raises(ModuleError) as wrong_notes:
        rt.get("notes", TokenModule)
    out["messages"] = [str(e.value) for e in (unknown, unknown_typed, wrong, wrong_notes)]
    assert out["messages"][0] == (
        "module 'nope': is not enabled on this ledger (known modules: asset, connect_grant, notes, proof, token)"
    )
    assert out["messages"][2] == "module 'token': is a TokenModule, not a ProofModule"
    token = rt.get("token", TokenModule)
    for call in (
        lambda: token.balance("EUR", context=ctx(ALICE)),  # type: ignore[call-arg]  # missing holder
        lambda: token.balance("EUR", ALICE, ctx(ALICE), wallet="x"),  # type: ignore[call-arg]
        lambda: token.history("EUR", ctx(ALICE), ALICE),  # type: ignore[misc]  # holder is keyword-only
    ):
        with pytest.raises(TypeError):
            call()
    with pytest.raises(AttributeError):
        token.no_such_operation  # type: ignore[attr-defined]  # noqa: B018
    out["notes_ops"] = sorted(op.name for op in operations_of(NotesModule))
    return out


SCENARIOS = {
    "proof": proof_scenario, "asset": asset_scenario, "connect_grant": connect_grant_scenario,
    "token": token_scenario, "notes": notes_scenario, "refusals": refusals_scenario,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_handle_scenario_in_process_and_over_http_agree(scenario: str, served: tuple[Ledger, Any]) -> None:
    ledger, server = served
    results = {}
    for kind in ("local", "remote"):
        for rt in runtime_of(kind, ledger, server.url):
            assert isinstance(rt, ModuleRuntime)
            results[kind] = SCENARIOS[scenario](rt)
    assert results["remote"] == results["local"]


def test_the_remote_proxy_has_the_in_process_signatures(served: tuple[Ledger, Any]) -> None:
    _ledger, server = served
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        assert isinstance(remote.runtime, RemoteModules)
        for module_id, cls in (("proof", ProofModule), ("asset", AssetModule), ("connect_grant", ConnectGrantModule),
                               ("token", TokenModule), ("notes", NotesModule)):
            proxy = remote.modules.get(module_id, cls)
            untyped = remote.modules.get(module_id)  # the class is imported here: the same proxy
            for op in operations_of(cls):
                local = inspect.signature(getattr(cls, op.name))
                params = [p for p in local.parameters.values() if p.name != "self"]
                want = [p.replace(default=None) if p.name == "context" else p for p in params]
                got = list(inspect.signature(getattr(proxy, op.name)).parameters.values())
                assert [(p.name, p.kind, p.default) for p in got] == [(p.name, p.kind, p.default) for p in want]
                assert inspect.signature(getattr(untyped, op.name)) == inspect.signature(getattr(proxy, op.name))
            with pytest.raises(AttributeError, match="operations: "):
                proxy.apply  # noqa: B018  # a Module method, but no handle operation
        notes = remote.modules.get("notes", NotesModule)
        with pytest.raises(AttributeError):
            notes.not_an_operation  # noqa: B018
        # The client's own token is the requester when no context is given.
        assert remote.modules.get("token", TokenModule).balance("EUR", ALICE) == 70  # type: ignore[call-arg]
        # Ill-typed arguments are refused before anything is sent, naming the argument.
        with pytest.raises(ValidationError) as bad:
            remote.modules.get("token", TokenModule).balance("EUR", 7)  # type: ignore[call-arg,arg-type]
        assert bad.value.field == "holder"


def test_module_documents_list_handle_types_and_operations(served: tuple[Ledger, Any]) -> None:
    _ledger, server = served
    doc = httpx.get(f"{server.url}/modules/token", headers={"authorization": f"Bearer dev:{ALICE}"}).json()
    assert {"id", "version", "state", "streams", "depends_on", "resource_kind"} <= set(doc)
    assert doc["handle_types"] == [
        "nucleus_module_token.module.TokenModule", "nucleus_core.stateful.StatefulModule",
        "nucleus_core.module_base.Module",
    ]
    ops = {o["name"]: o for o in doc["operations"]}
    assert sorted(ops) == ["balance", "history", "holders", "token", "transaction"]
    assert ops["history"] == {
        "name": "history",
        "summary": "The token's entries in seq order (only those involving ``holder`` if given), readable ones only.",
        "path": "/modules/token/history",
        "params": [
            {"name": "token_id", "required": True, "schema": {"type": "string"}},
            {"name": "holder", "required": False, "schema": {"type": "string"}},
        ],
        "result": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}},
    }
    listed = httpx.get(f"{server.url}/modules", headers={"authorization": f"Bearer dev:{ALICE}"}).json()["modules"]
    notes = next(m for m in listed if m["id"] == "notes")
    assert notes["handle_types"][0].endswith("NotesModule")
    assert [o["name"] for o in notes["operations"]] == ["by_author", "entry", "kinds", "note", "tag_counts"]


# --- the HTTP surface of the handle routes -----------------------------------------------------
def _get(server: Any, path: str, who: str | None = ALICE, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer dev:{who}"} if who else {}
    return httpx.get(f"{server.url}{path}", params=params, headers=headers)


def test_a_handle_answer_is_the_result_with_entries_as_stored(served: tuple[Ledger, Any]) -> None:
    ledger, server = served
    response = _get(server, "/modules/token/transaction", tx_id="tx1")
    assert response.status_code == 200
    doc = response.json()
    entry = ledger.get_by_id("t-mint", ctx(ALICE))
    assert entry is not None
    assert set(doc) == {"result"} and doc["result"]["hash"] == entry.hash
    assert entry.canonical in response.content  # the record is its stored canonical bytes, verbatim
    assert _get(server, "/modules/token/balance", token_id="EUR", holder=BOB).json() == {"result": 20}
    assert _get(server, "/modules/proof/status", proof_id="p3", now_ms=1_800_000_000_000).json() == {
        "result": "expired"
    }
    assert _get(server, "/modules/notes/by_author", author=ALICE, done="true").json()["result"][0]["kind"] == "todo"
    assert _get(server, "/modules/token/token", EVE, token_id="EUR").json() == {"result": None}


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "field"),
    [
        ("/modules/token/balance", {"token_id": "EUR"}, 422, "invalid_query", "holder"),
        ("/modules/token/balance", {"token_id": "EUR", "holder": ALICE, "wallet": "x"}, 422, "invalid_query", "wallet"),
        ("/modules/token/balance", {"token_id": "EUR", "holder": ALICE, "context": ALICE}, 422, "invalid_query",
         "context"),
        ("/modules/token/balance", [("token_id", "EUR"), ("token_id", "USD"), ("holder", ALICE)], 422,
         "invalid_query", "token_id"),
        ("/modules/proof/status", {"proof_id": "p1", "now_ms": "-1"}, 422, "invalid_query", "now_ms"),
        ("/modules/proof/status", {"proof_id": "p1", "now_ms": "1e3"}, 422, "invalid_query", "now_ms"),
        ("/modules/proof/status", {"proof_id": "p1", "now_ms": str(2**53)}, 422, "invalid_query", "now_ms"),
        ("/modules/proof/status", {"proof_id": "p1", "now_ms": "\u0663"}, 422, "invalid_query", "now_ms"),
        ("/modules/notes/by_author", {"author": ALICE, "done": "yes"}, 422, "invalid_query", "done"),
        ("/modules/token/nope", {}, 404, "not_found", None),
        ("/modules/nope/balance", {}, 404, "not_found", None),
    ],
)
def test_bad_arguments_and_unknown_operations_are_refused(
    served: tuple[Ledger, Any], path: str, params: Any, status: int, code: str, field: str | None
) -> None:
    _ledger, server = served
    response = _get(server, path, **({} if isinstance(params, list) else params)) if not isinstance(
        params, list
    ) else httpx.get(f"{server.url}{path}", params=params, headers={"authorization": f"Bearer dev:{ALICE}"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error.get("field") == field


def test_a_handle_route_needs_a_token(served: tuple[Ledger, Any]) -> None:
    _ledger, server = served
    response = _get(server, "/modules/token/holders", None, token_id="EUR")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"


def test_openapi_describes_each_handle_route(served: tuple[Ledger, Any]) -> None:
    _ledger, server = served
    doc = httpx.get(f"{server.url}/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in server.app.routes}
    handle_paths = {p for p in doc["paths"] if p.count("/") == 3 and p.startswith("/modules/")}
    expected = {f"/modules/{m}/{op.name}" for m, cls in (
        ("proof", ProofModule), ("asset", AssetModule), ("connect_grant", ConnectGrantModule),
        ("token", TokenModule), ("notes", NotesModule)) for op in operations_of(cls)}
    assert handle_paths == expected
    op = doc["paths"]["/modules/token/history"]["get"]
    assert op["parameters"] == [
        {"name": "token_id", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "holder", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Handle.token.history"
    }
    assert doc["components"]["schemas"]["Handle.token.history"]["properties"]["result"]["items"] == {
        "$ref": "#/components/schemas/Entry"
    }
    status = doc["paths"]["/modules/proof/status"]["get"]["parameters"][1]
    assert status["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}


def test_every_handle_route_answers_its_operation_result(served: tuple[Ledger, Any]) -> None:
    """Every handle route in the document, called with its required arguments, answers what its
    operation decodes strictly (the shape its response schema, also checked, describes)."""
    _ledger, server = served
    doc = httpx.get(f"{server.url}/openapi.json").json()
    classes = {"proof": ProofModule, "asset": AssetModule, "connect_grant": ConnectGrantModule, "token": TokenModule,
               "notes": NotesModule}
    values = {"proof_id": "p1", "asset_id": "a1", "grant_id": "g1", "token_id": "EUR", "tx_id": "tx1",
              "note_id": "n1", "subject": ALICE, "issuer": ALICE, "owner": BOB, "app": APP, "holder": BOB,
              "author": ALICE}
    checked = 0
    for path, ops in doc["paths"].items():
        if not (path.startswith("/modules/") and path.count("/") == 3):
            continue
        module_id, name = path.split("/")[2:]
        op = next(o for o in operations_of(classes[module_id]) if o.name == name)
        component = doc["components"]["schemas"][f"Handle.{module_id}.{name}"]
        assert component["properties"]["result"] == op.result_schema() and component["required"] == ["result"]
        params = {p["name"]: values[p["name"]] for p in ops["get"].get("parameters", []) if p["required"]}
        answer = _get(server, path, **params)
        assert answer.status_code == 200, (path, answer.text)
        op.decode(answer.json()["result"], entry=lambda d: entry_from_json(d, ledger_id=LEDGER))
        checked += 1
    assert checked == 21  # proof 4, asset 4, connect_grant 3, token 5, notes 5


# --- a tampered entry in a handle answer -------------------------------------------------------
def _tamper(db_path: Path, seq: int, *, rehash: bool) -> None:
    """Change entry ``seq``'s stored record behind the server (its amount); with ``rehash``, give
    it the hash of what it now holds, so only an inclusion proof can tell."""
    db = sqlite3.connect(db_path)
    with db:
        row = db.execute(
            "SELECT canonical, prev_hash, version, appender, auth_source, committed_at FROM nucleus_entries "
            "WHERE seq = ?", (seq,),
        ).fetchone()
        changed = bytes(row[0]).replace(b'"amount":100', b'"amount":900')
        assert changed != bytes(row[0])
        digest = entry_hash_of_version(LEDGER, seq, row[1], changed, row[2], row[3], row[4], row[5])
        db.execute("UPDATE nucleus_entries SET canonical = ? WHERE seq = ?", (changed, seq))
        if rehash:
            db.execute("UPDATE nucleus_entries SET hash = ? WHERE seq = ?", (digest, seq))
    db.close()


def _signed(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> tuple[Ledger, Any, NoteSigner]:
    """The populated ledger signing a checkpoint after every write, served; and its signer."""
    signer = NoteSigner.generate(default_origin(LEDGER))
    checkpoint = {"signers": (signer,), "key_env": None, "interval": 0}
    ledger = open_ledger(*PLUGINS, NotesPlugin(), id=LEDGER, admins=[ROOT], checkpoint=checkpoint)
    populate(ledger)
    return ledger, serve(ledger, owns_ledger=False), signer


@pytest.mark.parametrize("rehash", [False, True])
def test_a_handle_answer_with_a_tampered_entry_is_refused(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path, rehash: bool
) -> None:
    ledger, server, signer = _signed(open_ledger, serve)
    verifying = RemoteLedger(server.url, token=f"dev:{ALICE}", ledger_id=LEDGER, checkpoint_vkeys=[signer.vkey])
    plain = RemoteLedger(server.url, token=f"dev:{ALICE}", ledger_id=LEDGER)
    try:
        tokens = verifying.modules.get("token", TokenModule)
        honest = tokens.history("EUR")
        assert [e.record.id for e in honest] == ["t-created", "t-mint", "t-pay", "t-bob"]
        assert tokens.transaction("tx1") == honest[1]
        _tamper(tmp_path / "ledger.db", honest[1].seq, rehash=rehash)
        with pytest.raises(IntegrityError) as in_history:
            tokens.history("EUR")
        with pytest.raises(IntegrityError) as in_transaction:
            tokens.transaction("tx1")
        untouched = plain.modules.get("token", TokenModule)
        if rehash:
            # The entry hashes to its (new) hash: only the inclusion proof refuses it.
            assert isinstance(in_history.value, InclusionProofError)
            assert isinstance(in_transaction.value, InclusionProofError)
            assert untouched.transaction("tx1").record.payload["amount"] == 900  # type: ignore[union-attr]
        else:
            assert in_history.value.reason == in_transaction.value.reason == "hash mismatch"
            with pytest.raises(IntegrityError):
                untouched.transaction("tx1")
        assert tokens.balance("EUR", ALICE) == 70  # derived state, no entry in the answer
    finally:
        verifying.close()
        plain.close()
        ledger.close()


# --- a module whose class the client has not imported: a generic proxy ---------------------------
class HiddenModule(Module):
    """A module the client process cannot name: its ``__module__`` is imported nowhere."""

    id = "hidden"

    @handle_operation
    def echo(self, word: str, context: RequestContext, *, times: int = 2, shout: bool | None = None) -> list[str]:
        """``word``, ``times`` times."""
        return [word.upper() if shout else word] * times


HiddenModule.__module__ = "nucleus_test_not_imported_anywhere"


class HiddenPlugin:
    @hookimpl
    def nucleus_register_modules(self) -> list[ModuleSpec]:
        return [ModuleSpec(id="hidden", factory=lambda _context: HiddenModule())]


def test_a_module_class_the_client_never_imported_gets_a_generic_proxy(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any]
) -> None:
    ledger = open_ledger(HiddenPlugin(), id=LEDGER)
    server = serve(ledger)
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        doc = remote.modules._documents()[0]
        assert doc["handle_types"][0] == "nucleus_test_not_imported_anywhere.HiddenModule"
        proxy = remote.modules.get("hidden")
        assert [p.name for p in inspect.signature(proxy.echo).parameters.values()] == [
            "word", "context", "times", "shout",
        ]
        assert proxy.echo("hi") == ["hi", "hi"]  # the default of times is the server's
        assert proxy.echo("hi", times=3, shout=True) == ["HI", "HI", "HI"]
        with pytest.raises(ValidationError) as bad:
            proxy.echo("hi", times=-1)
        assert bad.value.field == "times"
        with pytest.raises(TypeError):
            proxy.echo()
        # Typed with the class itself, it is that class's proxy; with another, the in-process text.
        assert remote.modules.get("hidden", HiddenModule).echo("a", times=1) == ["a"]
        with pytest.raises(ModuleError, match="is a HiddenModule, not a TokenModule"):
            remote.modules.get("hidden", TokenModule)


def test_a_proxy_copies_and_reprs_without_recursion(served: tuple[Ledger, Any]) -> None:
    import copy

    _ledger, server = served
    with RemoteLedger(server.url, token=f"dev:{ALICE}") as remote:
        proxy = remote.modules.get("token", TokenModule)
        assert "balance" in repr(proxy) and "balance" in dir(proxy)
        assert copy.copy(proxy).balance("EUR", ALICE) == 70  # type: ignore[call-arg]
        with pytest.raises(AttributeError):
            proxy._private  # type: ignore[attr-defined]  # noqa: B018


# --- a generic proxy checks what it answers ------------------------------------------------------
def _forget_token_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process one that never imported nucleus_module_token (for the proxy's look-up)."""
    for name in [n for n in sys.modules if n == "nucleus_module_token" or n.startswith("nucleus_module_token.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize(("verifying", "rehash"), [(False, False), (True, False), (True, True)])
def test_a_generic_proxy_checks_every_entry_it_answers(
    open_ledger: Callable[..., Ledger], serve: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    verifying: bool, rehash: bool,
) -> None:
    ledger, server, signer = _signed(open_ledger, serve)
    keys = [signer.vkey] if verifying else []
    with RemoteLedger(server.url, token=f"dev:{ALICE}", ledger_id=LEDGER, checkpoint_vkeys=keys) as client:
        typed = client.modules.get("token", TokenModule)
        honest, info = typed.history("EUR"), typed.token("EUR")
        _forget_token_module(monkeypatch)
        generic = client.modules.get("token")
        assert inspect.signature(generic.history).return_annotation is Any  # the generic proxy
        # Entries come back as checked Entry objects, records as dicts.
        assert generic.history("EUR") == honest and generic.transaction("tx1") == honest[1]
        assert generic.token("EUR") == attrs.asdict(info)  # type: ignore[arg-type]
        assert generic.holders("EUR") == {ALICE: 70, BOB: 20, CAROL: 10}
        _tamper(tmp_path / "ledger.db", honest[1].seq, rehash=rehash)
        for call in (lambda: generic.history("EUR"), lambda: generic.transaction("tx1")):
            with pytest.raises(IntegrityError) as refused:
                call()
            if rehash:  # only the inclusion proof can tell
                assert isinstance(refused.value, InclusionProofError)
            else:
                assert refused.value.reason == "hash mismatch"
        assert generic.balance("EUR", ALICE) == 70
    ledger.close()


@pytest.fixture
def scripted_server() -> Iterator[tuple[str, dict[str, Any]]]:
    """A real HTTP server on loopback that answers what the test puts in ``answers`` (path ->
    JSON document; 404 otherwise): a server that lies, for the client's checks."""
    answers: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            found = path in answers
            body = json.dumps(answers[path] if found else {"error": {"code": "not_found", "message": "no"}})
            self.send_response(200 if found else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers
    server.shutdown()
    server.server_close()
    thread.join()


HIDDEN = "nucleus_test_never_imported_here.M"
"""A module class name no module of this process defines."""


def _module_doc(module_id: str, handle_types: list[str], operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": module_id, "version": "1.0.0", "state": "started", "streams": [], "depends_on": [],
            "resource_kind": None, "handle_types": handle_types, "operations": operations}


def _op_doc(name: str, result: Any, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": name, "summary": "", "path": f"/modules/m/{name}", "params": params or [], "result": result}


def test_a_server_named_class_is_looked_up_without_running_module_code(
    scripted_server: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, answers = scripted_server
    looked_up: list[str] = []
    lazy = types.ModuleType("nucleus_test_lazy_module")

    def module_getattr(name: str) -> Any:
        looked_up.append(name)
        raise AttributeError(name)

    class Meta(type):
        def __getattr__(cls, name: str) -> Any:
            looked_up.append(f"{cls.__name__}.{name}")
            raise AttributeError(name)

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    lazy.Outer = Meta("Outer", (), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nucleus_test_lazy_module", lazy)
    ops = [_op_doc("size", {"type": "integer"})]
    answers["/modules"] = {"modules": [
        _module_doc("lazy", ["nucleus_test_lazy_module.Thing"], ops),
        _module_doc("nested", ["nucleus_test_lazy_module.Outer.Inner"], ops),
        _module_doc("absent", ["nucleus_test_never_imported_here.sub.Thing"], ops),
    ]}
    answers["/modules/lazy/size"] = {"result": 3}
    with RemoteLedger(url, token=f"dev:{ALICE}", ledger_id=LEDGER) as client:
        for module_id in ("lazy", "nested", "absent"):
            proxy = client.modules.get(module_id)
            assert inspect.signature(proxy.size).return_annotation is Any  # generic: no class found
        assert client.modules.get("lazy").size() == 3
    assert looked_up == []
    assert not any(n.startswith("nucleus_test_never_imported_here") for n in sys.modules)


@pytest.mark.parametrize(
    "operation",
    [
        _op_doc("op", {"type": "null"}, [{"name": "not-a-name", "required": True, "schema": {"type": "string"}}]),
        _op_doc("op", {"type": "null"}, [{"name": "class", "required": True, "schema": {"type": "string"}}]),
        _op_doc("op", {"type": "null"}, [{"name": "context", "required": True, "schema": {"type": "string"}}]),
        _op_doc("op", {"type": "null"}, [{"name": "caf\u00e9", "required": True, "schema": {"type": "string"}}]),
        _op_doc("op", {"type": "null"}, [{"name": "x", "required": True, "schema": {"type": "string"}},
                                         {"name": "x", "required": False, "schema": {"type": "string"}}]),
        _op_doc("op", {"type": "null"}, [{"name": "x", "required": True, "schema": {"type": "number"}}]),
        _op_doc("_private", {"type": "null"}),
        _op_doc("bad-name", {"type": "null"}),
        _op_doc("op", {"type": "number"}),
        _op_doc("op", {"type": "string", "pattern": "^a"}),
        _op_doc("op", {"$ref": "#/components/schemas/Other"}),
        _op_doc("op", {"type": "object"}),
        _op_doc("op", {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        _op_doc("op", {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"],
                       "additionalProperties": False}),
        _op_doc("op", {}),
    ],
)
def test_a_malformed_description_is_refused_when_the_proxy_is_made(
    scripted_server: tuple[str, dict[str, Any]], operation: dict[str, Any]
) -> None:
    url, answers = scripted_server
    answers["/modules"] = {"modules": [_module_doc("m", [HIDDEN], [operation])]}
    with RemoteLedger(url, token=f"dev:{ALICE}", ledger_id=LEDGER) as client, pytest.raises(IntegrityError):
        client.modules.get("m")


RECORD_SCHEMA = {
    "type": "object", "title": "Thing", "required": ["name", "size"], "additionalProperties": False,
    "properties": {"name": {"type": "string", "enum": ["a", "b"]}, "size": {"type": "integer", "minimum": 0}},
}


@pytest.mark.parametrize(
    ("result", "answer"),
    [
        ({"type": "integer"}, "3"),
        ({"type": "integer"}, 2**53),
        ({"type": "integer"}, True),
        ({"type": "integer", "minimum": 0, "maximum": 9}, 10),
        ({"type": "string", "enum": ["a"]}, "b"),
        ({"type": "array", "items": {"type": "string"}}, ["a", 1]),
        ({"type": "object", "additionalProperties": {"type": "boolean"}}, {"x": None}),
        (RECORD_SCHEMA, {"name": "a"}),
        (RECORD_SCHEMA, {"name": "a", "size": 1, "more": 2}),
        (RECORD_SCHEMA, {"name": "c", "size": 1}),
        (RECORD_SCHEMA, {"name": "a", "size": -1}),
        ({"anyOf": [{"$ref": "#/components/schemas/Entry"}, {"type": "null"}]}, {"seq": 1}),
        ({"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}, [{"hash": "00"}]),
    ],
)
def test_a_generic_answer_not_matching_its_result_schema_is_refused(
    scripted_server: tuple[str, dict[str, Any]], result: dict[str, Any], answer: Any
) -> None:
    url, answers = scripted_server
    answers["/modules"] = {"modules": [_module_doc("m", [HIDDEN], [_op_doc("op", result)])]}
    answers["/modules/m/op"] = {"result": answer}
    with RemoteLedger(url, token=f"dev:{ALICE}", ledger_id=LEDGER) as client:
        proxy = client.modules.get("m")
        with pytest.raises(IntegrityError):
            proxy.op()


def test_a_generic_answer_matching_its_schema_is_decoded(scripted_server: tuple[str, dict[str, Any]]) -> None:
    url, answers = scripted_server
    listed = {"anyOf": [{"type": "array", "items": RECORD_SCHEMA}, {"type": "null"}]}
    answers["/modules"] = {"modules": [_module_doc("m", [HIDDEN], [_op_doc("op", listed)])]}
    with RemoteLedger(url, token=f"dev:{ALICE}", ledger_id=LEDGER) as client:
        proxy = client.modules.get("m")
        for answer in ([{"name": "a", "size": 0}, {"size": 2**53 - 1, "name": "b"}], [], None):
            answers["/modules/m/op"] = {"result": answer}
            assert proxy.op() == answer


def test_a_typed_answer_of_another_shape_is_refused_as_such(
    scripted_server: tuple[str, dict[str, Any]]
) -> None:
    url, answers = scripted_server
    ops = [{**_op_doc(op.name, op.result_schema()), "path": f"/modules/token/{op.name}"}
           for op in operations_of(TokenModule)]
    answers["/modules"] = {"modules": [_module_doc("token", ["nucleus_module_token.module.TokenModule"], ops)]}
    answers["/modules/token/balance"] = {"result": "70"}
    with RemoteLedger(url, token=f"dev:{ALICE}", ledger_id=LEDGER) as client:
        tokens = client.modules.get("token", TokenModule)
        with pytest.raises(AnswerMismatchError, match="answered a result of another shape") as refused:
            tokens.balance("EUR", ALICE)  # type: ignore[call-arg]
        assert "proof" not in str(refused.value)
        answers["/modules/token/balance"] = {"result": 2**53}
        with pytest.raises(AnswerMismatchError):
            tokens.balance("EUR", ALICE)  # type: ignore[call-arg]


def test_a_client_without_a_token_gets_a_proxy_with_the_context_given(served: tuple[Ledger, Any]) -> None:
    _ledger, server = served
    with RemoteLedger(server.url) as anonymous:
        with pytest.raises(MissingRequesterError):
            anonymous.modules.get("token", TokenModule)
        tokens = anonymous.modules.get("token", TokenModule, context=ctx(ALICE))
        assert tokens.balance("EUR", BOB, ctx(ALICE)) == 20
        assert sorted(anonymous.modules.list(ctx(BOB))) == ["asset", "connect_grant", "notes", "proof", "token"]
        generic = anonymous.modules.get("notes", context=ctx(BOB))
        assert [n.note_id for n in generic.by_author(ALICE, ctx(ALICE))] == ["n1", "n2"]
        with pytest.raises(MissingRequesterError):
            tokens.balance("EUR", BOB)  # type: ignore[call-arg]  # each call still needs its requester


# --- what handle reads cost, and reading while others append -------------------------------------
def _count_policy_checks(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the access policy's can_read calls (a list of seqs checked, appended to as they happen)."""
    policy = ledger.policy
    original = policy.can_read
    checked: list[int] = []

    def counting(entry: Any, context: RequestContext) -> bool:
        checked.append(entry.seq)
        return original(entry, context)

    monkeypatch.setattr(policy, "can_read", counting)
    return checked


def test_an_unreadable_resource_costs_one_check_not_one_per_entry(
    open_ledger: Callable[..., Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = open_ledger(*PLUGINS, id=LEDGER, admins=[ROOT])
    root, alice, eve = ctx(ROOT), ctx(ALICE), ctx(EVE)
    ledger.acl.grant([{"resource_kind": k, "resource_id": "*", "principal_oid": ALICE, "scope": "create"}
                      for k in ("token", "asset")], root)
    ledger.append(_rec("t", "token", type="created", token_id="EUR", issuer=ALICE, symbol="EUR", decimals=0), alice)
    ledger.append_batch([_rec(f"m{i}", "token", type="minted", token_id="EUR", tx_id=f"tx{i}", to=ALICE, amount=1)
                         for i in range(40)], alice)
    ledger.append(_rec("a", "asset", type="issued", asset_id="a1", issuer=ALICE, owner=ALICE), alice)
    moves = [(ALICE, BOB), (BOB, ALICE)] * 10
    for i, (src, dst) in enumerate(moves):
        ledger.append(_rec(f"a{i}", "asset", type="transferred", asset_id="a1", to=dst, **{"from": src}), ctx(src))
    tokens, assets = ledger.runtime.get("token", TokenModule), ledger.runtime.get("asset", AssetModule)
    checked = _count_policy_checks(ledger, monkeypatch)
    for read in (lambda: tokens.history("EUR", eve), lambda: tokens.history("EUR", eve, holder=ALICE),
                 lambda: tokens.transaction("tx7", eve), lambda: assets.history("a1", eve)):
        checked.clear()
        assert not read()
        assert len(checked) <= 1, checked  # the resource's first entry, as for an unknown one: none
    checked.clear()
    assert len(tokens.history("EUR", alice)) == 41 and len(checked) == 42  # readable: the token, then each entry
    assert len(assets.history("a1", alice)) == 21


def test_handle_reads_never_fail_while_other_threads_append(
    open_ledger: Callable[..., Ledger]
) -> None:
    """Indexes (token holders, assets by owner, proofs and grants by principal) change under the
    registry's lock while handle reads iterate them: each read copies what it iterates under it."""
    ledger = open_ledger(*PLUGINS, id=LEDGER, admins=[ROOT])
    root, alice = ctx(ROOT), ctx(ALICE)
    ledger.acl.grant([{"resource_kind": k, "resource_id": "*", "principal_oid": ALICE, "scope": "create"}
                      for k in ("token", "asset", "proof", "connect_grant")], root)
    ledger.append(_rec("t", "token", type="created", token_id="EUR", issuer=ALICE, symbol="EUR", decimals=0), alice)
    ledger.append_batch([_rec(f"m{i}", "token", type="minted", token_id="EUR", tx_id=f"tx{i}",
                              to=f"oid:hd:user:h{i}", amount=1) for i in range(300)], alice)
    tokens, assets = ledger.runtime.get("token", TokenModule), ledger.runtime.get("asset", AssetModule)
    proofs = ledger.runtime.get("proof", ProofModule)
    grants = ledger.runtime.get("connect_grant", ConnectGrantModule)
    reads = (lambda: tokens.holders("EUR", alice), lambda: assets.assets_of(ALICE, alice),
             lambda: proofs.by_issuer(ALICE, alice), lambda: grants.active_for_subject(ALICE, alice),
             lambda: tokens.history("EUR", alice))
    errors: list[BaseException] = []
    done = threading.Event()

    def reader(read: Callable[[], Any]) -> None:
        while not done.is_set():
            try:
                read()
            except BaseException as err:
                errors.append(err)
                return

    threads = [threading.Thread(target=reader, args=(read,)) for read in (reads[0], reads[0], *reads[1:])]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows in a few rounds
    try:
        for t in threads:
            t.start()
        issued = {"type": "issued", "issuer": ALICE, "proof_type": "kyc", "target": "account", "data": {}}
        for round_ in range(60):
            if errors:
                break
            n = 300 + round_ * 5
            ledger.append_batch(
                [_rec(f"m{n + j}", "token", type="minted", token_id="EUR", tx_id=f"tx{n + j}",
                      to=f"oid:hd:user:h{n + j}", amount=1) for j in range(5)]
                + [_rec(f"as{round_}", "asset", type="issued", asset_id=f"as{round_}", issuer=ALICE, owner=ALICE),
                   _rec(f"p{round_}", "proof", **issued, subject=BOB),
                   _rec(f"g{round_}", "connect_grant", type="granted", subject=ALICE, app=APP, scopes=["read"])],
                alice,
            )
    finally:
        done.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(tokens.holders("EUR", alice)) == 600 and len(assets.assets_of(ALICE, alice)) == 60


# --- query strings are decoded strictly, on every route -----------------------------------------
@pytest.mark.parametrize(
    ("path", "query", "status", "field"),
    [
        ("/modules/token/balance", "token_id=EUR&holder=%FF", 400, "holder"),
        ("/modules/token/balance", "token_id=EUR&holder=%G1", 400, "holder"),
        ("/modules/token/balance", "token_id=EUR&holder=50%", 400, "holder"),
        ("/modules/token/balance", "token_id=EUR&holder", 400, "query"),  # a bare name is never echoed
        ("/modules/token/balance", "%FF=1&token_id=EUR", 400, "query"),
        ("/modules/token/balance", "token_id=EUR;holder=x", 422, "holder"),  # ';' separates nothing
        ("/entries", "stream=%C3%28", 400, "stream"),
        ("/entries", "limit", 400, "query"),
    ],
)
def test_a_malformed_query_string_is_refused_naming_the_parameter(
    served: tuple[Ledger, Any], path: str, query: str, status: int, field: str
) -> None:
    _ledger, server = served
    response = httpx.get(f"{server.url}{path}?{query}", headers={"authorization": f"Bearer dev:{ALICE}"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_a_well_formed_query_string_is_decoded(served: tuple[Ledger, Any]) -> None:
    _ledger, server = served
    headers = {"authorization": f"Bearer dev:{ALICE}"}
    for query in ("token_id=E%55R&holder=oid%3Ahd%3Auser%3Abob", "token_id=EUR&&holder=oid:hd:user:bob&"):
        response = httpx.get(f"{server.url}/modules/token/balance?{query}", headers=headers)
        assert response.json() == {"result": 20}, query
    # An empty value is the empty string: no such holder.
    assert httpx.get(f"{server.url}/modules/token/balance?token_id=EUR&holder=", headers=headers).json() == {
        "result": 0
    }


def test_parse_query_decodes_form_encoding_strictly() -> None:
    assert parse_query(b"") == []
    assert parse_query(b"a=1&b=&c=x+y%2B%20z&&d=%C3%A9&") == [
        ("a", "1"), ("b", ""), ("c", "x y+ z"), ("d", "\u00e9"),
    ]
    for raw, field in ((b"a=%", "a"), (b"a=%zz", "a"), (b"a=%ff", "a"), (b"a", "query"), (b"%e9=1", "query"),
                       (b"ok=1&bad key", "query")):
        with pytest.raises(MalformedRequestError) as caught:
            parse_query(raw)
        assert caught.value.field == field, raw


# --- module ids that handle routes can carry -----------------------------------------------------
class DottedModule(Module):
    id = "acme.notes"

    @handle_operation
    def ping(self, context: RequestContext) -> bool:
        """Always true."""
        return True


def test_a_module_with_handle_operations_needs_a_route_safe_id(open_ledger: Callable[..., Ledger]) -> None:
    class Plugin:
        @hookimpl
        def nucleus_register_modules(self) -> list[ModuleSpec]:
            return [ModuleSpec(id="acme.notes", factory=lambda _context: DottedModule())]

    ledger = open_ledger(Plugin(), id=LEDGER)
    try:
        assert ledger.runtime.get("acme.notes").ping(ctx(ALICE)) is True  # type: ignore[attr-defined]
        with pytest.raises(ModuleError, match="its id must be 1-64 ASCII letters, digits, '_' or '-'") as refused:
            create_app(ledger)
        assert refused.value.module_id == "acme.notes"
    finally:
        ledger.close()


def test_every_answer_says_nosniff(served: tuple[Ledger, Any]) -> None:
    _ledger, server = served
    answers = [
        httpx.get(f"{server.url}/modules", headers={"authorization": f"Bearer dev:{ALICE}"}),
        httpx.get(f"{server.url}/modules"),  # the auth middleware's 401
        httpx.get(f"{server.url}/openapi.json"),
        httpx.get(f"{server.url}/explorer"),
        httpx.get(f"{server.url}/modules/token/nope", headers={"authorization": f"Bearer dev:{ALICE}"}),
    ]
    for answer in answers:
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"], answer.url
