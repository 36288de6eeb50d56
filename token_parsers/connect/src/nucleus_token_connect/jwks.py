"""A small JWKS cache: fetch a JSON Web Key Set over HTTP(S), keep it for a lifespan, refresh it on
an unknown ``kid`` at most once per cooldown, and fail closed.

Why not PyJWT's ``PyJWKClient``: its unknown-``kid`` cooldown is only armed by a *successful*
fetch, so while the endpoint is down every token with a random ``kid`` triggers another fetch
(each waiting for the timeout, serialized under its lock). Here every attempt, failed or not,
starts the cooldown.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import jwt

from nucleus_core.auth import KeySourceUnavailableError
from nucleus_core.errors import ConfigurationError, TokenInvalidError

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def check_jwks_url(url: object, *, plugin: str) -> str:
    """An ``https://`` URL (``http://`` only for loopback hosts, for tests and sidecars)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"{plugin}: setting 'jwks_url' must be a URL string")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise ConfigurationError(f"{plugin}: 'jwks_url' must be https:// (http:// only on a loopback host)")


def keys_from_jwks(document: object, algorithms: Iterable[str]) -> dict[str, jwt.PyJWK]:
    """Usable signing keys of a JWK Set by ``kid``: keys without ``kid``, with ``use`` other than
    ``sig``, holding private material, of an algorithm not allowed, or unparsable are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set (no 'keys' list)")
    allowed = set(algorithms)
    keys: dict[str, jwt.PyJWK] = {}
    for item in document["keys"]:
        if not isinstance(item, Mapping):
            continue
        kid = item.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256 or item.get("use", "sig") != "sig":
            continue
        if any(k in item for k in ("d", "p", "q", "k")):
            continue
        try:
            key = jwt.PyJWK(dict(item))
        except (jwt.exceptions.PyJWTError, ValueError, TypeError):
            continue
        if key.algorithm_name in allowed:
            keys.setdefault(kid, key)
    return keys


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: the configured URL is the only place keys may come from."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Deadline:
    """Aborts one HTTP exchange when its deadline passes: a timer shuts down the socket of every
    connection it watches, which wakes a blocked read at once (a per-read timeout alone never
    fires against a server sending one byte at a time)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, connection: http.client.HTTPConnection) -> None:
        """Called once ``connection`` is connected (connecting has its own timeout)."""
        with self._lock:
            self._connections.append(connection)
            if self.expired:
                self._shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                self._shut(connection)

    @staticmethod
    def _shut(connection: http.client.HTTPConnection) -> None:
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _watched(base: type[http.client.HTTPConnection], guard: _Deadline) -> Callable[..., http.client.HTTPConnection]:
    class Watched(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            super().connect()
            guard.watch(self)

    return Watched


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: _Deadline) -> None:
        super().__init__()
        self._connection = _watched(http.client.HTTPConnection, guard)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: _Deadline) -> None:
        super().__init__(context=ssl.create_default_context())
        self._connection = _watched(http.client.HTTPSConnection, guard)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._context)  # type: ignore[attr-defined]


def fetch_bytes(url: str, *, deadline: float, limit: int) -> tuple[int, bytes]:
    """GET ``url`` with urllib (so the environment's proxy settings apply) and return
    ``(status, body)``; the whole exchange (connect, TLS, headers, body) finishes within
    ``deadline`` seconds or fails. Redirects are refused; a body longer than ``limit`` is cut at
    ``limit + 1`` bytes.

    :raises TimeoutError: the deadline passed.
    :raises OSError, http.client.HTTPException: the exchange failed (``urllib.error.URLError``
        included).
    """
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by check_jwks_url
        url, headers={"Accept": "application/json", "User-Agent": "nucleus-token-connect"}
    )
    started = time.monotonic()
    with _Deadline(deadline) as guard:
        opener = urllib.request.build_opener(_NoRedirect(), _HTTPHandler(guard), _HTTPSHandler(guard))
        try:
            with opener.open(request, timeout=deadline) as response:
                status, body = response.status, response.read(limit + 1)
        except (OSError, http.client.HTTPException):
            if guard.expired:
                raise TimeoutError(f"no complete answer within {deadline:g} s") from None
            raise
    if guard.expired or time.monotonic() - started > deadline:
        raise TimeoutError(f"no complete answer within {deadline:g} s")
    return status, body


class JwksCache:
    """Keys of one JWKS URL. Thread-safe; one instance per parser (per ledger).

    ``lifespan``: how long a fetched set is used (also during an endpoint outage); after it, tokens
    fail with :class:`KeySourceUnavailableError` until a fetch succeeds. ``cooldown``: least time
    between two fetch attempts. ``timeout``: the deadline of one whole fetch (connect, headers and
    body together, however slowly the endpoint sends them).

    One fetch at a time, and never under the lock: while it runs, a token whose key is cached and
    current is verified at once; one that needs the fetch waits for it, at most ``timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: Iterable[str],
        lifespan: float = 300.0,
        cooldown: float = 30.0,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._algorithms = tuple(algorithms)
        self._lifespan = lifespan
        self._cooldown = cooldown
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._fetched = threading.Condition(self._lock)
        self._fetching = False
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self.fetches = 0
        """Fetch attempts so far (for tests and monitoring)."""

    def key(self, kid: str) -> jwt.PyJWK:
        """The key with id ``kid``.

        :raises TokenInvalidError: the set is current but holds no such key.
        :raises KeySourceUnavailableError: no current set could be obtained.
        """
        with self._lock:
            found = self._current(kid)
            if found is not None:
                return found
            if self._fetching:
                # Someone is fetching: wait for that fetch (at most its deadline), never start another.
                self._fetched.wait_for(lambda: not self._fetching, timeout=self._timeout)
                return self._decide(kid)
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._cooldown:
                return self._decide(kid)
            self._attempted_at = now
            self._fetching = True
        keys: dict[str, jwt.PyJWK] | None = None
        try:
            keys = self._fetch()
        except KeySourceUnavailableError:
            log.warning("JWKS refresh from %s failed; cached keys (if any) stay in use (lifespan)", self._host())
        finally:
            with self._lock:
                if keys is not None:
                    self._keys = keys
                    self._fetched_at = self._clock()
                self._fetching = False
                self._fetched.notify_all()
        with self._lock:
            return self._decide(kid)

    @property
    def fetching(self) -> bool:
        """True while a fetch is running (for tests and monitoring)."""
        return self._fetching

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._lifespan

    def _current(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid) if self._fresh() else None

    def _decide(self, kid: str) -> jwt.PyJWK:
        """With the lock held and no fetch to start: the cached key, or why there is none."""
        if not self._fresh():
            raise KeySourceUnavailableError("the identity provider's signing keys are not available")
        found = self._keys.get(kid)
        if found is None:
            raise TokenInvalidError("token key id is not known")
        return found

    def _host(self) -> str:
        return urlsplit(self.url).netloc

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        self.fetches += 1
        try:
            status, body = fetch_bytes(self.url, deadline=self._timeout, limit=MAX_JWKS_BYTES)
        except TimeoutError as err:
            log.warning("JWKS fetch from %s failed: no complete answer within %g s", self._host(), self._timeout)
            raise KeySourceUnavailableError(f"JWKS endpoint {self._host()} did not answer in time") from err
        except (http.client.HTTPException, OSError) as err:
            log.warning("JWKS fetch from %s failed: %s", self._host(), type(err).__name__)
            raise KeySourceUnavailableError(f"JWKS endpoint {self._host()} cannot be reached") from err
        if status != 200:
            log.warning("JWKS fetch from %s failed: status %d", self._host(), status)
            raise KeySourceUnavailableError(f"JWKS endpoint {self._host()} answered {status}")
        if len(body) > MAX_JWKS_BYTES:
            raise KeySourceUnavailableError(f"JWKS from {self._host()} is larger than {MAX_JWKS_BYTES} bytes")
        try:
            keys = keys_from_jwks(json.loads(body), self._algorithms)
        except ValueError as err:
            log.warning("JWKS from %s is not a usable JWK Set", self._host())
            raise KeySourceUnavailableError(f"JWKS from {self._host()} is not a JWK Set") from err
        if not keys:
            log.warning("JWKS from %s holds no usable signing key", self._host())
            raise KeySourceUnavailableError(f"JWKS from {self._host()} holds no usable signing key")
        return keys
