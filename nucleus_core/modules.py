"""Modules: per-ledger domain extensions with a lifecycle.

A module owns streams, validates records appended to them, and may keep state derived from the
chain. Each ledger has its own :class:`ModuleRegistry`; modules come from the
``nucleus_register_modules`` hook of the plugins the ledger enables (see ``docs/MODULES.md``).

Lifecycle: register -> init_all -> start_all (derived state is rebuilt from the chain between
init and start) -> runtime -> stop_all. States: registered, initialized, started, stopped, failed.

The append path, for a batch holding records in a module's streams, runs inside the storage write
transaction after the chain head was re-read:

1. :meth:`ModuleRegistry.catch_up` folds every entry committed since the module last looked
   (by this process or by any other writer of the same database) into derived state;
2. each involved module gets ``begin_batch()``, then ``validate(record, context)`` for each of its
   records in batch order, then ``before_append(records, context)``, then ``end_batch()``
   (always, even after a refusal);
3. after the commit, ``apply(entry)`` folds each new entry into derived state, then
   ``after_append(entries, context)`` runs; its failures are logged, never undo the commit.
"""

from __future__ import annotations

import abc
import builtins
import enum
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeVar, overload

import attrs

from .context import READ, RequestContext, require_scope
from .errors import LedgerClosedError, ModuleError, NucleusError, RecordRejectedError, ValidationError
from .oid import is_oid
from .records import Entry, Record, validate_stream
from .storage import MAX_QUERY_LIMIT, StorageBackend, StorageQuery, StoredEntry

if TYPE_CHECKING:
    from .host import PluginLedger

log = logging.getLogger(__name__)

M = TypeVar("M", bound="Module")
E = TypeVar("E")


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


SCOPES = ("read", "write", "full")
"""Access scopes, weakest first (``read < write < full``)."""


@attrs.frozen(kw_only=True)
class SeedGrant:
    """A grant a new record seeds for the access-control layer: ``principal_oid`` gets ``scope``
    (``read``, ``write`` or ``full``) on the record's resource (see :meth:`Module.resource_id`)."""

    principal_oid: str
    scope: str

    def __attrs_post_init__(self) -> None:
        if not is_oid(self.principal_oid):
            raise ValidationError("must be an OID", field="principal_oid")
        if self.scope not in SCOPES:
            raise ValidationError(f"must be one of {', '.join(SCOPES)}", field="scope")


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


def _is_stateful(module: Module) -> bool:
    return type(module).apply is not Module.apply


class ModuleRegistry:
    """The modules of one ledger and their lifecycle. Thread-safe."""

    def __init__(self, storage: StorageBackend | None = None) -> None:
        self._storage = storage
        self._modules: dict[str, Module] = {}
        self._states: dict[str, ModuleState] = {}
        self._contexts: dict[str, ModuleContext] = {}
        self._order: list[str] = []
        self._stream_owner: dict[str, str] = {}
        self._phase = "registering"
        self._applied_seq = 0
        self._init_ok: set[str] = set()
        self._state_lock = threading.RLock()

    # registration -------------------------------------------------------------------------
    def register(self, module: Module, context: ModuleContext) -> None:
        """Add a module. Refused after ``init_all``, for a duplicate id, or for a stream another
        module owns already."""
        mid = getattr(module, "id", None)
        if not isinstance(module, Module):
            raise ModuleError(f"{type(module).__name__} is not a Module", module_id=str(mid))
        if self._phase != "registering":
            raise ModuleError("cannot register after the registry was initialized", module_id=str(mid))
        if not isinstance(mid, str) or not mid:
            raise ModuleError("a module needs a non-empty id", module_id=repr(mid))
        if mid in self._modules:
            raise ModuleError("is registered twice", module_id=mid)
        for stream in module.streams:
            try:
                validate_stream(stream)
            except ValidationError as err:
                raise ModuleError(f"cannot own stream {stream!r}: {err}", module_id=mid) from None
            owner = self._stream_owner.get(stream)
            if owner is not None:
                raise ModuleError(f"stream {stream!r} is already owned by module {owner!r}", module_id=mid)
        for stream in module.streams:
            self._stream_owner[stream] = mid
        self._modules[mid] = module
        self._states[mid] = ModuleState.REGISTERED
        self._contexts[mid] = context

    def _resolve_order(self) -> list[str]:
        order: list[str] = []
        visiting: list[str] = []
        done: set[str] = set()

        def visit(mid: str) -> None:
            if mid in done:
                return
            if mid in visiting:
                cycle = [*visiting[visiting.index(mid) :], mid]
                raise ModuleError(f"dependency cycle: {' -> '.join(cycle)}", module_id=mid)
            visiting.append(mid)
            for dep in self._modules[mid].depends_on:
                if dep not in self._modules:
                    known = ", ".join(sorted(self._modules))
                    raise ModuleError(
                        f"depends on module {dep!r}, which is not enabled on this ledger (enabled: {known})",
                        module_id=mid,
                    )
                visit(dep)
            visiting.pop()
            done.add(mid)
            order.append(mid)

        for mid in self._modules:
            visit(mid)
        return order

    # lifecycle ----------------------------------------------------------------------------
    def init_all(self) -> None:
        """Initialize every module, dependencies first. On a failure, modules already initialized
        are stopped in reverse order and :class:`ModuleError` naming the module is raised."""
        if self._phase != "registering":
            raise ModuleError("init_all was already called", module_id="*")
        self._phase = "initializing"
        try:
            self._order = self._resolve_order()
        except ModuleError:
            self._phase = "stopped"
            raise
        for mid in self._order:
            self._run(mid, "init", ModuleState.INITIALIZED)
        self._phase = "initialized"

    def start_all(self) -> None:
        """Rebuild derived state from the chain, then start every module, dependencies first. On a
        failure, every initialized module is stopped in reverse order and :class:`ModuleError`
        naming the module is raised."""
        if self._phase != "initialized":
            raise ModuleError(f"start_all needs an initialized registry (phase: {self._phase})", module_id="*")
        self._phase = "starting"
        try:
            self.catch_up(strict=True)
        except ModuleError:
            self.stop_all()
            raise
        for mid in self._order:
            self._run(mid, "start", ModuleState.STARTED)
        self._phase = "started"

    def _run(self, mid: str, hook: str, new_state: ModuleState) -> None:
        try:
            getattr(self._modules[mid], hook)(self._contexts[mid])
        except Exception as err:
            self._states[mid] = ModuleState.FAILED
            self.stop_all()
            raise ModuleError(f"{hook} failed: {type(err).__name__}: {err}", module_id=mid) from err
        self._states[mid] = new_state
        if hook == "init":
            self._init_ok.add(mid)

    def stop_all(self) -> None:
        """Stop, in reverse dependency order and exactly once, every module whose ``init``
        succeeded. Best effort: every stop runs; failures are logged (state ``failed``), never
        raised. Idempotent."""
        with self._state_lock:
            if self._phase == "stopped":
                return
            self._phase = "stopped"
        for mid in reversed(self._order):
            if mid not in self._init_ok:
                continue
            try:
                self._modules[mid].stop(self._contexts[mid])
            except Exception:
                log.exception("module %r failed to stop", mid)
                self._states[mid] = ModuleState.FAILED
            else:
                self._states[mid] = ModuleState.STOPPED

    @property
    def phase(self) -> str:
        """``registering``, ``initializing``, ``initialized``, ``starting``, ``started`` or ``stopped``."""
        return self._phase

    # derived state ------------------------------------------------------------------------
    @property
    def applied_seq(self) -> int:
        """Derived state reflects every owned entry up to this seq."""
        return self._applied_seq

    def _stateful_streams(self) -> tuple[str, ...]:
        return tuple(
            sorted(s for s, mid in self._stream_owner.items() if _is_stateful(self._modules[mid]))
        )

    def catch_up(self, *, strict: bool = False) -> int:
        """Fold entries committed since the last call (by anyone writing to this database) into
        the derived state of stateful modules; returns the number applied. Storage is read
        without holding the registry's lock; entries are applied under it, in seq order, once.

        With ``strict`` (used when rebuilding on open) a failing ``apply`` raises
        :class:`ModuleError`; otherwise it is logged."""
        if self._storage is None:
            return 0
        streams = self._stateful_streams()
        if not streams:
            return 0
        applied = 0
        while True:
            after = self._applied_seq
            rows = self._storage.query(StorageQuery(streams=streams, after_seq=after, limit=MAX_QUERY_LIMIT))
            if not rows:
                return applied
            with self._state_lock:
                for row in rows:
                    if row.seq <= self._applied_seq:
                        continue
                    self._apply_one(_entry_of(row), strict=strict)
                    applied += 1
            if len(rows) < MAX_QUERY_LIMIT:
                return applied

    def _apply_one(self, entry: Entry, *, strict: bool) -> None:
        mid = self._stream_owner.get(entry.record.stream)
        if mid is not None:
            try:
                self._modules[mid].apply(entry)
            except Exception as err:
                if strict:
                    raise ModuleError(
                        f"apply failed at entry {entry.seq}: {type(err).__name__}: {err}", module_id=mid
                    ) from err
                log.exception("module %r failed to apply entry %d", mid, entry.seq)
        self._applied_seq = max(self._applied_seq, entry.seq)

    # append path --------------------------------------------------------------------------
    def owner_of(self, stream: str) -> Module | None:
        """The module owning ``stream``, or None."""
        mid = self._stream_owner.get(stream)
        return self._modules[mid] if mid is not None else None

    def validate(self, records: Sequence[Record], context: RequestContext) -> None:
        """Have each owning module validate its records of the batch (see the module docstring).
        A refusal raises :class:`RecordRejectedError` naming the module and the reason."""
        involved: dict[str, list[Record]] = {}
        for record in records:
            mid = self._stream_owner.get(record.stream)
            if mid is not None:
                involved.setdefault(mid, []).append(record)
        if not involved:
            return
        with self._state_lock:
            begun: list[str] = []
            try:
                for mid in involved:
                    self._guard(mid, None, self._modules[mid].begin_batch)
                    begun.append(mid)
                for record in records:
                    mid = self._stream_owner.get(record.stream)
                    if mid is not None:
                        self._guard(mid, record.id, self._modules[mid].validate, record, context)
                for mid, recs in involved.items():
                    self._guard(mid, None, self._modules[mid].before_append, recs, context)
            finally:
                for mid in begun:
                    try:
                        self._modules[mid].end_batch()
                    except Exception:
                        log.exception("module %r end_batch failed", mid)

    @staticmethod
    def _guard(mid: str, record_id: str | None, fn: Callable[..., None], *args: Any) -> None:
        what = f"record {record_id!r}" if record_id is not None else "batch"
        try:
            fn(*args)
        except RecordRejectedError:
            raise
        except NucleusError as err:
            raise RecordRejectedError(f"{what} refused: {err}", module_id=mid, record_id=record_id) from err
        except (ValueError, TypeError, KeyError) as err:
            raise RecordRejectedError(
                f"{what} refused: {type(err).__name__}: {err}", module_id=mid, record_id=record_id
            ) from err

    def committed(self, entries: Sequence[Entry], context: RequestContext | None) -> None:
        """After a commit: fold the new entries into derived state, then run after-append hooks.
        Failures are logged; committed entries are never undone."""
        if self._stateful_streams():
            # The write caught up inside its transaction, so these follow every applied entry.
            with self._state_lock:
                for entry in entries:
                    if entry.seq > self._applied_seq:
                        self._apply_one(entry, strict=False)
        self.after_append(entries, context)

    def after_append(self, entries: Sequence[Entry], context: RequestContext | None) -> None:
        """Run each involved module's ``after_append``; failures are logged, never raised."""
        by_module: dict[str, list[Entry]] = {}
        for entry in entries:
            mid = self._stream_owner.get(entry.record.stream)
            if mid is not None:
                by_module.setdefault(mid, []).append(entry)
        for mid, ents in by_module.items():
            try:
                self._modules[mid].after_append(ents, context)
            except Exception:
                log.exception("module %r after_append failed (entries stay committed)", mid)

    # access-control helpers ---------------------------------------------------------------
    def resource_of(self, record: Record) -> tuple[str, str] | None:
        """``(resource_kind, resource_id)`` of a record in a module's stream, or None."""
        module = self.owner_of(record.stream)
        if module is None or module.resource_kind is None:
            return None
        rid = module.resource_id(record)
        return (module.resource_kind, rid) if rid is not None else None

    def seed_grants(self, record: Record) -> list[SeedGrant]:
        """Grants the owning module seeds for ``record`` (empty when no module owns its stream)."""
        module = self.owner_of(record.stream)
        return list(module.seed_grants(record)) if module is not None else []

    def withdraw_grants(self, record: Record) -> list[str]:
        """Principal OIDs whose grant on ``record``'s resource the owning module withdraws (empty
        when no module owns its stream). A value that is not an OID raises :class:`ModuleError`."""
        module = self.owner_of(record.stream)
        if module is None:
            return []
        found = list(module.withdraw_grants(record))
        for oid in found:
            if not is_oid(oid):
                raise ModuleError(f"withdraw_grants returned {str(oid)[:80]!r}, not an OID", module_id=module.id)
        return found

    # views --------------------------------------------------------------------------------
    def list(self) -> list[str]:
        """Ids of the registered modules, in registration order."""
        return list(self._modules)

    def metadata(self) -> builtins.list[ModuleMetadata]:
        """Id, version, state, streams, dependencies and resource kind of every module."""
        return [
            ModuleMetadata(
                id=mid,
                version=m.version,
                state=self._states[mid],
                streams=tuple(m.streams),
                depends_on=tuple(m.depends_on),
                resource_kind=m.resource_kind,
            )
            for mid, m in self._modules.items()
        ]

    @overload
    def get(self, module_id: str) -> Module: ...
    @overload
    def get(self, module_id: str, kind: type[M]) -> M: ...
    def get(self, module_id: str, kind: type[Module] | None = None) -> Module:
        """The module ``module_id``; with ``kind``, typed as that class (ModuleError if it is not
        one). An unknown id raises :class:`ModuleError` listing the known ids."""
        try:
            module = self._modules[module_id]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._modules)) or "none"
            raise ModuleError(
                f"is not enabled on this ledger (known modules: {known})", module_id=str(module_id)
            ) from None
        if kind is not None and not isinstance(module, kind):
            raise ModuleError(f"is a {type(module).__name__}, not a {kind.__name__}", module_id=module_id)
        return module

    def state(self, module_id: str) -> ModuleState:
        """The lifecycle state of ``module_id``."""
        self.get(module_id)
        return self._states[module_id]

    def runtime(self) -> LedgerRuntime:
        """A read-only view: list, metadata and get only."""
        return LedgerRuntime(self)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __len__(self) -> int:
        return len(self._modules)


class LedgerRuntime:
    """A read-only view of a ledger's modules: list, metadata and get, nothing else (no
    registration, no lifecycle calls)."""

    __slots__ = ("_get", "_list", "_metadata")

    _get: Callable[..., Module]
    _list: Callable[[], list[str]]
    _metadata: Callable[[], list[ModuleMetadata]]

    def __init__(self, registry: ModuleRegistry) -> None:
        object.__setattr__(self, "_get", registry.get)
        object.__setattr__(self, "_list", registry.list)
        object.__setattr__(self, "_metadata", registry.metadata)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("LedgerRuntime is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("LedgerRuntime is read-only")

    def list(self) -> list[str]:
        """Ids of the ledger's modules."""
        return self._list()

    def metadata(self) -> builtins.list[ModuleMetadata]:
        """Id, version and state of every module."""
        return self._metadata()

    @overload
    def get(self, module_id: str) -> Module: ...
    @overload
    def get(self, module_id: str, kind: type[M]) -> M: ...
    def get(self, module_id: str, kind: type[Module] | None = None) -> Module:
        """See :meth:`ModuleRegistry.get`."""
        return self._get(module_id, kind)


def _entry_of(row: StoredEntry) -> Entry:
    record = Record.from_canonical(row.canonical, seq=row.seq)
    return Entry(seq=row.seq, hash=row.hash, prev_hash=row.prev_hash, record=record, canonical=row.canonical)


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
        """Update query indexes for a committed event."""

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
        return _entry_of(row)

    def can_read(self, seq: int, context: RequestContext) -> bool:
        """Whether ``context`` may read entry ``seq``: the ``read`` scope and the access policy, as
        :meth:`readable` (which raises the same errors)."""
        return self.readable(seq, context) is not None
