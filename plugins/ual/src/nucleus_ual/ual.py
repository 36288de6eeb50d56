"""The Unified Access Layer: grants on resources, enforced on every ledger read and write.

Rules:

* Access is denied by default. Administrators named in the ledger configuration (``admins``) hold
  ``full`` on everything.
* Reading needs an active grant of read, write or full on the entry's resource or on ``*`` of its
  kind (``create`` on ``*`` reads nothing).
* Appending a record that creates a resource needs ``create``, ``write`` or ``full`` on ``<kind>/*``; appending to an
  existing resource (an asset's next event) needs ``write`` on it. Every refusal of an append is the
  same error with the same message, whether the resource exists or not (:meth:`denial`).
* The appender of a record that creates a resource holds ``full`` on it; modules seed further
  grants (see each module's ``seed_grants``).
* Only a principal holding ``full`` on a resource (or on ``*`` of its kind) may grant or revoke on it.
* Expiry is checked inside every lookup and query; a revoke takes effect immediately.
* Every grant, revoke and seeded grant is appended to the ``_acl`` system stream in the same
  transaction as the grants-table change, so the table can be rebuilt from the chain and is
  checked against it when the ledger opens and by ``verify()``.
"""

from __future__ import annotations

import builtins
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from nucleus_core.access import AclAdmin
from nucleus_core.capabilities import ExtensionStorage, GrantIndexStorage
from nucleus_core.context import GRANT, READ, RequestContext, require_scope
from nucleus_core.errors import AccessDeniedError, ConfigurationError, IntegrityError, QueryError, ValidationError
from nucleus_core.import_state import rebuild_found_differences
from nucleus_core.oid import validate_oid
from nucleus_core.query import QueryFilters, QueryResult, filters_from, page
from nucleus_core.records import Entry, Record, system_record_id
from nucleus_core.storage import StorageBackend, StorageQuery, WriteTransaction

from .indexed import IndexedGrantStore
from .model import WILDCARD, Grant, Resource, Scope, validate_kind
from .store import GrantStore, IndexedResource, MemoryGrantStore

log = logging.getLogger(__name__)

ACL_STREAM = "_acl"
"""The system stream holding every grant change."""

Clock = Callable[[], int]

INDEX_BATCH = 5000
"""Index rows written at a time when the index catches up with the chain (memory stays bounded)."""

CONSISTENCY_ATTEMPTS = 5
"""Comparisons of the stored state with the chain while other writers move the head (see
:meth:`UnifiedAccessLayer.check_consistency`)."""

_NO_HEAD = attrs.make_class("_NoHead", {"seq": attrs.field(default=0)})()


def system_clock() -> int:
    """Now, in Unix milliseconds."""
    return time.time_ns() // 1_000_000


@attrs.frozen(kw_only=True)
class ListResult(QueryResult):
    """A page of entries the principal may read; ``next_cursor`` is None on the last page."""


def _as_resource(value: Resource | tuple[str, str] | Mapping[str, str]) -> Resource:
    if isinstance(value, Resource):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return Resource(kind=value[0], id=value[1])
    if isinstance(value, Mapping):
        try:
            return Resource(kind=value["kind"], id=value["id"])
        except KeyError as err:
            raise ValidationError(f"missing {err.args[0]!r}", field="resource") from None
    raise ValidationError("a resource is Resource(kind, id), a (kind, id) tuple or {kind, id}", field="resource")


def _principal_of(value: RequestContext | str) -> str:
    if isinstance(value, RequestContext):
        return value.oid
    return validate_oid(value, field="principal")


class UnifiedAccessLayer:
    """The UAL for one ledger (``ledger.acl``). Built by the ``ual`` plugin; also usable directly
    as ``UnifiedAccessLayer(store=..., admins=...)`` bound to a ledger with :meth:`bind`."""

    def __init__(self, *, store: GrantStore, admins: Iterable[str] = (), clock: Clock = system_clock) -> None:
        self._store = store
        self._admins = frozenset(validate_oid(a, field="admins") for a in admins)
        self._clock = clock
        self._ledger: Any = None

    # binding --------------------------------------------------------------------------------
    def bind(self, ledger: Any) -> None:
        self._ledger = ledger
        self._admins = self._admins | frozenset(validate_oid(a, field="admins") for a in ledger.config.admins)
        self._store.setup()
        self._catch_up_index()

    def _catch_up_index(self) -> None:
        """Index the resources of entries appended while this store was not watching (UAL enabled on
        an existing ledger, or written by a process without the UAL). System entries (``_acl`` and
        others) are never indexed, so a ledger whose last entries are system entries does not lag.
        The grants are never rebuilt here: a grants table that does not match the ``_acl`` stream
        (emptied, edited) is refused when the ledger opens (:meth:`check_consistency`).

        In the rebuild mode (``ledger.rebuilding``: an import being finished, a deliberate
        rebuild) the grants and the index are built from the chain instead, logged: the ``_acl``
        stream is replayed first (a malformed entry refuses the rebuild before anything is
        written), then the tables are replaced in one transaction."""
        if self._ledger.rebuilding:
            self._rebuild()
            return
        start = self._store.max_indexed_seq() + 1
        if next(self._unindexed(start, None), None) is None:
            return
        if self._ledger.read_only:
            raise ConfigurationError(
                "ual: the resource index lags the chain and the ledger is read-only; open it verified once to index"
            )
        with self._ledger.storage.write() as tx:
            self._store.track(tx)
            self._index_from(self._store.max_indexed_seq() + 1, None)

    def _rebuild(self) -> None:
        try:
            grants = self.grants_from_chain()
        except _MalformedAclEntry as err:
            raise IntegrityError(f"ual: the grants cannot be built from the chain: {err}", seq=err.seq,
                                 reason=str(err)) from None
        self._existing_state_differs()
        log.warning(
            "ual: rebuilding the grants (%d, from the %s stream) and the resource index of ledger %r from the chain",
            len(grants), ACL_STREAM, self._ledger.id,
        )
        with self._ledger.storage.write() as tx:
            self._store.track(tx)
            self._store.clear()
            for grant in grants.values():
                self._store.put_grant(grant)
            self._index_from(1, None)

    def _existing_state_differs(self) -> None:
        """Before a rebuild replaces them: grants or index rows already stored that differ from the
        chain are reported (:func:`~nucleus_core.import_state.rebuild_found_differences`: an ERROR
        naming how many rows are replaced and the first difference; finishing an import refuses).
        Empty tables (a new import) and tables that match the chain (a finish run again) are not."""
        with self._store.session():
            grants = sum(1 for _ in self._store.grants())
            rows = sum(1 for _ in self._store.iter_index())
            if not grants and not rows:
                return
            problem = self.check_consistency()
        if problem is None:
            return
        rebuild_found_differences(
            self._ledger, "ual",
            f"{grants} grant(s) and {rows} resource index row(s) would be replaced; first difference: {problem}",
        )

    def _index_from(self, start: int, stop: int | None) -> None:
        """Index the user entries from ``start`` (to ``stop``), inside the caller's transaction, a
        bounded batch at a time (memory does not grow with the chain)."""
        batch: list[IndexedResource] = []
        for row in self._unindexed(start, stop):
            batch.append(row)
            if len(batch) >= INDEX_BATCH:
                self._store.index(batch)
                batch = []
        self._store.index(batch)

    def _unindexed(self, start: int, stop: int | None) -> Iterator[IndexedResource]:
        """Index rows of the user entries with ``start <= seq`` (``< stop`` when given), streamed."""
        storage = self._ledger.storage
        if stop is None:
            scan: Iterable[Entry] = storage.iter_entries(start)
        else:
            scan = (row for at in range(start, stop, 1000) for row in storage.range(at, min(1000, stop - at)))
        for stored in scan:
            if not stored.stream.startswith("_"):
                kind, rid = self._resource_of_stored(stored)
                yield IndexedResource(seq=stored.seq, kind=kind, resource_id=rid)

    def _resource_of_stored(self, stored: Entry) -> tuple[str, str]:
        # Only module streams need the record itself; otherwise the (verified) columns suffice.
        if self._ledger.modules.owner_of(stored.stream) is None:
            return f"stream:{stored.stream}", stored.record_id
        return self.resource_of(stored.record)

    @property
    def admins(self) -> frozenset[str]:
        return self._admins

    # resources ------------------------------------------------------------------------------
    def resource_of(self, record: Record) -> tuple[str, str]:
        """(kind, resource id) of a record: from the module owning its stream, else
        ``stream:<name>`` and the record id."""
        module = self._ledger.modules.owner_of(record.stream) if self._ledger is not None else None
        kind = getattr(module, "resource_kind", None) if module is not None else None
        if kind:
            rid = module.resource_id(record)  # type: ignore[union-attr]
            return kind, rid if rid is not None else record.id
        return f"stream:{record.stream}", record.id

    def _seeds(self, record: Record) -> list[tuple[str, Scope]]:
        module = self._ledger.modules.owner_of(record.stream)
        seeder = getattr(module, "seed_grants", None) if module is not None else None
        if seeder is None:
            return []
        out: list[tuple[str, Scope]] = []
        for seed in seeder(record):
            principal, scope = (seed.principal_oid, seed.scope) if hasattr(seed, "principal_oid") else seed
            out.append((validate_oid(principal, field="seed principal"), Scope.parse(scope)))
        return out

    def _withdrawals(self, record: Record) -> list[str]:
        """Principals whose grant on ``record``'s resource the record withdraws (the owning module's
        ``withdraw_grants``; e.g. an asset's previous owner on transfer)."""
        found: list[str] = self._ledger.modules.withdraw_grants(record)
        return found

    # decisions ------------------------------------------------------------------------------
    def _scope(self, principal: str, kind: str, resource_id: str) -> Scope | None:
        if principal in self._admins:
            return Scope.FULL
        return self._store.best_scope(principal, kind, resource_id, self._clock())

    def check(
        self,
        principal: RequestContext | str,
        action: Scope | str,
        resource: Resource | tuple[str, str] | Mapping[str, str],
    ) -> bool:
        """Whether ``principal`` may do ``action`` (read, write or full) on ``resource``. Asked with a
        requester's context, that requester needs the ``read`` scope (access state is read)."""
        if isinstance(principal, RequestContext):
            require_scope(principal, READ)
        who = _principal_of(principal)
        need = Scope.parse(action, field="action")
        res = _as_resource(resource)
        # Creating is a right on the kind: only the grant on ``<kind>/*`` decides it.
        rid = WILDCARD if need is Scope.CREATE else res.id
        with self._store.session():
            have = self._scope(who, res.kind, rid)
        return have is not None and have.allows(need)

    def require(
        self, principal: RequestContext | str, action: Scope | str, resource: Resource | tuple[str, str]
    ) -> Resource:
        """Return the resource if ``principal`` may do ``action`` on it; raise AccessDeniedError otherwise."""
        res = _as_resource(resource)
        if not self.check(principal, action, res):
            raise AccessDeniedError(f"{Scope.parse(action, field='action')} access to {res.kind}/{res.id} denied")
        return res

    # the AccessPolicy contract -------------------------------------------------------------------
    def authorize_append(self, records: Sequence[Record], context: RequestContext, tx: WriteTransaction) -> None:
        who = context.oid
        admin = who in self._admins
        created: set[tuple[str, str]] = set()
        for record in records:
            kind, rid = self.resource_of(record)
            if rid == WILDCARD:
                # '*' names every resource of the kind in a grant: no record may be that resource
                # (its creator would be seeded full on the whole kind).
                raise ValidationError(
                    f"record {record.id!r}: resource id '*' is reserved (it means every resource of its kind)",
                    field="id",
                )
            if admin or (kind, rid) in created:
                continue
            # One refusal, whether the resource exists or not: a denial never tells which.
            if self._store.resource_exists(kind, rid):
                have = self._store.best_scope(who, kind, rid, self._clock())
                if have is None or have < Scope.WRITE:
                    raise self.denial(record)
            else:
                # Creating needs create, write or full on <kind>/* (read on it is not enough).
                have = self._store.best_scope(who, kind, WILDCARD, self._clock())
                if have is None or not have.allows(Scope.CREATE):
                    raise self.denial(record)
                created.add((kind, rid))

    def denial(self, record: Record) -> AccessDeniedError:
        """The refusal of appending ``record``: the same error and message whatever the reason (no
        grant, a grant too weak, a resource that exists or not), naming only what the requester sent.
        The ledger also raises it for an id already stored that the requester may not read."""
        kind, rid = self.resource_of(record)
        return AccessDeniedError(f"record {record.id!r}: write access to {kind}/{rid} denied")

    def after_append(self, entries: Sequence[Entry], context: RequestContext, tx: WriteTransaction) -> list[Record]:
        self._store.track(tx)
        # Entries committed by a writer without the UAL since this store last indexed: index them
        # first, so no entry is ever left out of the index (they get no appender grant).
        self._index_from(self._store.max_indexed_seq() + 1, entries[0].seq)
        rows: list[IndexedResource] = []
        seen: set[tuple[str, str]] = set()
        # Grant changes in batch order: for each record its withdrawals, then its seeds.
        changes: list[tuple[str, str, str, str, Scope]] = []
        for entry in entries:
            kind, rid = self.resource_of(entry.record)
            if (kind, rid) not in seen and not self._store.resource_exists(kind, rid):
                # The appender of the record that creates a resource holds full on it.
                changes.append(("seed", context.oid, kind, rid, Scope.FULL))
            seen.add((kind, rid))
            for principal in self._withdrawals(entry.record):
                changes.append(("withdraw", principal, kind, rid, Scope.READ))
            for principal, scope in self._seeds(entry.record):
                changes.append(("seed", principal, kind, rid, scope))
            rows.append(IndexedResource(seq=entry.seq, kind=kind, resource_id=rid))
        self._store.index(rows)
        # Applied in order; recorded as one _acl record per run of seeds or withdrawals, in order,
        # so replaying the chain reproduces the table.
        audit: list[tuple[str, list[dict[str, Any]]]] = []
        for op, principal, kind, rid, scope in changes:
            if op == "seed":
                grant = Grant(resource_kind=kind, resource_id=rid, principal_oid=principal, scope=scope,
                              granted_by=context.oid)
                self._apply_seed(grant)
                item = grant.to_dict()
            else:
                self._store.delete_grant(principal, kind, rid)
                item = {"principal_oid": principal, "resource_kind": kind, "resource_id": rid}
            if audit and audit[-1][0] == op:
                audit[-1][1].append(item)
            else:
                audit.append((op, [item]))
        return [self._audit_record(op, context.oid, items) for op, items in audit]

    def can_read(self, entry: Entry, context: RequestContext) -> bool:
        if context.oid in self._admins:
            return True
        with self._store.session():
            res = self._store.resource_of(entry.seq)
            if res is None:
                return False
            have = self._store.best_scope(context.oid, res.kind, res.resource_id, self._clock())
            return have is not None and have >= Scope.READ  # create on * reads nothing

    def query(self, storage: StorageBackend, query: StorageQuery, context: RequestContext) -> list[Entry]:
        if context.oid in self._admins:
            return storage.query(query)
        return self._store.query_visible(storage, query, context.oid, self._clock(), None)

    def check_consistency(self) -> str | None:
        """Compare the stored state with the chain: the resource index with the resource of every
        user entry, and the grants table with the grants rebuilt from the ``_acl`` stream. Returns the
        first difference, or None.

        The chain and the tables are read one after the other, and another process may commit a
        grant change (its ``_acl`` entry and its table rows, in one transaction) in between: a
        difference counts only when the head did not move while it was found; otherwise the
        comparison runs again (a few times: a difference that outlives them is reported)."""
        problem: str | None = None
        for _attempt in range(CONSISTENCY_ATTEMPTS):
            before = self._head_seq()
            problem = self._compare_with_chain()
            if problem is None or self._head_seq() == before:
                return problem
            log.debug("ual: the chain moved while its state was compared (%s); comparing again", problem)
        return problem

    def _head_seq(self) -> int:
        head = self._ledger.storage.head()
        return head.seq if head is not None else 0

    def _compare_with_chain(self) -> str | None:
        problem = self._check_index()
        if problem is not None:
            return problem
        try:
            expected = self.grants_from_chain()
        except ValidationError as err:
            return str(err)
        actual = {(g.principal_oid, g.resource_kind, g.resource_id): g for g in self._store.grants()}
        for key in sorted(set(expected) | set(actual)):
            if expected.get(key) != actual.get(key):
                p, k, r = key
                return f"grant of {p} on {k}/{r} differs from the {ACL_STREAM} stream"
        return None

    def _check_index(self) -> str | None:
        """Walk the user entries and the resource index side by side, in seq order."""
        head = self._ledger.storage.head()
        last = head.seq if head is not None else 0
        index = (row for row in self._store.iter_index() if row.seq <= last)
        row = next(index, None)
        for stored in self._ledger.storage.iter_entries(1):
            if stored.seq > last:
                break
            if stored.stream.startswith("_"):
                continue
            if row is not None and row.seq < stored.seq:
                return f"the resource index holds seq {row.seq}, which is no user entry"
            if row is None or row.seq != stored.seq:
                return f"entry {stored.seq} is missing from the resource index"
            kind, rid = self._resource_of_stored(stored)
            if (row.kind, row.resource_id) != (kind, rid):
                said = f"{row.kind}/{row.resource_id}"
                return f"the resource index puts entry {stored.seq} in {said}, the chain in {kind}/{rid}"
            row = next(index, None)
        if row is not None:
            return f"the resource index holds seq {row.seq}, which is no user entry"
        return None

    # grants -----------------------------------------------------------------------------------
    def grant(self, grants: Iterable[Grant | Mapping[str, Any]], context: RequestContext) -> list[Grant]:
        """Give grants. The requester must hold ``full`` on each grant's resource (or on ``*`` of its
        kind). All or nothing; recorded in the ``_acl`` stream in the same transaction. The
        requester needs the ``grant`` scope."""
        ctx = require_scope(context, GRANT)
        batch = [self._normalize(g, ctx.oid) for g in grants]
        if not batch:
            raise ValidationError("grant needs at least one grant", field="grants")

        def apply(tx: WriteTransaction) -> None:
            self._store.track(tx)
            for g in batch:
                self._require_full(ctx.oid, g.resource_kind, g.resource_id)
            for g in batch:
                self._store.put_grant(g)

        self._ledger.append_system(
            [self._audit_record("grant", ctx.oid, [g.to_dict() for g in batch])], ctx, within=apply
        )
        return batch

    def revoke(self, grants: Iterable[Grant | Mapping[str, Any]], context: RequestContext) -> int:
        """Remove grants of (principal, kind, resource id). The requester must hold ``full`` on each
        resource. Every named grant must exist; all or nothing. Returns how many were revoked. The
        requester needs the ``grant`` scope."""
        ctx = require_scope(context, GRANT)
        keys: list[tuple[str, str, str]] = []
        for item in grants:
            data = item.to_dict() if isinstance(item, Grant) else dict(item)
            for extra in set(data) - {
                "resource_kind",
                "resource_id",
                "principal_oid",
                "scope",
                "granted_by",
                "expires_at",
            }:
                raise ValidationError(f"unknown field {extra!r}", field="revoke")
            try:
                keys.append(
                    (
                        validate_oid(data["principal_oid"], field="principal_oid"),
                        validate_kind(data["resource_kind"]),
                        Resource(kind=data["resource_kind"], id=data["resource_id"]).id,
                    )
                )
            except KeyError as err:
                raise ValidationError(f"missing {err.args[0]!r}", field="revoke") from None
        if not keys:
            raise ValidationError("revoke needs at least one grant", field="grants")

        def apply(tx: WriteTransaction) -> None:
            self._store.track(tx)
            for _p, k, r in keys:
                self._require_full(ctx.oid, k, r)
            for p, k, r in keys:
                if not self._store.delete_grant(p, k, r):
                    raise ValidationError(f"{p} holds no grant on {k}/{r}", field="revoke")

        payload = [{"principal_oid": p, "resource_kind": k, "resource_id": r} for p, k, r in keys]
        self._ledger.append_system([self._audit_record("revoke", ctx.oid, payload)], ctx, within=apply)
        return len(keys)

    def list(self, context: RequestContext, filters: QueryFilters | Mapping[str, Any] | None = None) -> ListResult:
        """Entries the requester may read, with the filters of ``query`` plus ``kind`` (a resource kind
        or a list of them), a page at a time in seq order. Filtering happens inside the store. The
        requester needs the ``read`` scope."""
        ctx = require_scope(context, READ)
        raw = dict(filters) if isinstance(filters, Mapping) else {}
        kind = raw.pop("kind", None)
        parsed = filters_from(raw if isinstance(filters, Mapping) else filters)
        kinds: tuple[str, ...] | None = None
        if kind is not None:
            names = [kind] if isinstance(kind, str) else kind
            if not isinstance(names, list) or not names:
                raise QueryError("must be a resource kind or a list of them", field="kind")
            try:
                kinds = tuple(validate_kind(k, field="kind") for k in names)
            except ValidationError as err:
                raise QueryError(str(err), field="kind") from None
        squery = parsed.to_storage_query()
        storage = self._ledger.storage
        if ctx.oid in self._admins:
            rows = storage.query(squery) if kinds is None else self._store.query_kinds(storage, squery, kinds)
        else:
            rows = self._store.query_visible(storage, squery, ctx.oid, self._clock(), kinds)
        result = page(rows, parsed.limit)
        return ListResult(entries=result.entries, next_cursor=result.next_cursor)

    # internals --------------------------------------------------------------------------------
    def _normalize(self, item: Grant | Mapping[str, Any], granted_by: str) -> Grant:
        grant = item if isinstance(item, Grant) else Grant.from_dict(dict(item))
        return attrs.evolve(grant, granted_by=granted_by)

    def _require_full(self, who: str, kind: str, resource_id: str) -> None:
        have = self._scope(who, kind, resource_id)
        if have is None or have < Scope.FULL:
            raise AccessDeniedError(f"granting or revoking on {kind}/{resource_id} needs full access")

    def _apply_seed(self, seed: Grant) -> None:
        current = self._store.get_grant(seed.principal_oid, seed.resource_kind, seed.resource_id)
        self._store.put_grant(_merge_seed(current, seed))

    def _audit_record(self, op: str, by: str, grants: builtins.list[dict[str, Any]]) -> Record:
        return Record(
            id=system_record_id(ACL_STREAM, uuid.uuid4().hex),
            stream=ACL_STREAM,
            timestamp=self._clock(),
            payload={"op": op, "by": by, "grants": grants},
        )

    def grants_from_chain(self) -> dict[tuple[str, str, str], Grant]:
        """The grants table rebuilt from the ``_acl`` stream, keyed by (principal, kind, resource id).
        ``verify()`` compares it with the stored table. Raises ValidationError on a malformed entry."""
        state: dict[tuple[str, str, str], Grant] = {}
        storage = self._ledger.storage
        after = 0
        while True:
            rows = storage.query(StorageQuery(streams=(ACL_STREAM,), after_seq=after, limit=1000))
            for stored in rows:
                self._replay_one(state, stored)
            if len(rows) < 1000:
                return state
            after = rows[-1].seq

    @staticmethod
    def _replay_one(state: dict[tuple[str, str, str], Grant], stored: Entry) -> None:
        doc = stored.record.payload
        op = doc.get("op") if isinstance(doc, dict) else None
        items = doc.get("grants") if isinstance(doc, dict) else None
        if op not in ("grant", "revoke", "seed", "withdraw") or not isinstance(items, list):
            raise _MalformedAclEntry(f"entry {stored.seq} of {ACL_STREAM} is not a grant change", stored.seq)
        for item in items:
            try:
                key = (item["principal_oid"], item["resource_kind"], item["resource_id"])
                grant = None if op in ("revoke", "withdraw") else Grant.from_dict(item)
            except (KeyError, TypeError, ValidationError) as err:
                message = f"entry {stored.seq} of {ACL_STREAM} holds a malformed grant"
                raise _MalformedAclEntry(message, stored.seq) from err
            if grant is None:
                state.pop(key, None)
            else:
                state[key] = grant if op == "grant" else _merge_seed(state.get(key), grant)


class _MalformedAclEntry(ValidationError):
    """An entry of the ``_acl`` stream that is no grant change (``seq``: its seq)."""

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message, field=ACL_STREAM)
        self.seq = seq


def _merge_seed(current: Grant | None, seed: Grant) -> Grant:
    """A seeded grant never lowers what the principal already holds."""
    if current is None or seed.scope >= current.scope:
        return seed
    return current


MEMORY_STORE_KEY = "nucleus_ual"
"""Where a memory ledger keeps its grant store (``storage.extensions``, see
:class:`~nucleus_core.capabilities.ExtensionStorage`), so a second ledger opened on the same memory
storage finds the grants the first one made."""


def build_ual(
    ledger_id: str, settings: Mapping[str, Any], storage: StorageBackend | None, *, clock: Clock = system_clock
) -> UnifiedAccessLayer:
    """Build the UAL for a ledger: grants kept by the storage
    (:class:`~nucleus_core.capabilities.GrantIndexStorage`: the SQL backends), or in memory beside a
    storage without a database (:class:`~nucleus_core.capabilities.ExtensionStorage`: ``memory://``).
    ``settings`` (the ledger's ``settings["ual"]``) may hold ``admins``: principal OIDs that hold full
    on everything, beside the ledger's own ``admins``."""
    unknown = set(settings) - {"admins"}
    if unknown:
        raise ConfigurationError(f"ual: unknown setting(s) {sorted(unknown)}")
    admins = settings.get("admins", ())
    if isinstance(admins, str) or not isinstance(admins, (list, tuple)):
        raise ConfigurationError("ual: admins must be a list of principal OIDs")
    store: GrantStore
    if isinstance(storage, GrantIndexStorage):
        store = IndexedGrantStore(storage.grant_index(wildcard=WILDCARD, read_scope=int(Scope.READ)))
    elif isinstance(storage, ExtensionStorage) and not storage.persistent:
        store = storage.extensions.setdefault(MEMORY_STORE_KEY, MemoryGrantStore())
    else:
        where = storage.url if storage is not None else "(none)"
        raise ConfigurationError(
            f"ual: storage {where} keeps no grant index (SQLite, PostgreSQL) and is not memory://; "
            "grants cannot be kept beside it"
        )
    return UnifiedAccessLayer(store=store, admins=admins, clock=clock)


if TYPE_CHECKING:

    def _ual_is_an_acl_admin(ual: UnifiedAccessLayer) -> AclAdmin:
        """mypy checks here that the UAL implements the core's :class:`AclAdmin` (``ledger.acl``)."""
        return ual
