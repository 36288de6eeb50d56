"""Entry routes: append one record or a batch, read by hash or record id, query, verify."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from nucleus_core.context import RequestContext
from nucleus_core.errors import QueryError, RecordValidationError, ValidationError
from nucleus_core.records import Entry, Record

from .. import wire
from ..asgi import Request, Response, json_response, raw_response
from ..errors import MalformedRequestError, NotFoundError, RequestTooLargeError
from ..openapi import Route
from .base import Api, Endpoint, filters_from_query


async def append(api: Api, request: Request) -> Response:
    ctx = request.requester
    raw = await request.read_body()

    def work() -> bytes:
        record = Record.from_dict(wire.loads_body(raw))
        return wire.entry_json(api.ledger.append(record, ctx))

    return raw_response(201, await api.run(work))


async def append_batch(api: Api, request: Request) -> Response:
    ctx = request.requester
    raw = await request.read_body()
    limit = api.settings.max_batch_records

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
        return wire.entries_json(api.ledger.append_batch(records, ctx))

    return raw_response(201, await api.run(work))


async def get(api: Api, request: Request) -> Response:
    return await _one_entry(api, request, api.ledger.get, "hash", "no entry with this hash")


async def get_by_id(api: Api, request: Request) -> Response:
    return await _one_entry(api, request, api.ledger.get_by_id, "record_id", "no record with this id")


async def _one_entry(
    api: Api, request: Request, lookup: Callable[[str, RequestContext], Entry | None], param: str, missing: str
) -> Response:
    ctx = request.requester
    entry = await api.run(lookup, request.params[param], ctx)
    if entry is None:
        raise NotFoundError(f"{missing} is visible to the requester")
    return raw_response(200, wire.entry_json(entry))


async def query(api: Api, request: Request) -> Response:
    ctx = request.requester
    filters = filters_from_query(request.query_items(), allow_kind=False)
    return await _query(api, filters, ctx)


async def query_json(api: Api, request: Request) -> Response:
    ctx = request.requester
    filters = await request.json()
    if not isinstance(filters, dict):
        raise QueryError("filters must be a JSON object", field="filters")
    proof_size = filters.pop("proof_tree_size", None)
    if proof_size is not None and (type(proof_size) is not int or not 1 <= proof_size < 2**63):
        raise MalformedRequestError("must be a positive integer", field="proof_tree_size")
    return await _query(api, filters, ctx, proof_size)


async def _query(api: Api, filters: dict[str, Any], ctx: RequestContext, proof_size: int | None = None) -> Response:
    def work() -> bytes:
        result = api.ledger.query(filters, ctx)
        proof = None
        if proof_size is not None:
            # One proof for the page's entries in the tree of proof_size (those it holds): a
            # verifying client needs no second request (docs/TRANSPARENCY.md).
            covered = [e for e in result.entries if e.seq <= proof_size]
            seqs = [e.seq for e in covered]
            hashes: list[bytes] | None = []
            if covered:
                try:
                    hashes = api.ledger.multi_inclusion_proof(covered, proof_size, ctx)
                except ValidationError as err:
                    raise MalformedRequestError(str(err), field="proof_tree_size") from None
            if hashes is None:  # an entry became unreadable since the query read it: no proof
                seqs, hashes = [], []
            proof = {"tree_size": proof_size, "seqs": seqs, "hashes": [h.hex() for h in hashes]}
        return wire.entries_json(result.entries, next_cursor=result.next_cursor, paged=True, proof=proof)

    return raw_response(200, await api.run(work))


async def verify(api: Api, request: Request) -> Response:
    ctx = request.requester
    if api.verify_lock is None:
        api.verify_lock = asyncio.Lock()
    async with api.verify_lock:  # one full scan at a time
        report = await api.run(functools.partial(api.ledger.verify, context=ctx))
    return json_response(200, report.to_dict())


ENDPOINTS: tuple[Endpoint, ...] = (
    (Route("POST", "/entries", "append", "Append one record", request="Record", response="Entry", status=201), append),
    (
        Route(
            "POST",
            "/entries/batch",
            "append_batch",
            "Append records atomically (all or none)",
            request="Batch",
            response="EntryList",
            status=201,
        ),
        append_batch,
    ),
    (
        Route(
            "GET",
            "/entries",
            "query",
            "Query entries the requester may read (cursor pagination)",
            response="EntryPage",
            query=("stream", "record_id", "since", "until", "limit", "cursor"),
        ),
        query,
    ),
    (
        Route(
            "POST",
            "/entries/query",
            "query_json",
            "Query with a JSON filter object",
            request="QueryFilters",
            response="EntryPage",
        ),
        query_json,
    ),
    (Route("GET", "/entries/{hash}", "get", "The entry with this hash", response="Entry"), get),
    (Route("GET", "/records/{record_id}", "get_by_id", "The entry of this record id", response="Entry"), get_by_id),
    (Route("GET", "/verify", "verify", "Re-verify the whole stored chain", response="VerificationReport"), verify),
)
