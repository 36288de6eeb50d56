"""The one OID syntax: oid:<namespace>:<type>:<id>."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nucleus_core import ValidationError, is_oid, validate_oid
from nucleus_core.oid import OID_PATTERN

VALID = ["oid:onoal:user:alice", "oid:acme:service:billing-api", "oid:a:b:c", "oid:x_1:t-2:A.b_c@d+e-9", "oid:0:0:0"]
INVALID = [
    "",
    "oid:",
    "oid:acme:user:",
    "oid:acme:user",
    "acme:user:alice",
    "OID:acme:user:alice",
    "oid:Acme:user:alice",
    "oid:acme:User:alice",
    "oid:acme:user:al ice",
    "oid:acme:user:alice\n",
    " oid:acme:user:alice",
    "oid:acme:user:\u0430lice",  # Cyrillic a
    "oid:acme:user:alice:extra",
    "oid:-acme:user:alice",
    "oid:acme:user:.alice",
    "oid:" + "a" * 65 + ":user:alice",
    "oid:acme:user:" + "a" * 129,
    "dev:oid:alice",
]


@pytest.mark.parametrize("value", VALID)
def test_valid(value):
    assert is_oid(value)
    assert validate_oid(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_invalid_names_the_field(value):
    assert not is_oid(value)
    with pytest.raises(ValidationError, match=r"^owner: .*not an OID"):
        validate_oid(value, field="owner")


@pytest.mark.parametrize("value", [None, 1, b"oid:a:b:c", ["oid:a:b:c"]])
def test_non_strings(value):
    assert not is_oid(value)
    with pytest.raises(ValidationError, match="must be an OID string"):
        validate_oid(value)


def test_long_values_are_shortened_in_messages():
    with pytest.raises(ValidationError) as info:
        validate_oid("x" * 10_000)
    assert len(str(info.value)) < 200


@given(st.text(max_size=40))
def test_is_oid_agrees_with_the_documented_parts(value):
    parts = value.split(":")
    expected = (
        len(parts) == 4
        and parts[0] == "oid"
        and all(OID_PATTERN.fullmatch(f"oid:{p}:t:i") for p in parts[1:2])
        and bool(OID_PATTERN.fullmatch(f"oid:n:{parts[2]}:i"))
        and bool(OID_PATTERN.fullmatch(f"oid:n:t:{parts[3]}"))
    )
    assert is_oid(value) == expected
