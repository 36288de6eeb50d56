"""``RemoteLedger``: a ledger served by ``nucleus serve``, used like an embedded one.

Methods, return types (:class:`~nucleus_core.Entry`, :class:`~nucleus_core.QueryResult`,
:class:`~nucleus_core.VerificationReport`, ...) and errors (rebuilt from the server's error code
into the same :mod:`nucleus_core.errors` classes) match :class:`~nucleus_core.Ledger`, so code can
switch between the two by configuration::

    ledger = RemoteLedger("http://127.0.0.1:8080", token=token) if remote else create_ledger(...)
    ledger.append(record, ctx)

Who is asking is the bearer token: the client's ``token``, or the ``token`` of the
:class:`~nucleus_core.RequestContext` passed to a call. A context naming a principal other than
the one its bearer token authenticates is refused before the call is made. Every entry received
is checked: its hash must match its seq, previous hash and record under the ledger's id.

Needs httpx: ``pip install "nucleus-server[client]"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx

from nucleus_core.access import AclAdmin
from nucleus_core.context import RequestContext, require_context
from nucleus_core.errors import (
    AuthenticationError,
    ConfigurationError,
    LedgerClosedError,
    MissingRequesterError,
    NucleusError,
    StorageUnavailableError,
    ValidationError,
)
from nucleus_core.modules import ModuleMetadata, ModuleState
from nucleus_core.query import QueryFilters, QueryResult
from nucleus_core.records import Entry, Record
from nucleus_core.tlog_verify import MalformedNoteError, parse_vkey
from nucleus_core.tree import ConsistencyProof, InclusionProof
from nucleus_core.verify import VerificationReport

from . import wire
from .errors import NotFoundError, rebuild_error

if TYPE_CHECKING:
    # Types only: the client imports nucleus-ual (an optional dependency) when an ACL call needs it.
    from nucleus_ual import Grant, ListResult, Resource

DEFAULT_TIMEOUT = 30.0

QueryParams = list[tuple[str, str | int | float | bool | None]]
"""Query parameters of a request, in order (repeated names allowed)."""


class RemoteLedger:
    """A ledger behind a Nucleus HTTP server. Thread-safe (one pooled httpx client); a context manager.

    ``url``: the server's base URL. ``token``: the default bearer token. ``ledger_id``: the ledger's
    id when known (otherwise asked from the server once, for hash checks). ``timeout``: seconds per
    request. ``transport``: an httpx transport (tests, custom TLS).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ledger_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"url must be an http:// or https:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self._token = token
        self._id = ledger_id
        self._identities: dict[str, str] = {}
        self._closed = False
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers={"accept": "application/json"},
            follow_redirects=False,
        )

    # plumbing -------------------------------------------------------------------------------
    def _bearer(self, context: RequestContext | None) -> str:
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        if context is None:
            if self._token is None:
                raise MissingRequesterError(
                    "no requester: give RemoteLedger(token=...) or a RequestContext carrying its token"
                )
            return self._token
        ctx = require_context(context)
        token = ctx.token or self._token
        if token is None:
            raise MissingRequesterError(f"the context of {ctx.oid} carries no token and the client has none")
        known = self._identities.get(token)
        if known is None:
            known = self._whoami(token).oid
            self._identities[token] = known
        if known != ctx.oid:
            raise AuthenticationError(
                f"the context names {ctx.oid} but its bearer token authenticates {known}; "
                "refusing to act as another principal"
            )
        return token

    def _request(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        body: Any = None,
        params: QueryParams | None = None,
    ) -> Any:
        response = self._send(method, path, token, body=body, params=params)
        try:
            return json.loads(response.content) if response.content else None
        except ValueError:
            return None

    def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        body: Any = None,
        params: QueryParams | None = None,
    ) -> httpx.Response:
        """The server's response to the request; an error status raises the rebuilt error."""
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        content = None
        if body is not None:
            content = wire.dumps(body)
            headers["content-type"] = "application/json"
        try:
            response = self._http.request(method, path, content=content, headers=headers, params=params)
        except httpx.TransportError as err:
            raise StorageUnavailableError(
                f"cannot reach the ledger server at {self.url}: {type(err).__name__}"
            ) from err
        if response.status_code >= 400:
            try:
                document = json.loads(response.content) if response.content else None
            except ValueError:
                document = None
            raise rebuild_error(document, status=response.status_code)
        return response

    def _whoami(self, token: str) -> RequestContext:
        doc = self._request("GET", "/whoami", token)
        scopes = doc.get("scopes")
        return RequestContext(
            oid=doc["oid"],
            source=doc["source"],
            role=doc.get("role"),
            **({} if scopes is None else {"scopes": scopes}),
        )

    def _ledger_id(self, token: str) -> str:
        if self._id is None:
            self._id = str(self._request("GET", "/ledger", token)["ledger_id"])
        return self._id

    def _entry(self, doc: Any, token: str) -> Entry:
        return wire.entry_from_json(doc, ledger_id=self._ledger_id(token))

    def _entries(self, docs: Any, token: str) -> list[Entry]:
        if not isinstance(docs, list):
            raise NucleusError("the server sent no entry list")
        return [self._entry(d, token) for d in docs]

    # identity -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The ledger id (asked from the server once, with the client's token)."""
        return self._ledger_id(self._bearer(None))

    def whoami(self, context: RequestContext | None = None) -> RequestContext:
        """The requester the server authenticates the bearer token as (without the token)."""
        token = self._token if context is None else (require_context(context).token or self._token)
        if token is None:
            raise MissingRequesterError("no bearer token to ask about")
        return self._whoami(token)

    def checkpoint_keys(self) -> tuple[str, ...]:
        """The server's checkpoint verifier keys (``GET /checkpoint/key``), each checked to be a
        well-formed Ed25519 vkey. A public path by default: the client's token is sent when it has
        one. Compare them with keys obtained another way before trusting them: whoever answers
        for the server chooses what this returns."""
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        response = self._send("GET", "/checkpoint/key", self._token)
        if not response.headers.get("content-type", "").startswith("text/plain"):
            raise NucleusError("the server's /checkpoint/key did not answer text/plain")
        vkeys = tuple(line for line in response.content.decode("utf-8", "replace").split("\n") if line)
        for vkey in vkeys:
            try:
                parse_vkey(vkey)
            except MalformedNoteError as err:
                raise NucleusError(f"the server sent a malformed verifier key: {err}") from None
        return vkeys

    def checkpoint(self, size: int | None = None) -> str:
        """The server's latest signed checkpoint (``GET /checkpoint``), or the one issued at
        ``size`` (:class:`~nucleus_core.errors.NotFoundError` when none was), as text. Public by
        default; the client's token is sent when it has one. Verify it with keys obtained another
        way (:func:`~nucleus_core.tlog_verify.verify_checkpoint`) before trusting it."""
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        if size is not None and (type(size) is not int or size < 0):
            raise ValidationError(f"size must be a non-negative integer, not {size!r}", field="size")
        params: QueryParams = [] if size is None else [("size", size)]
        response = self._send("GET", "/checkpoint", self._token, params=params)
        if not response.headers.get("content-type", "").startswith("text/plain"):
            raise NucleusError("the server's /checkpoint did not answer text/plain")
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise NucleusError("the server's checkpoint is not UTF-8") from None

    def inclusion_proof(
        self, seq_or_hash: int | str, tree_size: int, context: RequestContext | None = None
    ) -> InclusionProof | None:
        """The RFC 9162 inclusion proof of the entry (by seq or hex hash) in the tree of
        ``tree_size`` entries (``GET /proof/inclusion``); None when the entry is absent or the
        requester may not read it, as :meth:`get` answers. Unverified: check it against a
        verified checkpoint (:func:`~nucleus_core.tlog_verify.verify_inclusion`)."""
        if isinstance(seq_or_hash, str):
            target: tuple[str, str | int | float | bool | None] = ("hash", seq_or_hash)
        elif type(seq_or_hash) is int:
            target = ("seq", seq_or_hash)
        else:
            raise ValidationError("give an entry's seq (an integer) or its hash (hex)", field="seq")
        if type(tree_size) is not int:
            raise ValidationError(f"tree_size must be an integer, not {type(tree_size).__name__}", field="tree_size")
        token = self._bearer(context)
        try:
            doc = self._request("GET", "/proof/inclusion", token, params=[target, ("size", tree_size)])
        except NotFoundError:
            return None
        return _checked(InclusionProof.from_json, doc, "/proof/inclusion")

    def consistency_proof(
        self, old_size: int, new_size: int, context: RequestContext | None = None
    ) -> ConsistencyProof:
        """The RFC 9162 consistency proof from the tree of ``old_size`` entries to that of
        ``new_size`` (``GET /proof/consistency``, public by default). Unverified: check it between
        two verified checkpoints (:func:`~nucleus_core.tlog_verify.verify_consistency`)."""
        for name, value in (("old_size", old_size), ("new_size", new_size)):
            if type(value) is not int:
                raise ValidationError(f"{name} must be an integer, not {type(value).__name__}", field=name)
        if self._closed:
            raise LedgerClosedError(f"RemoteLedger for {self.url} is closed")
        token = self._token if context is None else self._bearer(context)
        doc = self._request("GET", "/proof/consistency", token, params=[("from", old_size), ("to", new_size)])
        return _checked(ConsistencyProof.from_json, doc, "/proof/consistency")

    # writes ---------------------------------------------------------------------------------
    def append(self, record: Record, context: RequestContext | None = None) -> Entry:
        """Append one record; returns its entry."""
        if not isinstance(record, Record):
            raise ValidationError(f"append takes a Record, got {type(record).__name__}", field="record")
        token = self._bearer(context)
        return self._entry(self._request("POST", "/entries", token, body=record.to_dict()), token)

    def append_batch(self, records: Sequence[Record], context: RequestContext | None = None) -> list[Entry]:
        """Append records atomically, in order: all are committed or none is."""
        if isinstance(records, (Record, str, bytes, Mapping)):
            raise ValidationError("append_batch takes a list of Record", field="records")
        batch = list(records)
        for i, record in enumerate(batch):
            if not isinstance(record, Record):
                raise ValidationError(f"item {i} is a {type(record).__name__}, not a Record", field="records")
        token = self._bearer(context)
        doc = self._request("POST", "/entries/batch", token, body={"records": [r.to_dict() for r in batch]})
        return self._entries(doc["entries"], token)

    # reads ----------------------------------------------------------------------------------
    def get(self, entry_hash: str, context: RequestContext | None = None) -> Entry | None:
        """The entry with this hash, or None when absent or not readable by the requester."""
        if not isinstance(entry_hash, str) or not entry_hash:
            raise ValidationError("must be 64 lowercase hex characters", field="hash")
        return self._get_one(f"/entries/{_segment(entry_hash)}", context)

    def get_by_id(self, record_id: str, context: RequestContext | None = None) -> Entry | None:
        """The entry of this record id, or None when absent or not readable by the requester."""
        if not isinstance(record_id, str) or not record_id:
            raise ValidationError("must be a non-empty string", field="record_id")
        return self._get_one(f"/records/{_segment(record_id)}", context)

    def _get_one(self, path: str, context: RequestContext | None) -> Entry | None:
        token = self._bearer(context)
        try:
            doc = self._request("GET", path, token)
        except NotFoundError:
            return None
        return self._entry(doc, token)

    def query(
        self, filters: QueryFilters | Mapping[str, Any] | None = None, context: RequestContext | None = None
    ) -> QueryResult:
        """Entries matching ``filters`` that the requester may read, a page at a time in seq order."""
        token = self._bearer(context)
        doc = self._request("POST", "/entries/query", token, body=_filters_doc(filters))
        return QueryResult(entries=self._entries(doc["entries"], token), next_cursor=doc.get("next_cursor"))

    def iter_entries(self, context: RequestContext | None = None, *, from_seq: int = 1) -> Iterator[Entry]:
        """Every entry the requester may read from ``from_seq`` on, in seq order, a page at a time."""
        cursor = f"s{from_seq - 1}" if from_seq > 1 else None
        while True:
            page = self.query({"limit": 1000, **({"cursor": cursor} if cursor else {})}, context)
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # chain state ------------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._request("GET", "/ledger", self._bearer(None))
        return info

    def length(self) -> int:
        """Number of entries, as committed on the server now."""
        return int(self._info()["length"])

    def latest_hash(self) -> str | None:
        """Hash of the latest entry, or None for an empty ledger."""
        head = self._info()["head"]
        return str(head) if head is not None else None

    def has_storage(self) -> bool:
        """True when the server's storage is persistent."""
        return bool(self._info()["persistent"])

    @property
    def read_only(self) -> bool:
        return bool(self._info()["read_only"])

    def verify(self) -> VerificationReport:
        """Have the server re-verify the whole stored chain."""
        doc = self._request("GET", "/verify", self._bearer(None))
        return VerificationReport(**doc)

    # modules and access control ---------------------------------------------------------------
    @property
    def modules(self) -> RemoteModules:
        """The server ledger's modules: ``list()`` and ``metadata()``."""
        return RemoteModules(self)

    @property
    def runtime(self) -> RemoteModules:
        """Same as :attr:`modules` (a remote ledger has no module handles)."""
        return RemoteModules(self)

    @property
    def acl(self) -> RemoteAcl:
        """The access-control API (grant, revoke, check, require, list) of the server's ledger."""
        return RemoteAcl(self)

    # lifecycle ----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection pool. Idempotent."""
        if not self._closed:
            self._closed = True
            self._http.close()

    def __enter__(self) -> RemoteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteModules:
    """The modules of a remote ledger: list and metadata."""

    def __init__(self, ledger: RemoteLedger) -> None:
        self._ledger = ledger

    def metadata(self) -> list[ModuleMetadata]:
        """Id, version, state, streams, dependencies and resource kind of every module."""
        doc = self._ledger._request("GET", "/modules", self._ledger._bearer(None))
        return [
            ModuleMetadata(
                id=m["id"],
                version=m["version"],
                state=ModuleState(m["state"]),
                streams=tuple(m["streams"]),
                depends_on=tuple(m["depends_on"]),
                resource_kind=m.get("resource_kind"),
            )
            for m in doc["modules"]
        ]

    def list(self) -> list[str]:
        """Ids of the ledger's modules."""
        return [m.id for m in self.metadata()]


class RemoteAcl:
    """The UAL API over HTTP, with the UAL's types (needs ``nucleus-ual`` installed for them)."""

    def __init__(self, ledger: RemoteLedger) -> None:
        self._ledger = ledger

    @staticmethod
    def _ual() -> Any:
        try:
            import nucleus_ual
        except ImportError as err:
            raise ConfigurationError("RemoteLedger.acl returns nucleus-ual types; pip install nucleus-ual") from err
        return nucleus_ual

    def grant(self, grants: Iterable[Any], context: RequestContext | None = None) -> list[Grant]:
        """Give grants (``Grant`` objects or dicts); returns the grants as recorded."""
        ual = self._ual()
        token = self._ledger._bearer(context)
        body = {"grants": [_grant_doc(g) for g in grants]}
        doc = self._ledger._request("POST", "/acl/grant", token, body=body)
        grant_type: type[Grant] = ual.Grant
        return [grant_type.from_dict(g) for g in doc["grants"]]

    def revoke(self, grants: Iterable[Any], context: RequestContext | None = None) -> int:
        """Revoke grants of (principal, kind, resource id); returns how many were revoked."""
        token = self._ledger._bearer(context)
        body = {"grants": [_grant_doc(g) for g in grants]}
        return int(self._ledger._request("POST", "/acl/revoke", token, body=body)["revoked"])

    def check(
        self, principal: RequestContext | str, action: str, resource: tuple[str, str] | Mapping[str, str] | Any
    ) -> bool:
        """Whether ``principal`` may do ``action`` on ``resource``. For a context, its token (or the
        client's) asks about itself; for an OID string the client's requester asks about that
        principal, which needs ``full`` on the resource."""
        body: dict[str, Any] = {"action": str(action), "resource": _resource_doc(resource)}
        if isinstance(principal, RequestContext):
            token = self._ledger._bearer(principal)
        else:
            token = self._ledger._bearer(None)
            body["principal"] = principal
        return bool(self._ledger._request("POST", "/acl/check", token, body=body)["allowed"])

    def require(self, principal: RequestContext | str, action: str, resource: Any) -> Resource:
        """The resource if ``principal`` may do ``action`` on it; AccessDeniedError otherwise."""
        from nucleus_core.errors import AccessDeniedError

        res = _resource_doc(resource)
        if not self.check(principal, action, resource):
            raise AccessDeniedError(f"{action} access to {res['kind']}/{res['id']} denied")
        resource_type: type[Resource] = self._ual().Resource
        return resource_type(kind=res["kind"], id=res["id"])

    def list(self, context: RequestContext | None = None, filters: Mapping[str, Any] | None = None) -> ListResult:
        """Entries the requester may read (query filters plus ``kind``), a page at a time."""
        ual = self._ual()
        token = self._ledger._bearer(context)
        doc = self._ledger._request("GET", "/acl/entries", token, params=_query_params(dict(filters or {})))
        entries = self._ledger._entries(doc["entries"], token)
        result_type: type[ListResult] = ual.ListResult
        return result_type(entries=entries, next_cursor=doc.get("next_cursor"))


def _segment(value: str) -> str:
    """``value`` as one path segment: every reserved character escaped, and ``.``/``..`` too (URL
    normalisation would otherwise remove them as dot-segments)."""
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _filters_doc(filters: QueryFilters | Mapping[str, Any] | None) -> dict[str, Any]:
    if filters is None:
        return {}
    if isinstance(filters, QueryFilters):
        return {
            k: v
            for k, v in {
                "stream": filters.stream,
                "record_ids": filters.record_ids,
                "since": filters.since,
                "until": filters.until,
                "limit": filters.limit,
                "cursor": filters.cursor,
            }.items()
            if v is not None
        }
    if not isinstance(filters, Mapping):
        from nucleus_core.errors import QueryError

        raise QueryError(f"filters must be QueryFilters or a mapping, got {type(filters).__name__}")
    return dict(filters)


_P = TypeVar("_P")


def _checked(parse: Callable[[object], _P], doc: Any, path: str) -> _P:
    """``parse(doc)``: a server answering another shape is a :class:`NucleusError` naming ``path``."""
    try:
        return parse(doc)
    except ValidationError as err:
        raise NucleusError(f"the server's {path} answered a malformed proof: {err}") from None


def _query_params(filters: dict[str, Any]) -> QueryParams:
    params: QueryParams = []
    for key, value in filters.items():
        name = "record_id" if key == "record_ids" else key
        values = value if isinstance(value, (list, tuple)) else [value]
        params.extend((name, str(v)) for v in values)
    return params


def _grant_doc(grant: Any) -> dict[str, Any]:
    doc = grant.to_dict() if hasattr(grant, "to_dict") else dict(grant)
    return {k: v for k, v in doc.items() if k != "granted_by" and v is not None}


def _resource_doc(resource: Any) -> dict[str, str]:
    if isinstance(resource, tuple) and len(resource) == 2:
        return {"kind": resource[0], "id": resource[1]}
    if isinstance(resource, Mapping):
        return {"kind": str(resource.get("kind", "")), "id": str(resource.get("id", ""))}
    if hasattr(resource, "kind") and hasattr(resource, "id"):
        return {"kind": resource.kind, "id": resource.id}
    raise ValidationError("a resource is Resource(kind, id), a (kind, id) tuple or {kind, id}", field="resource")


if TYPE_CHECKING:

    def _remote_acl_is_an_acl_admin(acl: RemoteAcl) -> AclAdmin:
        """mypy checks here that ``RemoteLedger.acl`` offers the core's :class:`AclAdmin`."""
        return acl
