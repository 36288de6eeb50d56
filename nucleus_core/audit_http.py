"""Reading a ``nucleus serve`` for an audit, with the standard library's HTTP client only.

The core does not depend on the server distribution or on an HTTP library: an auditor with
``nucleus-core`` alone runs ``nucleus audit --url`` and ``nucleus proof get --url``. What is read:
``GET /checkpoint`` and ``GET /proof/consistency`` (public by default), and with a token
``GET /ledger``, ``GET /entries`` (every page, in seq order), ``GET /entries/{hash}``,
``GET /records/{id}`` and ``GET /proof/inclusion``. Redirects are not followed (a token is never
sent elsewhere), every response is size-limited, and no message holds the token.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from .errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    NotFoundError,
    StorageUnavailableError,
    ValidationError,
)
from .records import loads_strict
from .storage import MAX_QUERY_LIMIT
from .tlog_verify import MAX_NOTE_BYTES
from .tree import ConsistencyProof, InclusionProof

__all__ = ["HttpLedgerReader"]

MAX_RESPONSE_BYTES = 256 * 1024 * 1024
"""Largest JSON response read (a page of entries at the largest records)."""

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for the server, per request."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # the 3xx response is then raised as an HTTPError


class HttpLedgerReader:
    """A :class:`~nucleus_core.audit.LedgerReader` over a ledger's HTTP API at ``base_url``
    (``http://`` or ``https://``); ``token``: a bearer token for the reads that need one."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            parts = urllib.parse.urlsplit(base_url)
        except ValueError:
            raise ConfigurationError("--url: not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("--url: give the server's http:// or https:// address, e.g. http://127.0.0.1:8080")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ConfigurationError(
                "--url: no credentials, query or fragment in the address (the token goes in --token)"
            )
        self._base = base_url.rstrip("/")
        self._token = token or None
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    @property
    def where(self) -> str:
        return self._base

    @property
    def can_read_entries(self) -> bool:
        return self._token is not None

    # -- requests ----------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None, *, limit: int = MAX_RESPONSE_BYTES) -> bytes:
        url = self._base + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = {"Accept": "application/json, text/plain"}
        if self._token is not None:  # on every request: a deployment may keep checkpoints private too
            headers["Authorization"] = f"Bearer {self._token}"
        # The scheme was checked to be http or https at construction (never file: or another).
        request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310
        shown = self._base + path
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body: bytes = response.read(limit + 1)
        except urllib.error.HTTPError as err:
            raise _http_error(err, shown) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise StorageUnavailableError(f"GET {shown}: the server cannot be reached ({reason})") from None
        if len(body) > limit:
            raise ValidationError(f"GET {shown}: the answer is larger than {limit} bytes")
        return body

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return loads_strict(self._get(path, params), what=f"the answer of GET {self._base}{path}")

    # -- what an audit reads --------------------------------------------------------------------

    def checkpoint(self, size: int | None = None) -> bytes:
        """``GET /checkpoint`` (``?size=N``: the one issued at that size), the note's bytes as served."""
        return self._get("/checkpoint", None if size is None else {"size": size}, limit=MAX_NOTE_BYTES)

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        return ConsistencyProof.from_json(self._json("/proof/consistency", {"from": first, "to": second}))

    def inclusion_proof(self, entry: int | str, size: int) -> InclusionProof:
        """``GET /proof/inclusion`` of the entry with this seq (int) or hash (hex) in the tree of ``size``."""
        key = "seq" if isinstance(entry, int) else "hash"
        return InclusionProof.from_json(self._json("/proof/inclusion", {key: entry, "size": size}))

    def ledger_id(self) -> str:
        info = self._json("/ledger")
        ledger_id = info.get("ledger_id") if isinstance(info, dict) else None
        if not isinstance(ledger_id, str):
            raise ValidationError(f"GET {self._base}/ledger did not name the ledger id")
        return ledger_id

    def entry(self, *, entry_hash: str | None = None, record_id: str | None = None) -> object:
        """The entry with this hash, or of this record id, as its JSON object."""
        if entry_hash is not None:
            return self._json(f"/entries/{urllib.parse.quote(entry_hash, safe='')}")
        return self._json(f"/records/{urllib.parse.quote(record_id or '', safe='')}")

    def entries(self) -> Iterator[object]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": MAX_QUERY_LIMIT}
            if cursor is not None:
                params["cursor"] = cursor
            page = self._json("/entries", params)
            if not isinstance(page, dict) or not isinstance(page.get("entries"), list):
                raise ValidationError(f"GET {self._base}/entries did not answer a page of entries")
            yield from page["entries"]
            cursor = page.get("next_cursor")
            if not isinstance(cursor, str) or not page["entries"]:
                return


def _http_error(err: urllib.error.HTTPError, shown: str) -> Exception:
    status = err.code
    with err:
        try:
            detail = err.read(4096).decode("utf-8", "replace")
        except OSError:
            detail = ""
    try:
        doc = loads_strict(detail)
        message = doc["error"]["message"] if isinstance(doc, dict) else detail
    except (ValidationError, KeyError, TypeError):
        message = detail
    text = f"GET {shown}: {status} {str(message)[:300]}".rstrip()
    if 300 <= status < 400:
        return StorageUnavailableError(f"GET {shown}: the server answered with a redirect ({status}), not followed")
    if status == 401:
        return AuthenticationError(text + " (give a token with --token or NUCLEUS_TOKEN)")
    if status == 403:
        return AuthorizationError(text)
    if status == 404:
        return NotFoundError(text)
    if status == 400:
        return ValidationError(text)
    return StorageUnavailableError(text)
