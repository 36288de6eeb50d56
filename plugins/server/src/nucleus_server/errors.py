"""The HTTP error contract shared by the server and :class:`~nucleus_server.client.RemoteLedger`.

Every error response is ``{"error": {"code": ..., "message": ...}}`` with the ``code`` class
attribute of a :class:`~nucleus_core.errors.NucleusError` subclass, plus the attributes the error
carries (``field``, ``seq``, ``reason``, ``record_id``, ``module_id``, ``plugin_name``,
``distribution``) when they are set. The client rebuilds the same class from the code, so code
catching ``DuplicateRecordError`` works against an embedded and a remote ledger alike.
"""

from __future__ import annotations

from typing import Any

from nucleus_core.auth import KeySourceUnavailableError
from nucleus_core.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    IntegrityError,
    LedgerClosedError,
    MissingRequesterError,
    NucleusError,
    ReadOnlyLedgerError,
    RecordTooLargeError,
    StorageError,
    StorageUnavailableError,
    ValidationError,
)
from nucleus_core.errors import NotFoundError as NotFoundError  # the server's 404, raised by the core too


class MethodNotAllowedError(NucleusError):
    """The route exists but not with this HTTP method."""

    code = "method_not_allowed"


class MalformedRequestError(ValidationError):
    """The request body or query string is not what the route takes (not JSON, wrong shape)."""

    code = "malformed_request"


class RequestTooLargeError(ValidationError):
    """The request body or a batch is larger than the server allows."""

    code = "request_too_large"


class TooManyStreamsError(NucleusError):
    """The server has as many entry streams open as it allows (``max_streams``), or is stopping:
    retry later."""

    code = "too_many_streams"
    retry_after = 1
    """Seconds the answer's ``Retry-After`` suggests."""


class PrincipalStreamLimitError(TooManyStreamsError):
    """The requester has as many entry streams open on this server as one principal may
    (``max_streams_per_principal``): close one, or retry later."""

    code = "too_many_principal_streams"
    retry_after = 5


STATUS_BY_CLASS: tuple[tuple[type[NucleusError], int], ...] = (
    (RequestTooLargeError, 413),
    (RecordTooLargeError, 413),
    (MalformedRequestError, 400),
    (MissingRequesterError, 401),
    (KeySourceUnavailableError, 503),
    (AuthenticationError, 401),
    (AuthorizationError, 403),
    (NotFoundError, 404),
    (MethodNotAllowedError, 405),
    (ValidationError, 422),
    (ReadOnlyLedgerError, 409),
    (ConflictError, 409),
    (LedgerClosedError, 503),
    (PrincipalStreamLimitError, 429),
    (TooManyStreamsError, 503),
    (StorageUnavailableError, 503),
    (IntegrityError, 500),
    (StorageError, 503),
    (NucleusError, 500),
)
"""The HTTP status of an error: the first class in this list that the error is an instance of."""

DETAIL_ATTRIBUTES = (
    "field", "seq", "reason", "record_id", "module_id", "plugin_name", "distribution", "scope",
    "trusted_size", "presented_size",
)
"""Attributes of Nucleus errors that travel with the code and message (none of them holds a secret)."""

INTERNAL_ERROR_CODE = "internal_error"


def status_for(error: NucleusError) -> int:
    """The HTTP status the server answers ``error`` with."""
    for kind, status in STATUS_BY_CLASS:
        if isinstance(error, kind):
            return status
    return 500


def error_document(error: NucleusError) -> dict[str, Any]:
    """The JSON error object for ``error``: code, message and the detail attributes that are set."""
    body: dict[str, Any] = {"code": error.code, "message": str(error)}
    for name in DETAIL_ATTRIBUTES:
        value = getattr(error, name, None)
        if value is not None and isinstance(value, (str, int)):
            body[name] = value
    return {"error": body}


def _subclasses(root: type[NucleusError]) -> list[type[NucleusError]]:
    """``root`` and every subclass imported so far, breadth first (parents before children)."""
    out: list[type[NucleusError]] = []
    queue = [root]
    while queue:
        cls = queue.pop(0)
        if cls in out:
            continue
        out.append(cls)
        queue.extend(cls.__subclasses__())
    return out


def error_class(code: str) -> type[NucleusError]:
    """The error class whose ``code`` is ``code`` (the most general one when several share it);
    :class:`NucleusError` for a code this process does not know."""
    for cls in _subclasses(NucleusError):
        if cls.code == code:
            return cls
    return NucleusError


def rebuild_error(document: object, *, status: int) -> NucleusError:
    """The error a server response describes, as the same class the local ledger would raise.

    ``document`` is the parsed response body. A body that is not an error document (a proxy's HTML
    page, for example) becomes a :class:`NucleusError` naming the status.
    """
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        if status == 503:
            return StorageUnavailableError(f"the server answered {status} without an error document")
        return NucleusError(f"the server answered {status} without an error document")
    code = error["code"]
    message = str(error.get("message", code))
    cls = error_class(code)
    rebuilt = cls.__new__(cls)
    Exception.__init__(rebuilt, message)
    for name in DETAIL_ATTRIBUTES:
        setattr(rebuilt, name, error.get(name))
    if isinstance(rebuilt, IntegrityError) and rebuilt.reason is None:
        rebuilt.reason = message
    return rebuilt
