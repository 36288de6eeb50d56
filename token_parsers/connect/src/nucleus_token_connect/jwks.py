"""A small JWKS cache: fetch a JSON Web Key Set over HTTP(S), keep it for a lifespan, refresh it on
an unknown ``kid`` at most once per cooldown, and fail closed.

Why not PyJWT's ``PyJWKClient``: its unknown-``kid`` cooldown is only armed by a *successful*
fetch, so while the endpoint is down every token with a random ``kid`` triggers another fetch
(each waiting for the timeout, serialized under its lock). Here every attempt, failed or not,
starts the cooldown.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: the configured URL is the only place keys may come from."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


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


class JwksCache:
    """Keys of one JWKS URL. Thread-safe; one instance per parser (per ledger).

    ``lifespan``: how long a fetched set is used (also during an endpoint outage); after it, tokens
    fail with :class:`KeySourceUnavailableError` until a fetch succeeds. ``cooldown``: least time
    between two fetch attempts. ``timeout``: socket timeout of one fetch.
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
            now = self._clock()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._lifespan
            if fresh and kid in self._keys:
                return self._keys[kid]
            if self._attempted_at is None or now - self._attempted_at >= self._cooldown:
                self._attempted_at = now
                try:
                    self._keys = self._fetch()
                    self._fetched_at = self._clock()
                    fresh = True
                except KeySourceUnavailableError:
                    if not fresh:
                        raise
                    log.warning("JWKS refresh from %s failed; keeping the cached keys", self._host())
            if not fresh:
                raise KeySourceUnavailableError("the identity provider's signing keys are not available")
            found = self._keys.get(kid)
            if found is None:
                raise TokenInvalidError("token key id is not known")
            return found

    def _host(self) -> str:
        return urlsplit(self.url).netloc

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        self.fetches += 1
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked by check_jwks_url
            self.url, headers={"Accept": "application/json", "User-Agent": "nucleus-token-connect"}
        )
        opener = urllib.request.build_opener(_NoRedirect())
        try:
            with opener.open(request, timeout=self._timeout) as response:
                if response.status != 200:
                    raise KeySourceUnavailableError(f"JWKS endpoint {self._host()} answered {response.status}")
                body = response.read(MAX_JWKS_BYTES + 1)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            log.warning("JWKS fetch from %s failed: %s", self._host(), type(err).__name__)
            raise KeySourceUnavailableError(f"JWKS endpoint {self._host()} cannot be reached") from err
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
