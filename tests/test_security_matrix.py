"""Independent security and integrity review: attacks on the assembled system.

Each test here fills a gap of docs/SECURITY-TESTS-MAP.md or tries to break a rule of DESIGN.md
("Integrity rules", "Security rules", "Plugin rules") through the real thing: uvicorn on loopback
serving a ledger on a real SQLite file or the real PostgreSQL, real JWTs, real API keys and
sessions, real distributions on ``sys.path``, SQL run behind the ledger's back.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm
from nucleus_server import ServerSettings, create_app
from nucleus_server.client import RemoteLedger
from nucleus_storage_postgres import postgres_storage
from nucleus_token_service.parser import SERVICE_TOKEN_TYPE
from psycopg import sql

from nucleus_core import Ledger, Record, RequestContext, create_ledger
from nucleus_core.errors import (
    ConfigurationError,
    IntegrityError,
    PluginError,
)
from nucleus_core.testing.postgres import temporary_database

ROOT = "oid:sec:user:root"
ALICE = "oid:sec:user:alice"
BOB = "oid:sec:user:bob"
PEPPER = "security-review-pepper-0123456789abcdef"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

_conftest = importlib.util.spec_from_file_location(
    "nucleus_security_server_helpers", Path(__file__).parents[1] / "plugins/server/tests/conftest.py"
)
assert _conftest is not None and _conftest.loader is not None
_helpers = importlib.util.module_from_spec(_conftest)
_conftest.loader.exec_module(_helpers)
ServerThread = _helpers.ServerThread


def rec(i: int | str, stream: str = "notes", **payload: Any) -> Record:
    return Record(id=f"r-{i}", stream=stream, timestamp=1_763_942_400_000, payload=payload or {"n": str(i)})


def dev(oid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev:{oid}"}


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[Callable[..., Any]]:
    """``start(ledger, settings=None)``: uvicorn on 127.0.0.1 serving the ledger; all stop at teardown."""
    started: list[Any] = []

    def start(ledger: Ledger, settings: ServerSettings | None = None) -> Any:
        server = ServerThread(create_app(ledger, settings, owns_ledger=True)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A database of its own for this module on the real PostgreSQL (dropped at the end)."""
    with temporary_database("nucleus_secmatrix") as dsn:
        yield dsn


class Place:
    """Where a ledger lives: ``storage()`` for create_ledger, ``sql()`` behind the ledger's back."""

    def __init__(self, name: str, storage: Callable[[], Any], run: Callable[[str], list[tuple[Any, ...]]]) -> None:
        self.name = name
        self.storage = storage
        self.sql = run


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    if request.param == "sqlite":
        path = tmp_path / "sec.db"

        def run_sqlite(statement: str) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(path)
            try:
                with conn:
                    return conn.execute(statement).fetchall()
            finally:
                conn.close()

        yield Place("sqlite", lambda: f"sqlite:///{path}", run_sqlite)
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = f"s_{uuid.uuid4().hex[:12]}"

    def run_pg(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            cur = conn.execute(statement.encode())
            return cur.fetchall() if cur.description else []

    try:
        yield Place("postgres", lambda: postgres_storage(dsn, schema=schema), run_pg)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUCLEUS_ENV", "development")


def ual_server(place: Place, servers: Callable[..., Any], *plugins: str) -> tuple[Any, Ledger]:
    """A UAL ledger with dev tokens: Alice may write stream notes and wrote r-1, r-2; Bob may
    write stream other and wrote r-3."""
    ledger = create_ledger(id="sec", storage=place.storage(), plugins=["auth.dev", "ual", *plugins], admins=[ROOT])
    ledger.acl.grant(
        [
            {"resource_kind": "stream:notes", "resource_id": "*", "principal_oid": ALICE, "scope": "write"},
            {"resource_kind": "stream:other", "resource_id": "*", "principal_oid": BOB, "scope": "write"},
        ],
        RequestContext(oid=ROOT, source="dev"),
    )
    ledger.append_batch([rec(1), rec(2)], RequestContext(oid=ALICE, source="dev"))
    ledger.append(rec(3, stream="other"), RequestContext(oid=BOB, source="dev"))
    return servers(ledger), ledger


# --- requester spoofing and reading other principals' records over HTTP ---------------------------

SPOOF_HEADERS = {
    "X-Nucleus-Principal": ROOT,
    "X-Nucleus-Requester": ROOT,
    "X-Forwarded-User": ROOT,
    "X-Remote-User": ROOT,
    "X-User": ROOT,
    "X-Principal": ROOT,
    "X-Client-Cert": ROOT,
    "Forwarded": f'for="{ROOT}"',
    "X-Authorization": f"Bearer dev:{ROOT}",
    "Cookie": f"session=dev:{ROOT}; nucleus_context={ROOT}",
}


def test_requester_cannot_be_spoofed_through_headers_or_body_fields(
    development: None, place: Place, servers: Callable[..., Any]
) -> None:
    server, ledger = ual_server(place, servers)
    before = ledger.length()
    bob = {**dev(BOB), **SPOOF_HEADERS}
    with httpx.Client(base_url=server.url, headers=bob) as http:
        assert http.get("/whoami").json()["oid"] == BOB
        # Every read route answers as Bob, whatever the headers claim.
        assert [json.loads(json.dumps(e))["record"]["id"] for e in http.get("/entries").json()["entries"]] == ["r-3"]
        assert http.get("/records/r-1").status_code == 404
        # Body fields naming a requester are refused, never obeyed.
        for body in (
            {**rec(9).to_dict(), "requester": ROOT},
            {**rec(9).to_dict(), "context": {"oid": ROOT, "source": "dev"}},
            {**rec(9).to_dict(), "principal": ROOT},
        ):
            r = http.post("/entries", json=body)
            assert r.status_code in (400, 422), r.text
        for filters in ({"requester": ROOT}, {"principal": ROOT}, {"context": ROOT}):
            r = http.post("/entries/query", json=filters)
            assert r.status_code in (400, 422), r.text
        r = http.post("/entries/batch", json={"records": [rec(9).to_dict()], "requester": ROOT})
        assert r.status_code == 400
        # A grant body cannot choose who granted it: Alice holds full on r-1, Bob holds nothing.
        spoofed = {
            "resource_kind": "stream:notes",
            "resource_id": "r-1",
            "principal_oid": BOB,
            "scope": "read",
            "granted_by": ALICE,
        }
        r = http.post("/acl/grant", json={"grants": [spoofed]})
        assert r.status_code in (403, 422), r.text
    with httpx.Client(base_url=server.url, headers={**dev(ALICE), "X-Nucleus-Principal": ROOT}) as http:
        r = http.post("/acl/grant", json={"grants": [{**spoofed, "granted_by": ROOT}]})
        if r.status_code == 201:
            assert [g["granted_by"] for g in r.json()["grants"]] == [ALICE]
        else:
            assert r.status_code == 422, r.text
    # Nothing Bob sent was written; Alice's own grant (if taken) is one audit entry.
    assert ledger.length() == before + (1 if r.status_code == 201 else 0)


def test_other_principals_records_are_invisible_on_every_route(
    development: None, place: Place, servers: Callable[..., Any]
) -> None:
    server, ledger = ual_server(place, servers)
    alice_ctx = RequestContext(oid=ALICE, source="dev")
    r1 = ledger.get_by_id("r-1", alice_ctx)
    assert r1 is not None
    with httpx.Client(base_url=server.url, headers=dev(ALICE)) as http:
        page = http.get("/entries", params={"limit": 1}).json()
        alice_cursor = page["next_cursor"]
    assert alice_cursor is not None
    with httpx.Client(base_url=server.url, headers=dev(BOB)) as http:

        def ids(response: httpx.Response) -> list[str]:
            return [e["record"]["id"] for e in response.json()["entries"]]

        assert ids(http.get("/entries")) == ["r-3"]
        assert ids(http.get("/entries", params={"stream": "notes"})) == []
        assert ids(http.get("/entries", params=[("record_id", "r-1"), ("record_id", "r-2")])) == []
        assert ids(http.post("/entries/query", json={"record_ids": ["r-1", "r-2"], "stream": "notes"})) == []
        assert ids(http.post("/entries/query", json={"since": 1, "until": 2**53 - 1})) == ["r-3"]
        # Alice's cursor in Bob's hands pages through Bob's view, never Alice's.
        cursor_page = http.get("/entries", params={"cursor": alice_cursor})
        assert cursor_page.status_code in (200, 422)
        if cursor_page.status_code == 200:
            assert set(ids(cursor_page)) <= {"r-3"}
        assert http.get(f"/entries/{r1.hash}").status_code == 404
        assert http.get(f"/entries/{r1.hash.upper()}").status_code in (404, 422)
        assert http.get("/records/r-1").status_code == 404
        assert ids(http.get("/acl/entries", params={"kind": "stream:notes"})) == []
        assert ids(http.get("/acl/entries")) == ["r-3"]
        check = {"action": "read", "resource": {"kind": "stream:notes", "id": "r-1"}, "principal": ALICE}
        assert http.post("/acl/check", json=check).status_code == 403
    # The same through the client, including iter_entries.
    with RemoteLedger(server.url, token=f"dev:{BOB}") as remote:
        assert remote.get(r1.hash) is None
        assert remote.get_by_id("r-1") is None
        assert [e.record.id for e in remote.iter_entries()] == ["r-3"]
        assert [e.record.id for e in remote.query({"record_ids": ["r-1", "r-3"]})] == ["r-3"]
        assert [e.record.id for e in remote.acl.list(filters={"kind": "stream:notes"})] == []


def test_grant_escalation_over_http_is_refused_and_writes_nothing(
    development: None, place: Place, servers: Callable[..., Any]
) -> None:
    server, ledger = ual_server(place, servers)
    before = ledger.length()
    attempts = [
        {"resource_kind": "stream:notes", "resource_id": "*", "principal_oid": BOB, "scope": "full"},
        {"resource_kind": "stream:notes", "resource_id": "r-1", "principal_oid": BOB, "scope": "read"},
        {"resource_kind": "*", "resource_id": "*", "principal_oid": BOB, "scope": "full"},
        {"resource_kind": "stream:other", "resource_id": "*", "principal_oid": BOB, "scope": "full"},
        {"resource_kind": "stream:_acl", "resource_id": "*", "principal_oid": BOB, "scope": "full"},
        {"resource_kind": "stream:notes", "resource_id": "r-1", "principal_oid": ROOT, "scope": "read"},
    ]
    with httpx.Client(base_url=server.url, headers=dev(BOB)) as http:
        for grant in attempts:
            r = http.post("/acl/grant", json={"grants": [grant]})
            assert r.status_code in (403, 422), (grant, r.text)
        # One allowed-looking grant cannot smuggle a forbidden one: the batch is all or nothing.
        mixed = [
            {"resource_kind": "stream:other", "resource_id": "r-3", "principal_oid": ALICE, "scope": "read"},
            attempts[0],
        ]
        assert http.post("/acl/grant", json={"grants": mixed}).status_code in (403, 422)
        revoke = {"resource_kind": "stream:notes", "resource_id": "*", "principal_oid": ALICE}
        assert http.post("/acl/revoke", json={"grants": [revoke]}).status_code == 403
        assert http.get("/records/r-1").status_code == 404
    assert ledger.length() == before
    assert ledger.acl.check(ALICE, "write", ("stream:notes", "*"))
    assert not ledger.acl.check(BOB, "read", ("stream:notes", "r-1"))


# --- development tokens and the environment -------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["Development", " development", "development ", "DEVELOPMENT", "development\n", "dev", "", "production", None],
)
def test_dev_parser_only_in_exactly_development(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("NUCLEUS_ENV", raising=False)
    else:
        monkeypatch.setenv("NUCLEUS_ENV", value)
    with pytest.raises(ConfigurationError, match=r"auth\.dev"):
        create_ledger(id="sec", storage=f"sqlite:///{tmp_path / 'x.db'}", plugins=["auth.dev"])
    monkeypatch.setenv("NUCLEUS_ENV", "development")
    for explicit in (value, "Development", " development"):
        if explicit is None:
            continue
        with pytest.raises(ConfigurationError, match=r"auth\.dev"):
            create_ledger(id="sec", storage="memory://", plugins=["auth.dev"], environment=explicit)


@pytest.mark.parametrize("value", ["Development", " development", "", None, "production"])
def test_serve_refuses_dev_tokens_outside_development(tmp_path: Path, value: str | None) -> None:
    """``nucleus serve`` with auth.dev in its configuration does not start unless NUCLEUS_ENV is
    exactly ``development`` (``--dev`` sets it itself, so it is not used here)."""
    config = tmp_path / "nucleus.toml"
    db_path = tmp_path / "serve.db"
    config.write_text(
        textwrap.dedent(
            f"""
            [ledger]
            id = "sec"
            storage = "sqlite:///{db_path}"
            [plugins."auth.dev"]
            [server]
            port = 1
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "NUCLEUS_ENV"}
    if value is not None:
        env["NUCLEUS_ENV"] = value
    done = subprocess.run(
        [sys.executable, "-m", "nucleus_core", "serve", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "auth.dev" in done.stderr
    assert "Traceback" not in done.stderr


# --- secrets in logs and error bodies, every parser -----------------------------------------------

SECRET_CLAIM = "claim-value-that-must-stay-private"


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = ECAlgorithm if alg == "ES256" else OKPAlgorithm
    data = json.loads(algo.to_jwk(key.public_key()))
    data.update(kid=kid, alg=alg, use="sig")
    return dict(data)


def test_no_parser_puts_a_secret_in_a_log_or_an_error_body(
    development: None, tmp_path: Path, servers: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    connect_key = ec.generate_private_key(ec.SECP256R1())
    service_key = ed25519.Ed25519PrivateKey.generate()
    other_key = ec.generate_private_key(ec.SECP256R1())
    settings = {
        "auth.api_key": {"pepper": PEPPER},
        "auth.connect": {
            "issuer": "https://id.example.com",
            "audience": "sec",
            "algorithms": ["ES256"],
            "keys": [_jwk(connect_key, "c1", "ES256")],
        },
        "auth.service": {
            "audience": "sec",
            "services": {
                "billing": {
                    "principal": "oid:sec:service:billing",
                    "algorithm": "EdDSA",
                    "keys": {"s1": _jwk(service_key, "s1", "EdDSA")},
                }
            },
        },
    }
    ledger = create_ledger(
        id="sec",
        storage=f"sqlite:///{tmp_path / 'auth.db'}",
        plugins=["auth.dev", "auth.api_key", "auth.session", "auth.connect", "auth.service"],
        settings=settings,
    )
    key, key_record = ledger.auth.parser("auth.api_key").create_key(ALICE)
    revoked_key, revoked_record = ledger.auth.parser("auth.api_key").create_key(ALICE)
    ledger.auth.parser("auth.api_key").revoke_key(revoked_record.key_id)
    session, _ = ledger.auth.parser("auth.session").create_session(ALICE)
    ledger.auth.parser("auth.session").end_session(session)
    now = int(time.time())
    connect_claims = {
        "iss": "https://id.example.com",
        "aud": "sec",
        "sub": ALICE,
        "iat": now,
        "exp": now + 300,
        "email": SECRET_CLAIM,
    }
    service_claims = {"iss": "billing", "sub": "billing", "aud": "sec", "iat": now, "exp": now + 60}
    bad_tokens = {
        "api key, wrong secret": key[:-3] + ("AAA" if not key.endswith("AAA") else "BBB"),
        "api key, revoked": revoked_key,
        "session, ended": session,
        "session, guessed": "nss_" + "G" * 43,
        "connect, expired": jwt.encode(
            {**connect_claims, "iat": now - 900, "exp": now - 600}, connect_key, "ES256", headers={"kid": "c1"}
        ),
        "connect, wrong key": jwt.encode(connect_claims, other_key, "ES256", headers={"kid": "c1"}),
        "connect, wrong audience": jwt.encode(
            {**connect_claims, "aud": "elsewhere"}, connect_key, "ES256", headers={"kid": "c1"}
        ),
        "service, no jti": jwt.encode(
            {**service_claims, "email": SECRET_CLAIM},
            service_key,
            "EdDSA",
            headers={"kid": "s1", "typ": SERVICE_TOKEN_TYPE},
        ),
        "service, wrong key": jwt.encode(
            {**service_claims, "jti": uuid.uuid4().hex, "email": SECRET_CLAIM},
            ed25519.Ed25519PrivateKey.generate(),
            "EdDSA",
            headers={"kid": "s1", "typ": SERVICE_TOKEN_TYPE},
        ),
        "dev, malformed": "dev:oid:" + "s" * 40,
    }
    caplog.set_level(logging.DEBUG)
    server = servers(ledger)
    seen: list[str] = []
    with httpx.Client(base_url=server.url) as http:
        for what, token in bad_tokens.items():
            for method, path, body in (("GET", "/whoami", None), ("POST", "/entries", rec(1).to_dict())):
                r = http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 401, (what, r.status_code, r.text)
                seen.append(f"{r.text} {r.headers}")
        # The valid key still works: the refusals above are about the tokens, not a broken setup.
        assert http.get("/whoami", headers={"Authorization": f"Bearer {key}"}).json()["oid"] == ALICE
    blobs = "\n".join(seen) + "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for what, token in bad_tokens.items():
        assert token not in blobs, what
        for part in token.replace(".", "_").split("_"):
            if len(part) >= 16:
                assert part not in blobs, what
    assert SECRET_CLAIM not in blobs
    assert key not in blobs and key_record.secret_hash not in blobs


# --- hostile JSON over HTTP -----------------------------------------------------------------------


def test_oversized_and_deeply_nested_json_over_http(
    development: None, tmp_path: Path, servers: Callable[..., Any]
) -> None:
    ledger = create_ledger(id="sec", storage=f"sqlite:///{tmp_path / 'j.db'}", plugins=["auth.dev", "ual"])
    server = servers(ledger, ServerSettings(max_body_bytes=1024 * 1024))
    depth = 200_000
    nested = b"[" * depth + b"]" * depth  # 400 kB, under the body limit
    nested_obj = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    record = rec(1).to_dict()
    deep_payload = {**record, "payload": json.loads("[" * 500 + "]" * 500)}
    hostile: list[tuple[str, str, bytes]] = [
        ("POST", "/entries", nested),
        ("POST", "/entries", nested_obj),
        ("POST", "/entries/batch", b'{"records":' + nested + b"}"),
        ("POST", "/entries/query", nested_obj),
        ("POST", "/acl/grant", b'{"grants":' + nested + b"}"),
        ("POST", "/acl/check", nested_obj),
        ("POST", "/acl/revoke", nested),
        ("POST", "/entries", json.dumps(deep_payload).encode()),
        ("POST", "/entries", json.dumps({**record, "payload": {"n": 10**400}}).encode()),
        ("POST", "/entries", b'{"id":"r-1","stream":"notes","timestamp":1,"payload":{"n":' + b"9" * 5000 + b"}}"),
        ("POST", "/entries", b'{"id":"r-1","stream":"notes","timestamp":1,"payload":{"n":1e999}}'),
        ("POST", "/entries", b'{"id":"r-1","stream":"notes","timestamp":1,"payload":{"s":"\\ud800"}}'),
        ("POST", "/entries", b'{"id":"r-1","stream":"notes","timestamp":1,"payload":{"\\ud800":1}}'),
        ("POST", "/entries", b'{"id":"","stream":"notes","timestamp":1,"payload":{}}'),
        ("POST", "/entries", b'{"id":"r-1","stream":"","timestamp":1,"payload":{}}'),
        ("POST", "/entries", b'{"id":"r-1","stream":"notes","timestamp":9007199254740993,"payload":{}}'),
        ("POST", "/entries", b"\xef\xbb\xbf" + json.dumps(record).encode()),
        ("POST", "/entries", json.dumps(record).encode("utf-16")),
        ("POST", "/entries", b'{"id":"r-1","id":"r-2","stream":"notes","timestamp":1,"payload":{}}'),
        (
            "POST",
            "/entries",
            b'{"id":"r-1","stream":"notes","timestamp":1,"payload":{"a":"' + b"x" * 2_000_000 + b'"}}',
        ),
    ]
    with httpx.Client(base_url=server.url, headers=dev(ROOT), timeout=60) as http:
        for method, path, body in hostile:
            r = http.request(method, path, content=body, headers={"content-type": "application/json"})
            assert r.status_code in (400, 413, 422), (path, body[:80], r.status_code, r.text[:200])
            error = r.json()["error"]
            assert error["code"] != "internal_error"
            assert len(r.content) < 4096
        assert http.get("/ledger").json()["length"] == 1  # only the _ledger record of its plugins
        assert http.get("/health").status_code == 200


# --- SQL-ish values in every filter ---------------------------------------------------------------

SQLISH = ["' OR 1=1 --", "%", "_", "r-%", "\\", "'; DROP TABLE nucleus_entries; --", '" OR ""="', "*", "r-1\x00"]


def test_sql_ish_values_in_every_filter_are_literals(
    development: None, place: Place, servers: Callable[..., Any]
) -> None:
    server, ledger = ual_server(place, servers)
    tables_before = sorted(
        place.sql("SELECT name FROM sqlite_master WHERE type='table'")
        if place.name == "sqlite"
        else place.sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    )
    with httpx.Client(base_url=server.url, headers=dev(BOB)) as http:
        for value in SQLISH:
            for params in (
                {"stream": value},
                {"record_id": value},
                {"cursor": value},
            ):
                r = http.get("/entries", params=params)
                assert r.status_code in (200, 400, 422), (params, r.text)
                if r.status_code == 200:
                    assert r.json()["entries"] == [], params
            for doc in (
                {"stream": value},
                {"record_ids": [value]},
                {"stream": [value, "other"]},
                {"cursor": value},
            ):
                r = http.post("/entries/query", json=doc)
                assert r.status_code in (200, 400, 422), (doc, r.text)
                if r.status_code == 200:
                    assert [e["record"]["id"] for e in r.json()["entries"]] in ([], ["r-3"]), doc
            r = http.get("/acl/entries", params={"kind": value})
            assert r.status_code in (200, 400, 422), r.text
            if r.status_code == 200:
                assert r.json()["entries"] == []
            check = {"action": value, "resource": {"kind": value, "id": value}}
            assert http.post("/acl/check", json=check).status_code in (200, 400, 422)
            assert http.get(f"/records/{quote(value, safe='')}").status_code in (404, 422)
            for field in ("since", "until", "limit"):
                r = http.get("/entries", params={field: value})
                assert r.status_code == 422, r.text
            r = http.post("/entries/query", json={"order_by": value})
            assert r.status_code == 422
            r = http.post("/entries/query", json={value: "x"})
            assert r.status_code == 422
    tables_after = sorted(
        place.sql("SELECT name FROM sqlite_master WHERE type='table'")
        if place.name == "sqlite"
        else place.sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    )
    assert tables_after == tables_before
    assert ledger.verify().ok


# --- public paths ---------------------------------------------------------------------------------


def test_public_path_tricks_through_the_real_server(
    development: None, tmp_path: Path, servers: Callable[..., Any]
) -> None:
    ledger = create_ledger(id="sec", storage=f"sqlite:///{tmp_path / 'p.db'}", plugins=["auth.dev"])
    ledger.append(rec(1), RequestContext(oid=ALICE, source="dev"))
    # Even ledger routes listed as public answer nothing without a requester.
    server = servers(ledger, ServerSettings(public_paths=["/health", "/entries", "/whoami", "/records/r-1", "/ledger"]))
    tricks = [
        "/%68ealth",
        "/health;x",
        "/health%00",
        "/health%2F",
        "/health/.",
        "/./health",
        "/health/..",
        "/health#",
        "/HEALTH",
        "/health%3F/x",
        "//health",
        "/healthz-admin",
        "/openapi.json/",
        "/%2Fhealth",
        "/entries",
        "/entries/",
        "/whoami",
        "/records/r-1",
        "/records/r%2D1",
        "/ledger",
        "/verify",
        "/modules",
    ]
    for path in tricks:
        # http.client sends the request target as written: no dot-segment or slash normalisation.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", path.replace("#", "%23"))
            response = conn.getresponse()
            status, text = response.status, response.read().decode()
        finally:
            conn.close()
        assert status in (401, 404), (path, status, text)
        assert '"record"' not in text and ALICE not in text, (path, text)
    assert httpx.get(server.url + "/health").status_code == 200
    with RemoteLedger(server.url) as anonymous:
        with pytest.raises(Exception) as refused:
            anonymous.get_by_id("r-1")
        assert "r-1" not in str(refused.value) or "requester" in str(refused.value)


# --- plugins: installed twice, installed but unlisted ----------------------------------------------


def _fake_distribution(root: Path, dist: str, module: str, entry_points: dict[str, str], body: str) -> None:
    """A distribution as pip leaves it: ``<dist>.dist-info`` with METADATA and entry_points.txt."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(body)
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[nucleus]\n{lines}\n")


MARKER_BODY = textwrap.dedent(
    """
    import os, pathlib
    pathlib.Path(os.environ["SEC_MARKER_DIR"], __name__).write_text("imported")
    from nucleus_core import hookimpl, TokenParserSpec

    class Everyone:
        def __init__(self, context):
            pass
        def validate_format(self, token):
            return True
        def parse(self, token):
            from nucleus_core import RequestContext
            return RequestContext(oid="oid:evil:user:root", source="dev")

    @hookimpl
    def nucleus_register_token_parsers():
        return [TokenParserSpec(name="auth.everyone", factory=Everyone, description="accepts anything")]
    """
)


def test_a_plugin_installed_by_two_distributions_is_refused_without_importing_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "markers"
    marker.mkdir()
    monkeypatch.setenv("SEC_MARKER_DIR", str(marker))
    _fake_distribution(tmp_path / "a", "sec-rogue-a", "sec_rogue_a", {"sec.twice": "sec_rogue_a"}, MARKER_BODY)
    _fake_distribution(tmp_path / "b", "sec-rogue-b", "sec_rogue_b", {"sec.twice": "sec_rogue_b"}, MARKER_BODY)
    # A rogue distribution that also claims the name of a real plugin.
    _fake_distribution(tmp_path / "c", "sec-rogue-c", "sec_rogue_c", {"auth.api_key": "sec_rogue_c"}, MARKER_BODY)
    for sub in ("a", "b", "c"):
        monkeypatch.syspath_prepend(str(tmp_path / sub))
    with pytest.raises(PluginError, match="several distributions") as twice:
        create_ledger(id="sec", storage="memory://", plugins=["sec.twice"])
    assert "sec-rogue-a" in str(twice.value) and "sec-rogue-b" in str(twice.value)
    with pytest.raises(PluginError, match="several distributions") as shadow:
        create_ledger(
            id="sec", storage="memory://", plugins=["auth.api_key"], settings={"auth.api_key": {"pepper": PEPPER}}
        )
    assert "sec-rogue-c" in str(shadow.value) and "nucleus-token-api-key" in str(shadow.value)
    # Nothing was imported: the refusal comes from the metadata alone.
    assert list(marker.iterdir()) == []
    assert not {"sec_rogue_a", "sec_rogue_b", "sec_rogue_c"} & set(sys.modules)


def test_the_same_distribution_on_two_path_entries_loads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "markers"
    marker.mkdir()
    monkeypatch.setenv("SEC_MARKER_DIR", str(marker))
    for sub in ("one", "two"):
        _fake_distribution(tmp_path / sub, "sec-copied", "sec_copied", {"sec.copied": "sec_copied"}, MARKER_BODY)
        monkeypatch.syspath_prepend(str(tmp_path / sub))
    try:
        with create_ledger(id="sec", storage="memory://", plugins=["sec.copied"]) as ledger:
            assert ledger.auth.authenticate("anything").oid == "oid:evil:user:root"
            assert ledger.plugin_manager.get_plugin("sec.copied") is not None
            assert (
                len([p for p in ledger.plugin_manager.get_plugins() if getattr(p, "__name__", "") == "sec_copied"]) == 1
            )
        assert [p.name for p in marker.iterdir()] == ["sec_copied"]
    finally:
        sys.modules.pop("sec_copied", None)


def test_installed_but_unlisted_rogue_plugin_is_never_imported_by_a_ledger_or_the_server(tmp_path: Path) -> None:
    """A rogue distribution accepting every token sits on the path of a fresh interpreter that
    opens a ledger with every other plugin, lists installed plugins without inspecting them and
    builds the HTTP app. (``nucleus plugins`` imports every installed plugin to list its hooks, as
    documented, so it is not part of this test.)"""
    marker = tmp_path / "markers"
    marker.mkdir()
    site = tmp_path / "site"
    _fake_distribution(site, "sec-rogue", "sec_rogue", {"auth.everyone": "sec_rogue"}, MARKER_BODY)
    db_path = tmp_path / "r.db"
    script = textwrap.dedent(
        f"""
        import sys
        from nucleus_core import create_ledger
        from nucleus_core.plugins import installed_plugins
        from nucleus_core.errors import TokenInvalidError
        from nucleus_server import create_app
        names = [p.name for p in installed_plugins(inspect_hooks=False)]
        assert "auth.everyone" in names, names
        ledger = create_ledger(id="sec", storage="sqlite:///{db_path}",
                               plugins=["auth.api_key", "auth.session", "ual", "proof", "asset", "token"],
                               settings={{"auth.api_key": {{"pepper": "{PEPPER}"}}}})
        create_app(ledger)
        try:
            ledger.auth.authenticate("anything")
        except TokenInvalidError:
            pass
        else:
            sys.exit("a token was accepted")
        ledger.close()
        assert "sec_rogue" not in sys.modules
        """
    )
    env = {
        **os.environ,
        "SEC_MARKER_DIR": str(marker),
        "NUCLEUS_SESSION_SECRET": "session-secret-for-tests-only-0123456789",
        "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    env.pop("NUCLEUS_ENV", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(marker.iterdir()) == []


# --- tampering behind the ledger's back -----------------------------------------------------------


def test_truncating_the_newest_entries_is_caught_by_a_kept_head(place: Place) -> None:
    ctx = RequestContext(oid=ALICE, source="dev")
    with create_ledger(id="sec", storage=place.storage()) as ledger:
        ledger.append_batch([rec(i) for i in range(1, 6)], ctx)
        anchor = ledger.latest_hash()
        assert anchor is not None
        anchor_entry = ledger.get(anchor, ctx)
    assert anchor_entry is not None
    place.sql("DELETE FROM nucleus_entries WHERE seq >= 4")
    # The stored Merkle tree still covers the deleted entries: opening refuses ...
    with pytest.raises(IntegrityError, match="the Merkle tree covers 5 entries but the chain has 3"):
        create_ledger(id="sec", storage=place.storage())
    # ... but the tree is in the same database: trimmed as well (5 entries have no stored node),
    # a shorter chain is still a valid chain (FORMAT.md): it opens ...
    place.sql("UPDATE nucleus_merkle_size SET size = 3")
    with create_ledger(id="sec", storage=place.storage()) as ledger:
        assert ledger.length() == 3
        # ... and the head (or a signed checkpoint, tests/test_trusted_checkpoint.py) kept elsewhere
        # is what reveals the truncation.
        assert ledger.latest_hash() != anchor
        assert ledger.get(anchor, ctx) is None
        # Appending again cannot reproduce the old head: the new entry 4 differs from the old one.
        ledger.append(rec(99), ctx)
        assert ledger.get(anchor, ctx) is None
        assert ledger.get_by_id("r-4", ctx) is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE nucleus_entries SET record_id = 'r-x' WHERE seq = 2",
        "UPDATE nucleus_entries SET stream = 'other' WHERE seq = 3",
        "UPDATE nucleus_entries SET seq = seq + 100 WHERE seq = 5",
        "DELETE FROM nucleus_entries WHERE seq = 1",
    ],
)
def test_tampered_entries_table_names_the_first_bad_seq(place: Place, statement: str) -> None:
    ctx = RequestContext(oid=ALICE, source="dev")
    with create_ledger(id="sec", storage=place.storage()) as ledger:
        ledger.append_batch([rec(i) for i in range(1, 6)], ctx)
    place.sql(statement)
    with pytest.raises(IntegrityError) as bad:
        create_ledger(id="sec", storage=place.storage())
    expected = {"r-x": 2, "other": 3, "seq + 100": 5, "DELETE": 1}
    seq = next(v for k, v in expected.items() if k in statement)
    assert bad.value.seq == seq, str(bad.value)


# --- order and plugin state -----------------------------------------------------------------------


def test_equal_timestamps_keep_append_order_across_reopen(place: Place) -> None:
    """Order is the seq the ledger assigned, never the timestamp: records sharing one timestamp, and
    records with timestamps going backwards, come back in append order after a reopen."""
    ctx = RequestContext(oid=ALICE, source="dev")
    records = [Record(id=f"t-{i}", stream="notes", timestamp=ts, payload={}) for i, ts in enumerate([5, 5, 5, 1, 9, 2])]
    with create_ledger(id="sec", storage=place.storage()) as ledger:
        for record in records:
            ledger.append(record, ctx)
    with create_ledger(id="sec", storage=place.storage()) as ledger:
        assert ledger.verify().ok
        assert [e.record.id for e in ledger.iter_entries(ctx)] == [r.id for r in records]
        assert [e.record.id for e in ledger.query({"stream": "notes"}, ctx)] == [r.id for r in records]


def test_plugin_modules_hold_no_mutable_module_state() -> None:
    """Every installed plugin of this repository: no module-level list, dict, set or bytearray in
    the entry-point module or its package (they would be shared by every ledger of a process)."""
    import importlib
    import importlib.metadata as md

    checked = []
    for ep in md.entry_points(group="nucleus"):
        dist = ep.dist.metadata["Name"] if ep.dist is not None else ""
        if not dist.startswith("nucleus-"):
            continue
        module = importlib.import_module(ep.value.split(":")[0])
        package = importlib.import_module(module.__name__.rsplit(".", 1)[0])
        for mod in (module, package):
            for name, value in vars(mod).items():
                if name.startswith("__") or isinstance(value, type(md)):
                    continue
                assert not isinstance(value, list | dict | set | bytearray), f"{mod.__name__}.{name}"
        checked.append(ep.name)
    assert {"auth.dev", "auth.api_key", "ual", "sqlite"} <= set(checked)
