"""The witness over HTTP: a pure-ASGI application (served by uvicorn, as ``nucleus serve`` is).

Routes, under the configured prefix (the witness's submission and monitoring prefix, one value):

- ``POST <prefix>/add-checkpoint``: :meth:`~nucleus_witness.witness.Witness.add_checkpoint`. 200
  with the cosignature line; 400, 403, 404, 409 (body the stored size and a newline, Content-Type
  ``text/x.tlog.size``), 422 as c2sp.org/tlog-witness says, each other answer's body a line
  saying why; 413 for a body larger than any request the protocol allows; 503 when the state file
  cannot be written (nothing was cosigned).
- ``GET <prefix>/<lowercase hex SHA-256 of the origin>/checkpoint``: the latest checkpoint cosigned
  for that log, with the log's signatures the witness verified and its cosignature; 404 before
  the first.

Other paths are 404, other methods 405. The blocking work (signature checks, the SQLite
transaction) runs in a worker thread so the event loop keeps reading requests; every request is
written to the log ``nucleus_witness.access`` (method, path, status). The lifespan shutdown closes
the state file.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from nucleus_core.errors import StorageError
from nucleus_core.tlog_witness import (
    ADD_CHECKPOINT_PATH,
    MAX_REQUEST_BYTES,
    SIZE_CONTENT_TYPE,
    WitnessConflictError,
    WitnessError,
)

from .witness import Witness

__all__ = ["WitnessApp"]

log = logging.getLogger(__name__)
access = logging.getLogger("nucleus_witness.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TEXT_PLAIN = "text/plain; charset=utf-8"
_MONITORING = re.compile(r"/([0-9a-f]{64})/checkpoint")


class _TooLarge(Exception):
    """The body is larger than :data:`MAX_REQUEST_BYTES`."""


class _Disconnected(Exception):
    """The client went away before the whole body arrived."""


class WitnessApp:
    """The ASGI application of one :class:`~nucleus_witness.witness.Witness` under ``prefix``
    (empty, or a path such as ``/witness``)."""

    def __init__(self, witness: Witness, *, prefix: str = "") -> None:
        self.witness = witness
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status = await self._http(scope, receive, send)
        access.info("%s %s %d", scope.get("method"), scope.get("path"), status)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.witness.state.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> int:
        path: str = scope.get("path", "")
        method: str = scope.get("method", "")
        if not path.startswith(self.prefix + "/"):
            return await _answer(send, 404, b"not found\n")
        route = path[len(self.prefix) :]
        if route == ADD_CHECKPOINT_PATH:
            if method != "POST":
                return await _answer(send, 405, b"add-checkpoint is POST\n", (("allow", "POST"),))
            try:
                body = await _read_body(receive)
            except _TooLarge:
                return await _answer(send, 413, f"the body is larger than {MAX_REQUEST_BYTES} bytes\n".encode())
            except _Disconnected:
                log.info("add-checkpoint: the client disconnected before its request ended; nothing done")
                return 499  # logged as nginx does for a client that closed the request; nothing is sent
            return await self._add_checkpoint(send, body)
        match = _MONITORING.fullmatch(route)
        if match is not None:
            if method not in ("GET", "HEAD"):
                return await _answer(send, 405, b"the checkpoint is GET\n", (("allow", "GET, HEAD"),))
            try:
                note = await asyncio.to_thread(self.witness.latest, match.group(1))
            except StorageError as err:
                log.error("%s", err)
                return await _answer(send, 503, b"the witness's state cannot be read\n")
            if note is None:
                return await _answer(send, 404, b"this witness has cosigned no checkpoint of that log\n")
            return await _answer(send, 200, note.encode(), head=method == "HEAD")
        return await _answer(send, 404, b"not found\n")

    async def _add_checkpoint(self, send: Send, body: bytes) -> int:
        try:
            answer = await asyncio.to_thread(self.witness.add_checkpoint, body)
        except WitnessConflictError as err:
            return await _answer(send, 409, f"{err.size}\n".encode(), content_type=SIZE_CONTENT_TYPE)
        except WitnessError as err:
            assert err.status is not None
            log.info("add-checkpoint refused (%d): %s", err.status, err)
            return await _answer(send, err.status, f"{err}\n".encode())
        except StorageError as err:
            log.error("add-checkpoint: %s", err)
            return await _answer(send, 503, b"the witness's state cannot be written; nothing was cosigned\n")
        return await _answer(send, 200, answer)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # the sender went away mid-body: act on nothing
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
    *,
    content_type: str = TEXT_PLAIN,
    head: bool = False,
) -> int:
    raw = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})
    return status
