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
* while the lifespan runs, a timer issues the checkpoint of the latest writes once the ledger's
  checkpoint interval has passed (:meth:`~nucleus_core.checkpoints.CheckpointIssuer.flush` when
  :meth:`~nucleus_core.checkpoints.CheckpointIssuer.due_in` says so), so a quiet ledger's last
  writes are signed within an interval even when nobody asks; it sleeps between checks;
* the lifespan shutdown (after the server let in-flight requests finish) stops the thread pool
  and, when the app owns the ledger, closes it: modules stop, storage closes.

This module only assembles the parts, each in its own module: the settings
(:mod:`.settings`), the router (:mod:`.routing`), the request/response plumbing (:mod:`.asgi`),
the access log and denial rewriting (:mod:`.middleware`) and the handlers, one module per area
(:mod:`.api`). The route table is the single source of the router and of ``/openapi.json``: the
static routes :data:`ROUTES`, then one ``GET /modules/<id>/<operation>`` per handle operation of
the served ledger's modules (:func:`.api.modules.handle_endpoints`), so each app's table is built
for its ledger (``app.routes``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import Mapping

from nucleus_core.asgi import AuthMiddleware, context_from_scope
from nucleus_core.auth import redact_secrets
from nucleus_core.errors import LedgerClosedError, NucleusError
from nucleus_core.ledger import Ledger

from . import wire
from .api import ENDPOINTS, Api, Handler, explorer
from .api.modules import handle_endpoints, module_descriptions
from .asgi import (
    INTERNAL_ERROR,
    Message,
    NoSniff,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    StreamResponse,
    error_response,
    read_body,
    send_response,
)
from .logs import current_request
from .middleware import AccessLog, DenialRewriter, access_log, loggable_target
from .observing import RequestMetrics
from .openapi import Route, build_openapi
from .routing import Router
from .settings import DEFAULT_MAX_BATCH_RECORDS, DEFAULT_MAX_BODY_BYTES, DEFAULT_PUBLIC_PATHS, ServerSettings
from .sse import StreamHub

log = logging.getLogger(__name__)

IDLE_CHECKPOINT_WAIT = 1.0
"""Least seconds the checkpoint timer sleeps when no write is waiting for a checkpoint."""
RETRY_CHECKPOINT_WAIT = 0.05
"""Least seconds the checkpoint timer sleeps before a due issue (an interval of 0 never spins it)."""

ROUTES: tuple[Route, ...] = tuple(route for route, _handler in ENDPOINTS)
"""Every static route: method, path template, operation id (the handler's name), summary and
schemas. An app serves these and the routes of its ledger's handle operations (``app.routes``)."""


class NucleusApp:
    """The ASGI application for one ledger. Build it with :func:`create_app`."""

    def __init__(self, ledger: Ledger, settings: ServerSettings | None = None, *, owns_ledger: bool = False) -> None:
        self.ledger = ledger
        self.settings = settings or ServerSettings()
        self.owns_ledger = owns_ledger
        # The explorer's routes are served (and documented) only when it is on; its paths are public then.
        # So is /metrics (metrics = "off": not served; "public": its path is public).
        off = (*(() if self.settings.explorer else explorer.OPERATIONS),
               *(("metrics",) if self.settings.metrics == "off" else ()))
        handles, handle_schemas = handle_endpoints(ledger.runtime)
        endpoints = tuple((route, handler) for route, handler in (*ENDPOINTS, *handles) if route.name not in off)
        self.routes: tuple[Route, ...] = tuple(route for route, _handler in endpoints)
        """The static routes and those of the ledger's handle operations, in the order tried."""
        self.router = Router(self.routes)
        self._handlers: Mapping[str, Handler] = {route.name: handler for route, handler in endpoints}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.threads, thread_name_prefix="nucleus-http"
        )
        self.streams = StreamHub(
            ledger, self._executor, max_streams=self.settings.max_streams,
            poll_interval=self.settings.stream_poll_interval, keepalive=self.settings.stream_keepalive,
            max_per_principal=self.settings.max_streams_per_principal,
            poll_threads=self.settings.threads // 2,  # threads >= 2 (settings): one stays for requests
        )
        """The open entry streams (``GET /entries/stream``)."""
        self._closing = False
        self._checkpoint_timer: asyncio.Task[None] | None = None
        self._auth = auth = AuthMiddleware(
            self._dispatch,
            registry=ledger.auth,
            realm=self.settings.realm,
            public_paths=(
                *self.settings.public_paths, *(explorer.PATHS if self.settings.explorer else ()),
                *(("/metrics",) if self.settings.metrics == "public" else ()),
            ),
            max_header_bytes=self.settings.max_header_bytes,
        )
        self.api = Api(
            ledger=ledger,
            settings=self.settings,
            executor=self._executor,
            streams=self.streams,
            authenticate=functools.partial(auth.authenticate_scope, passive=True),
            openapi=wire.dumps(
                build_openapi(self.routes, title=f"Nucleus ledger {ledger.id}", schemas=handle_schemas)
            ),
            modules=module_descriptions(ledger.runtime),
        )
        access = AccessLog(
            NoSniff(DenialRewriter(auth)), route_of=self._route_template, requester_key=self.settings.log_requester_key
        )
        self._asgi = RequestMetrics(access, self._route_template, ledger.observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    # lifecycle ------------------------------------------------------------------------------
    def begin_shutdown(self) -> None:
        """End the open entry streams (each sends ``event: end`` and finishes) and refuse new ones,
        from any thread or a signal handler: ``nucleus serve`` calls it when SIGINT or SIGTERM
        arrives, before the server waits for open connections, so that streams do not hold a
        graceful stop for ``shutdown_timeout``. Call it when stopping a server that embeds the app."""
        self.streams.begin_shutdown()

    def close(self) -> None:
        """Stop the thread pool (waiting for running calls) and close the ledger if the app owns it."""
        self._closing = True
        self.streams.close()
        self._executor.shutdown(wait=True)
        self._auth.close()
        if self.owns_ledger:
            self.ledger.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.info("serving ledger %r", self.ledger.id)
                if self.ledger.checkpoint_issuer is not None and not self.ledger.read_only:
                    self._checkpoint_timer = asyncio.create_task(self._issue_checkpoints())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.begin_shutdown()
                await self._stop_checkpoint_timer()
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self.close)
                except Exception as err:  # noqa: BLE001 - reported to the server, which logs it
                    await send({"type": "lifespan.shutdown.failed", "message": f"{type(err).__name__}: {err}"})
                    return
                log.info("ledger %r closed", self.ledger.id)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _issue_checkpoints(self) -> None:
        """The checkpoint timer: sleep until the issuer says a checkpoint is due, issue it (on the
        thread pool: it reads the tree and writes the checkpoint), repeat until cancelled."""
        issuer = self.ledger.checkpoint_issuer
        assert issuer is not None
        loop = asyncio.get_running_loop()
        while True:
            due = issuer.due_in()
            if due is None:
                await asyncio.sleep(max(issuer.interval, IDLE_CHECKPOINT_WAIT))
                continue
            await asyncio.sleep(max(due, RETRY_CHECKPOINT_WAIT))
            try:
                await loop.run_in_executor(self._executor, issuer.flush)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ledger %r: issuing a due checkpoint failed; the timer tries again", self.ledger.id)
                await asyncio.sleep(max(issuer.interval, IDLE_CHECKPOINT_WAIT))

    async def _stop_checkpoint_timer(self) -> None:
        timer, self._checkpoint_timer = self._checkpoint_timer, None
        if timer is None:
            return
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer

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
            response = error_response(err, realm=self.settings.realm)
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), redact_secrets(scope.get("path", "")))
            response = INTERNAL_ERROR
        if isinstance(response, StreamResponse):
            await self._stream(response, scope, receive, send)
            return
        await send_response(send, response)

    async def _stream(self, response: StreamResponse, scope: Scope, receive: Receive, send: Send) -> None:
        """Let ``response`` write itself; a failure meanwhile is logged (the path redacted) and the
        response is finished: a 500 when it had not started, else its body is ended."""
        started = complete = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, complete
            started = True
            complete = message.get("type") == "http.response.body" and not message.get("more_body", False)
            await send(message)

        try:
            await response.stream(tracking_send, receive)
        except Exception:
            log.exception(
                "unexpected error while streaming %s %s", scope.get("method"), redact_secrets(scope.get("path", ""))
            )
            with contextlib.suppress(Exception):  # the connection itself may be what failed
                if not started:
                    await send_response(send, INTERNAL_ERROR)
                elif not complete:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _handle(self, scope: Scope, receive: Receive) -> Response:
        if self._closing:
            raise LedgerClosedError("the server is shutting down")
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else scope.get("path", "")
        context = context_from_scope(scope)
        current = current_request()
        if current is not None:
            current.oid = context.oid if context is not None else None
        route, params = self.router.match(scope.get("method", ""), path)
        if current is not None:
            current.route = route.path
        request = Request(
            scope=scope,
            params=params,
            context=context,
            read_body=functools.partial(read_body, scope, receive, limit=self.settings.max_body_bytes),
        )
        return await self._handlers[route.name](self.api, request)


    def _route_template(self, method: str, raw_path: str) -> str | None:
        """The template of the route ``method raw_path`` names (None: no such route)."""
        try:
            return self.router.match(method, raw_path)[0].path
        except NucleusError:
            return None


def create_app(ledger: Ledger, settings: ServerSettings | None = None, *, owns_ledger: bool = False) -> NucleusApp:
    """The ASGI app serving ``ledger``. With ``owns_ledger`` the app closes the ledger at the end of
    the ASGI lifespan (``nucleus serve`` does this); otherwise the caller closes it."""
    return NucleusApp(ledger, settings, owns_ledger=owns_ledger)


__all__ = [
    "DEFAULT_MAX_BATCH_RECORDS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PUBLIC_PATHS",
    "ROUTES",
    "Message",
    "NucleusApp",
    "Receive",
    "Request",
    "Response",
    "Route",
    "Router",
    "Scope",
    "Send",
    "ServerSettings",
    "access_log",
    "create_app",
    "loggable_target",
]
