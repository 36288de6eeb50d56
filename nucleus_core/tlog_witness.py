"""The witness protocol, c2sp.org/tlog-witness: asking a witness to cosign a checkpoint.

A log sends each witness ``POST <submission prefix>/add-checkpoint`` with the body::

    old <size the witness last cosigned, decimal; 0 the first time>\\n
    <base64 hash>\\n          (the consistency proof from that size, at most 63 lines; none from 0)
    \\n
    <the signed checkpoint note>

and the witness answers with its cosignature line(s) (200), or refuses: 400 a malformed request or
an old size above the checkpoint's, 403 no valid signature by a key it trusts for the origin, 404 a
log it does not witness, 409 an old size that is not the one it last cosigned (the body, of type
``text/x.tlog.size``, is its size: send again from there), 422 a proof that does not verify, a
same-size checkpoint with another root, or an empty tree without the empty root. Each refusal is a
:class:`WitnessError` subclass here, used on both sides: the witness raises it and answers with
its :attr:`~WitnessError.status`, and :class:`WitnessClient` turns a status back into it.

:class:`WitnessClient` is the log's side: it builds the body (:class:`AddCheckpointRequest`), sends
it over a kept-alive HTTP connection with a timeout (the standard library's ``http.client``, so the
core gains no dependency), and returns only the cosignatures by the witness's own key that verify
over the checkpoint (the spec: ignore the others). Like :mod:`nucleus_core.tlog_verify`, this
module needs only the standard library and ``cryptography``.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .cosignature import Cosignature, CosignatureVerifier
from .tlog_verify import (
    HASH_SIZE,
    MAX_NOTE_BYTES,
    MAX_TREE_SIZE,
    VerificationError,
    b64decode_strict,
    parse_note,
    parse_signature_lines,
)

__all__ = [
    "ADD_CHECKPOINT_PATH", "DEFAULT_TIMEOUT", "MAX_PROOF_LINES", "MAX_REQUEST_BYTES", "MAX_RESPONSE_BYTES",
    "SIZE_CONTENT_TYPE", "AddCheckpointRequest", "WitnessBadRequestError", "WitnessClient", "WitnessConflictError",
    "WitnessError", "WitnessForbiddenError", "WitnessProofError", "WitnessResponseError", "WitnessUnavailableError",
    "WitnessUnknownLogError", "parse_add_checkpoint", "parse_size_body", "submit_checkpoint",
]

ADD_CHECKPOINT_PATH = "/add-checkpoint"
"""The path of the add-checkpoint call under a witness's submission prefix."""

SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""The Content-Type of a 409 answer, whose body is the witness's latest cosigned size."""

MAX_PROOF_LINES = 63
"""Most consistency proof lines a request may carry (tlog-witness: the client MUST NOT send more)."""

MAX_REQUEST_BYTES = MAX_NOTE_BYTES + 4096
"""Largest add-checkpoint body read: a note of the largest size accepted, an old size line and 63
proof lines (45 bytes each)."""

MAX_RESPONSE_BYTES = 64 * 1024
"""Largest witness answer read (a few cosignature lines of about 130 bytes each)."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a :class:`WitnessClient` waits for each network operation (connect, send, each read)."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class WitnessError(Exception):
    """A witness did not cosign a checkpoint; the message says why. :attr:`status` is the HTTP
    status a witness answers with for it (``None`` for failures no witness answered)."""

    status: ClassVar[int | None] = None


class WitnessBadRequestError(WitnessError):
    """400: the request is not an add-checkpoint body, or its old size is above the checkpoint's."""

    status = 400


class WitnessForbiddenError(WitnessError):
    """403: the checkpoint carries no valid signature by a key the witness trusts for its origin (or
    a trusted key's signature fails)."""

    status = 403


class WitnessUnknownLogError(WitnessError):
    """404: the witness does not witness the checkpoint's origin."""

    status = 404


class WitnessConflictError(WitnessError):
    """409: the old size is not the size the witness last cosigned for the log; :attr:`size` is that
    size (the request can be sent again from it, with the proof from there)."""

    status = 409

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class WitnessProofError(WitnessError):
    """422: the checkpoint is not consistent with what the witness cosigned: the consistency proof
    does not verify, a proof was sent from size 0, the same size comes with another root, or an
    empty tree without the empty tree's root."""

    status = 422


class WitnessUnavailableError(WitnessError):
    """The witness could not be asked or did not decide: a network failure, a timeout, or a status
    the protocol does not define (5xx, 429...); trying again later may work. :attr:`http_status` is
    the status when there was one."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class WitnessResponseError(WitnessError):
    """The witness answered outside the protocol: a 200 without a valid cosignature by its key over
    the checkpoint, a cosignature line that fails, or a 409 whose body is not a size."""


_STATUS_ERRORS: dict[int, type[WitnessError]] = {
    cls.status: cls
    for cls in (WitnessBadRequestError, WitnessForbiddenError, WitnessUnknownLogError, WitnessProofError)
    if cls.status is not None
}


# -- the request body ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    """An add-checkpoint request: the size the witness last cosigned, the consistency proof from it
    to the checkpoint's size, and the signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def body(self) -> bytes:
        """The request body: ``old <size>``, one base64 line per proof hash, a blank line, the note."""
        if type(self.old_size) is not int or not 0 <= self.old_size <= MAX_TREE_SIZE:
            raise WitnessBadRequestError("the old size is an integer from 0 to 2^63-1")
        if isinstance(self.proof, bytes | str) or len(self.proof) > MAX_PROOF_LINES:
            raise WitnessBadRequestError(f"the consistency proof is a list of at most {MAX_PROOF_LINES} hashes")
        if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in self.proof):
            raise WitnessBadRequestError(f"every consistency proof hash is {HASH_SIZE} bytes")
        if not isinstance(self.checkpoint, str) or not self.checkpoint.endswith("\n"):
            raise WitnessBadRequestError("the checkpoint is a signed note (text ending with a newline)")
        lines = "".join(base64.b64encode(h).decode("ascii") + "\n" for h in self.proof)
        return f"old {self.old_size}\n{lines}\n{self.checkpoint}".encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an add-checkpoint request body (the header ends at the first blank line, the note
    follows); the note's format is checked, not its signatures, nor the old size against the
    checkpoint's. Raises :class:`WitnessBadRequestError`."""
    if not isinstance(body, bytes):
        raise WitnessBadRequestError("the request body is bytes")
    if len(body) > MAX_REQUEST_BYTES:
        raise WitnessBadRequestError(f"the request body is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessBadRequestError("the request body is not UTF-8") from None
    split = text.find("\n\n")
    if split < 0:
        raise WitnessBadRequestError("no blank line ends the request's old size and proof lines")
    header, checkpoint = text[:split].split("\n"), text[split + 2 :]
    old_line, proof_lines = header[0], header[1:]
    word, space, size = old_line.partition(" ")
    if word != "old" or not space or _DECIMAL.fullmatch(size) is None:
        raise WitnessBadRequestError("the request does not start with 'old <size>' (decimal, no leading zeros)")
    old_size = int(size)
    if old_size > MAX_TREE_SIZE:
        raise WitnessBadRequestError("the old size is larger than 2^63-1")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise WitnessBadRequestError(f"the request has more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for number, line in enumerate(proof_lines, 1):
        try:
            value = b64decode_strict(line, f"consistency proof line {number}")
        except VerificationError as err:
            raise WitnessBadRequestError(str(err)) from None
        if len(value) != HASH_SIZE:
            raise WitnessBadRequestError(f"consistency proof line {number} is not a {HASH_SIZE}-byte hash")
        proof.append(value)
    try:
        parse_note(checkpoint)
    except VerificationError as err:
        raise WitnessBadRequestError(f"the checkpoint is not a signed note: {err}") from None
    return AddCheckpointRequest(old_size=old_size, proof=tuple(proof), checkpoint=checkpoint)


def parse_size_body(body: bytes) -> int:
    """The tree size in a ``text/x.tlog.size`` body (decimal, no leading zeros, then a newline).
    Raises :class:`WitnessResponseError`."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if not text.endswith("\n") or _DECIMAL.fullmatch(text[:-1]) is None or int(text[:-1]) > MAX_TREE_SIZE:
        raise WitnessResponseError("the witness's 409 answer is not a tree size (decimal and a newline)")
    return int(text[:-1])


# -- the client -----------------------------------------------------------------------------------------


def _excerpt(body: bytes) -> str:
    """The start of a witness's error answer, printable, for a message."""
    text = body[:200].decode("utf-8", "replace").strip()
    text = "".join(c if c.isprintable() else " " for c in text)
    return f": {text}" if text else ""


class WitnessClient:
    """One witness as a log sees it: its submission prefix URL (``http://`` or ``https://``) and its
    cosignature key. :meth:`add_checkpoint` asks it to cosign; one kept-alive connection is reused
    (the spec asks clients to), by one request at a time. Close it with :meth:`close` (or ``with``)."""

    def __init__(self, url: str, verifier: CosignatureVerifier, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not isinstance(verifier, CosignatureVerifier):
            raise TypeError("a witness's key is a CosignatureVerifier (parse_cosignature_vkey)")
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a witness URL is http:// or https:// with a host, not {url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"a witness URL has no query, fragment or user info: {url!r}")
        if not timeout > 0:
            raise ValueError("the witness timeout is a positive number of seconds")
        self.url = url
        self.verifier = verifier
        self.timeout = float(timeout)
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + ADD_CHECKPOINT_PATH
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:
        return f"WitnessClient({self.url!r}, {self.verifier.vkey!r})"

    def __enter__(self) -> WitnessClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection (a later request opens a new one)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> http.client.HTTPConnection:
        """A new connection, open, with Nagle's algorithm off (as urllib3 does): ``http.client``
        writes a request's headers and its body separately, and the body must not wait for the
        acknowledgement of the headers."""
        connection: http.client.HTTPConnection
        if self._scheme == "https":
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        connection.connect()
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _post(self, body: bytes) -> tuple[int, str, bytes]:
        """Send ``body``; the status, Content-Type and body of the answer. A kept-alive connection the
        witness closed meanwhile is replaced once."""
        headers = {"Content-Type": "text/plain; charset=utf-8", "Accept": "text/plain"}
        with self._lock:
            for attempt in range(2):
                reused = self._connection is not None
                try:
                    if self._connection is None:
                        self._connection = self._connect()
                    connection = self._connection
                    connection.request("POST", self._path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read(MAX_RESPONSE_BYTES + 1)
                    if response.length and len(data) <= MAX_RESPONSE_BYTES:
                        # Fewer bytes than Content-Length said before the connection closed: the
                        # witness stopped (crashed) while answering; the start of an answer is none.
                        raise http.client.IncompleteRead(data, response.length)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as err:
                    self._drop()
                    if reused and attempt == 0:
                        continue  # the witness closed an idle kept-alive connection: once more on a new one
                    raise WitnessUnavailableError(f"witness {self.url}: the connection failed ({err})") from None
                except (OSError, http.client.HTTPException) as err:
                    self._drop()
                    raise WitnessUnavailableError(
                        f"witness {self.url}: no answer ({type(err).__name__}: {err})"
                    ) from None
                if len(data) > MAX_RESPONSE_BYTES or response.will_close:
                    self._drop()
                return response.status, response.getheader("Content-Type", ""), data
        raise AssertionError("unreachable")  # pragma: no cover

    def add_checkpoint(
        self, checkpoint: str, old_size: int, proof: Sequence[bytes]
    ) -> tuple[Cosignature, ...]:
        """Ask the witness to cosign the signed checkpoint note ``checkpoint``, given the size it last
        cosigned (``old_size``, 0 the first time) and the consistency proof from that size.

        Returns the witness key's cosignatures over the checkpoint (one, from a witness with one
        key), each verified; lines by other keys are ignored. Raises the :class:`WitnessError` of
        the answer: :class:`WitnessConflictError` (its :attr:`~WitnessConflictError.size` is where
        to send from), :class:`WitnessUnknownLogError`, :class:`WitnessForbiddenError`,
        :class:`WitnessProofError`, :class:`WitnessBadRequestError`, :class:`WitnessUnavailableError`
        or :class:`WitnessResponseError`."""
        try:
            text = parse_note(checkpoint).text
        except VerificationError as err:
            raise WitnessBadRequestError(f"the checkpoint is not a signed note: {err}") from None
        body = AddCheckpointRequest(old_size=old_size, proof=tuple(proof), checkpoint=checkpoint).body()
        status, content_type, data = self._post(body)
        if status == 200:
            return self._cosignatures(text, data)
        if status == 409:
            size = parse_size_body(data)
            raise WitnessConflictError(
                f"witness {self.url}: the last checkpoint it cosigned for the log has size {size}, not {old_size}",
                size=size,
            )
        error = _STATUS_ERRORS.get(status)
        if error is not None:
            raise error(f"witness {self.url} refused the checkpoint ({status}){_excerpt(data)}")
        raise WitnessUnavailableError(
            f"witness {self.url} answered {status} (content type {content_type or 'none'}){_excerpt(data)}",
            http_status=status,
        )

    def _cosignatures(self, checkpoint_text: str, data: bytes) -> tuple[Cosignature, ...]:
        try:
            lines = parse_signature_lines(data.decode("utf-8"))
        except (UnicodeDecodeError, VerificationError) as err:
            raise WitnessResponseError(f"witness {self.url}: its answer is not signature lines ({err})") from None
        mine = [line for line in lines if (line.name, line.key_id) == (self.verifier.name, self.verifier.key_id)]
        found: list[Cosignature] = []
        for line in mine:
            try:
                cosignature = Cosignature.from_note_signature(line)
            except VerificationError as err:
                raise WitnessResponseError(f"witness {self.url}: {err}") from None
            if not self.verifier.verify(checkpoint_text, cosignature):
                raise WitnessResponseError(f"witness {self.url}: its cosignature does not verify over the checkpoint")
            if cosignature.timestamp == 0:
                raise WitnessResponseError(f"witness {self.url}: its cosignature has no timestamp (zero)")
            if cosignature not in found:
                found.append(cosignature)
        if not found:
            raise WitnessResponseError(f"witness {self.url}: its answer holds no cosignature by {self.verifier.vkey}")
        return tuple(found)


def submit_checkpoint(
    url: str,
    verifier: CosignatureVerifier,
    checkpoint: str,
    old_size: int,
    proof: Sequence[bytes],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[Cosignature, ...]:
    """One add-checkpoint request on a new connection: :meth:`WitnessClient.add_checkpoint`."""
    with WitnessClient(url, verifier, timeout=timeout) as client:
        return client.add_checkpoint(checkpoint, old_size, proof)
