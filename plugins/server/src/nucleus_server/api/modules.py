"""Module routes: the ledger's modules and their metadata."""

from __future__ import annotations

from typing import Any

from ..asgi import Request, Response, json_response
from ..errors import NotFoundError
from ..openapi import Route
from .base import Api, Endpoint


def _module_dict(meta: Any) -> dict[str, Any]:
    return {
        "id": meta.id,
        "version": meta.version,
        "state": meta.state.value,
        "streams": list(meta.streams),
        "depends_on": list(meta.depends_on),
        "resource_kind": meta.resource_kind,
    }


async def modules(api: Api, request: Request) -> Response:
    request.requester  # noqa: B018
    return json_response(200, {"modules": [_module_dict(m) for m in api.ledger.runtime.metadata()]})


async def module(api: Api, request: Request) -> Response:
    request.requester  # noqa: B018
    wanted = request.params["module_id"]
    for meta in api.ledger.runtime.metadata():
        if meta.id == wanted:
            return json_response(200, _module_dict(meta))
    raise NotFoundError(f"no module {wanted[:80]!r} on this ledger")


ENDPOINTS: tuple[Endpoint, ...] = (
    (Route("GET", "/modules", "modules", "The ledger's modules and their metadata", response="ModuleList"), modules),
    (Route("GET", "/modules/{module_id}", "module", "One module's metadata", response="ModuleMetadata"), module),
)
