"""Grants, scopes and resources: the values the UAL works with."""

from __future__ import annotations

import enum
import re
from typing import Any

import attrs

from nucleus_core.errors import ValidationError
from nucleus_core.oid import validate_oid

KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}(:[a-z][a-z0-9_.-]{0,63})?")
"""Resource kinds: ``proof``, ``asset``, ``connect_grant``, ``token``, kinds added by modules, and
``stream:<name>`` for records in streams no module owns."""

WILDCARD = "*"
"""A grant on resource id ``*`` covers every resource of its kind, including creating new ones
(``create`` on ``*`` allows creating them only)."""

MAX_RESOURCE_ID_LENGTH = 256


class Scope(enum.IntEnum):
    """What a grant allows. ``read < write < full``; ``full`` also allows granting and revoking.

    ``create`` (only on ``<kind>/*``) allows creating new resources of the kind and nothing else: no
    read, no write on what exists. ``write`` and ``full`` on ``*`` allow creating too; ``read`` does
    not. Its value is below ``read``, so every ``>= READ`` test (reads, ``list``, queries) and every
    ``>= WRITE`` test leaves it out; :meth:`allows` is the one comparison to use."""

    CREATE = 0
    READ = 1
    WRITE = 2
    FULL = 3

    @classmethod
    def parse(cls, value: Scope | str, *, field: str = "scope") -> Scope:
        if isinstance(value, Scope):
            return value
        if isinstance(value, str) and value in SCOPE_NAMES:
            return cls[value.upper()]
        raise ValidationError(f"{value!r} is not a scope; one of {', '.join(SCOPE_NAMES)}", field=field)

    def allows(self, action: Scope) -> bool:
        """Whether holding this scope allows ``action``: ``create`` is allowed by create, write and
        full; read, write and full by themselves and anything above."""
        if action is Scope.CREATE:
            return self is not Scope.READ
        return self >= action

    def __str__(self) -> str:
        return self.name.lower()


SCOPE_NAMES = ("create", "read", "write", "full")
"""The scopes by name, as grants, ``check`` and the ``_acl`` stream spell them."""


def validate_kind(value: object, *, field: str = "resource_kind") -> str:
    if not isinstance(value, str) or KIND_PATTERN.fullmatch(value) is None:
        raise ValidationError(f"{value!r} is not a resource kind", field=field)
    return value


def validate_resource_id(value: object, *, field: str = "resource_id") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_RESOURCE_ID_LENGTH or value != value.strip():
        raise ValidationError(f"must be a resource id of 1-{MAX_RESOURCE_ID_LENGTH} characters or '*'", field=field)
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise ValidationError("must not contain control characters", field=field)
    return value


@attrs.frozen(kw_only=True)
class Resource:
    """A thing grants are about: a kind and an id within it."""

    kind: str = attrs.field(validator=lambda _i, _a, v: validate_kind(v))
    id: str = attrs.field(validator=lambda _i, _a, v: validate_resource_id(v))


def _to_scope(value: Scope | str) -> Scope:
    return Scope.parse(value)


def _check_expiry(_inst: object, _attr: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (type(value) is not int or value <= 0):
        raise ValidationError("must be a positive integer (Unix milliseconds) or None", field="expires_at")


@attrs.frozen(kw_only=True)
class Grant:
    """``principal_oid`` may act on ``resource_kind``/``resource_id`` up to ``scope`` until ``expires_at``
    (Unix ms, exclusive; None: no expiry). ``granted_by`` is filled in by the UAL from the request context."""

    resource_kind: str = attrs.field(validator=lambda _i, _a, v: validate_kind(v))
    resource_id: str = attrs.field(validator=lambda _i, _a, v: validate_resource_id(v))
    principal_oid: str = attrs.field(validator=lambda _i, _a, v: validate_oid(v, field="principal_oid"))
    scope: Scope = attrs.field(converter=_to_scope)
    granted_by: str | None = None
    expires_at: int | None = attrs.field(default=None, validator=_check_expiry)

    def __attrs_post_init__(self) -> None:
        if self.scope is Scope.CREATE and self.resource_id != WILDCARD:
            raise ValidationError(
                f"'create' is a right on {self.resource_kind}/* only (creating new resources of the kind); "
                f"got resource id {self.resource_id[:80]!r}",
                field="scope",
            )

    @property
    def resource(self) -> Resource:
        return Resource(kind=self.resource_kind, id=self.resource_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource_kind": self.resource_kind,
            "resource_id": self.resource_id,
            "principal_oid": self.principal_oid,
            "scope": str(self.scope),
            "granted_by": self.granted_by,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Grant:
        if not isinstance(data, dict):
            raise ValidationError("a grant must be an object", field="grant")
        allowed = {"resource_kind", "resource_id", "principal_oid", "scope", "granted_by", "expires_at"}
        unknown = set(data) - allowed
        if unknown:
            raise ValidationError(f"unknown field(s) {sorted(map(str, unknown))}", field="grant")
        missing = [k for k in ("resource_kind", "resource_id", "principal_oid", "scope") if k not in data]
        if missing:
            raise ValidationError(f"missing field(s) {missing}", field="grant")
        return cls(**data)
