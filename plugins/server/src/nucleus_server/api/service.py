"""Service routes: liveness, the OpenAPI document, who the requester is, the ledger's head."""

from __future__ import annotations

from typing import Any

from ..asgi import TEXT_PLAIN, Request, Response, json_response, raw_response, text_response
from ..errors import NotFoundError
from ..openapi import Route
from .base import Api, Endpoint


async def health(api: Api, request: Request) -> Response:
    await api.run(api.ledger.length)
    return json_response(200, {"status": "ok"})


async def openapi(api: Api, request: Request) -> Response:
    return raw_response(200, api.openapi)


async def whoami(api: Api, request: Request) -> Response:
    ctx = request.requester
    return json_response(200, {"oid": ctx.oid, "source": ctx.source, "role": ctx.role, "scopes": sorted(ctx.scopes)})


async def ledger_info(api: Api, request: Request) -> Response:
    request.requester  # noqa: B018 - the ledger's state is for authenticated requesters only
    ledger = api.ledger

    def info() -> dict[str, Any]:
        head = ledger.storage.head()
        return {
            "ledger_id": ledger.id,
            "length": head.seq if head else 0,
            "head": head.hash if head else None,
            "persistent": ledger.has_storage(),
            "read_only": ledger.read_only,
        }

    return json_response(200, await api.run(info))


async def checkpoint_keys(api: Api, request: Request) -> Response:
    # Public: verifier keys reveal no record content (DESIGN.md, transparency rule 4).
    vkeys = api.ledger.checkpoint_keys()
    if not vkeys:
        raise NotFoundError("this ledger has no checkpoint signing key configured")
    return text_response(200, vkeys)


ENDPOINTS: tuple[Endpoint, ...] = (
    (
        Route("GET", "/health", "health", "Liveness and storage reachability (public by default)", response="Health"),
        health,
    ),
    (
        Route("GET", "/openapi.json", "openapi", "This OpenAPI document (public by default)", response="OpenAPI"),
        openapi,
    ),
    (
        Route(
            "GET", "/checkpoint/key", "checkpoint_keys",
            "The checkpoint verifier keys, one per line (public by default; 404 when none is configured)",
            response="VerifierKeys", media_type=TEXT_PLAIN,
        ),
        checkpoint_keys,
    ),
    (Route("GET", "/whoami", "whoami", "The authenticated requester", response="Requester"), whoami),
    (Route("GET", "/ledger", "ledger_info", "Ledger id, length and head hash", response="LedgerInfo"), ledger_info),
)
