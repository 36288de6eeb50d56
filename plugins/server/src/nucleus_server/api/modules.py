"""Module routes: the ledger's modules, their metadata and their handle operations.

``GET /modules`` and ``GET /modules/{id}`` describe each module, with the classes it is
(``handle_types``) and its handle operations (``operations``: name, summary, path, arguments with
their JSON Schemas, result schema), all read from the module's class by
:func:`nucleus_core.handles.operations_of`. Each operation of each module of the served ledger is
a route ``GET /modules/<id>/<operation>`` (:func:`handle_endpoints`, built when the app is built
for its ledger): its arguments are query parameters, the requester is the bearer token's context,
and the answer is ``{"result": ...}`` with entries as :func:`~nucleus_server.wire.entry_json`
bytes. Nothing here knows any particular module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nucleus_core.errors import ModuleError
from nucleus_core.handles import HandleOperation, handle_types, operations_of
from nucleus_core.module_base import ModuleMetadata
from nucleus_core.modules import LedgerRuntime

from .. import wire
from ..asgi import Request, Response, json_response, raw_response
from ..errors import NotFoundError
from ..openapi import Route
from .base import Api, Endpoint, Handler

SERVED_MODULE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Ids of modules whose handle operations are served: a path segment and part of an OpenAPI name as
they are (no escaping, so no two ids can meet in one route or component name, and every client
spells the route the same way). Operation names are ASCII identifiers already
(:data:`nucleus_core.handles.OPERATION_NAME`)."""


def operation_path(module_id: str, operation: str) -> str:
    """The route of a module's handle operation."""
    return f"/modules/{module_id}/{operation}"


def response_component(module_id: str, operation: str) -> str:
    """The name of an operation's response schema under ``components/schemas``."""
    return f"Handle.{module_id}.{operation}"


def _served_operations(runtime: LedgerRuntime, module_id: str) -> tuple[HandleOperation, ...]:
    """The handle operations of module ``module_id``; ModuleError when it has some and an id that
    is not :data:`SERVED_MODULE_ID` (the app is not built: its routes could not be named)."""
    ops = operations_of(type(runtime.get(module_id)))
    if ops and SERVED_MODULE_ID.fullmatch(module_id) is None:
        raise ModuleError(
            "has handle operations, served as /modules/<id>/<operation>, so its id must be 1-64 ASCII "
            "letters, digits, '_' or '-'",
            module_id=module_id,
        )
    return ops


def _operation_doc(module_id: str, op: HandleOperation) -> dict[str, Any]:
    return {
        "name": op.name,
        "summary": op.summary,
        "path": operation_path(module_id, op.name),
        "params": [{"name": p.name, "required": p.required, "schema": p.schema()} for p in op.params],
        "result": op.result_schema(),
    }


def module_descriptions(runtime: LedgerRuntime) -> dict[str, dict[str, Any]]:
    """What does not change while the ledger is open, per module id: ``handle_types`` and ``operations``."""
    out: dict[str, dict[str, Any]] = {}
    for module_id in runtime.list():
        cls = type(runtime.get(module_id))
        out[module_id] = {
            "handle_types": list(handle_types(cls)),
            "operations": [_operation_doc(module_id, op) for op in _served_operations(runtime, module_id)],
        }
    return out


def _module_dict(meta: ModuleMetadata, described: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "id": meta.id,
        "version": meta.version,
        "state": meta.state.value,
        "streams": list(meta.streams),
        "depends_on": list(meta.depends_on),
        "resource_kind": meta.resource_kind,
        **described.get(meta.id, {"handle_types": [], "operations": []}),
    }


async def modules(api: Api, request: Request) -> Response:
    request.requester  # noqa: B018
    docs = [_module_dict(m, api.modules) for m in api.ledger.runtime.metadata()]
    return json_response(200, {"modules": docs})


async def module(api: Api, request: Request) -> Response:
    request.requester  # noqa: B018
    wanted = request.params["module_id"]
    for meta in api.ledger.runtime.metadata():
        if meta.id == wanted:
            return json_response(200, _module_dict(meta, api.modules))
    raise NotFoundError(f"no module {wanted[:80]!r} on this ledger")


def _handler(module_id: str, op: HandleOperation) -> Handler:
    async def call(api: Api, request: Request) -> Response:
        ctx = request.requester
        kwargs = op.parse_args(request.query_items())
        method = getattr(api.ledger.runtime.get(module_id), op.name)

        def work() -> bytes:
            value = method(context=ctx, **kwargs)
            try:
                encoded = op.encode(value, entry=wire.RawJSON.entry)
            except TypeError as err:
                raise ModuleError(f"handle operation {op.name} returned what its result type does not allow: {err}",
                                  module_id=module_id) from None
            return wire.dumps_raw({"result": encoded})

        return raw_response(200, await api.run(work))

    return call


def handle_endpoints(runtime: LedgerRuntime) -> tuple[tuple[Endpoint, ...], dict[str, dict[str, Any]]]:
    """The routes of every handle operation of ``runtime``'s modules, with their handlers, and
    the response schemas they name (for ``components/schemas``)."""
    endpoints: list[Endpoint] = []
    schemas: dict[str, dict[str, Any]] = {}
    for module_id in runtime.list():
        for op in _served_operations(runtime, module_id):
            component = response_component(module_id, op.name)
            schemas[component] = {
                "type": "object",
                "required": ["result"],
                "additionalProperties": False,
                "properties": {"result": op.result_schema()},
            }
            parameters = tuple(
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "schema": p.schema(),
                    **({"description": f"default {p.default!r}"} if p.default is not None else {}),
                }
                for p in op.params
            )
            route = Route(
                "GET", operation_path(module_id, op.name), f"handle.{module_id}.{op.name}",
                f"{module_id}.{op.name}: {op.summary}", response=component, parameters=parameters,
            )
            endpoints.append((route, _handler(module_id, op)))
    return tuple(endpoints), schemas


ENDPOINTS: tuple[Endpoint, ...] = (
    (Route("GET", "/modules", "modules", "The ledger's modules and their metadata", response="ModuleList"), modules),
    (Route("GET", "/modules/{module_id}", "module", "One module's metadata", response="ModuleMetadata"), module),
)
