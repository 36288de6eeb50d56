"""RequestContext (SECURITY-TESTS 17) and require_context."""

from __future__ import annotations

from types import MappingProxyType

import attrs
import pytest

from nucleus_core import MissingRequesterError, RequestContext, ValidationError, require_context
from nucleus_core.context import get_requester_oid

OID = "oid:acme:user:alice"


@pytest.mark.parametrize("oid", ["", " ", "   ", "\t", "\n", "\u3000 "])
def test_empty_or_whitespace_principal_refused_at_construction(oid: str) -> None:
    with pytest.raises(MissingRequesterError):
        RequestContext(oid=oid, source="dev")


@pytest.mark.parametrize("oid", [None, 42, b"oid:acme:user:alice"])
def test_non_string_principal_refused(oid: object) -> None:
    with pytest.raises(MissingRequesterError):
        RequestContext(oid=oid, source="dev")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "oid",
    [
        "alice",
        "oid:acme:user:",
        "oid:ACME:user:alice",
        " oid:acme:user:alice",
        "oid:acme:user:al ice",
        "oid:\u0430cme:user:x",  # Cyrillic a: a look-alike
    ],
)
def test_malformed_principal_refused(oid: str) -> None:
    with pytest.raises(ValidationError) as info:
        RequestContext(oid=oid, source="dev")
    assert info.value.field == "oid"


@pytest.mark.parametrize("source", ["", "DEV", "auth dev", "dev ", "_dev", "1dev", "a" * 65, None, 3])
def test_malformed_source_refused(source: object) -> None:
    with pytest.raises(ValidationError) as info:
        RequestContext(oid=OID, source=source)  # type: ignore[arg-type]
    assert info.value.field == "source"
    assert "spec name" in str(info.value)


# Spec names of parsers (ours and anyone's), and the short names contexts carried before sources
# became spec names (a server of an older version still answers /whoami with them).
@pytest.mark.parametrize(
    "source", ["auth.connect", "auth.api_key", "acme-sso", "auth.x.y", "a" * 64, "connect", "dev", "api_key", "cli"]
)
def test_spec_names_accepted_as_sources(source: str) -> None:
    assert RequestContext(oid=OID, source=source).source == source


def test_immutable() -> None:
    ctx = RequestContext(oid=OID, source="auth.session", role="admin", claims={"sub": "alice"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ctx.oid = "oid:acme:user:mallory"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ctx.role = "root"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.claims["sub"] = "mallory"  # type: ignore[index]
    assert isinstance(ctx.claims, MappingProxyType)


def test_claims_are_copied_not_shared() -> None:
    claims = {"sub": "alice"}
    ctx = RequestContext(oid=OID, source="connect", claims=claims)
    claims["sub"] = "mallory"
    assert ctx.claims["sub"] == "alice"


def test_claims_must_be_a_mapping() -> None:
    with pytest.raises(ValidationError) as info:
        RequestContext(oid=OID, source="connect", claims=["sub"])  # type: ignore[arg-type]
    assert info.value.field == "claims"


def test_token_and_claims_never_in_repr_or_str() -> None:
    ctx = RequestContext(
        oid=OID, source="connect", token="eyJhbGciOi.super-secret-token", claims={"email": "alice@secret.example"}
    )
    for text in (repr(ctx), str(ctx)):
        assert "super-secret-token" not in text
        assert "secret.example" not in text
        assert OID in text


def test_token_does_not_take_part_in_equality() -> None:
    a = RequestContext(oid=OID, source="connect", token="t1")
    b = RequestContext(oid=OID, source="connect", token="t2")
    assert a == b


def test_require_context() -> None:
    ctx = RequestContext(oid=OID, source="dev")
    assert require_context(ctx) is ctx
    assert get_requester_oid(ctx) == OID
    for bad in (None, "", "   ", OID, {"oid": OID}, object()):
        with pytest.raises(MissingRequesterError):
            require_context(bad)
        with pytest.raises(MissingRequesterError):
            get_requester_oid(bad)

