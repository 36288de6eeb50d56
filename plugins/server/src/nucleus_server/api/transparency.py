"""Transparency routes: the signed checkpoints, inclusion and consistency proofs (docs/TRANSPARENCY.md).

Checkpoints and consistency proofs reveal no record content: their paths are public by default
(``ServerSettings.public_paths``). An inclusion proof is a read of its entry: it needs a requester
who may read that entry, and is refused exactly like ``GET /entries/{hash}`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nucleus_core.errors import ValidationError
from nucleus_core.hashing import is_hash

from .. import wire
from ..asgi import TEXT_PLAIN, Request, Response, json_response
from ..errors import MalformedRequestError, NotFoundError
from ..openapi import Route
from .base import Api, Endpoint

MAX_SIZE_DIGITS = 16

MAX_PROOF_BATCH = 1000
"""Most entries in one ``POST /proof/inclusion`` (a full query page); more is a 400."""


def query_ints(request: Request, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The query string's parameters, each given once, each a non-negative integer, except
    ``hash`` (64 lowercase hex characters) when it is among them; ``required`` ones must be there
    (:class:`MalformedRequestError`, 400, for any other query string)."""
    allowed = (*required, *optional)
    values: dict[str, Any] = {}
    for key, value in request.query_items():
        if key not in allowed:
            raise MalformedRequestError(
                f"unknown query parameter {key[:64]!r} (this route takes {', '.join(allowed)})", field="query"
            )
        if key in values:
            raise MalformedRequestError("given more than once", field=key)
        if key == "hash":
            if not is_hash(value):
                raise MalformedRequestError("must be 64 lowercase hex characters", field=key)
            values[key] = value
        elif not value.isascii() or not value.isdigit() or len(value) > MAX_SIZE_DIGITS:
            raise MalformedRequestError("must be a non-negative integer", field=key)
        else:
            values[key] = int(value)
    for key in required:
        if key not in values:
            raise MalformedRequestError("is required", field=key)
    return values


def _as_bad_request(fn: Callable[[], Any]) -> Any:
    """``fn()``, with the ledger's :class:`ValidationError` of a size or index answered as 400."""
    try:
        return fn()
    except ValidationError as err:
        raise MalformedRequestError(str(err), field=err.field) from None


def _text(note: str) -> Response:
    return Response(status=200, body=note.encode("utf-8"), content_type=TEXT_PLAIN)


async def checkpoint(api: Api, request: Request) -> Response:
    # Public by default: a checkpoint reveals the log's size and root, no record content; the
    # witnesses' cosignature lines follow the ledger's signatures.
    params = query_ints(request, (), ("size", "cosigned"))
    ledger = api.ledger
    if ledger.checkpoint_issuer is None:
        raise NotFoundError("this ledger signs no checkpoints (no checkpoint signing key is configured)")
    note = await api.run(
        _as_bad_request, lambda: ledger.checkpoint(params.get("size"), cosigned=params.get("cosigned"))
    )
    return _text(note)


async def checkpoint_witnesses(api: Api, request: Request) -> Response:
    # Public by default, like the verifier keys: the witnesses' URLs, keys and what each cosigned.
    ledger = api.ledger
    settings = ledger.config.checkpoint
    if not settings.witnesses:
        raise NotFoundError("this ledger has no witnesses configured")
    status = await api.run(ledger.witness_status)
    return json_response(200, {"quorum": settings.witness_quorum, "witnesses": [w.to_json() for w in status]})


async def inclusion_proof(api: Api, request: Request) -> Response:
    ctx = request.requester
    params = query_ints(request, ("size",), ("seq", "hash"))
    if ("seq" in params) == ("hash" in params):
        raise MalformedRequestError("give exactly one of seq and hash", field="seq")
    by_seq = "seq" in params
    target = params["seq"] if by_seq else params["hash"]
    proof = await api.run(_as_bad_request, lambda: api.ledger.inclusion_proof(target, params["size"], ctx))
    if proof is None:
        # The words of GET /entries/{hash}: the same whether the entry is absent or unreadable.
        raise NotFoundError(f"no entry with this {'seq' if by_seq else 'hash'} is visible to the requester")
    return json_response(200, proof.to_json())


async def inclusion_proofs(api: Api, request: Request) -> Response:
    # The batch of GET /proof/inclusion: the same read of each entry, so an entry the requester may
    # not read is answered null exactly like an absent one (no existence leak).
    ctx = request.requester
    raw = await request.read_body()

    def work() -> Any:
        doc = wire.loads_body(raw)
        keys = set(doc) if isinstance(doc, dict) else set()
        if keys not in ({"tree_size", "seqs"}, {"tree_size", "hashes"}):
            raise MalformedRequestError(
                'the body is {"tree_size": N, "seqs": [...]} or {"tree_size": N, "hashes": [...]}', field="body"
            )
        by = "seqs" if "seqs" in doc else "hashes"
        size, targets = doc["tree_size"], doc[by]
        if type(size) is not int or not 1 <= size < 2**63:
            raise MalformedRequestError("must be a positive integer", field="tree_size")
        if not isinstance(targets, list) or not targets:
            raise MalformedRequestError("must be a non-empty list", field=by)
        if len(targets) > MAX_PROOF_BATCH:
            raise MalformedRequestError(
                f"at most {MAX_PROOF_BATCH} entries per request, got {len(targets)}", field=by
            )
        for item in targets:
            if by == "seqs" and (type(item) is not int or not 1 <= item <= size):
                raise MalformedRequestError(f"each seq is an integer from 1 to tree_size {size}", field=by)
            if by == "hashes" and not (isinstance(item, str) and is_hash(item)):
                raise MalformedRequestError("each hash is 64 lowercase hex characters", field=by)
        proofs = _as_bad_request(lambda: api.ledger.inclusion_proofs(targets, size, ctx))
        return {"tree_size": size, "proofs": [None if p is None else p.to_json() for p in proofs]}

    return json_response(200, await api.run(work))


async def consistency_proof(api: Api, request: Request) -> Response:
    # Public by default (no requester on a public path): the proof holds tree hashes only.
    params = query_ints(request, ("from", "to"))
    ctx = request.context
    proof = await api.run(_as_bad_request, lambda: api.ledger.consistency_proof(params["from"], params["to"], ctx))
    return json_response(200, proof.to_json())


ENDPOINTS: tuple[Endpoint, ...] = (
    (
        Route(
            "GET", "/checkpoint", "checkpoint",
            "The latest signed checkpoint with its witnesses' cosignatures, or the one issued at size; with "
            "cosigned=K only one that K of the configured witnesses cosigned (public by default; 404 when none)",
            response="Checkpoint", media_type=TEXT_PLAIN, query=("size", "cosigned"),
        ),
        checkpoint,
    ),
    (
        Route(
            "GET", "/checkpoint/witnesses", "checkpoint_witnesses",
            "The witness policy (quorum) and each witness: name, URL, vkey, the size it last cosigned, its "
            "last error (public by default; 404 when no witness is configured)",
            response="Witnesses",
        ),
        checkpoint_witnesses,
    ),
    (
        Route(
            "GET", "/proof/inclusion", "inclusion_proof",
            "RFC 9162 inclusion proof of an entry (by seq or hash) in the tree of size entries; "
            "refused like a read of the entry",
            response="InclusionProof", query=("seq", "hash", "size"),
        ),
        inclusion_proof,
    ),
    (
        Route(
            "POST", "/proof/inclusion", "inclusion_proofs",
            f"RFC 9162 inclusion proofs of up to {MAX_PROOF_BATCH} entries (by seqs or hashes) in the tree of "
            "tree_size entries, in order; null for an entry the requester may not read or that is absent",
            request="InclusionProofBatch", response="InclusionProofs",
        ),
        inclusion_proofs,
    ),
    (
        Route(
            "GET", "/proof/consistency", "consistency_proof",
            "RFC 9162 consistency proof from the tree of from entries to that of to (public by default)",
            response="ConsistencyProof", query=("from", "to"),
        ),
        consistency_proof,
    ),
)
