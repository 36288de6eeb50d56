"""Scopes in the request context, enforced by the core at every operation, and narrowed by every
parser: api_key from its stored scopes, session from its row (under the MAC), connect from a
configured claim, service from its configuration (and a narrower ``scope`` claim). Real SQLite
files, real keys and signatures."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from nucleus_token_connect import ConnectParser
from nucleus_token_service import ServiceParser

from nucleus_core import PluginContext, Record, RequestContext, create_ledger
from nucleus_core.auth import SERVICE_TOKEN_TYPE
from nucleus_core.context import ALL_SCOPES, DEFAULT_SCOPES, KEYS, SCOPES, require_scope
from nucleus_core.errors import (
    AuthorizationError,
    ConfigurationError,
    InsufficientScopeError,
    MissingRequesterError,
    TokenInvalidError,
    ValidationError,
)

ALICE = "oid:test:user:alice"
PEPPER = "p" * 40
SESSION_SECRET = "s" * 40


def ctx(*scopes: str) -> RequestContext:
    return RequestContext(oid=ALICE, source="auth.service", scopes=scopes)


def test_the_vocabulary_and_the_default_of_a_context_that_was_not_narrowed() -> None:
    assert frozenset({"read", "write", "grant", "verify", "keys"}) == SCOPES
    # keys is never a default: a context gets it only when it is granted explicitly.
    assert RequestContext(oid=ALICE, source="dev").scopes == DEFAULT_SCOPES == SCOPES - {"keys"}
    assert ALL_SCOPES == SCOPES and RequestContext(oid=ALICE, source="dev", scopes=ALL_SCOPES).scopes == SCOPES
    assert ctx("read").scopes == frozenset({"read"})
    assert ctx().scopes == frozenset()
    for bad in (["raed"], ["*"], "read", [1], None, [["read"]]):
        with pytest.raises(ValidationError, match="scope"):
            RequestContext(oid=ALICE, source="dev", scopes=bad)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        ctx("read").scopes = ALL_SCOPES  # type: ignore[misc]
    assert require_scope(ctx("read"), "read").oid == ALICE
    with pytest.raises(
        InsufficientScopeError, match="needs the 'write' scope; the requester's credential has: read"
    ) as e:
        require_scope(ctx("read"), "write")
    assert isinstance(e.value, AuthorizationError) and e.value.scope == "write" and e.value.code == "insufficient_scope"
    with pytest.raises(MissingRequesterError):
        require_scope(None, "read")


def test_the_ledger_enforces_scopes_on_every_read_write_and_verify(tmp_path: Path) -> None:
    with create_ledger(id="scopes", storage=f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        record = Record(id="r-1", stream="notes", timestamp=1, payload={})
        entry = ledger.append(record, ctx("write"))
        before = (ledger.length(), ledger.latest_hash())
        reader, writer = ctx("read"), ctx("write", "grant", "verify", "keys")
        for call in (
            lambda: ledger.append(Record(id="r-2", stream="notes", timestamp=1, payload={}), reader),
            lambda: ledger.append_batch([Record(id="r-3", stream="notes", timestamp=1, payload={})], reader),
        ):
            with pytest.raises(InsufficientScopeError, match="'write'"):
                call()
        for call in (
            lambda: ledger.get(entry.hash, writer),
            lambda: ledger.get_by_id("r-1", writer),
            lambda: ledger.query({"stream": "notes"}, writer),
            lambda: ledger.iter_entries(writer),
        ):
            with pytest.raises(InsufficientScopeError, match="'read'"):
                call()
        with pytest.raises(InsufficientScopeError, match="'verify'"):
            ledger.verify(context=reader)
        assert (ledger.length(), ledger.latest_hash()) == before
        assert ledger.get_by_id("r-1", reader) == entry
        assert [e.record.id for e in ledger.iter_entries(reader)] == ["r-1"]
        assert ledger.verify(context=ctx("verify")).ok and ledger.verify().ok


def test_module_queries_need_the_read_scope(tmp_path: Path) -> None:
    with create_ledger(id="scopes", storage=f"sqlite:///{tmp_path / 'l.db'}", plugins=["asset"]) as ledger:
        assets = ledger.runtime.get("asset")
        with pytest.raises(InsufficientScopeError, match="'read'"):
            assets.get("a-1", ctx("write"))
        assert assets.get("a-1", ctx("read")) is None


@pytest.mark.parametrize("module", ["asset", "token", "proof", "connect_grant"])
def test_module_read_helpers_need_the_read_scope(tmp_path: Path, module: str) -> None:
    """``readable`` and ``can_read`` are reads of an entry: without the ``read`` scope they refuse
    like ``ledger.get_by_id`` does, for any entry (a plain record included), in every module."""
    with create_ledger(id="scopes", storage=f"sqlite:///{tmp_path / 'l.db'}", plugins=[module]) as ledger:
        entry = ledger.append(Record(id="n-1", stream="notes", timestamp=1, payload={"secret": 1}), ctx("write"))
        handle = ledger.runtime.get(module)
        for scopes in (("write",), ("write", "grant", "verify", "keys"), ()):
            with pytest.raises(InsufficientScopeError, match="'read'"):
                ledger.get_by_id("n-1", ctx(*scopes))
            with pytest.raises(InsufficientScopeError, match="'read'"):
                handle.readable(entry.seq, ctx(*scopes))
            with pytest.raises(InsufficientScopeError, match="'read'"):
                handle.can_read(entry.seq, ctx(*scopes))
        with pytest.raises(MissingRequesterError):
            handle.readable(entry.seq, None)
        assert handle.readable(entry.seq, ctx("read")) == entry
        assert handle.can_read(entry.seq, ctx("read"))
        assert handle.readable(entry.seq + 1, ctx("read")) is None


def test_api_key_scopes_become_the_context_scopes(tmp_path: Path) -> None:
    settings = {"auth.api_key": {"pepper": PEPPER}}
    with create_ledger(
        id="k", storage=f"sqlite:///{tmp_path / 'l.db'}", plugins=["auth.api_key"], settings=settings
    ) as ledger:
        keys = ledger.auth.parser("auth.api_key")
        cases = {
            (): DEFAULT_SCOPES,
            ("read",): {"read"},
            ("*",): DEFAULT_SCOPES,
            ("*", "keys"): ALL_SCOPES,
            ("keys",): {"keys"},
            ("read", "books:x"): {"read"},
            ("books:x",): set(),
        }
        for stored, expected in cases.items():
            key, _ = keys.create_key(ALICE, scopes=stored)
            context = ledger.auth.authenticate(key)
            assert context.scopes == frozenset(expected)
            assert context.claims["scopes"] == list(stored)
        with pytest.raises(ValidationError, match="'raed' is not a scope"):
            keys.create_key(ALICE, scopes=["raed"])
        with pytest.raises(ValidationError, match="list"):
            keys.create_key(ALICE, scopes="read")


@pytest.mark.parametrize("parser", ["auth.api_key", "auth.session", "auth.connect", "auth.service", "auth.dev"])
def test_no_credential_that_was_not_narrowed_can_manage_keys(tmp_path: Path, parser: str) -> None:
    """A default credential of every parser lacks ``keys``: an application calling ``create_key(...,
    context=ctx)`` for it is refused, for any principal (an admin's included), and nothing is
    written; naming ``keys`` explicitly gives it."""
    settings = {"auth.api_key": {"pepper": PEPPER}, "auth.session": {"secret": SESSION_SECRET}}
    plugins = ["auth.api_key", "auth.session"]
    with create_ledger(id="k", storage=f"sqlite:///{tmp_path / 'l.db'}", plugins=plugins, settings=settings,
                       environment="development") as ledger:
        keys = ledger.auth.parser("auth.api_key")
        if parser == "auth.api_key":
            context = ledger.auth.authenticate(keys.create_key(ALICE)[0])
            explicit = ledger.auth.authenticate(keys.create_key(ALICE, scopes=["keys"])[0])
        elif parser == "auth.session":
            sessions = ledger.auth.parser("auth.session")
            context = ledger.auth.authenticate(sessions.create_session(ALICE)[0])
            explicit = ledger.auth.authenticate(sessions.create_session(ALICE, scopes=["keys"])[0])
        elif parser == "auth.connect":
            context = connect().parse(connect_token())
            explicit = connect(scope_claim="scope").parse(connect_token(scope="keys"))
        elif parser == "auth.service":
            context = service().parse(service_token())
            explicit = service(scopes=["keys"]).parse(service_token())
        else:
            context = RequestContext(oid=ALICE, source="dev")
            explicit = RequestContext(oid=ALICE, source="dev", scopes={"keys"})
        assert KEYS not in context.scopes and KEYS in explicit.scopes
        victim = keys.create_key("oid:test:user:bob")[1].key_id  # by the operator (no context)
        before = (ledger.length(), len(keys.list_keys()))
        for call in (
            lambda: keys.create_key("oid:test:user:root", scopes=["*", "keys"], context=context),
            lambda: keys.create_key(context.oid, context=context),
            lambda: keys.list_keys(context=context),
            lambda: keys.revoke_key(victim, context=context),
        ):
            with pytest.raises(InsufficientScopeError, match="'keys'"):
                call()
        assert (ledger.length(), len(keys.list_keys())) == before
        made, _ = keys.create_key(ALICE, scopes=["read"], context=explicit)
        assert ledger.auth.authenticate(made).scopes == {"read"}


def test_the_cli_acting_as_operator_keeps_every_scope() -> None:
    from nucleus_core.cli import LedgerOptions

    options = LedgerOptions(storage=None, ledger_id="k", plugins=(), requester=ALICE)
    assert options.context().scopes == ALL_SCOPES


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE nucleus_sessions SET scopes = NULL WHERE scopes IS NOT NULL",
        "UPDATE nucleus_sessions SET scopes = 'grant keys read verify write' WHERE scopes IS NOT NULL",
    ],
)
def test_session_scopes_live_in_the_row_under_its_mac(tmp_path: Path, edit: str) -> None:
    db = tmp_path / "l.db"
    settings = {"auth.session": {"secret": SESSION_SECRET}}
    with create_ledger(id="s", storage=f"sqlite:///{db}", plugins=["auth.session"], settings=settings) as ledger:
        sessions = ledger.auth.parser("auth.session")
        narrow, _ = sessions.create_session(ALICE, scopes=["read", "write"])
        wide, _ = sessions.create_session(ALICE)
        assert ledger.auth.authenticate(narrow).scopes == frozenset({"read", "write"})
        assert ledger.auth.authenticate(wide).scopes == DEFAULT_SCOPES
        operator, _ = sessions.create_session(ALICE, scopes=sorted(ALL_SCOPES))
        assert ledger.auth.authenticate(operator).scopes == ALL_SCOPES
        with pytest.raises(ValidationError, match="scope"):
            sessions.create_session(ALICE, scopes=["admin"])
    # A database writer widening the session (clearing or editing its scopes) breaks its MAC.
    with sqlite3.connect(db) as con:
        con.execute(edit)
    con.close()
    with create_ledger(id="s", storage=f"sqlite:///{db}", plugins=["auth.session"], settings=settings) as ledger:
        with pytest.raises(TokenInvalidError, match="not valid"):
            ledger.auth.authenticate(narrow)
        assert ledger.auth.authenticate(wide).scopes == DEFAULT_SCOPES


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def connect(**over: Any) -> ConnectParser:
    jwk = {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "k", "alg": "RS256"}
    settings = {"issuer": "https://id", "audience": "books", "algorithms": ["RS256"], "keys": [jwk], **over}
    return ConnectParser(PluginContext(ledger_id="books", environment="production", settings=settings))


def connect_token(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "https://id", "aud": "books", "sub": ALICE, "iat": now, "exp": now + 60, **claims}
    return jwt.encode(payload, RSA_KEY, algorithm="RS256", headers={"kid": "k"})


def test_connect_narrows_from_a_configured_scope_claim() -> None:
    assert connect().parse(connect_token(scope="read")).scopes == DEFAULT_SCOPES  # not configured: not narrowed
    p = connect(scope_claim="scope")
    assert p.parse(connect_token(scope="openid read write")).scopes == {"read", "write"}
    assert p.parse(connect_token()).scopes == frozenset()  # configured but absent: nothing
    assert p.parse(connect_token(scope="*")).scopes == DEFAULT_SCOPES
    assert p.parse(connect_token(scope="* keys")).scopes == ALL_SCOPES  # keys only when named
    with pytest.raises(TokenInvalidError, match="'scope'"):
        p.parse(connect_token(scope={"read": True}))
    scp = connect(scope_claim="scp", scope_prefix="books:")
    assert scp.parse(connect_token(scp=["books:read", "read", "other:write"])).scopes == {"read"}
    with pytest.raises(ConfigurationError, match="scope_claim"):
        connect(scope_prefix="books:")


def service(**entry: Any) -> ServiceParser:
    jwk = {**json.loads(OKPAlgorithm.to_jwk(ED_KEY.public_key())), "kid": "e", "alg": "EdDSA"}
    services = {"billing": {"principal": "oid:acme:service:billing", "keys": {"e": jwk}, **entry}}
    return ServiceParser(PluginContext(ledger_id="books", environment="production", settings={"services": services}))


def service_token(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "billing", "sub": "billing", "aud": "books", "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode({**payload, **claims}, ED_KEY, algorithm="EdDSA", headers={"kid": "e", "typ": SERVICE_TOKEN_TYPE})


def test_service_scopes_come_from_configuration_and_a_token_can_only_narrow_them() -> None:
    assert service().parse(service_token()).scopes == DEFAULT_SCOPES
    assert service(scopes=["*", "keys"]).parse(service_token()).scopes == ALL_SCOPES
    p = service(scopes=["read", "write"])
    assert p.parse(service_token()).scopes == {"read", "write"}
    assert p.parse(service_token(scope="write keys")).scopes == {"write"}  # never widened
    with pytest.raises(ConfigurationError, match="scopes"):
        service(scopes=["admin"])
    with pytest.raises(ConfigurationError, match="scopes"):
        service(scopes="read")
