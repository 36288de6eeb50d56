"""Object identifiers (OIDs): the one definition of their syntax.

An OID names a subject, issuer, application or principal::

    oid:<namespace>:<type>:<id>

* ``namespace`` and ``type``: 1-64 characters of ``a-z``, ``0-9``, ``_`` and ``-``, starting with a
  letter or digit (lowercase ASCII only, so look-alike characters cannot forge an OID);
* ``id``: 1-128 characters of ASCII letters, digits and ``. _ - @ +``, starting with a letter or
  digit.

Examples: ``oid:onoal:user:alice``, ``oid:acme:service:billing-api``.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from .errors import ValidationError

OID_PATTERN = re.compile(r"oid:[a-z0-9][a-z0-9_-]{0,63}:[a-z0-9][a-z0-9_-]{0,63}:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


def is_oid(value: object) -> TypeGuard[str]:
    """True when ``value`` is a string in OID syntax."""
    return isinstance(value, str) and OID_PATTERN.fullmatch(value) is not None


def validate_oid(value: object, *, field: str = "oid") -> str:
    """Return ``value`` if it is a valid OID, else raise :class:`ValidationError` naming ``field``."""
    if not isinstance(value, str):
        raise ValidationError(f"must be an OID string, got {type(value).__name__}", field=field)
    if OID_PATTERN.fullmatch(value) is None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValidationError(
            f"{shown!r} is not an OID; expected oid:<namespace>:<type>:<id>", field=field
        )
    return value
