"""The kit for modules that keep state derived from the chain: :class:`StatefulModule`,
:class:`DerivedState` with overlays for validating a batch, and payload limits."""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Collection, Mapping
from typing import Any, Generic, NoReturn, TypeVar

from .context import READ, RequestContext, require_scope
from .errors import LedgerClosedError, ModuleError, RecordRejectedError
from .module_base import Module, ModuleContext
from .records import Entry, Record, parsed_entry

# The logger keeps the name it had before the kit left nucleus_core.modules.
log = logging.getLogger("nucleus_core.modules")

E = TypeVar("E")
K = TypeVar("K")
V = TypeVar("V")


# Helpers for modules that keep state derived from the chain --------------------------------------

IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
"""Ids that payloads use to name things (asset ids, token ids, transaction ids): 1-128 ASCII
letters, digits and ``. _ : @ -``, starting with a letter or digit."""

MAX_SAFE_INT = 2**53 - 1


class DerivedState:
    """Tables of values derived from the chain, with cheap overlays for validating a batch.

    ``get``/``set`` address a value by table name and key. An :meth:`overlay` reads through to its
    parent and keeps its own writes, so a batch can be validated against "the chain plus the
    earlier records of this batch" and then dropped. Values must be immutable (frozen attrs,
    tuples, ints): replace a value with ``set``, never mutate it in place.
    """

    __slots__ = ("_parent", "_tables")

    def __init__(self, parent: DerivedState | None = None) -> None:
        self._parent = parent
        self._tables: dict[str, dict[Any, Any]] = {}

    def get(self, table: str, key: Any, default: Any = None) -> Any:
        """The value of ``key`` in ``table`` (looking through to the parent), or ``default``."""
        own = self._tables.get(table)
        if own is not None and key in own:
            return own[key]
        if self._parent is not None:
            return self._parent.get(table, key, default)
        return default

    def set(self, table: str, key: Any, value: Any) -> None:
        """Set ``key`` in ``table`` (in this layer only)."""
        self._tables.setdefault(table, {})[key] = value

    def overlay(self) -> DerivedState:
        """A new layer over this one."""
        return DerivedState(self)

    def items(self, table: str) -> list[tuple[Any, Any]]:
        """Every ``(key, value)`` of ``table`` in this layer and its parents (this layer wins)."""
        merged: dict[Any, Any] = dict(self._parent.items(table)) if self._parent is not None else {}
        merged.update(self._tables.get(table, {}))
        return list(merged.items())


def rejection(module_id: str, record: Record, reason: str, field: str | None = None) -> RecordRejectedError:
    """A :class:`RecordRejectedError` for ``record``, naming the module and (optionally) the field."""
    where = f"{field}: " if field else ""
    err = RecordRejectedError(
        f"record {record.id!r} refused: {where}{reason}", module_id=module_id, record_id=record.id
    )
    err.field = field
    return err


class StatefulModule(Module, Generic[E], metaclass=abc.ABCMeta):
    """Base for modules whose state is derived from the chain (the four domain modules use it).

    A subclass describes its records with four functions, and the same ``fold`` serves both the
    validation of new records and the rebuild from the chain, so derived state and chain agree:

    * ``parse(record) -> event``: strict schema check of the payload (a
      :class:`~nucleus_core.payloads.PayloadSchema`);
    * ``check(state, event, record)``: rules that depend only on state (owner, balance, cap...);
    * ``authorize(state, event, record, context)``: rules about the requester (checked on append
      only: the requester is not part of the chain);
    * ``fold(state, event, record, seq)``: the event's effect on state (``seq`` is None while a
      batch is being validated);
    * optionally ``index(event, record, seq)``: maintain query indexes after a commit.

    When replaying, an entry that fails ``parse`` or ``check`` (e.g. appended while the module
    was not enabled) has no effect on derived state and is logged.
    """

    def __init__(self) -> None:
        self.state = DerivedState()
        self._staged: DerivedState | None = None
        self._ledger: Any = None
        self._logger = log
        self._settings: Mapping[str, Any] = {}

    def init(self, ctx: ModuleContext) -> None:
        """Keep the ledger (for handle queries) and settings."""
        self._ledger = ctx.ledger
        self._logger = ctx.logger
        self._settings = ctx.settings

    # what subclasses implement --------------------------------------------------------------
    @abc.abstractmethod
    def parse(self, record: Record) -> E:
        """Read and validate ``record``'s payload into an event."""

    def check(self, state: DerivedState, event: E, record: Record) -> None:
        """Refuse an event that the state does not allow."""

    def authorize(self, state: DerivedState, event: E, record: Record, context: RequestContext) -> None:
        """Refuse an event the requester may not append."""

    def fold(self, state: DerivedState, event: E, record: Record, seq: int | None) -> None:
        """Apply the event to ``state``."""

    def index(self, event: E, record: Record, seq: int) -> None:
        """Update query indexes for a committed event (called under the registry's lock; handle
        queries read the indexes through :meth:`indexed`)."""

    # Module hooks -----------------------------------------------------------------------------
    def begin_batch(self) -> None:
        self._staged = self.state.overlay()

    def validate(self, record: Record, context: RequestContext) -> None:
        staged = self._staged if self._staged is not None else self.state.overlay()
        event = self.parse(record)
        self.check(staged, event, record)
        self.authorize(staged, event, record, context)
        self.fold(staged, event, record, None)

    def end_batch(self) -> None:
        self._staged = None

    def apply(self, entry: Entry) -> None:
        record = entry.record
        try:
            event = self.parse(record)
            self.check(self.state, event, record)
        except RecordRejectedError as err:
            self._logger.warning("entry %d has no effect on module %r: %s", entry.seq, self.id, err)
            return
        self.fold(self.state, event, record, entry.seq)
        self.index(event, record, entry.seq)

    # helpers ------------------------------------------------------------------------------------
    def reject(self, record: Record, reason: str, field: str | None = None) -> NoReturn:
        """Raise a refusal of ``record`` naming this module."""
        raise rejection(self.id, record, reason, field)

    def require_requester(self, record: Record, context: RequestContext, oid: str, field: str) -> None:
        """Refuse unless the requester is ``oid`` (the payload's ``field``)."""
        if context.oid != oid:
            self.reject(record, f"the requester {context.oid!r} is not {oid!r}", field)

    def reader(self, context: RequestContext) -> RequestContext:
        """Start a handle query: require a requester with the ``read`` scope, refuse on a closed
        ledger, and catch up with entries appended by other writers."""
        ctx = require_scope(context, READ)
        ledger = self._ledger
        if ledger is None:
            raise ModuleError("is not initialized", module_id=self.id)
        if ledger.closed:
            raise LedgerClosedError(f"ledger {ledger.id!r} is closed")
        ledger.modules.catch_up()
        return ctx

    def indexed(self, index: Mapping[K, Collection[V]], key: K) -> tuple[V, ...]:
        """A copy of ``index[key]`` (empty when absent), one of this module's indexes (a dict of
        lists or sets that :meth:`index` maintains), taken under the lock committed entries are
        applied under (:attr:`ModuleRegistry.lock <nucleus_core.module_registry.ModuleRegistry.lock>`),
        so a handle query iterates a snapshot while other threads append. Copy, then read storage:
        the lock is never held for a storage read or a policy check."""
        ledger = self._ledger
        if ledger is None:
            raise ModuleError("is not initialized", module_id=self.id)
        with ledger.modules.lock:
            return tuple(index.get(key, ()))

    def readable(self, seq: int, context: RequestContext) -> Entry | None:
        """The entry ``seq`` if ``context`` carries the ``read`` scope and the ledger's access policy
        lets it read the entry, else None.

        :raises MissingRequesterError: there is no requester.
        :raises InsufficientScopeError: the requester's credential lacks the ``read`` scope (a read
            of an entry is a read, whichever helper makes it)."""
        ctx = require_scope(context, READ)
        ledger = self._ledger
        if ledger is None:
            raise ModuleError("is not initialized", module_id=self.id)
        row = ledger.storage.get_by_seq(seq)
        if row is None or not ledger.policy.can_read(row, ctx):
            return None
        return parsed_entry(row)

    def can_read(self, seq: int, context: RequestContext) -> bool:
        """Whether ``context`` may read entry ``seq``: the ``read`` scope and the access policy, as
        :meth:`readable` (which raises the same errors)."""
        return self.readable(seq, context) is not None
