"""The ledger explorer: a static page verifying the ledger in the browser (docs/SERVER.md, "The explorer").

Three fixed routes, each one file of this distribution's package data (``nucleus_server/explorer/``,
built from ``clients/typescript/explorer`` by ``npm run build:explorer``): ``GET /explorer`` (the
page), ``GET /explorer/app.js`` and ``GET /explorer/style.css``. No path is ever mapped to a file
name, so there is nothing to traverse: ``/explorer/..%2Fapp.py`` or ``/explorer/other.js`` match no
route (404 with a token, 401 without, as every path that is not public). The files hold no ledger
data and the handlers read no requester: the paths are public whenever the explorer is on
(``[server] explorer``, default true), and every data request the page makes carries the bearer token
its user typed. Each answer forbids inline script and any connection but to this server (a
Content-Security-Policy), content sniffing and framing.
"""

from __future__ import annotations

import functools
from importlib import resources

from ..asgi import Request, Response
from ..openapi import Route
from .base import Api, Endpoint

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""No inline script or style, no eval, no connection but to this server, no framing."""

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
)

HTML = "text/html; charset=utf-8"
JAVASCRIPT = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"

ASSETS: dict[str, tuple[str, str]] = {
    "explorer_page": ("index.html", HTML),
    "explorer_script": ("app.js", JAVASCRIPT),
    "explorer_style": ("style.css", CSS),
}
"""Operation id -> (file in ``nucleus_server/explorer/``, content type)."""

OPERATIONS = frozenset(ASSETS)
"""The explorer's operation ids (left out of the router and the OpenAPI document when it is off)."""


@functools.cache
def asset(name: str) -> bytes:
    """The bytes of the packaged explorer file ``name`` (read once)."""
    return resources.files("nucleus_server").joinpath("explorer", name).read_bytes()


async def _serve(api: Api, operation: str) -> Response:
    name, content_type = ASSETS[operation]
    body = await api.run(asset, name)
    return Response(status=200, body=body, headers=SECURITY_HEADERS, content_type=content_type)


async def explorer_page(api: Api, request: Request) -> Response:
    return await _serve(api, "explorer_page")


async def explorer_script(api: Api, request: Request) -> Response:
    return await _serve(api, "explorer_script")


async def explorer_style(api: Api, request: Request) -> Response:
    return await _serve(api, "explorer_style")


ENDPOINTS: tuple[Endpoint, ...] = (
    (
        Route(
            "GET", "/explorer", "explorer_page",
            "The ledger explorer's page: it verifies entries and checkpoints in the browser with the TypeScript "
            "client (public: it holds no data; 404 when [server] explorer = false)",
            response="ExplorerPage", media_type=HTML,
        ),
        explorer_page,
    ),
    (
        Route(
            "GET", "/explorer/app.js", "explorer_script", "The explorer's script (public)",
            response="ExplorerScript", media_type=JAVASCRIPT,
        ),
        explorer_script,
    ),
    (
        Route(
            "GET", "/explorer/style.css", "explorer_style", "The explorer's style sheet (public)",
            response="ExplorerStyle", media_type=CSS,
        ),
        explorer_style,
    ),
)

PATHS: tuple[str, ...] = tuple(route.path for route, _handler in ENDPOINTS)
"""The explorer's paths, public whenever it is on."""
