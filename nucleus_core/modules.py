"""Modules: per-ledger domain extensions with a lifecycle.

A module owns streams, validates records appended to them, and may keep state derived from the
chain. Each ledger has its own :class:`ModuleRegistry`; modules come from the
``nucleus_register_modules`` hook of the plugins the ledger enables.

Lifecycle: register -> init_all -> start_all -> (runtime) -> stop_all. States: registered,
initialized, started, stopped, failed.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import attrs

from .errors import ModuleError, NucleusError, RecordRejectedError

if TYPE_CHECKING:
    from .context import RequestContext
    from .records import Entry, Record

log = logging.getLogger(__name__)

M = TypeVar("M", bound="Module")


class ModuleState(enum.Enum):
    REGISTERED = "registered"
    INITIALIZED = "initialized"
    STARTED = "started"
    STOPPED = "stopped"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class ModuleContext:
    """What a module's lifecycle hooks receive: the ledger (for reads, as the module sees fit),
    this module's settings from the ledger configuration, and a logger named after the module."""

    ledger: Any
    settings: Mapping[str, Any]
    logger: logging.Logger


@attrs.frozen(kw_only=True)
class ModuleMetadata:
    id: str
    version: str
    state: ModuleState
    streams: tuple[str, ...]
    depends_on: tuple[str, ...]


class Module:
    """Base class for modules. Subclasses set ``id``, ``version``, ``streams`` and ``depends_on``
    and override the hooks they need. Instances are built per ledger by the registry."""

    id: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    streams: ClassVar[tuple[str, ...]] = ()
    depends_on: ClassVar[tuple[str, ...]] = ()

    def init(self, ctx: ModuleContext) -> None:
        """Prepare (read configuration, rebuild derived state from the chain)."""

    def start(self, ctx: ModuleContext) -> None:
        """Begin serving."""

    def stop(self, ctx: ModuleContext) -> None:
        """Release resources. Must not assume ``start`` ran."""

    def validate(self, record: Record, context: RequestContext) -> None:
        """Refuse a record in one of this module's streams by raising
        :class:`~nucleus_core.errors.RecordRejectedError` (or any ValidationError)."""

    def before_append(self, records: Sequence[Record], context: RequestContext) -> None:
        """Runs after every record of the batch was validated, before the write. Raising refuses the batch."""

    def after_append(self, entries: Sequence[Entry], context: RequestContext | None) -> None:
        """Runs after the commit with the entries of this module's streams. Failures are logged and never
        undo the committed entries."""


class ModuleRegistry:
    """The modules of one ledger and their lifecycle."""

    def __init__(self) -> None:
        self._modules: dict[str, Module] = {}
        self._states: dict[str, ModuleState] = {}
        self._contexts: dict[str, ModuleContext] = {}
        self._order: list[str] = []
        self._started: list[str] = []
        self._stream_owner: dict[str, str] = {}
        self._phase = "registering"

    # registration -------------------------------------------------------------------------
    def register(self, module: Module, context: ModuleContext) -> None:
        if self._phase != "registering":
            raise ModuleError("cannot register after the registry was initialized", module_id=getattr(module, "id", "?"))
        mid = module.id
        if not isinstance(mid, str) or not mid:
            raise ModuleError("a module needs a non-empty id", module_id=repr(mid))
        if mid in self._modules:
            raise ModuleError("is registered twice", module_id=mid)
        for stream in module.streams:
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
                cycle = visiting[visiting.index(mid) :] + [mid]
                raise ModuleError(f"dependency cycle: {' -> '.join(cycle)}", module_id=mid)
            visiting.append(mid)
            for dep in self._modules[mid].depends_on:
                if dep not in self._modules:
                    raise ModuleError(
                        f"depends on module {dep!r}, which is not enabled on this ledger", module_id=mid
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
        self._order = self._resolve_order()
        self._phase = "initializing"
        for mid in self._order:
            self._run(mid, "init", ModuleState.INITIALIZED)
        self._phase = "initialized"

    def start_all(self) -> None:
        self._phase = "starting"
        for mid in self._order:
            self._run(mid, "start", ModuleState.STARTED)
            self._started.append(mid)
        self._phase = "started"

    def _run(self, mid: str, hook: str, new_state: ModuleState) -> None:
        try:
            getattr(self._modules[mid], hook)(self._contexts[mid])
        except Exception as err:
            self._states[mid] = ModuleState.FAILED
            self.stop_all()
            raise ModuleError(f"{hook} failed: {type(err).__name__}: {err}", module_id=mid) from err
        self._states[mid] = new_state

    def stop_all(self) -> None:
        """Stop every initialized or started module in reverse order, exactly once. Best effort:
        failures are logged, never raised."""
        if self._phase == "stopped":
            return
        self._phase = "stopped"
        for mid in reversed(self._order):
            if self._states.get(mid) not in (ModuleState.INITIALIZED, ModuleState.STARTED, ModuleState.FAILED):
                continue
            try:
                self._modules[mid].stop(self._contexts[mid])
            except Exception:  # noqa: BLE001 - stop is best effort by contract
                log.exception("module %r failed to stop", mid)
                self._states[mid] = ModuleState.FAILED
            else:
                self._states[mid] = ModuleState.STOPPED

    # append path --------------------------------------------------------------------------
    def owner_of(self, stream: str) -> Module | None:
        mid = self._stream_owner.get(stream)
        return self._modules[mid] if mid is not None else None

    def validate(self, records: Sequence[Record], context: RequestContext) -> None:
        involved: dict[str, list[Record]] = {}
        for record in records:
            mid = self._stream_owner.get(record.stream)
            if mid is None:
                continue
            module = self._modules[mid]
            try:
                module.validate(record, context)
            except RecordRejectedError:
                raise
            except NucleusError as err:
                raise RecordRejectedError(f"record {record.id!r} refused: {err}", module_id=mid, record_id=record.id) from err
            except (ValueError, TypeError, KeyError) as err:
                raise RecordRejectedError(
                    f"record {record.id!r} refused: {type(err).__name__}: {err}", module_id=mid, record_id=record.id
                ) from err
            involved.setdefault(mid, []).append(record)
        for mid, recs in involved.items():
            try:
                self._modules[mid].before_append(recs, context)
            except RecordRejectedError:
                raise
            except NucleusError as err:
                raise RecordRejectedError(f"batch refused: {err}", module_id=mid) from err

    def after_append(self, entries: Sequence[Entry], context: RequestContext | None) -> None:
        by_module: dict[str, list[Entry]] = {}
        for entry in entries:
            mid = self._stream_owner.get(entry.record.stream)
            if mid is not None:
                by_module.setdefault(mid, []).append(entry)
        for mid, ents in by_module.items():
            try:
                self._modules[mid].after_append(ents, context)
            except Exception:  # noqa: BLE001 - a committed entry is never undone
                log.exception("module %r after_append failed (entries stay committed)", mid)

    # views --------------------------------------------------------------------------------
    def list(self) -> list[str]:
        return list(self._modules)

    def metadata(self) -> list[ModuleMetadata]:
        return [
            ModuleMetadata(
                id=mid, version=m.version, state=self._states[mid], streams=tuple(m.streams), depends_on=tuple(m.depends_on)
            )
            for mid, m in self._modules.items()
        ]

    @overload
    def get(self, module_id: str) -> Module: ...
    @overload
    def get(self, module_id: str, kind: type[M]) -> M: ...
    def get(self, module_id: str, kind: type[Module] | None = None) -> Module:
        try:
            module = self._modules[module_id]
        except KeyError:
            known = ", ".join(sorted(self._modules)) or "none"
            raise ModuleError(f"is not enabled on this ledger (known modules: {known})", module_id=module_id) from None
        if kind is not None and not isinstance(module, kind):
            raise ModuleError(f"is a {type(module).__name__}, not a {kind.__name__}", module_id=module_id)
        return module

    def state(self, module_id: str) -> ModuleState:
        self.get(module_id)
        return self._states[module_id]

    def runtime(self) -> LedgerRuntime:
        return LedgerRuntime(self)

    def __iter__(self) -> Iterable[Module]:  # pragma: no cover - convenience
        return iter(self._modules.values())


class LedgerRuntime:
    """A read-only view of a ledger's modules: list and get, nothing else."""

    __slots__ = ("_registry",)

    def __init__(self, registry: ModuleRegistry) -> None:
        object.__setattr__(self, "_registry", registry)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("LedgerRuntime is read-only")

    def list(self) -> list[str]:
        return self._registry.list()

    def metadata(self) -> list[ModuleMetadata]:
        return self._registry.metadata()

    @overload
    def get(self, module_id: str) -> Module: ...
    @overload
    def get(self, module_id: str, kind: type[M]) -> M: ...
    def get(self, module_id: str, kind: type[Module] | None = None) -> Module:
        return self._registry.get(module_id, kind) if kind is not None else self._registry.get(module_id)
