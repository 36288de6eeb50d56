"""The modules of one ledger: registration, lifecycle and the append path.

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

import builtins
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .access import SeedGrant
from .context import RequestContext
from .errors import ModuleError, NucleusError, RecordRejectedError, ValidationError
from .handles import ModuleRuntime, operations_of
from .module_base import Module, ModuleContext, ModuleMetadata, ModuleState
from .oid import is_oid
from .records import Entry, Record, validate_stream
from .storage import MAX_QUERY_LIMIT, StorageBackend, StorageQuery

# The logger keeps the name it had before the registry left nucleus_core.modules.
log = logging.getLogger("nucleus_core.modules")

M = TypeVar("M", bound=Module)


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
        operations_of(type(module))  # an unsupported handle operation is refused here, naming it
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
    def lock(self) -> AbstractContextManager[Any]:
        """The lock that derived state and module indexes change under (catch-up, the entries of a
        commit, a batch's validation). A handle query holds it, briefly (no storage read), to copy
        the part of an index it then reads (:meth:`StatefulModule.indexed`): iterating a set or dict
        that ``index`` changes meanwhile would fail ("changed size during iteration")."""
        return self._state_lock

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
                    self._apply_one(row, strict=strict)
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
        if not self._stream_owner:
            return  # no module owns a stream: nothing to validate
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
        if not self._stream_owner:
            return
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



if TYPE_CHECKING:

    def _ledger_runtime_is_a_module_runtime(runtime: LedgerRuntime) -> ModuleRuntime:
        """mypy checks here that :class:`LedgerRuntime` offers :class:`ModuleRuntime`."""
        return runtime
