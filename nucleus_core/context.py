"""Who is asking: the request context every read and write must carry."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from .errors import MissingRequesterError, ValidationError
from .oid import OID_PATTERN


class TokenSource(enum.Enum):
    """How the requester was authenticated."""

    CONNECT = "connect"
    SESSION = "session"
    SERVICE = "service"
    DEV = "dev"
    API_KEY = "api_key"


def _to_source(value: TokenSource | str) -> TokenSource:
    if isinstance(value, TokenSource):
        return value
    try:
        return TokenSource(value)
    except ValueError:
        allowed = ", ".join(s.value for s in TokenSource)
        raise ValidationError(f"unknown token source {value!r}; one of {allowed}", field="source") from None


def _freeze_claims(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("must be a mapping", field="claims")
    return MappingProxyType(dict(value))


def _check_oid(_inst: object, _attr: object, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise MissingRequesterError("a request context needs a non-empty principal OID")
    if OID_PATTERN.fullmatch(value) is None:
        raise ValidationError("the requester must be an OID of the form oid:<namespace>:<type>:<id>", field="oid")


@attrs.frozen(kw_only=True)
class RequestContext:
    """The authenticated requester of a call.

    ``oid`` is the principal; ``role`` an optional role name; ``token`` the raw credential it was
    derived from (never shown in ``repr``); ``claims`` the verified claims (read-only, never shown
    in ``repr``); ``source`` how it was authenticated. Instances are immutable.
    """

    oid: str = attrs.field(validator=_check_oid)
    source: TokenSource = attrs.field(converter=_to_source)
    role: str | None = None
    token: str | None = attrs.field(default=None, repr=False, eq=False)
    claims: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_freeze_claims, repr=False, eq=False, hash=False
    )


def require_context(context: object) -> RequestContext:
    """Return ``context`` if it names a requester; raise :class:`MissingRequesterError` otherwise.

    Called first by every ledger read and write, before any storage work.
    """
    if not isinstance(context, RequestContext):
        if context is None:
            raise MissingRequesterError("this call needs a RequestContext naming the requester; got None")
        raise MissingRequesterError(
            f"this call needs a RequestContext naming the requester; got {type(context).__name__}"
        )
    return context


def get_requester_oid(context: object) -> str:
    """The principal OID of ``context``; raises :class:`MissingRequesterError` when there is none."""
    return require_context(context).oid
