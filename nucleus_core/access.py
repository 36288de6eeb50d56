"""The access-control contract the ledger enforces on every read and write.

An ACL provider plugin (such as ``nucleus-ual``) supplies an :class:`AccessPolicy`. Without one,
the ledger uses :class:`AuthenticatedPolicy`: the requester is still mandatory on every call, and
every authenticated requester may read and write everything. A provider whose policy also offers
grants (:class:`AclAdmin`) is administered through ``ledger.acl``, the HTTP server's ``/acl``
routes and ``RemoteLedger.acl``, all typed by that one protocol.

The access vocabulary that modules speak lives here too: :data:`SCOPES` and the
:class:`SeedGrant` a new record seeds for its resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from .errors import ValidationError
from .oid import is_oid

if TYPE_CHECKING:
    from .context import RequestContext
    from .errors import AccessDeniedError
    from .host import PluginLedger
    from .query import QueryResult
    from .records import Entry, Record
    from .storage import StorageBackend, StorageQuery, WriteTransaction


SCOPES = ("read", "write", "full")
"""Access scopes, weakest first (``read < write < full``)."""


@attrs.frozen(kw_only=True)
class SeedGrant:
    """A grant a new record seeds for the access-control layer: ``principal_oid`` gets ``scope``
    (``read``, ``write`` or ``full``) on the record's resource (see
    :meth:`~nucleus_core.module_base.Module.resource_id`)."""

    principal_oid: str
    scope: str

    def __attrs_post_init__(self) -> None:
        if not is_oid(self.principal_oid):
            raise ValidationError("must be an OID", field="principal_oid")
        if self.scope not in SCOPES:
            raise ValidationError(f"must be one of {', '.join(SCOPES)}", field="scope")


@runtime_checkable
class AccessPolicy(Protocol):
    """Decides who may read and write. Methods run inside the ledger's calls, after the requester
    was checked and before (reads) or inside (writes) the storage work."""

    def bind(self, ledger: PluginLedger) -> None:
        """Called once when the ledger opens, before any other method."""

    def authorize_append(self, records: Sequence[Record], context: RequestContext, tx: WriteTransaction) -> None:
        """Raise :class:`~nucleus_core.errors.AccessDeniedError` if ``context`` may not append ``records``.
        Runs inside the write transaction, before anything is inserted."""

    def after_append(
        self, entries: Sequence[Entry], context: RequestContext, tx: WriteTransaction
    ) -> Sequence[Record] | None:
        """The audit stage of an append (``Ledger._write``): runs inside the same write transaction
        after ``entries`` were inserted (e.g. to seed grants) and returns the system records
        (streams starting with ``_``, e.g. an audit trail; None or empty: none) that the ledger
        chains right after ``entries`` in the same transaction, checked like the batch (a
        :class:`Record`, within the size limit, no id twice). Raising rolls the whole append back."""

    def can_read(self, entry: Entry, context: RequestContext) -> bool:
        """Whether ``context`` may read ``entry`` (for get by hash or id)."""

    def query(self, storage: StorageBackend, query: StorageQuery, context: RequestContext) -> list[Entry]:
        """Run ``query`` returning only entries ``context`` may read. Must filter inside the storage
        (a join or EXISTS), never after fetching."""

    def check_consistency(self) -> str | None:
        """Compare the provider's stored state with what the chain says; a description of the first
        difference, or None. Called when the ledger opens and by ``Ledger.verify()``."""


@runtime_checkable
class DenyingPolicy(Protocol):
    """A policy whose refusal of an append does not depend on the reason (the UAL's: no grant, a
    grant too weak, a resource that exists or not all read the same)."""

    def denial(self, record: Record) -> AccessDeniedError:
        """The error refusing the append of ``record``. The ledger raises it too for an id already
        stored that the requester may not read, so the answer never tells that the id exists."""


class GrantRecord(Protocol):
    """A grant as an access-control provider returns it: who (``principal_oid``) may act on which
    resource (``resource_kind``/``resource_id``); ``to_dict()`` is its JSON form (with ``scope``,
    ``granted_by``, ``expires_at``), as the HTTP API sends it."""

    @property
    def principal_oid(self) -> str: ...

    @property
    def resource_kind(self) -> str: ...

    @property
    def resource_id(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class AclAdmin(Protocol):
    """The administration API of an access-control provider: ``ledger.acl`` (the UAL), the HTTP
    server's ``/acl`` routes, and ``RemoteLedger.acl`` over HTTP.

    Grants are given as mappings with the fields of :meth:`GrantRecord.to_dict` (``granted_by`` is
    the requester's, whatever is given) or as the provider's own grant objects. A resource is a
    ``(kind, id)`` pair or ``{"kind": ..., "id": ...}``; an action is ``create``, ``read``,
    ``write`` or ``full``."""

    def grant(self, grants: Iterable[Any], context: RequestContext) -> Sequence[GrantRecord]:
        """Give ``grants`` (all or nothing); the requester needs ``full`` on each resource and the
        ``grant`` scope. Returns the grants as recorded."""
        ...

    def revoke(self, grants: Iterable[Any], context: RequestContext) -> int:
        """Remove the grants of (principal, kind, resource id), all or nothing; returns how many."""
        ...

    def check(
        self, principal: RequestContext | str, action: str, resource: tuple[str, str] | Mapping[str, str]
    ) -> bool:
        """Whether ``principal`` may do ``action`` on ``resource``."""
        ...

    def list(self, context: RequestContext, filters: Mapping[str, Any] | None = None) -> QueryResult:
        """Entries the requester may read (query filters plus ``kind``), a page at a time, filtered
        inside the storage."""
        ...


class AuthenticatedPolicy:
    """The policy without an ACL provider: any authenticated requester may read and write."""

    def bind(self, ledger: PluginLedger) -> None:
        pass

    def authorize_append(self, records: Sequence[Record], context: RequestContext, tx: WriteTransaction) -> None:
        pass

    def after_append(self, entries: Sequence[Entry], context: RequestContext, tx: WriteTransaction) -> None:
        return None

    def can_read(self, entry: Entry, context: RequestContext) -> bool:
        return True

    def query(self, storage: StorageBackend, query: StorageQuery, context: RequestContext) -> list[Entry]:
        return storage.query(query)

    def check_consistency(self) -> str | None:
        return None
