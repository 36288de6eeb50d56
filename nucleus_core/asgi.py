"""HTTP authentication middleware: pure ASGI (any ASGI framework) and a WSGI equivalent.

The middleware authenticates every request before the application sees it and denies by default:

* the credential is a bearer token in the ``Authorization`` header, and only there. A request
  whose query string carries ``access_token`` is refused (400 ``invalid_request``), as is a request
  with more than one ``Authorization`` header;
* an ``Authorization`` header longer than ``max_header_bytes`` is refused with 431 before it is
  decoded or parsed;
* ``public_paths`` is an allow-list of exact paths (compared with ``scope["path"]`` as the
  server decoded it, case-sensitively, no prefixes, no normalisation). ``/health/``, ``//health``,
  ``/HEALTH`` or ``/health%3F/x`` are not ``/health``. A public path still authenticates a token
  if one is sent (a bad one gets 401); it just does not require one;
* missing credentials (or a scheme other than ``Bearer``) get 401 with
  ``WWW-Authenticate: Bearer realm="..."`` and no error code; a bad token gets 401 with
  ``error="invalid_token"``; keys that cannot be fetched (identity provider down) get 503;
* on success the :class:`~nucleus_core.context.RequestContext` is attached to the request:
  ``scope["nucleus.context"]`` and ``scope["state"]["nucleus_context"]`` (so Starlette/FastAPI
  code reads ``request.state.nucleus_context``), and :func:`current_context` returns it inside
  the request's task. The scope is copied, never shared with another request;
* an :class:`~nucleus_core.errors.AuthorizationError` raised by the application before it started
  its response becomes 403 ``error="insufficient_scope"``; :func:`insufficient_scope` builds that
  response directly.

Error bodies are a small JSON object with a fixed, generic description; neither bodies nor log
lines ever contain the token, a key secret or claims.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import attrs

from .auth import KeySourceUnavailableError, TokenRegistry
from .context import RequestContext
from .errors import AuthenticationError, AuthorizationError, ConfigurationError, TokenExpiredError, TokenInvalidError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_HEADER_BYTES = 8192
"""Largest ``Authorization`` header value accepted (bytes)."""

DEFAULT_LANE_THREADS = 8
"""Threads per authentication lane (see :class:`AuthMiddleware`)."""

_VISIBLE_ASCII = re.compile(rb"[\x21-\x7e]*")
"""A token's bytes: visible ASCII only (one C-level match instead of a Python loop over the bytes)."""

CONTEXT_SCOPE_KEY = "nucleus.context"
CONTEXT_STATE_KEY = "nucleus_context"

_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "nucleus_request_context", default=None
)


def current_context() -> RequestContext | None:
    """The authenticated context of the request being served in this task (None outside one, or on
    a public path requested without a token)."""
    return _current.get()


def context_from_scope(scope: Scope) -> RequestContext | None:
    """The context the middleware attached to ``scope`` (None when the path was public and no token
    was sent)."""
    value = scope.get(CONTEXT_SCOPE_KEY)
    return value if isinstance(value, RequestContext) else None


@attrs.frozen(kw_only=True)
class Denial:
    """An HTTP refusal: status, headers and a JSON body with a generic description."""

    status: int
    error: str | None
    description: str
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> bytes:
        payload = {"error": self.error or "unauthorized", "error_description": self.description}
        return json.dumps(payload).encode("utf-8")

    def all_headers(self) -> list[tuple[str, str]]:
        body = self.body()
        return [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
            *self.headers,
        ]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@attrs.frozen(kw_only=True)
class AuthPolicy:
    """The framework-neutral decision shared by the ASGI and WSGI middlewares."""

    registry: TokenRegistry
    realm: str = "nucleus"
    public_paths: frozenset[str] = attrs.field(factory=frozenset)
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.registry, TokenRegistry):
            raise ConfigurationError("the auth middleware needs a TokenRegistry (for example ledger.auth)")
        if not self.realm or any(c in self.realm for c in '"\\\r\n'):
            raise ConfigurationError("realm must be a non-empty string without quotes, backslashes or newlines")
        for path in self.public_paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(f"public path {path!r} must be an exact path starting with '/'")
        if not 256 <= self.max_header_bytes <= 65536:
            raise ConfigurationError("max_header_bytes must be between 256 and 65536")

    def challenge(self, error: str | None = None, scope: str | None = None) -> tuple[str, str]:
        value = f'Bearer realm="{_quote(self.realm)}"'
        if error:
            value += f', error="{error}"'
        if scope:
            value += f', scope="{_quote(scope)}"'
        return ("www-authenticate", value)

    def unauthenticated(self) -> Denial:
        return Denial(status=401, error=None, description="authentication required", headers=(self.challenge(),))

    def invalid_token(self, expired: bool = False) -> Denial:
        text = "the access token expired" if expired else "the access token is invalid"
        return Denial(status=401, error="invalid_token", description=text, headers=(self.challenge("invalid_token"),))

    def invalid_request(self, description: str) -> Denial:
        return Denial(
            status=400, error="invalid_request", description=description, headers=(self.challenge("invalid_request"),)
        )

    def insufficient_scope(self, scope: str | None = None) -> Denial:
        return Denial(
            status=403,
            error="insufficient_scope",
            description="the request requires higher privileges",
            headers=(self.challenge("insufficient_scope", scope),),
        )

    def precheck(self, path: str, query_string: bytes, authorization: list[bytes]) -> Denial | bytes | None:
        """Everything decided without parsing a token: returns a denial, the raw token bytes, or
        None for "no credentials on a public path"."""
        if len(authorization) > 1:
            return self.invalid_request("more than one Authorization header")
        if query_string and any(
            k.strip().lower() == "access_token"
            for k, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        ):
            return self.invalid_request("tokens are not accepted in the query string")
        if not authorization:
            return None if path in self.public_paths else self.unauthenticated()
        raw = authorization[0]
        if len(raw) > self.max_header_bytes:
            return Denial(status=431, error="invalid_request", description="the Authorization header is too large")
        scheme, sep, rest = raw.partition(b" ")
        if scheme.lower() != b"bearer":
            return None if path in self.public_paths else self.unauthenticated()
        token = rest.strip(b" ")
        if not sep or not token or b" " in token:
            return self.invalid_request("malformed Bearer credentials")
        return token

    def lane(self, token: bytes) -> tuple[str, ...]:
        """The parsers that may see ``token`` (:meth:`TokenRegistry.lane`); empty when the token is
        refused without any parser work."""
        if _VISIBLE_ASCII.fullmatch(token) is None:
            return ()
        return self.registry.lane(token.decode("ascii"))

    def authenticate(self, token: bytes, passive: bool = False) -> RequestContext | Denial:
        """Run the registry on the token bytes; map failures to denials (never echoing the token).
        ``passive``: :meth:`TokenRegistry.authenticate <nucleus_core.tokens.TokenRegistry.authenticate>`'s."""
        if _VISIBLE_ASCII.fullmatch(token) is None:
            return self.invalid_token()
        try:
            return self.registry.authenticate(token.decode("ascii"), passive=passive)
        except TokenExpiredError:
            return self.invalid_token(expired=True)
        except TokenInvalidError as err:
            log.info("authentication refused: %s", type(err).__name__)
            return self.invalid_token()
        except KeySourceUnavailableError:
            log.warning("authentication unavailable: verification keys cannot be obtained")
            return Denial(
                status=503, error="temporarily_unavailable", description="authentication is temporarily unavailable"
            )
        except AuthenticationError as err:
            log.info("authentication refused: %s", type(err).__name__)
            return self.invalid_token()


class AuthMiddleware:
    """Pure ASGI authentication middleware. Wrap any ASGI app::

        app = AuthMiddleware(app, registry=ledger.auth, realm="books", public_paths={"/health"})

    ``threaded`` (default True) runs token parsing in threads, because parsers may do blocking
    I/O (a JWKS fetch, a session lookup): one pool of ``lane_threads`` threads per *lane*, the set
    of parsers that may see a token (:meth:`TokenRegistry.lane`: API keys, sessions, connect
    JWTs and service JWTs are four lanes). A parser that blocks (an identity provider sending its
    keys slowly) fills only its own lane: tokens of other kinds are parsed meanwhile. Set
    ``threaded`` False when every enabled parser is pure computation. :meth:`close` stops the pools.
    Lifespan and other non-HTTP scopes pass through untouched; WebSocket
    connections are authenticated the same way and closed (code 1008) before accept on failure.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: TokenRegistry,
        realm: str = "nucleus",
        public_paths: Iterable[str] = (),
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        threaded: bool = True,
        lane_threads: int = DEFAULT_LANE_THREADS,
    ) -> None:
        self.app = app
        self.policy = AuthPolicy(
            registry=registry, realm=realm, public_paths=frozenset(public_paths), max_header_bytes=max_header_bytes
        )
        self.threaded = threaded
        if type(lane_threads) is not int or not 1 <= lane_threads <= 256:
            raise ConfigurationError("lane_threads must be an integer from 1 to 256")
        self.lane_threads = lane_threads
        self._lanes: dict[tuple[str, ...], concurrent.futures.ThreadPoolExecutor] = {}
        self._lanes_lock = threading.Lock()

    def _lane_executor(self, lane: tuple[str, ...]) -> concurrent.futures.ThreadPoolExecutor:
        with self._lanes_lock:
            executor = self._lanes.get(lane)
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.lane_threads, thread_name_prefix=f"nucleus-auth-{'+'.join(lane)}"
                )
                self._lanes[lane] = executor
            return executor

    def close(self) -> None:
        """Stop the authentication thread pools (running parses finish; they are bounded by the
        parsers' own deadlines). Idempotent."""
        with self._lanes_lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for executor in lanes:
            executor.shutdown(wait=True)

    async def authenticate_scope(self, scope: Scope, *, passive: bool = False) -> RequestContext | Denial | None:
        """The decision on the credential of the request ``scope``: its context, a denial, or None
        (no credentials, on a public path). Token parsing runs in the lane's threads (see the
        class). An application calls this again with ``passive=True`` to re-check the credential
        of a long response: the check changes no parser's state (a session's idle deadline does
        not move, a service token's ``jti`` is not spent; see
        :class:`~nucleus_core.tokens.PassiveTokenParser`), so an open response never keeps its
        credential alive."""
        authorization = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
        decision = self.policy.precheck(scope.get("path", ""), scope.get("query_string", b""), authorization)
        if not isinstance(decision, bytes):
            return decision
        lane = self.policy.lane(decision) if self.threaded else ()
        if not lane:
            return self.policy.authenticate(decision, passive)
        # In a copy of this context: what the parsers log carries the server's request id.
        result: RequestContext | Denial = await asyncio.get_running_loop().run_in_executor(
            self._lane_executor(lane), contextvars.copy_context().run, self.policy.authenticate, decision, passive
        )
        return result

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        decision = await self.authenticate_scope(scope)
        if isinstance(decision, Denial):
            await _deny(kind, decision, send)
            return
        context = decision
        child = dict(scope)
        child["state"] = {**scope.get("state", {}), CONTEXT_STATE_KEY: context}
        child[CONTEXT_SCOPE_KEY] = context
        await self._call_app(kind, child, receive, send, context)

    async def _call_app(
        self, kind: str, scope: Scope, receive: Receive, send: Send, context: RequestContext | None
    ) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message.get("type") in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
            await send(message)

        token = _current.set(context)
        try:
            await self.app(scope, receive, tracking_send)
        except AuthorizationError:
            if started:
                raise
            await _deny(kind, self.policy.insufficient_scope(), send)
        finally:
            _current.reset(token)


async def _deny(kind: str, denial: Denial, send: Send) -> None:
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": denial.error or "unauthorized"})
        return
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in denial.all_headers()]
    await send({"type": "http.response.start", "status": denial.status, "headers": headers})
    await send({"type": "http.response.body", "body": denial.body()})


def insufficient_scope(realm: str = "nucleus", scope: str | None = None) -> ASGIApp:
    """An ASGI app answering 403 ``error="insufficient_scope"`` (optionally naming the needed
    ``scope``); call it from a route when an authenticated requester lacks a permission."""
    denial = Denial(
        status=403,
        error="insufficient_scope",
        description="the request requires higher privileges",
        headers=(
            (
                "www-authenticate",
                f'Bearer realm="{_quote(realm)}", error="insufficient_scope"'
                + (f', scope="{_quote(scope)}"' if scope else ""),
            ),
        ),
    )

    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await _deny("http", denial, send)

    return app


class WSGIAuthMiddleware:
    """The WSGI equivalent of :class:`AuthMiddleware` (same rules, same responses).

    The context is placed in ``environ["nucleus.context"]``.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: TokenRegistry,
        realm: str = "nucleus",
        public_paths: Iterable[str] = (),
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        self.app = app
        self.policy = AuthPolicy(
            registry=registry, realm=realm, public_paths=frozenset(public_paths), max_header_bytes=max_header_bytes
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = environ.get("HTTP_AUTHORIZATION")
        authorization = [raw.encode("latin-1")] if isinstance(raw, str) else []
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        decision = self.policy.precheck(path, query, authorization)
        context: RequestContext | None = None
        if isinstance(decision, bytes):
            result = self.policy.authenticate(decision)
            if isinstance(result, Denial):
                decision = result
            else:
                context, decision = result, None
        if isinstance(decision, Denial):
            start_response(f"{decision.status} {_REASONS[decision.status]}", decision.all_headers())
            return [decision.body()]
        environ[CONTEXT_SCOPE_KEY] = context
        token = _current.set(context)
        try:
            return self.app(environ, start_response)
        finally:
            _current.reset(token)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
