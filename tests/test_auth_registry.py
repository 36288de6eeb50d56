"""SECURITY-TESTS "Token registry and plugins" (cases 13-17) and the registry contract."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from nucleus_token_dev import DevTokenParser

from nucleus_core import PluginContext, RequestContext, TokenParserSpec, create_ledger, hookimpl
from nucleus_core.auth import TokenRegistry, build_token_registry, token_fingerprint
from nucleus_core.errors import (
    ConfigurationError,
    MissingRequesterError,
    PluginError,
    TokenExpiredError,
    TokenInvalidError,
    ValidationError,
)
from nucleus_core.ledger import current_environment


class Recorder:
    """A parser that records what it was offered and answers as told."""

    def __init__(self, prefix: str, answer: Any) -> None:
        self.prefix = prefix
        self.answer = answer
        self.offered: list[str] = []

    def validate_format(self, token: str) -> bool:
        return token.startswith(self.prefix)

    def parse(self, token: str) -> RequestContext | None:
        self.offered.append(token)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


ALICE = RequestContext(oid="oid:acme:user:alice", source="connect")


def test_case13_claimed_and_rejected_token_is_not_offered_to_the_next_parser() -> None:
    first = Recorder("x", TokenInvalidError("bad"))
    second = Recorder("x", ALICE)
    reg = TokenRegistry(parsers=[("first", first), ("second", second)])
    with pytest.raises(TokenInvalidError):
        reg.authenticate("x-token")
    assert first.offered == ["x-token"]
    assert second.offered == []


def test_case13_expired_is_final_too() -> None:
    second = Recorder("x", ALICE)
    reg = TokenRegistry(parsers=[("a", Recorder("x", TokenExpiredError("old"))), ("b", second)])
    with pytest.raises(TokenExpiredError):
        reg.authenticate("x1")
    assert second.offered == []


def test_registry_offers_only_to_matching_formats_and_none_means_not_mine() -> None:
    other = Recorder("y", ALICE)
    not_mine = Recorder("x", None)
    claims = Recorder("x", ALICE)
    reg = TokenRegistry(parsers=[("other", other), ("not_mine", not_mine), ("claims", claims)])
    assert reg.authenticate("x-token") == attrs.evolve(ALICE, source="claims")
    assert other.offered == [] and not_mine.offered == ["x-token"] and claims.offered == ["x-token"]


@pytest.mark.parametrize("token", ["", None, 42, "z" * 9000, "unclaimed"])
def test_registry_refuses_empty_huge_and_unclaimed_tokens(token: Any) -> None:
    reg = TokenRegistry(parsers=[("p", Recorder("x", ALICE))])
    with pytest.raises(TokenInvalidError):
        reg.authenticate(token)


def test_registry_wraps_parser_bugs_without_the_token_in_the_message() -> None:
    secret = "x-SECRET-VALUE"
    reg = TokenRegistry(parsers=[("buggy", Recorder("x", KeyError(secret)))])
    with pytest.raises(PluginError) as info:
        reg.authenticate(secret)
    assert secret not in str(info.value) and info.value.__cause__ is None and "buggy" in str(info.value)


def test_registry_refuses_non_parsers_and_non_context_results() -> None:
    with pytest.raises(PluginError):
        TokenRegistry(parsers=[("bad", object())])
    with pytest.raises(ConfigurationError, match="twice"):
        TokenRegistry(parsers=[("a", Recorder("x", ALICE)), ("a", Recorder("y", ALICE))])
    with pytest.raises(PluginError, match="RequestContext"):
        TokenRegistry(parsers=[("p", Recorder("x", "oid:acme:user:alice"))]).authenticate("x1")


def test_the_source_is_the_spec_name_of_the_parser_that_accepted_the_token() -> None:
    # A parser that claims another's name (or none of its own) does not get to say who
    # authenticated the requester: the registry names the spec that accepted the token.
    impostor = RequestContext(oid="oid:acme:user:alice", source="auth.dev", role="r", token="x1", claims={"k": 1})
    reg = TokenRegistry(parsers=[("acme-sso", Recorder("x", impostor)), ("honest", Recorder("y", ALICE))])
    ctx = reg.authenticate("x1")
    assert (ctx.oid, ctx.source, ctx.role) == (impostor.oid, "acme-sso", "r")
    assert (ctx.token, dict(ctx.claims)) == ("x1", {"k": 1})
    # A parser that names itself gets its own context back, unchanged.
    honest = RequestContext(oid="oid:acme:user:bob", source="honest")
    assert TokenRegistry(parsers=[("honest", Recorder("y", honest))]).authenticate("y1") is honest


def test_build_token_registry_names_a_failing_factory() -> None:
    def factory(_ctx: PluginContext) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(PluginError, match=r"auth\.broken"):
        build_token_registry(
            [TokenParserSpec(name="auth.broken", factory=factory)],
            lambda n: PluginContext(ledger_id="l", environment="production"),
        )


def test_fingerprint_is_short_stable_and_not_the_token() -> None:
    fp = token_fingerprint("nss_secret")
    assert fp == token_fingerprint("nss_secret") and len(fp) == 12 and "secret" not in fp


# --- case 14/15: dev tokens ----------------------------------------------------------------------


def dev_ledger(**kw: Any) -> Any:
    return create_ledger(id="books", storage="memory://", plugins=["auth.dev"], **kw)


def test_dev_token_authenticates_in_development() -> None:
    with dev_ledger(environment="development") as ledger:
        ctx = ledger.auth.authenticate("dev:oid:acme:user:alice")
        assert (ctx.oid, ctx.source) == ("oid:acme:user:alice", "auth.dev")


@pytest.mark.parametrize("env", [None, "production", "Production ", "development ", "Development", "dev", ""])
def test_case14_dev_parser_refuses_to_open_outside_development(
    monkeypatch: pytest.MonkeyPatch, env: str | None
) -> None:
    if env is None:
        monkeypatch.delenv("NUCLEUS_ENV", raising=False)
    else:
        monkeypatch.setenv("NUCLEUS_ENV", env)
    assert current_environment() == "production"
    with pytest.raises(ConfigurationError, match="development tokens are refused"):
        dev_ledger()


def test_case14_dev_token_is_refused_by_a_production_ledger_without_the_dev_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NUCLEUS_ENV", raising=False)
    ledger = create_ledger(id="books", storage="memory://", plugins=["auth.session"])
    with ledger, pytest.raises(TokenInvalidError):
        ledger.auth.authenticate("dev:oid:acme:user:alice")


def test_case14_dev_parser_constructed_for_production_refuses() -> None:
    with pytest.raises(ConfigurationError):
        DevTokenParser(PluginContext(ledger_id="books", environment="production"))


@pytest.mark.parametrize(
    "token",
    [
        "dev:oid:",
        "dev:oid:alice",
        "dev:oid:a:b",
        "dev:",
        "dev:oid:acme:user:",
        "dev:oid:acme:user:\uff41lice",
        "dev:oid:acme:us\u0435r:alice",
        "dev:oid:ACME:user:alice",
        "dev: oid:acme:user:alice",
        "dev:oid:acme:user:alice\n",
    ],
)
def test_case15_malformed_or_look_alike_dev_tokens_are_refused(token: str) -> None:
    with dev_ledger(environment="development") as ledger, pytest.raises(TokenInvalidError):
        ledger.auth.authenticate(token)


# --- case 16: unlisted plugins ----------------------------------------------------------------------


def test_case16_installed_but_unlisted_parsers_are_never_loaded() -> None:
    with create_ledger(id="books", storage="memory://", plugins=[]) as ledger:
        assert ledger.auth.names == []
        assert ledger.plugin_manager.get_plugin("auth.dev") is None
        with pytest.raises(TokenInvalidError):
            ledger.auth.authenticate("dev:oid:acme:user:alice")
    with create_ledger(id="books", storage="memory://", plugins=["auth.session"]) as ledger:
        assert ledger.auth.names == ["auth.session"]
        with pytest.raises(ConfigurationError, match="not enabled"):
            ledger.auth.parser("auth.api_key")


def test_case16_parser_from_a_plugin_object_is_per_ledger() -> None:
    class Plugin:
        @hookimpl
        def nucleus_register_token_parsers(self) -> list[TokenParserSpec]:
            return [TokenParserSpec(name="auth.test", factory=lambda ctx: Recorder("t", ALICE))]

    with (
        create_ledger(id="a", storage="memory://", plugins=[Plugin()]) as one,
        create_ledger(id="b", storage="memory://") as two,
    ):
        assert one.auth.authenticate("t1") == attrs.evolve(ALICE, source="auth.test")
        with pytest.raises(TokenInvalidError):
            two.auth.authenticate("t1")


# --- case 17: RequestContext ------------------------------------------------------------------------


@pytest.mark.parametrize("oid", ["", "   ", None])
def test_case17_empty_principal_is_refused(oid: Any) -> None:
    with pytest.raises(MissingRequesterError):
        RequestContext(oid=oid, source="connect")


@pytest.mark.parametrize("source", ["pass word", "", "CONNECT", "1dev", "a" * 65, None])
def test_case17_unknown_source_is_refused(source: Any) -> None:
    with pytest.raises(ValidationError):
        RequestContext(oid="oid:acme:user:alice", source=source)


def test_case17_context_is_immutable_and_hides_secrets_in_repr() -> None:
    ctx = RequestContext(oid="oid:acme:user:alice", source="api_key", token="nuk_secret", claims={"k": "v"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ctx.oid = "oid:acme:user:mallory"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.claims["k"] = "w"  # type: ignore[index]
    assert "nuk_secret" not in repr(ctx) and "'k'" not in repr(ctx)
