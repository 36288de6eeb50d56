"""The access-control contract the ledger enforces on every read and write.

An ACL provider plugin (such as ``nucleus-ual``) supplies an :class:`AccessPolicy`. Without one,
the ledger uses :class:`AuthenticatedPolicy`: the requester is still mandatory on every call, and
every authenticated requester may read and write everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .context import RequestContext
    from .records import Entry, Record
    from .storage import StorageBackend, StorageQuery, StoredEntry, WriteTransaction


@runtime_checkable
class AccessPolicy(Protocol):
    """Decides who may read and write. Methods run inside the ledger's calls, after the requester
    was checked and before (reads) or inside (writes) the storage work."""

    def bind(self, ledger: Any) -> None:
        """Called once when the ledger opens, before any other method."""

    def authorize_append(self, records: Sequence[Record], context: RequestContext, tx: WriteTransaction) -> None:
        """Raise :class:`~nucleus_core.errors.AccessDeniedError` if ``context`` may not append ``records``.
        Runs inside the write transaction, before anything is inserted."""

    def after_append(
        self, entries: Sequence[Entry], context: RequestContext, tx: WriteTransaction
    ) -> Sequence[Record] | None:
        """Runs inside the same write transaction after the entries were inserted (e.g. to seed grants).
        May return system records (streams starting with ``_``, e.g. an audit trail) that the ledger
        chains right after ``entries`` in the same transaction. Raising rolls the whole append back."""

    def can_read(self, entry: StoredEntry, context: RequestContext) -> bool:
        """Whether ``context`` may read ``entry`` (for get by hash or id)."""

    def query(self, storage: StorageBackend, query: StorageQuery, context: RequestContext) -> list[StoredEntry]:
        """Run ``query`` returning only entries ``context`` may read. Must filter inside the storage
        (a join or EXISTS), never after fetching."""

    def check_consistency(self) -> str | None:
        """Compare the provider's stored state with what the chain says; a description of the first
        difference, or None. Called when the ledger opens and by ``Ledger.verify()``."""


class AuthenticatedPolicy:
    """The policy without an ACL provider: any authenticated requester may read and write."""

    def bind(self, ledger: Any) -> None:
        pass

    def authorize_append(self, records: Sequence[Record], context: RequestContext, tx: WriteTransaction) -> None:
        pass

    def after_append(self, entries: Sequence[Entry], context: RequestContext, tx: WriteTransaction) -> None:
        return None

    def can_read(self, entry: StoredEntry, context: RequestContext) -> bool:
        return True

    def query(self, storage: StorageBackend, query: StorageQuery, context: RequestContext) -> list[StoredEntry]:
        return storage.query(query)

    def check_consistency(self) -> str | None:
        return None
