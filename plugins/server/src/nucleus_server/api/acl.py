"""Access-control routes: give, revoke and check grants, list the entries a requester may read.

They answer only when the ledger has an access-control provider (the ``ual`` plugin); otherwise
404 ``acl_not_configured``.
"""

from __future__ import annotations

from typing import Any

from nucleus_core.access import AclAdmin, AuthenticatedPolicy, GrantRecord
from nucleus_core.context import READ, require_scope
from nucleus_core.errors import AccessDeniedError, ConfigurationError, ValidationError

from .. import wire
from ..asgi import Request, Response, json_response, raw_response
from ..errors import MalformedRequestError, NotFoundError, RequestTooLargeError
from ..openapi import Route
from .base import Api, Endpoint, filters_from_query


class _AclNotConfiguredError(NotFoundError, ConfigurationError):
    """The ledger has no access-control provider (404 over HTTP, a ConfigurationError like ``ledger.acl``)."""

    code = "acl_not_configured"


def _acl(api: Api) -> AclAdmin:
    if isinstance(api.ledger.policy, AuthenticatedPolicy):
        raise _AclNotConfiguredError("this ledger has no access-control provider (enable the ual plugin)")
    return api.ledger.acl


def _grant_dict(grant: GrantRecord) -> dict[str, Any]:
    return grant.to_dict()


async def _grants_body(api: Api, request: Request) -> list[dict[str, Any]]:
    doc = await request.json()
    if not isinstance(doc, dict) or set(doc) != {"grants"} or not isinstance(doc["grants"], list):
        raise MalformedRequestError('this route takes {"grants": [grant, ...]}', field="body")
    if len(doc["grants"]) > api.settings.max_batch_records:
        raise RequestTooLargeError(f"at most {api.settings.max_batch_records} grants per request", field="grants")
    if not all(isinstance(g, dict) for g in doc["grants"]):
        raise ValidationError("every grant must be a JSON object", field="grants")
    return list(doc["grants"])


async def acl_grant(api: Api, request: Request) -> Response:
    ctx = request.requester
    acl = _acl(api)
    grants = await _grants_body(api, request)
    given = await api.run(acl.grant, grants, ctx)
    return json_response(201, {"grants": [_grant_dict(g) for g in given]})


async def acl_revoke(api: Api, request: Request) -> Response:
    ctx = request.requester
    acl = _acl(api)
    grants = await _grants_body(api, request)
    return json_response(200, {"revoked": await api.run(acl.revoke, grants, ctx)})


async def acl_check(api: Api, request: Request) -> Response:
    ctx = require_scope(request.requester, READ)  # the answer is access state: a read
    acl = _acl(api)
    doc = await request.json()
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

    return json_response(200, {"allowed": await api.run(work)})


async def acl_list(api: Api, request: Request) -> Response:
    ctx = request.requester
    acl = _acl(api)
    filters = filters_from_query(request.query_items(), allow_kind=True)

    def work() -> bytes:
        result = acl.list(ctx, filters)
        return wire.entries_json(result.entries, next_cursor=result.next_cursor, paged=True)

    return raw_response(200, await api.run(work))


ENDPOINTS: tuple[Endpoint, ...] = (
    (
        Route(
            "POST",
            "/acl/grant",
            "acl_grant",
            "Give grants (needs full on each resource)",
            request="Grants",
            response="Grants",
            status=201,
        ),
        acl_grant,
    ),
    (
        Route(
            "POST",
            "/acl/revoke",
            "acl_revoke",
            "Revoke grants (needs full on each resource)",
            request="Grants",
            response="Revoked",
        ),
        acl_revoke,
    ),
    (
        Route(
            "POST",
            "/acl/check",
            "acl_check",
            "Whether a principal may act on a resource",
            request="AclCheck",
            response="AclDecision",
        ),
        acl_check,
    ),
    (
        Route(
            "GET",
            "/acl/entries",
            "acl_list",
            "Entries the requester may read, optionally by resource kind",
            response="EntryPage",
            query=("stream", "record_id", "since", "until", "limit", "cursor", "kind"),
        ),
        acl_list,
    ),
)
