"""Who is asking: the request context every read and write must carry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from .errors import InsufficientScopeError, MissingRequesterError, ValidationError
from .oid import OID_PATTERN
from .specs import SPEC_NAME_PATTERN

READ = "read"
"""Scope of every read: ``get``, ``get_by_id``, ``query``, ``iter_entries`` (export), module
queries, the UAL's ``list``."""
WRITE = "write"
"""Scope of ``append`` and ``append_batch`` (module operations that append included)."""
GRANT = "grant"
"""Scope of giving and revoking grants (the UAL's ``grant`` and ``revoke``)."""
VERIFY = "verify"
"""Scope of re-verifying the whole chain on a requester's behalf (``GET /verify``)."""
KEYS = "keys"
"""Scope of API key management: creating, listing and revoking keys."""

SCOPES: frozenset[str] = frozenset({READ, WRITE, GRANT, VERIFY, KEYS})
"""The scope vocabulary the core enforces. A context carries a subset; every operation needs one
scope (above), in addition to what access control allows. Scopes only narrow: a scope never lets
a requester do what access control refuses."""

ALL_SCOPES = SCOPES
"""Every scope, ``keys`` included: only for a requester granted all of them explicitly (the CLI,
acting as the operator with direct storage access)."""

DEFAULT_SCOPES: frozenset[str] = SCOPES - {KEYS}
"""The scopes of a context that was not narrowed (the default of :class:`RequestContext`, and of a
credential whose parser found no scope list): every scope except ``keys``. API key management is
given only explicitly: a credential whose scope list names ``keys``, or a caller that builds its
context with ``scopes`` including it."""

WILDCARD_SCOPE = "*"
"""In a credential's scope list (:func:`scopes_from_names`), every scope of :data:`DEFAULT_SCOPES`
(``keys`` must be named on its own)."""


def _check_source(_inst: object, _attr: object, value: str) -> None:
    if not isinstance(value, str) or SPEC_NAME_PATTERN.fullmatch(value) is None:
        raise ValidationError(
            f"{value!r} is not a token source: the spec name of the parser that authenticated the "
            "requester (1-64 of a-z, 0-9, '_', '.', '-', starting with a letter)",
            field="source",
        )


def _freeze_claims(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("must be a mapping", field="claims")
    return MappingProxyType(dict(value))


def _to_scopes(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError("must be a set of scope names", field="scopes")
    try:
        scopes = frozenset(value)
    except TypeError:
        raise ValidationError("must be a set of scope names", field="scopes") from None
    unknown = sorted(map(repr, scopes - SCOPES))
    if unknown:
        raise ValidationError(
            f"unknown scope(s) {', '.join(unknown)}; the scopes are {', '.join(sorted(SCOPES))}", field="scopes"
        )
    return scopes


def scopes_from_names(names: Iterable[object]) -> frozenset[str]:
    """The core scopes a credential's scope list names (how parsers narrow a context): ``*``
    means every scope of :data:`DEFAULT_SCOPES` (``keys`` only when named too), names of
    :data:`SCOPES` are taken, and any other name (an application's own scope such as
    ``books:append``, or an identity provider's ``openid``) is ignored by the core.
    An empty list gives no scope at all."""
    found: set[str] = set()
    for name in names:
        if name == WILDCARD_SCOPE:
            found |= DEFAULT_SCOPES
        if isinstance(name, str) and name in SCOPES:
            found.add(name)
    return frozenset(found)


def _check_expires_at(_inst: object, _attr: object, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value in (
        float("inf"), float("-inf")
    ):
        raise ValidationError("must be a finite number of Unix seconds, or None", field="expires_at")


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
    in ``repr``); ``source`` how it was authenticated: the spec name of
    the token parser that accepted the credential (``auth.session``; the token registry sets it, so
    a parser cannot speak for another), or for a context the host builds itself a name saying so
    (the CLI's ``--as`` gives ``cli``); ``scopes`` the operations the credential
    allows, a subset of :data:`SCOPES` (default: :data:`DEFAULT_SCOPES`, every scope but ``keys``,
    for a context no parser narrowed; the core checks them with :func:`require_scope`);
    ``expires_at`` the time (Unix seconds) from which the parser that accepted the credential
    refuses it, its leeway included (a JWT's ``exp`` plus the parser's leeway, an API key's expiry,
    a session's idle or absolute deadline as it stands; None: no deadline known), read by what
    holds a credential open (``GET /entries/stream`` ends there unless the credential, checked
    again, has a later one). Neither ``claims``, ``token`` nor ``expires_at`` takes part in
    equality. Instances are immutable.
    """

    oid: str = attrs.field(validator=_check_oid)
    source: str = attrs.field(validator=_check_source)
    role: str | None = None
    token: str | None = attrs.field(default=None, repr=False, eq=False)
    claims: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_freeze_claims, repr=False, eq=False, hash=False
    )
    scopes: frozenset[str] = attrs.field(default=DEFAULT_SCOPES, converter=_to_scopes)
    expires_at: float | None = attrs.field(default=None, validator=_check_expires_at, eq=False, hash=False)


SYSTEM_OID = "oid:nucleus:system:ledger"
"""The principal of what the ledger writes by itself, with no request behind it (the ``_ledger``
record a new ledger writes when it is created): the ``appender`` of those entries."""

SYSTEM_SOURCE = "system"
"""The ``auth_source`` of what the ledger writes by itself (see :data:`SYSTEM_OID`)."""

SYSTEM_CONTEXT = RequestContext(oid=SYSTEM_OID, source=SYSTEM_SOURCE, scopes=frozenset({WRITE}))
"""The requester of the ledger's own writes (never handed to a plugin or a caller)."""


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


def require_scope(context: object, scope: str) -> RequestContext:
    """Return ``context`` if it names a requester whose credential carries ``scope``.

    :raises MissingRequesterError: there is no requester.
    :raises InsufficientScopeError: the credential lacks ``scope`` (HTTP 403 ``insufficient_scope``).
    """
    ctx = require_context(context)
    if scope not in SCOPES:
        raise ValueError(f"{scope!r} is not a scope")
    if scope not in ctx.scopes:
        have = ", ".join(sorted(ctx.scopes)) or "none"
        raise InsufficientScopeError(
            f"this operation needs the {scope!r} scope; the requester's credential has: {have}", scope=scope
        )
    return ctx
