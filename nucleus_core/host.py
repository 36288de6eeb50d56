"""What a plugin may use of the ledger it is enabled on: :class:`PluginLedger`.

Hooks (``nucleus_ledger_opened``, ``nucleus_ledger_closing``) and :meth:`AccessPolicy.bind
<nucleus_core.access.AccessPolicy.bind>` receive the ledger typed by this protocol, so a plugin
author sees the host's surface in one place; :class:`~nucleus_core.ledger.Ledger` implements it
(checked by mypy). Anything else on the ledger object is the core's own and may change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .access import AccessPolicy, AclAdmin
    from .auth import TokenRegistry
    from .context import RequestContext
    from .ledger import LedgerConfig
    from .modules import LedgerRuntime, ModuleRegistry
    from .observe import Observers
    from .query import QueryFilters, QueryResult
    from .records import Entry, Record
    from .storage import StorageBackend, WriteTransaction
    from .verify import VerificationReport


@runtime_checkable
class PluginLedger(Protocol):
    """The ledger as plugins see it: its id and configuration, its parts (storage, modules, token
    parsers, access control), reads and writes (each naming its requester), and its state."""

    @property
    def id(self) -> str:
        """The ledger id (part of every entry hash)."""
        ...

    @property
    def config(self) -> LedgerConfig:
        """The configuration the ledger was opened with (``admins``, ``settings``, ...)."""
        ...

    @property
    def storage(self) -> StorageBackend:
        """The open storage backend (for plugins keeping their tables beside the ledger)."""
        ...

    @property
    def modules(self) -> ModuleRegistry:
        """The ledger's module registry (``owner_of(stream)``, ``get(id)``, ...)."""
        ...

    @property
    def runtime(self) -> LedgerRuntime:
        """A read-only view of the modules."""
        ...

    @property
    def auth(self) -> TokenRegistry:
        """The ledger's token parsers (``names``, ``parser(name)``, ``authenticate``)."""
        ...

    @property
    def observers(self) -> Observers:
        """Who is told what the ledger does (:mod:`nucleus_core.observe`): ``observers.add(observer)``."""
        ...

    @property
    def policy(self) -> AccessPolicy:
        """The access policy in force."""
        ...

    @property
    def acl(self) -> AclAdmin:
        """The access-control provider's administration API (raises ConfigurationError without one)."""
        ...

    @property
    def read_only(self) -> bool: ...

    @property
    def rebuilding(self) -> bool:
        """Opened in the rebuild mode (``rebuild_state``): a plugin keeping state derived from the
        chain builds it from the chain now (an import being finished, a deliberate rebuild) instead
        of refusing a state that does not match it."""
        ...

    @property
    def closed(self) -> bool: ...

    def append(self, record: Record, context: RequestContext) -> Entry: ...

    def append_batch(self, records: Sequence[Record], context: RequestContext) -> list[Entry]: ...

    def append_system(
        self,
        records: Sequence[Record],
        context: RequestContext,
        *,
        within: Callable[[WriteTransaction], None] | None = None,
    ) -> list[Entry]:
        """Append to system streams (leading ``_``), running ``within(tx)`` in the same transaction."""
        ...

    def get(self, entry_hash: str, context: RequestContext) -> Entry | None: ...

    def get_by_id(self, record_id: str, context: RequestContext) -> Entry | None: ...

    def query(self, filters: QueryFilters | Mapping[str, Any] | None, context: RequestContext) -> QueryResult: ...

    def iter_entries(self, context: RequestContext, *, from_seq: int = 1) -> Iterable[Entry]: ...

    def length(self) -> int: ...

    def latest_hash(self) -> str | None: ...

    def verify(
        self, *, progress: Callable[[int], None] | None = None, context: RequestContext | None = None
    ) -> VerificationReport: ...
