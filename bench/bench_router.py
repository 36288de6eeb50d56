"""The router decision: our hand-made router against Starlette's, on the same handlers.

Three ASGI apps serve one in-memory ledger (``auth.dev`` + ``ual``, 1,000 entries) with the same
handlers (``nucleus_server.api``), the same auth middleware, access log and denial rewriter; only
the routing differs:

* ``ours``: ``create_app(ledger)``, ``nucleus_server.routing.Router`` and our plumbing;
* ``starlette``: a ``starlette.routing.Router`` with one ``Route`` per path, endpoints written the
  idiomatic way (``async def endpoint(request) -> Response``, Starlette's Request and Response);
* ``starlette-asgi``: the same Starlette router with raw-ASGI endpoints that call our plumbing (the
  least Starlette can cost).

Part 1 calls each app in process (no network, no server) for five requests: a public path
(``GET /health``), an authenticated ``GET /records/{id}``, a query (``GET /entries?stream=..&
limit=10``), ``POST /entries`` (a fresh record each time) and an authenticated 404. Rounds are
interleaved (ours, starlette, starlette-asgi, ours, ...); the median round is reported, with the
ratio to ``ours`` in the same run. Part 2 isolates the routing layer: no auth, no ledger, a handler
answering a constant, against a bare ASGI app answering the same bytes (per-request overhead =
time per request minus the bare app's). Part 3 (when ``wrk`` is on the PATH) serves ``ours`` and
``starlette`` with uvicorn on loopback and loads each with wrk.

Starlette is a bench-only tool here (``pip install starlette``); no distribution depends on it.

    python bench/bench_router.py [--n 2000] [--rounds 5] [--wrk-seconds 5] [--no-wrk]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NUCLEUS_ENV", "development")  # dev tokens: the cheapest parser

from nucleus_server import create_app
from nucleus_server.api import ENDPOINTS, Handler
from nucleus_server.app import NucleusApp
from nucleus_server.asgi import INTERNAL_ERROR, Request, Response, error_response, read_body, send_response
from nucleus_server.errors import NotFoundError
from nucleus_server.middleware import AccessLog, DenialRewriter
from nucleus_server.routing import Router
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route as StarletteRoute
from starlette.routing import Router as StarletteRouter

from nucleus_core import Ledger, Record, create_ledger
from nucleus_core.asgi import AuthMiddleware, context_from_scope
from nucleus_core.errors import NucleusError

ROOT = "oid:bench:user:root"
TOKEN = f"Bearer dev:{ROOT}"
AUTH = [(b"authorization", TOKEN.encode())]
ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


# --- the apps -------------------------------------------------------------------------------------
def make_ledger(entries: int) -> Ledger:
    ledger = create_ledger(id="bench-router", storage="memory://", plugins=["auth.dev", "ual"], admins=[ROOT])
    ctx = ledger.auth.authenticate(TOKEN.split(" ", 1)[1])
    for start in range(0, entries, 500):
        ledger.append_batch(
            [Record(id=f"r-{i}", stream="notes", timestamp=1, payload={"n": i}) for i in range(start, start + 500)],
            ctx,
        )
    return ledger


def ours(ledger: Ledger) -> NucleusApp:
    return create_app(ledger)


def _not_found_app(realm: str) -> ASGI:
    async def not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send_response(send, error_response(NotFoundError(f"no route {scope['path'][:200]!r}"), realm=realm))

    return not_found


def starlette_stack(ledger: Ledger, *, idiomatic: bool) -> tuple[ASGI, Callable[[], None]]:
    """The same handlers, middleware and settings as ``create_app``, routed by Starlette."""
    nucleus = create_app(ledger)  # for its Api (thread pool, settings, OpenAPI bytes)
    api, realm, limit = nucleus.api, nucleus.settings.realm, nucleus.settings.max_body_bytes
    by_path: dict[str, dict[str, Handler]] = {}
    for route, handler in ENDPOINTS:
        by_path.setdefault(route.path, {})[route.method] = handler

    async def call(handlers: dict[str, Handler], scope: dict[str, Any], receive: Any, params: Any) -> Response:
        request = Request(
            scope=scope,
            params=params,
            context=context_from_scope(scope),
            read_body=functools.partial(read_body, scope, receive, limit=limit),
        )
        try:
            return await handlers[scope["method"]](api, request)
        except NucleusError as err:
            return error_response(err, realm=realm)
        except Exception:
            return INTERNAL_ERROR

    def endpoint(handlers: dict[str, Handler]) -> Any:
        if idiomatic:

            async def starlette_endpoint(request: StarletteRequest) -> StarletteResponse:
                response = await call(handlers, request.scope, request.receive, request.path_params)
                headers = {"cache-control": "no-store", **dict(response.headers)}
                return StarletteResponse(response.body, response.status, headers, media_type="application/json")

            return starlette_endpoint

        class AsgiEndpoint:
            async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
                await send_response(send, await call(handlers, scope, receive, scope["path_params"]))

        return AsgiEndpoint()

    routes = [StarletteRoute(path, endpoint(h), methods=list(h)) for path, h in by_path.items()]
    router = StarletteRouter(routes=routes, default=_not_found_app(realm))
    auth = AuthMiddleware(router, registry=ledger.auth, realm=realm, public_paths=nucleus.settings.public_paths)
    app = AccessLog(DenialRewriter(auth))

    def close() -> None:
        auth.close()
        nucleus.close()

    return app, close


# --- in-process calls -----------------------------------------------------------------------------
def scope_for(method: str, path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": list(headers or []),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call_once(app: ASGI, scope: dict, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def scenarios() -> dict[str, tuple[dict, Callable[[int], bytes] | None]]:
    """name -> (scope, body maker or None)."""
    json_headers = [*AUTH, (b"content-type", b"application/json")]

    def record(i: int) -> bytes:
        return json.dumps(
            {"id": f"b-{time.monotonic_ns()}-{i}", "stream": "notes", "timestamp": 1, "payload": {}}
        ).encode()

    return {
        "GET /health (public)": (scope_for("GET", "/health"), None),
        "GET /records/{id} (auth)": (scope_for("GET", "/records/r-7", headers=AUTH), None),
        "GET /entries?stream&limit=10": (scope_for("GET", "/entries", b"stream=notes&limit=10", AUTH), None),
        "POST /entries": (scope_for("POST", "/entries", headers=json_headers), record),
        "GET /nope (404, auth)": (scope_for("GET", "/nope", headers=AUTH), None),
    }


async def timed(app: ASGI, scope: dict, make_body: Callable[[int], bytes] | None, n: int) -> float:
    """Seconds per request over ``n`` sequential calls."""
    bodies = [make_body(i) for i in range(n)] if make_body else [b""] * n
    start = time.perf_counter()
    for body in bodies:
        await call_once(app, scope, body)
    return (time.perf_counter() - start) / n


async def check_equivalent(apps: dict[str, ASGI]) -> None:
    """Every app answers each scenario with the same status and (but for appends) the same body."""
    for name, (scope, make_body) in scenarios().items():
        answers = {
            label: await call_once(app, scope, make_body(0) if make_body else b"") for label, app in apps.items()
        }
        statuses = {status for status, _ in answers.values()}
        bodies = {body for _, body in answers.values()}
        assert len(statuses) == 1, (name, answers)
        assert make_body is not None or len(bodies) == 1, (name, answers)


async def part_full(apps: dict[str, ASGI], n: int, rounds: int) -> dict[str, dict[str, float]]:
    await check_equivalent(apps)
    results: dict[str, dict[str, list[float]]] = {}
    for name, (scope, make_body) in scenarios().items():
        for app in apps.values():  # warm-up
            await timed(app, scope, make_body, max(n // 10, 50))
        for _ in range(rounds):
            for label, app in apps.items():
                results.setdefault(name, {}).setdefault(label, []).append(await timed(app, scope, make_body, n))
    return {name: {label: statistics.median(v) for label, v in by.items()} for name, by in results.items()}


# --- the routing layer alone ----------------------------------------------------------------------
CONSTANT = Response(status=200, body=b'{"status":"ok"}')


async def constant_handler(api: Any, request: Request) -> Response:
    return CONSTANT


def routing_only_apps() -> dict[str, ASGI]:
    """No auth, no ledger: each app routes the request and answers a constant through the plumbing."""
    from nucleus_server import ROUTES

    router = Router(ROUTES)

    async def ours_routing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            _route, params = router.match(scope["method"], scope["raw_path"].decode("latin-1"))
            request = Request(
                scope=scope,
                params=params,
                context=None,
                read_body=functools.partial(read_body, scope, receive, limit=1 << 20),
            )
            response = await constant_handler(None, request)
        except NucleusError as err:
            response = error_response(err, realm="bench")
        await send_response(send, response)

    def star(idiomatic: bool) -> ASGI:
        async def endpoint(request: StarletteRequest) -> StarletteResponse:
            ours_request = Request(
                scope=request.scope, params=request.path_params, context=None, read_body=request.body
            )
            response = await constant_handler(None, ours_request)
            return StarletteResponse(
                response.body, response.status, {"cache-control": "no-store"}, media_type="application/json"
            )

        class AsgiEndpoint:
            async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
                request = Request(
                    scope=scope,
                    params=scope["path_params"],
                    context=None,
                    read_body=functools.partial(read_body, scope, receive, limit=1 << 20),
                )
                await send_response(send, await constant_handler(None, request))

        paths: dict[str, list[str]] = {}
        for route in ROUTES:
            paths.setdefault(route.path, []).append(route.method)
        handler = endpoint if idiomatic else AsgiEndpoint()
        return StarletteRouter(
            routes=[StarletteRoute(p, handler, methods=m) for p, m in paths.items()], default=_not_found_app("bench")
        )

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send_response(send, CONSTANT)

    return {"bare": bare, "ours": ours_routing, "starlette": star(True), "starlette-asgi": star(False)}


def routing_scenarios() -> dict[str, dict]:
    return {
        "GET /health (first route)": scope_for("GET", "/health"),
        "GET /records/{id} (param)": scope_for("GET", "/records/r-7"),
        "GET /acl/entries (last route)": scope_for("GET", "/acl/entries"),
        "GET /nope (404)": scope_for("GET", "/nope"),
    }


async def part_routing(n: int, rounds: int) -> dict[str, dict[str, float]]:
    apps = routing_only_apps()
    results: dict[str, dict[str, list[float]]] = {}
    for name, scope in routing_scenarios().items():
        statuses = {label: (await call_once(app, scope))[0] for label, app in apps.items() if label != "bare"}
        assert len(set(statuses.values())) == 1, (name, statuses)
        for app in apps.values():
            await timed(app, scope, None, n // 10)
        for _ in range(rounds):
            for label, app in apps.items():
                results.setdefault(name, {}).setdefault(label, []).append(await timed(app, scope, None, n))
    return {name: {label: statistics.median(v) for label, v in by.items()} for name, by in results.items()}


# --- uvicorn + wrk ----------------------------------------------------------------------------------
def serve(kind: str, port: int, entries: int) -> None:
    import uvicorn

    ledger = make_ledger(entries)
    app: Any = ours(ledger) if kind == "ours" else starlette_stack(ledger, idiomatic=True)[0]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not come up")


LUA_POST = """
counter = 0
prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local body = '{"id":"w-' .. prefix .. '-' .. counter .. '","stream":"notes","timestamp":1,"payload":{}}'
  return wrk.format("POST", "/entries", {["authorization"] = "%s", ["content-type"] = "application/json"}, body)
end
"""


def wrk_rate(url: str, seconds: int, *, headers: bool, lua: str | None) -> float:
    cmd = ["wrk", "-t1", "-c8", f"-d{seconds}s"]
    if headers:
        cmd += ["-H", f"authorization: {TOKEN}"]
    if lua:
        cmd += ["-s", lua]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out and not url.endswith("/nope"):  # a refused request would count as served
        raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
    line = next(line for line in out.splitlines() if line.startswith("Requests/sec:"))
    return float(line.split()[1])


def part_wrk(entries: int, seconds: int, rounds: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(LUA_POST % TOKEN)
        targets = {
            "GET /health (public)": ("/health", False, None),
            "GET /records/{id} (auth)": ("/records/r-7", True, None),
            "GET /entries?stream&limit=10": ("/entries?stream=notes&limit=10", True, None),
            "POST /entries": ("/", False, str(lua)),
            "GET /nope (404, auth)": ("/nope", True, None),
        }
        results: dict[str, dict[str, list[float]]] = {}
        for _ in range(rounds):
            for kind in ("ours", "starlette"):
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--serve", kind, "--port", str(port), "--entries", str(entries)]
                )
                try:
                    wait_ready(port, proc)
                    for name, (path, headers, script) in targets.items():
                        rate = wrk_rate(f"http://127.0.0.1:{port}{path}", seconds, headers=headers, lua=script)
                        results.setdefault(name, {}).setdefault(kind, []).append(rate)
                finally:
                    proc.terminate()
                    proc.wait(30)
    return {name: {k: statistics.median(v) for k, v in by.items()} for name, by in results.items()}


# --- report -------------------------------------------------------------------------------------------
def table(title: str, figures: dict[str, dict[str, float]], labels: list[str], base: str) -> None:
    print(f"\n{title}")
    print("| request | " + " | ".join(labels) + " | " + " | ".join(f"{x}/{base}" for x in labels if x != base) + " |")
    print("|---" * (1 + len(labels) + len(labels) - 1) + "|")
    for name, by in figures.items():
        cells = [f"{1 / by[x]:,.0f} req/s ({by[x] * 1e6:.1f} us)" for x in labels]
        ratios = [f"{by[base] / by[x]:.2f}" for x in labels if x != base]
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="requests per app, scenario and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--wrk-rounds", type=int, default=3)
    parser.add_argument("--no-wrk", action="store_true")
    parser.add_argument("--serve", choices=["ours", "starlette"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.entries)
        return

    import starlette

    print(f"python {sys.version.split()[0]}, starlette {starlette.__version__}, n={args.n}, rounds={args.rounds}")
    ledger = make_ledger(args.entries)
    app_ours = ours(ledger)
    app_star, close_star = starlette_stack(ledger, idiomatic=True)
    app_asgi, close_asgi = starlette_stack(ledger, idiomatic=False)
    apps: dict[str, ASGI] = {"ours": app_ours, "starlette": app_star, "starlette-asgi": app_asgi}
    labels = list(apps)
    try:
        full = asyncio.run(part_full(apps, args.n, args.rounds))
        routing = asyncio.run(part_routing(args.n * 5, args.rounds))
    finally:
        app_ours.close()
        close_star()
        close_asgi()
        ledger.close()
    table(
        "In process, full stack (auth, handlers, ledger); rate and time per request, median round; ratio = b/a "
        "throughput",
        full,
        labels,
        "ours",
    )
    table(
        "In process, routing layer alone (constant handler); ratio = b/a throughput", routing, ["bare", *labels], "ours"
    )
    print("\nper-request overhead over the bare app (us):")
    for name, by in routing.items():
        print(f"  {name}: " + ", ".join(f"{x} {(by[x] - by['bare']) * 1e6:.1f}" for x in labels))
    if args.no_wrk or shutil.which("wrk") is None:
        print("\n(wrk not run)")
        return
    rates = part_wrk(args.entries, args.wrk_seconds, args.wrk_rounds)
    print(f"\nuvicorn on loopback, wrk -t1 -c8 -d{args.wrk_seconds}s, median of {args.wrk_rounds} runs")
    print("| request | ours | starlette | starlette/ours |\n|---|---|---|---|")
    for name, by in rates.items():
        print(
            f"| {name} | {by['ours']:,.0f} req/s | {by['starlette']:,.0f} req/s | {by['starlette'] / by['ours']:.2f} |"
        )


if __name__ == "__main__":
    main()
