"""Structured logs of ``nucleus serve``: request ids, the request a log line belongs to, and the
JSON-lines formatter (``--log-format json``, ``[server] log_format``).

Every HTTP request gets a request id: the client's ``X-Request-Id`` when it is sane
(:func:`request_id_from`), a new one otherwise; the access log returns it in the ``X-Request-Id``
response header and keeps it in a context variable (:func:`current_request`) while the request is
handled, so every line logged meanwhile, on the event loop or on the thread pool running ledger
calls (which copies the context), carries it. :class:`JsonFormatter` writes one JSON object per
line, every value passed through :func:`~nucleus_core.auth.redact_secrets` (the message, the
request fields and the traceback alike). docs/OPERATIONS.md ("Logs") lists the fields.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from nucleus_core.auth import redact_secrets

# The requester rule is the core's, for every log line of the process (nucleus_core.requester_log).
from nucleus_core.requester_log import MIN_REQUESTER_KEY_BYTES as MIN_REQUESTER_KEY_BYTES
from nucleus_core.requester_log import REQUESTER_POLICIES
from nucleus_core.requester_log import requester_hash as requester_hash

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")
LOG_FORMATS = ("text", "json")
LOG_REQUESTERS = REQUESTER_POLICIES
REQUEST_FIELDS = "nucleus_request"
"""The ``extra`` attribute of the access log's records holding its fields (request id, method,
route, status, duration, requester): written by :class:`JsonFormatter`, ignored by the text one."""


@attrs.define
class RequestLog:
    """What the log knows of the request being handled: its id and method, and once the app matched
    it the route template and the requester's OID (written only as a keyed hash, when configured)."""

    request_id: str
    method: str
    route: str | None = None
    oid: str | None = attrs.field(default=None, repr=False)


_current: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar("nucleus_server_request", default=None)


def current_request() -> RequestLog | None:
    """The request being handled in this context (None outside a request)."""
    return _current.get()


def enter_request(request: RequestLog) -> contextvars.Token[RequestLog | None]:
    """Make ``request`` the current one (undo with :func:`leave_request`)."""
    return _current.set(request)


def leave_request(token: contextvars.Token[RequestLog | None]) -> None:
    _current.reset(token)


def valid_request_id(value: str) -> bool:
    """True for 1 to 128 characters of ``A-Z a-z 0-9 . _ : -`` (what a proxy's or a client's
    request id looks like; nothing that could break a header or a log line)."""
    return _SANE_REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh request id: 32 hex digits (a random UUID)."""
    return uuid.uuid4().hex


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's id: its first ``X-Request-Id`` header when :func:`valid_request_id`, else a new
    one (an invalid value is never echoed or logged)."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            return text if valid_request_id(text) else new_request_id()
    return new_request_id()


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact_secrets(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_secrets(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``timestamp`` (RFC 3339, UTC), ``level``, ``logger``,
    ``message``, ``pid``; ``request_id`` for a line logged while a request is handled; the access
    log's fields on its lines; ``exception`` (the traceback) and ``stack`` when the record has them.
    Every value passes :func:`~nucleus_core.auth.redact_secrets` before it is encoded."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] | None = getattr(record, REQUEST_FIELDS, None)
        doc: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if fields is not None:
            doc.update(fields)  # the access log's own message (no raw path) replaces the text one
        else:
            request = current_request()
            if request is not None:
                doc["request_id"] = request.request_id
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps({key: _clean(value) for key, value in doc.items()}, separators=(",", ":"))
