"""The ledger as an HTTP/JSON service: a pure-ASGI application.

``create_app(ledger)`` returns an ASGI app serving one open :class:`~nucleus_core.Ledger`:

* every request passes the core's :class:`~nucleus_core.asgi.AuthMiddleware` with the ledger's
  own token parsers (``ledger.auth``); the requester of every ledger call is the context the
  middleware authenticated, never a header or a body field;
* ledger calls (blocking: storage I/O) run in a bounded thread pool, so the event loop keeps
  serving while SQLite or PostgreSQL work;
* bodies larger than ``max_body_bytes`` and batches longer than ``max_batch_records`` are refused
  with 413 before they are parsed;
* every error is ``{"error": {"code": ..., "message": ...}}`` (see :mod:`nucleus_server.errors`),
  including the middleware's own 400/401/403/431/503 answers, which are rewritten to that shape
  (their ``WWW-Authenticate`` headers are kept);
* every HTTP request is written to the access log ``nucleus_server.access`` (INFO) by the app
  itself: client address, method, path, query parameter *names* only (values are never written),
  status. Run uvicorn with its own access log off (``nucleus serve`` does): uvicorn's writes the
  query string, and a token sent as ``?access_token=`` with it;
* the lifespan shutdown (after the server let in-flight requests finish) stops the thread pool
  and, when the app owns the ledger, closes it: modules stop, storage closes.

The route table :data:`ROUTES` is the single source of the router and of ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, unquote

import attrs

from nucleus_core.access import AclAdmin, AuthenticatedPolicy, GrantRecord
from nucleus_core.asgi import AuthMiddleware, context_from_scope
from nucleus_core.auth import redact_secrets
from nucleus_core.context import READ, RequestContext, require_context, require_scope
from nucleus_core.errors import (
    AccessDeniedError,
    ConfigurationError,
    InsufficientScopeError,
    LedgerClosedError,
    MissingRequesterError,
    NucleusError,
    QueryError,
    RecordValidationError,
    ValidationError,
)
from nucleus_core.ledger import MAX_BATCH_SIZE, Ledger
from nucleus_core.records import Record

from . import wire
from .errors import (
    INTERNAL_ERROR_CODE,
    MalformedRequestError,
    MethodNotAllowedError,
    NotFoundError,
    RequestTooLargeError,
    error_document,
    status_for,
)
from .openapi import Route, build_openapi

log = logging.getLogger(__name__)
access_log = logging.getLogger("nucleus_server.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_PUBLIC_PATHS = ("/health", "/openapi.json")
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH_RECORDS = 1000


def _check_range(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ConfigurationError(f"server setting {attr.name!r} must be an integer from {low} to {high}")

    return check


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _check_paths(_inst: Any, _attr: Any, value: tuple[str, ...]) -> None:
    for path in value:
        if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
            raise ConfigurationError(f"public path {path!r} must be an exact path starting with '/'")


def _check_realm(_inst: Any, _attr: Any, value: str) -> None:
    if not isinstance(value, str) or not value or any(c in value for c in '"\\\r\n'):
        raise ConfigurationError("server setting 'realm' must be a non-empty string without quotes or newlines")


@attrs.frozen(kw_only=True)
class ServerSettings:
    """How the HTTP layer behaves (the ledger's own configuration is separate).

    ``public_paths``: exact paths answered without a token (only ``/health`` and ``/openapi.json``
    serve anything without a requester; ledger routes refuse an anonymous request even when
    listed). ``max_body_bytes``: largest request body. ``max_batch_records``: most records in one
    batch append (at most the core's limit). ``threads``: size of the pool running ledger calls.
    """

    realm: str = attrs.field(default="nucleus", validator=_check_realm)
    public_paths: tuple[str, ...] = attrs.field(
        default=DEFAULT_PUBLIC_PATHS, converter=_to_tuple, validator=_check_paths
    )
    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_check_range(1024, 1024**3))
    max_batch_records: int = attrs.field(default=DEFAULT_MAX_BATCH_RECORDS, validator=_check_range(1, MAX_BATCH_SIZE))
    threads: int = attrs.field(default=8, validator=_check_range(1, 256))
    max_header_bytes: int = attrs.field(default=8192, validator=_check_range(256, 65536))


@attrs.frozen(kw_only=True)
class Request:
    """What a handler gets: the scope, path parameters, the authenticated context (None on a public
    path without a token) and a way to read the body (bounded)."""

    scope: Scope
    params: Mapping[str, str]
    context: RequestContext | None
    read_body: Callable[[], Awaitable[bytes]]

    @property
    def requester(self) -> RequestContext:
        """The authenticated requester; :class:`MissingRequesterError` (401) when there is none."""
        if self.context is None:
            raise MissingRequesterError("this route needs a bearer token")
        return require_context(self.context)

    def query_items(self) -> list[tuple[str, str]]:
        raw = self.scope.get("query_string", b"")
        try:
            return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise MalformedRequestError("query string is not UTF-8", field="query") from None


@attrs.frozen(kw_only=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, value: Any) -> Response:
    return Response(status=status, body=wire.dumps(value))


def _raw(status: int, body: bytes) -> Response:
    return Response(status=status, body=body)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "health", "Liveness and storage reachability (public by default)", response="Health"),
    Route("GET", "/openapi.json", "openapi", "This OpenAPI document (public by default)", response="OpenAPI"),
    Route("GET", "/whoami", "whoami", "The authenticated requester", response="Requester"),
    Route("GET", "/ledger", "ledger_info", "Ledger id, length and head hash", response="LedgerInfo"),
    Route("POST", "/entries", "append", "Append one record", request="Record", response="Entry", status=201),
    Route(
        "POST",
        "/entries/batch",
        "append_batch",
        "Append records atomically (all or none)",
        request="Batch",
        response="EntryList",
        status=201,
    ),
    Route(
        "GET",
        "/entries",
        "query",
        "Query entries the requester may read (cursor pagination)",
        response="EntryPage",
        query=("stream", "record_id", "since", "until", "limit", "cursor"),
    ),
    Route(
        "POST",
        "/entries/query",
        "query_json",
        "Query with a JSON filter object",
        request="QueryFilters",
        response="EntryPage",
    ),
    Route("GET", "/entries/{hash}", "get", "The entry with this hash", response="Entry"),
    Route("GET", "/records/{record_id}", "get_by_id", "The entry of this record id", response="Entry"),
    Route("GET", "/verify", "verify", "Re-verify the whole stored chain", response="VerificationReport"),
    Route("GET", "/modules", "modules", "The ledger's modules and their metadata", response="ModuleList"),
    Route("GET", "/modules/{module_id}", "module", "One module's metadata", response="ModuleMetadata"),
    Route(
        "POST",
        "/acl/grant",
        "acl_grant",
        "Give grants (needs full on each resource)",
        request="Grants",
        response="Grants",
        status=201,
    ),
    Route(
        "POST",
        "/acl/revoke",
        "acl_revoke",
        "Revoke grants (needs full on each resource)",
        request="Grants",
        response="Revoked",
    ),
    Route(
        "POST",
        "/acl/check",
        "acl_check",
        "Whether a principal may act on a resource",
        request="AclCheck",
        response="AclDecision",
    ),
    Route(
        "GET",
        "/acl/entries",
        "acl_list",
        "Entries the requester may read, optionally by resource kind",
        response="EntryPage",
        query=("stream", "record_id", "since", "until", "limit", "cursor", "kind"),
    ),
)
"""Every route: method, path template, operation id (the handler's name), summary and schemas."""

_QUERY_INT = {"since", "until", "limit"}


class _AclNotConfiguredError(NotFoundError, ConfigurationError):
    """The ledger has no access-control provider (404 over HTTP, a ConfigurationError like ``ledger.acl``)."""

    code = "acl_not_configured"


class NucleusApp:
    """The ASGI application for one ledger. Build it with :func:`create_app`."""

    def __init__(self, ledger: Ledger, settings: ServerSettings | None = None, *, owns_ledger: bool = False) -> None:
        self.ledger = ledger
        self.settings = settings or ServerSettings()
        self.owns_ledger = owns_ledger
        self.routes = ROUTES
        self._table = [(route, route.segments()) for route in ROUTES]
        self._openapi = wire.dumps(build_openapi(ROUTES, title=f"Nucleus ledger {ledger.id}"))
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.threads, thread_name_prefix="nucleus-http"
        )
        self._verify_lock: asyncio.Lock | None = None
        self._closing = False
        self._auth = auth = AuthMiddleware(
            self._dispatch,
            registry=ledger.auth,
            realm=self.settings.realm,
            public_paths=self.settings.public_paths,
            max_header_bytes=self.settings.max_header_bytes,
        )
        self._asgi = _AccessLog(_DenialRewriter(auth))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    # lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the thread pool (waiting for running calls) and close the ledger if the app owns it."""
        self._closing = True
        self._executor.shutdown(wait=True)
        self._auth.close()
        if self.owns_ledger:
            self.ledger.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.info("serving ledger %r", self.ledger.id)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self.close)
                except Exception as err:  # noqa: BLE001 - reported to the server, which logs it
                    await send({"type": "lifespan.shutdown.failed", "message": f"{type(err).__name__}: {err}"})
                    return
                log.info("ledger %r closed", self.ledger.id)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # dispatch -------------------------------------------------------------------------------
    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            response = await self._handle(scope, receive)
        except NucleusError as err:
            response = self._error(err)
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), redact_secrets(scope.get("path", "")))
            response = Response(
                status=500,
                body=wire.dumps({"error": {"code": INTERNAL_ERROR_CODE, "message": "internal server error"}}),
            )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(response.body)).encode("ascii")),
            (b"cache-control", b"no-store"),
        ]
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    def _error(self, err: NucleusError) -> Response:
        status = status_for(err)
        headers: tuple[tuple[str, str], ...] = ()
        realm = self.settings.realm
        if status == 401:
            headers = (("www-authenticate", f'Bearer realm="{realm}"'),)
        elif status == 403:
            needed = getattr(err, "scope", None) if isinstance(err, InsufficientScopeError) else None
            extra = f', scope="{needed}"' if needed else ""
            headers = (("www-authenticate", f'Bearer realm="{realm}", error="insufficient_scope"{extra}'),)
        elif status == 405 and isinstance(err, _MethodNotAllowed):
            headers = (("allow", ", ".join(err.allowed)),)
        return Response(status=status, body=wire.dumps(error_document(err)), headers=headers)

    async def _handle(self, scope: Scope, receive: Receive) -> Response:
        if self._closing:
            raise LedgerClosedError("the server is shutting down")
        route, params = self._match(scope)
        request = Request(
            scope=scope,
            params=params,
            context=context_from_scope(scope),
            read_body=functools.partial(self._read_body, scope, receive),
        )
        handler: Callable[[Request], Awaitable[Response]] = getattr(self, f"_h_{route.name}")
        return await handler(request)

    def _match(self, scope: Scope) -> tuple[Route, dict[str, str]]:
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else scope.get("path", "")
        path = path.split("?", 1)[0]
        parts = path.split("/")[1:]
        allowed: list[str] = []
        for route, segments in self._table:
            if len(segments) != len(parts):
                continue
            params: dict[str, str] = {}
            for seg, part in zip(segments, parts, strict=True):
                if seg.startswith("{"):
                    value = unquote(part, errors="strict") if "%" in part else part
                    if not value:
                        break
                    params[seg[1:-1]] = value
                elif seg != part:
                    break
            else:
                if route.method == scope.get("method"):
                    return route, params
                allowed.append(route.method)
        if allowed:
            raise _MethodNotAllowed(allowed)
        raise NotFoundError(f"no route {redact_secrets(path[:200])!r}")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():
                    raise MalformedRequestError("content-length is not a number", field="body")
                if int(value) > limit:
                    raise RequestTooLargeError(f"the body is larger than this server's {limit} bytes", field="body")
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise MalformedRequestError("the client disconnected before sending the body", field="body")
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise RequestTooLargeError(f"the body is larger than this server's {limit} bytes", field="body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    async def _json_body(self, request: Request) -> Any:
        return wire.loads_body(await request.read_body())

    # handlers: service ---------------------------------------------------------------------
    async def _h_health(self, request: Request) -> Response:
        await self._run(self.ledger.length)
        return _json(200, {"status": "ok"})

    async def _h_openapi(self, request: Request) -> Response:
        return _raw(200, self._openapi)

    async def _h_whoami(self, request: Request) -> Response:
        ctx = request.requester
        return _json(200, {"oid": ctx.oid, "source": ctx.source, "role": ctx.role, "scopes": sorted(ctx.scopes)})

    async def _h_ledger_info(self, request: Request) -> Response:
        request.requester  # noqa: B018 - the ledger's state is for authenticated requesters only

        def info() -> dict[str, Any]:
            head = self.ledger.storage.head()
            return {
                "ledger_id": self.ledger.id,
                "length": head.seq if head else 0,
                "head": head.hash if head else None,
                "persistent": self.ledger.has_storage(),
                "read_only": self.ledger.read_only,
            }

        return _json(200, await self._run(info))

    # handlers: entries ----------------------------------------------------------------------
    async def _h_append(self, request: Request) -> Response:
        ctx = request.requester
        raw = await request.read_body()

        def work() -> bytes:
            record = Record.from_dict(wire.loads_body(raw))
            return wire.entry_json(self.ledger.append(record, ctx))

        return _raw(201, await self._run(work))

    async def _h_append_batch(self, request: Request) -> Response:
        ctx = request.requester
        raw = await request.read_body()
        limit = self.settings.max_batch_records

        def work() -> bytes:
            doc = wire.loads_body(raw)
            if not isinstance(doc, dict) or set(doc) != {"records"} or not isinstance(doc["records"], list):
                raise MalformedRequestError('a batch is {"records": [record, ...]}', field="body")
            items = doc["records"]
            if len(items) > limit:
                raise RequestTooLargeError(
                    f"a batch holds at most {limit} records on this server, got {len(items)}", field="records"
                )
            records = []
            for i, item in enumerate(items):
                try:
                    records.append(Record.from_dict(item))
                except RecordValidationError as err:
                    raise RecordValidationError(str(err), field=f"records[{i}]") from None
            return wire.entries_json(self.ledger.append_batch(records, ctx))

        return _raw(201, await self._run(work))

    async def _h_get(self, request: Request) -> Response:
        ctx = request.requester
        entry = await self._run(self.ledger.get, request.params["hash"], ctx)
        if entry is None:
            raise NotFoundError("no entry with this hash is visible to the requester")
        return _raw(200, wire.entry_json(entry))

    async def _h_get_by_id(self, request: Request) -> Response:
        ctx = request.requester
        entry = await self._run(self.ledger.get_by_id, request.params["record_id"], ctx)
        if entry is None:
            raise NotFoundError("no record with this id is visible to the requester")
        return _raw(200, wire.entry_json(entry))

    async def _h_query(self, request: Request) -> Response:
        ctx = request.requester
        filters = _filters_from_query(request.query_items(), allow_kind=False)
        return await self._query(filters, ctx)

    async def _h_query_json(self, request: Request) -> Response:
        ctx = request.requester
        filters = await self._json_body(request)
        if not isinstance(filters, dict):
            raise QueryError("filters must be a JSON object", field="filters")
        return await self._query(filters, ctx)

    async def _query(self, filters: dict[str, Any], ctx: RequestContext) -> Response:
        def work() -> bytes:
            result = self.ledger.query(filters, ctx)
            return wire.entries_json(result.entries, next_cursor=result.next_cursor, paged=True)

        return _raw(200, await self._run(work))

    async def _h_verify(self, request: Request) -> Response:
        ctx = request.requester
        if self._verify_lock is None:
            self._verify_lock = asyncio.Lock()
        async with self._verify_lock:  # one full scan at a time
            report = await self._run(functools.partial(self.ledger.verify, context=ctx))
        return _json(200, report.to_dict())

    # handlers: modules ----------------------------------------------------------------------
    async def _h_modules(self, request: Request) -> Response:
        request.requester  # noqa: B018
        return _json(200, {"modules": [_module_dict(m) for m in self.ledger.runtime.metadata()]})

    async def _h_module(self, request: Request) -> Response:
        request.requester  # noqa: B018
        wanted = request.params["module_id"]
        for meta in self.ledger.runtime.metadata():
            if meta.id == wanted:
                return _json(200, _module_dict(meta))
        raise NotFoundError(f"no module {wanted[:80]!r} on this ledger")

    # handlers: access control ---------------------------------------------------------------
    def _acl(self) -> AclAdmin:
        if isinstance(self.ledger.policy, AuthenticatedPolicy):
            raise _AclNotConfiguredError("this ledger has no access-control provider (enable the ual plugin)")
        return self.ledger.acl

    async def _grants_body(self, request: Request) -> list[dict[str, Any]]:
        doc = await self._json_body(request)
        if not isinstance(doc, dict) or set(doc) != {"grants"} or not isinstance(doc["grants"], list):
            raise MalformedRequestError('this route takes {"grants": [grant, ...]}', field="body")
        if len(doc["grants"]) > self.settings.max_batch_records:
            raise RequestTooLargeError(f"at most {self.settings.max_batch_records} grants per request", field="grants")
        if not all(isinstance(g, dict) for g in doc["grants"]):
            raise ValidationError("every grant must be a JSON object", field="grants")
        return list(doc["grants"])

    async def _h_acl_grant(self, request: Request) -> Response:
        ctx = request.requester
        acl = self._acl()
        grants = await self._grants_body(request)
        given = await self._run(acl.grant, grants, ctx)
        return _json(201, {"grants": [_grant_dict(g) for g in given]})

    async def _h_acl_revoke(self, request: Request) -> Response:
        ctx = request.requester
        acl = self._acl()
        grants = await self._grants_body(request)
        return _json(200, {"revoked": await self._run(acl.revoke, grants, ctx)})

    async def _h_acl_check(self, request: Request) -> Response:
        ctx = require_scope(request.requester, READ)  # the answer is access state: a read
        acl = self._acl()
        doc = await self._json_body(request)
        if not isinstance(doc, dict) or not {"action", "resource"} <= set(doc) <= {"action", "resource", "principal"}:
            raise MalformedRequestError(
                'this route takes {"action": "create|read|write|full", "resource": {"kind", "id"}, "principal"?}',
                field="body",
            )
        resource = doc["resource"]
        if not isinstance(resource, dict) or set(resource) != {"kind", "id"}:
            raise ValidationError('must be {"kind": ..., "id": ...}', field="resource")
        target = (resource["kind"], resource["id"])
        principal = doc.get("principal", ctx.oid)

        def work() -> bool:
            # Asking about someone else reveals their access: only a manager of the resource may.
            if principal != ctx.oid and not acl.check(ctx, "full", target):
                raise AccessDeniedError("checking another principal's access needs full access to the resource")
            return bool(acl.check(principal, doc["action"], target))

        return _json(200, {"allowed": await self._run(work)})

    async def _h_acl_list(self, request: Request) -> Response:
        ctx = request.requester
        acl = self._acl()
        filters = _filters_from_query(request.query_items(), allow_kind=True)

        def work() -> bytes:
            result = acl.list(ctx, filters)
            return wire.entries_json(result.entries, next_cursor=result.next_cursor, paged=True)

        return _raw(200, await self._run(work))


class _MethodNotAllowed(MethodNotAllowedError):
    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = sorted(set(allowed))
        super().__init__(f"this route takes {', '.join(self.allowed)}")


def _module_dict(meta: Any) -> dict[str, Any]:
    return {
        "id": meta.id,
        "version": meta.version,
        "state": meta.state.value,
        "streams": list(meta.streams),
        "depends_on": list(meta.depends_on),
        "resource_kind": meta.resource_kind,
    }


def _grant_dict(grant: GrantRecord) -> dict[str, Any]:
    return grant.to_dict()


def _filters_from_query(items: list[tuple[str, str]], *, allow_kind: bool) -> dict[str, Any]:
    """Query-string filters: ``stream``, ``record_id`` and ``kind`` repeat; the rest appear once."""
    allowed = {"stream", "record_id", "since", "until", "limit", "cursor"} | ({"kind"} if allow_kind else set())
    lists: dict[str, list[str]] = {}
    filters: dict[str, Any] = {}
    for key, value in items:
        if key not in allowed:
            raise QueryError(f"unknown query parameter {redact_secrets(key[:64])!r}", field="query")
        if key in ("stream", "record_id", "kind"):
            lists.setdefault(key, []).append(value)
            continue
        if key in filters:
            raise QueryError("given more than once", field=key)
        if key in _QUERY_INT:
            if not value.isdigit() or len(value) > 16:
                raise QueryError("must be a non-negative integer", field=key)
            filters[key] = int(value)
        else:
            filters[key] = value
    for key, values in lists.items():
        name = "record_ids" if key == "record_id" else key
        filters[name] = values if (len(values) > 1 or key == "record_id") else values[0]
    return filters


_SAFE_QUERY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


def loggable_target(scope: Scope) -> str:
    """The request target as the access log writes it: the path with credential-shaped parts
    redacted, and of the query string only the parameter names (``?stream=…&limit=…``); a name
    that is not a short identifier (it could be a token sent as ``?<token>``) becomes ``…`` too."""
    path = redact_secrets(quote(scope.get("path", ""), safe="/:@!$&'()*+,;=-._~"))
    raw = scope.get("query_string", b"")
    if not raw:
        return path
    names = []
    for part in raw.decode("latin-1").split("&"):
        name = unquote(part.partition("=")[0], errors="replace")
        names.append(f"{name}=…" if _SAFE_QUERY_NAME.fullmatch(name) else "…")
    return f"{path}?{'&'.join(names)}"


class _AccessLog:
    """The server's access log: one INFO line per HTTP request on ``nucleus_server.access``,
    written after the response started (``client - "METHOD target HTTP/v" status``), never with a
    query value, a header or a body."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        status = 500

        async def logging_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            client = scope.get("client")
            who = f"{client[0]}:{client[1]}" if client else "-"
            access_log.info(
                '%s - "%s %s HTTP/%s" %d',
                who,
                scope.get("method", "-"),
                loggable_target(scope),
                scope.get("http_version", "1.1"),
                status,
            )


class _DenialRewriter:
    """Rewrites the auth middleware's refusals (``{"error": "invalid_token", ...}``) into the
    server's error shape, keeping status and headers. Responses of the app pass unchanged."""

    _CODES: ClassVar[dict[str | None, str]] = {
        None: "unauthenticated",
        "unauthorized": "unauthenticated",
        "invalid_token": "invalid_token",
        "invalid_request": MalformedRequestError.code,
        "insufficient_scope": "forbidden",
        "temporarily_unavailable": "auth_unavailable",
    }

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] in (400, 401, 403, 431, 503):
                held = message
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                body = self._rewrite(start["status"], message.get("body", b""))
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode("ascii")))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)

    def _rewrite(self, status: int, body: bytes) -> bytes:
        try:
            doc = wire.loads_body(body)
        except ValidationError:
            return body
        if not isinstance(doc, dict) or isinstance(doc.get("error"), dict) or "error_description" not in doc:
            return body
        description = str(doc.get("error_description", ""))
        code = self._CODES.get(doc.get("error"), "unauthenticated")
        if code == "invalid_token" and "expired" in description:
            code = "token_expired"
        if status == 431:
            code = RequestTooLargeError.code
        return wire.dumps({"error": {"code": code, "message": description}})


def create_app(ledger: Ledger, settings: ServerSettings | None = None, *, owns_ledger: bool = False) -> NucleusApp:
    """The ASGI app serving ``ledger``. With ``owns_ledger`` the app closes the ledger at the end of
    the ASGI lifespan (``nucleus serve`` does this); otherwise the caller closes it."""
    return NucleusApp(ledger, settings, owns_ledger=owns_ledger)
