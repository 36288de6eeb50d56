"""HTTP requests as events for the served ledger's observers (:mod:`nucleus_core.observe`): the
outermost ASGI layer, so that the requests the authentication middleware refuses are counted too."""

from __future__ import annotations

import time
from collections.abc import Callable

from nucleus_core.observe import HttpRequest, Observers

from .asgi import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
"""The route label of a request no route matched (404, 405): never its path."""


class RequestMetrics:
    """Tells ``observers`` of every HTTP request: method, route *template* (``/records/{id}``, found
    with ``route_of(method, raw_path)``, the app's own router; never the raw path), status and
    duration. With no observer, it only passes the request on."""

    def __init__(self, app: ASGIApp, route_of: Callable[[str, str], str | None], observers: Observers) -> None:
        self.app = app
        self.route_of = route_of
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.observers:
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, status_send)
        finally:
            method = scope.get("method", "")
            raw = scope.get("raw_path")
            path = raw.decode("latin-1") if isinstance(raw, bytes) else scope.get("path", "")
            route = self.route_of(method, path) or UNMATCHED
            self.observers.emit(HttpRequest(method, route, status, time.perf_counter() - began))
