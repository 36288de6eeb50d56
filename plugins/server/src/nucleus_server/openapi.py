"""The route table's records and the OpenAPI 3.1 document generated from them.

The router and ``/openapi.json`` read the same :class:`Route` records, so a route cannot exist
without being documented (a test checks the served document against the routes too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from nucleus_core import __version__

PUBLIC_OPERATIONS = frozenset({"health", "openapi", "checkpoint_keys", "checkpoint", "consistency_proof"})
"""Operations that answer without a requester (when their path is a configured public path)."""
ALWAYS_PUBLIC_OPERATIONS = frozenset({"explorer_page", "explorer_script", "explorer_style"})
"""Operations whose paths are public whenever they are served (the explorer's static files)."""


@attrs.frozen
class Route:
    """One HTTP route: ``method`` and ``path`` (``{name}`` marks a path parameter), ``name`` (the
    operation id and handler), a summary, the request and response schema names, the success
    status and the query parameters it takes (``query``: names documented in this module;
    ``parameters``: full OpenAPI parameter objects, for the routes of module handle operations)."""

    method: str
    path: str
    name: str
    summary: str
    request: str | None = attrs.field(default=None, kw_only=True)
    response: str = attrs.field(default="Empty", kw_only=True)
    status: int = attrs.field(default=200, kw_only=True)
    query: tuple[str, ...] = attrs.field(default=(), kw_only=True)
    media_type: str = attrs.field(default="application/json", kw_only=True)
    parameters: tuple[dict[str, Any], ...] = attrs.field(default=(), kw_only=True, eq=False)

    def segments(self) -> tuple[str, ...]:
        """The path split at ``/`` (without the leading empty segment)."""
        return tuple(self.path.split("/")[1:])

    def path_params(self) -> list[str]:
        return [s[1:-1] for s in self.segments() if s.startswith("{")]


_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_OID = {"type": "string", "pattern": "^oid:[^:]+:[^:]+:.+$"}
_INT = {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}
_HASH_HEX = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "a SHA-256 tree hash, hex"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "the code of a nucleus_core.errors class"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    "seq": {"type": "integer"},
                    "reason": {"type": "string"},
                    "record_id": {"type": "string"},
                    "module_id": {"type": "string"},
                    "plugin_name": {"type": "string"},
                    "distribution": {"type": "string"},
                    "trusted_size": {"type": "integer"},
                    "presented_size": {"type": "integer"},
                },
            }
        },
    },
    "Health": {"type": "object", "properties": {"status": {"const": "ok"}}},
    "Metrics": {
        "type": "string",
        "description": "the Prometheus text exposition format, version 0.0.4 (OpenMetrics when the Accept header "
        "asks for application/openmetrics-text); every metric is listed in docs/OPERATIONS.md",
    },
    "VerifierKeys": {
        "type": "string",
        "description": "the checkpoint verifier keys, one per line, each <name>+<key ID hex>+<base64(0x01 || "
        "Ed25519 public key)> (c2sp.org/signed-note) followed by a newline",
    },
    "Checkpoint": {
        "type": "string",
        "description": "a c2sp.org/tlog-checkpoint (origin, tree size, base64 root hash) in a c2sp.org/signed-note: "
        "the body, a blank line, one signature line per signing key, then one c2sp.org/tlog-cosignature line per "
        "witness that cosigned it",
    },
    "Witnesses": {
        "type": "object",
        "required": ["quorum", "witnesses"],
        "properties": {
            "quorum": {**_INT, "minimum": 1, "description": "how many witnesses must cosign a checkpoint"},
            "witnesses": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "url", "vkey", "cosigned_size", "submitted_size", "last_error"],
                    "properties": {
                        "name": {"type": "string"},
                        "url": {"type": "string"},
                        "vkey": {"type": "string", "description": "its cosignature verifier key (type 0x04)"},
                        "cosigned_size": {**_INT, "description": "the largest size it cosigned (0: none)"},
                        "submitted_size": {"type": ["integer", "null"], "description": "the size last sent to it"},
                        "last_error": {"type": ["string", "null"], "description": "why it gave no cosignature last"},
                    },
                },
            },
        },
    },
    "InclusionProof": {
        "type": "object",
        "required": ["leaf_index", "tree_size", "hashes"],
        "properties": {
            "leaf_index": {**_INT, "description": "the entry's seq - 1"},
            "tree_size": {**_INT, "minimum": 1},
            "hashes": {"type": "array", "items": _HASH_HEX, "description": "RFC 9162 2.1.3.1 audit path, bottom up"},
        },
    },
    "InclusionProofBatch": {
        "type": "object",
        "required": ["tree_size"],
        "additionalProperties": False,
        "description": "exactly one of seqs and hashes, at most 1000 items",
        "properties": {
            "tree_size": {**_INT, "minimum": 1},
            "seqs": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {**_INT, "minimum": 1}},
            "hashes": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _HASH},
        },
    },
    "InclusionProofs": {
        "type": "object",
        "required": ["tree_size", "proofs"],
        "properties": {
            "tree_size": {**_INT, "minimum": 1},
            "proofs": {
                "type": "array",
                "items": {"oneOf": [{"$ref": "#/components/schemas/InclusionProof"}, {"type": "null"}]},
                "description": "one per requested entry, in order; null when absent or not readable",
            },
        },
    },
    "ConsistencyProof": {
        "type": "object",
        "required": ["from", "to", "hashes"],
        "properties": {
            "from": {**_INT, "minimum": 1},
            "to": {**_INT, "minimum": 1},
            "hashes": {"type": "array", "items": _HASH_HEX, "description": "RFC 9162 2.1.4.1 consistency proof"},
        },
    },
    "OpenAPI": {"type": "object"},
    "ExplorerPage": {"type": "string", "description": "the explorer's HTML page (docs/SERVER.md, \"The explorer\")"},
    "ExplorerScript": {"type": "string", "description": "the explorer's ES module, built from the TypeScript client"},
    "ExplorerStyle": {"type": "string", "description": "the explorer's style sheet"},
    "Requester": {
        "type": "object",
        "properties": {
            "oid": _OID,
            "source": {"type": "string"},
            "role": {"type": ["string", "null"]},
            "scopes": {"type": "array", "items": {"type": "string"}},
        },
    },
    "LedgerInfo": {
        "type": "object",
        "properties": {
            "ledger_id": {"type": "string"},
            "length": _INT,
            "head": {"oneOf": [_HASH, {"type": "null"}]},
            "persistent": {"type": "boolean"},
            "read_only": {"type": "boolean"},
        },
    },
    "Record": {
        "type": "object",
        "required": ["id", "stream", "timestamp", "payload"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
            "stream": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,63}$"},
            "timestamp": {"type": "integer", "minimum": 1, "maximum": 2**53 - 1, "description": "Unix ms"},
            "payload": {"type": ["object", "array"]},
            "meta": {"type": "object"},
        },
    },
    "Entry": {
        "type": "object",
        "required": ["seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "hash": _HASH,
            "prev_hash": _HASH,
            "version": {"type": "integer", "enum": [1, 2], "description": "entry format version (docs/FORMAT.md)"},
            "appender": {
                "type": ["string", "null"],
                "description": "OID of the principal that appended the entry (in its hash); null for a version-1 entry",
            },
            "auth_source": {
                "type": ["string", "null"],
                "description": "the token parser that authenticated the appender (cli, system); null for version 1",
            },
            "committed_at": {
                "type": ["integer", "null"], "minimum": 1, "maximum": 2**53 - 1,
                "description": "Unix ms when the ledger took the entry; never decreases; null for version 1",
            },
            "record": {"$ref": "#/components/schemas/Record"},
        },
    },
    "Batch": {
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {"records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}},
    },
    "EntryList": {
        "type": "object",
        "properties": {"entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}},
    },
    "EntryPage": {
        "type": "object",
        "properties": {
            "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}},
            "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page"},
            "proof": {
                "type": "object",
                "description": "only when the query gave proof_tree_size: one proof that the page's entries "
                "with seq <= tree_size (seqs) are in that tree (tlog_verify.verify_multi_inclusion)",
                "required": ["tree_size", "seqs", "hashes"],
                "properties": {
                    "tree_size": {**_INT, "minimum": 1},
                    "seqs": {"type": "array", "items": {**_INT, "minimum": 1}},
                    "hashes": {"type": "array", "items": _HASH_HEX},
                },
            },
        },
    },
    "EntryEvents": {
        "type": "string",
        "description": "Server-Sent Events: 'event: entry' (id: the seq, data: an Entry on one line), "
        "'event: sync' (id: the seq up to which everything readable was sent, data: {\"seq\": N}), "
        "'event: end' (data: {\"reason\": \"shutdown\" or \"closed\"}), 'event: error' (data: an Error), "
        "': keep-alive' comments; reconnect with Last-Event-ID (docs/SERVER.md, \"Entry streams\")",
    },
    "QueryFilters": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "stream": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "record_ids": {"type": "array", "items": {"type": "string"}},
            "since": _INT,
            "until": _INT,
            "limit": {"type": "integer", "minimum": 1},
            "cursor": {"type": "string"},
            "proof_tree_size": {
                **_INT, "minimum": 1,
                "description": "POST /entries/query only: answer a proof of the page in the tree of this size",
            },
        },
    },
    "VerificationReport": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "entries_checked": _INT,
            "first_bad_seq": {"type": ["integer", "null"]},
            "reason": {"type": ["string", "null"]},
            "head_hash": {"oneOf": [_HASH, {"type": "null"}]},
        },
    },
    "ModuleMetadata": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "version": {"type": "string"},
            "state": {"enum": ["registered", "initialized", "started", "stopped", "failed"]},
            "streams": {"type": "array", "items": {"type": "string"}},
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "resource_kind": {"type": ["string", "null"]},
            "handle_types": {
                "type": "array",
                "items": {"type": "string"},
                "description": "qualified names of the module's classes that are Modules, most derived first",
            },
            "operations": {"type": "array", "items": {"$ref": "#/components/schemas/HandleOperation"}},
        },
    },
    "HandleOperation": {
        "type": "object",
        "required": ["name", "summary", "path", "params", "result"],
        "properties": {
            "name": {"type": "string"},
            "summary": {"type": "string"},
            "path": {"type": "string", "description": "its route: GET /modules/<id>/<name>"},
            "params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "required", "schema"],
                    "properties": {
                        "name": {"type": "string", "description": "the query parameter"},
                        "required": {"type": "boolean"},
                        "schema": {"type": "object", "description": "its JSON Schema"},
                    },
                },
            },
            "result": {"type": "object", "description": "the JSON Schema of the answer's result"},
        },
    },
    "ModuleList": {
        "type": "object",
        "properties": {"modules": {"type": "array", "items": {"$ref": "#/components/schemas/ModuleMetadata"}}},
    },
    "Grant": {
        "type": "object",
        "required": ["resource_kind", "resource_id", "principal_oid"],
        "properties": {
            "resource_kind": {"type": "string"},
            "resource_id": {"type": "string", "description": "or * for every resource of the kind"},
            "principal_oid": _OID,
            "scope": {"enum": ["create", "read", "write", "full"]},
            "granted_by": {"type": ["string", "null"], "description": "set by the server from the requester"},
            "expires_at": {"type": ["integer", "null"], "description": "Unix ms, exclusive"},
        },
    },
    "Grants": {
        "type": "object",
        "required": ["grants"],
        "properties": {"grants": {"type": "array", "items": {"$ref": "#/components/schemas/Grant"}}},
    },
    "Revoked": {"type": "object", "properties": {"revoked": {"type": "integer"}}},
    "AclCheck": {
        "type": "object",
        "required": ["action", "resource"],
        "additionalProperties": False,
        "properties": {
            "action": {"enum": ["create", "read", "write", "full"]},
            "resource": {
                "type": "object",
                "required": ["kind", "id"],
                "properties": {"kind": {"type": "string"}, "id": {"type": "string"}},
            },
            "principal": {"allOf": [_OID], "description": "default: the requester; others need full on the resource"},
        },
    },
    "AclDecision": {"type": "object", "properties": {"allowed": {"type": "boolean"}}},
}

_ERROR_STATUSES = {
    "400": "Malformed request (not JSON, wrong shape, bad query parameter, token in the query string)",
    "401": "No or invalid bearer token (see WWW-Authenticate)",
    "403": "Authenticated, but access control refuses (error=insufficient_scope)",
    "404": "No such route, entry, record, module or checkpoint (or not visible to the requester)",
    "409": "Conflict: duplicate record id, read-only ledger",
    "413": "Body, record or batch too large",
    "422": "Invalid record, query, grant or value (the message names the field)",
    "503": "Storage unavailable, authentication keys unavailable, or shutting down",
}
_QUERY_DOCS = {
    "stream": "a stream name (repeat for several)",
    "record_id": "a record id (repeat for several)",
    "since": "records with timestamp >= since (Unix ms)",
    "until": "records with timestamp < until (Unix ms)",
    "limit": "page size",
    "cursor": "next_cursor of the previous page",
    "after": "the seq after which the stream starts (default 0; a Last-Event-ID header wins)",
    "kind": "a resource kind (repeat for several)",
    "size": "a tree size (number of entries from seq 1)",
    "cosigned": "how many of the configured witnesses must have cosigned the checkpoint (0 to their number)",
    "seq": "the entry's seq (give seq or hash)",
    "hash": "the entry's hash, 64 lowercase hex characters (give seq or hash)",
    "from": "the older tree size",
    "to": "the newer tree size",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def build_openapi(
    routes: tuple[Route, ...], *, title: str, schemas: Mapping[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing ``routes``; ``schemas`` are added to the components
    (the response schemas of the served ledger's module handle operations)."""
    paths: dict[str, dict[str, Any]] = {}
    error_response = {"content": {"application/json": {"schema": _ref("Error")}}}
    for route in routes:
        parameters: list[dict[str, Any]] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in route.path_params()
        ]
        multi = {"stream", "record_id", "kind"}
        parameters += [
            {
                "name": q,
                "in": "query",
                "required": False,
                "description": _QUERY_DOCS[q],
                "schema": {"type": "array", "items": {"type": "string"}} if q in multi else {"type": "string"},
                **({"explode": True} if q in multi else {}),
            }
            for q in route.query
        ]
        parameters += [dict(p) for p in route.parameters]
        operation: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary,
            "responses": {
                str(route.status): {
                    "description": "success",
                    "content": {route.media_type: {"schema": _ref(route.response)}},
                },
                **{code: {"description": text, **error_response} for code, text in _ERROR_STATUSES.items()},
            },
        }
        if parameters:
            operation["parameters"] = parameters
        if route.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(route.request)}},
            }
        if route.name in PUBLIC_OPERATIONS:
            operation["security"] = [{}, {"bearer": []}]
        elif route.name in ALWAYS_PUBLIC_OPERATIONS:
            operation["security"] = [{}]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **(schemas or {})},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
