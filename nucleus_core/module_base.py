"""The module contract: :class:`Module`, its context, metadata and lifecycle states.

A module owns streams, validates records appended to them, and may keep state derived from the
chain (see ``docs/MODULES.md``; :mod:`nucleus_core.module_registry` runs the lifecycle and the
append path, :mod:`nucleus_core.stateful` is the kit for modules with derived state).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .access import SeedGrant
from .context import RequestContext
from .records import Entry, Record

if TYPE_CHECKING:
    from .host import PluginLedger


class ModuleState(enum.Enum):
    """Where a module is in its lifecycle."""

    REGISTERED = "registered"
    INITIALIZED = "initialized"
    STARTED = "started"
    STOPPED = "stopped"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class ModuleContext:
    """What a module's lifecycle hooks receive: the ledger (a weak proxy, so a module holding it
    never keeps an unclosed ledger alive), this module's settings from the ledger configuration
    (``LedgerConfig.settings[module_id]``), and a logger named ``nucleus.module.<id>``."""

    ledger: PluginLedger
    settings: Mapping[str, Any]
    logger: logging.Logger


@attrs.frozen(kw_only=True)
class ModuleMetadata:
    """What ``ledger.modules.metadata()`` reports about one module."""

    id: str
    version: str
    state: ModuleState
    streams: tuple[str, ...]
    depends_on: tuple[str, ...]
    resource_kind: str | None = None


class Module:
    """Base class for modules. Subclasses set the class attributes and override the hooks they need.

    Instances are built per ledger by the registry (from a :class:`~nucleus_core.specs.ModuleSpec`
    factory); a module keeps its state on the instance, never at module level.

    Class attributes: ``id`` (unique on a ledger), ``version``, ``streams`` (streams it owns: every
    record appended there is validated by it), ``depends_on`` (ids of modules initialized and
    started before it, stopped after it), ``resource_kind`` (the kind of resource its records
    create for the access-control layer, e.g. ``"proof"``; None for modules without resources).
    """

    id: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    streams: ClassVar[tuple[str, ...]] = ()
    depends_on: ClassVar[tuple[str, ...]] = ()
    resource_kind: ClassVar[str | None] = None

    # lifecycle ----------------------------------------------------------------------------
    def init(self, ctx: ModuleContext) -> None:
        """Prepare: read settings, open resources. Derived state is rebuilt after every module's
        ``init`` and before any ``start`` (through :meth:`apply`)."""

    def start(self, ctx: ModuleContext) -> None:
        """Begin serving."""

    def stop(self, ctx: ModuleContext) -> None:
        """Release resources. Runs for every module whose ``init`` succeeded, exactly once, so it
        must not assume that ``start`` ran."""

    # append path --------------------------------------------------------------------------
    def begin_batch(self) -> None:
        """A batch with records in this module's streams is about to be validated."""

    def validate(self, record: Record, context: RequestContext) -> None:
        """Refuse a record in one of this module's streams by raising
        :class:`~nucleus_core.errors.RecordRejectedError` (any ValidationError is turned into one
        naming this module). Called in batch order inside the write transaction, after
        :meth:`apply` caught up with the chain; a stateful module must let later records of the
        same batch see the effect of earlier ones (see :class:`StatefulModule`)."""

    def before_append(self, records: Sequence[Record], context: RequestContext) -> None:
        """Runs after every record of the batch was validated, before the write. Raising refuses
        the batch."""

    def end_batch(self) -> None:
        """Validation of the batch ended (accepted or refused): drop anything staged for it."""

    def apply(self, entry: Entry) -> None:
        """Fold a committed entry of this module's streams into derived state. Called exactly once
        per entry, in seq order: on open (rebuild), when catching up with other writers, and after
        this ledger's own commits. Overriding it marks the module as stateful."""

    def after_append(self, entries: Sequence[Entry], context: RequestContext | None) -> None:
        """Runs after the commit with the entries of this module's streams. Failures are logged and
        never undo the committed entries."""

    # access-control contract --------------------------------------------------------------
    def resource_id(self, record: Record) -> str | None:
        """The id of the resource ``record`` belongs to (e.g. an asset's events share its asset
        id). Default: the record id when the module has a ``resource_kind``, else None."""
        return record.id if self.resource_kind is not None else None

    def seed_grants(self, record: Record) -> list[SeedGrant]:
        """Grants a new record seeds on its resource, beyond the appender's own ``full``."""
        return []

    def withdraw_grants(self, record: Record) -> list[str]:
        """Principal OIDs whose grant on the record's resource this record withdraws (e.g. an
        asset's previous owner on transfer). Default: none.

        The access-control layer calls it inside the write transaction, after the batch was
        validated (so a module may answer from what its ``validate`` saw), in batch order, and
        removes each principal's grant on exactly this resource (never a ``*`` grant), whatever its
        scope or origin, before it applies the record's :meth:`seed_grants`. Withdrawals are
        recorded with the other grant changes, so the grants can still be rebuilt from the chain."""
        return []
