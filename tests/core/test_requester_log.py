"""How a principal's OID appears in log lines (nucleus_core.requester_log): the process's policy,
refused when it is not one of the server's ``log_requester`` values or lacks its key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest

from nucleus_core.auth import loggable_oid
from nucleus_core.errors import ConfigurationError
from nucleus_core.requester_log import NOT_LOGGED, requester_policy, set_requester_policy

KEY = b"k" * 32
OID = "oid:acme:user:alice"


@pytest.fixture(autouse=True)
def default_policy() -> Iterator[None]:
    yield
    set_requester_policy("none")


def test_by_default_no_oid_is_logged() -> None:
    assert requester_policy() == "none"
    assert loggable_oid(OID) == NOT_LOGGED and loggable_oid(None) == NOT_LOGGED


def test_hash_writes_the_keyed_hash() -> None:
    set_requester_policy("hash", KEY)
    assert loggable_oid(OID) == "oid-hmac:" + hmac.new(KEY, OID.encode(), hashlib.sha256).hexdigest()
    assert loggable_oid(None) == NOT_LOGGED


@pytest.mark.parametrize(
    ("policy", "key", "message"),
    [
        ("plain", None, "log_requester must be one of none, hash"),
        ("hash", None, "at least 32 bytes"),
        ("hash", b"short", "at least 32 bytes"),
        ("none", KEY, "goes with log_requester"),
    ],
)
def test_a_bad_policy_is_refused_and_the_old_one_stays(policy: str, key: bytes | None, message: str) -> None:
    set_requester_policy("hash", KEY)
    with pytest.raises(ConfigurationError, match=message):
        set_requester_policy(policy, key)
    assert requester_policy() == "hash" and loggable_oid(OID).startswith("oid-hmac:")
