"""Modules: per-ledger domain extensions with a lifecycle (one import path for module authors).

A module owns streams, validates records appended to them, and may keep state derived from the
chain. Each ledger has its own :class:`ModuleRegistry`; modules come from the
``nucleus_register_modules`` hook of the plugins the ledger enables (see ``docs/MODULES.md``).

The lifecycle and the append path are described in :mod:`nucleus_core.module_registry`.

The code lives in short modules, each with one job; this module re-exports their names so that
``from nucleus_core.modules import ...`` keeps working: :mod:`nucleus_core.module_base` (the
:class:`Module` contract, its context, metadata and states), :mod:`nucleus_core.module_registry`
(:class:`ModuleRegistry`, :class:`LedgerRuntime`), :mod:`nucleus_core.stateful` (the kit for
modules with derived state: :class:`StatefulModule`, :class:`DerivedState`, :func:`rejection`) and
:mod:`nucleus_core.access` (the access vocabulary :class:`SeedGrant` and :data:`SCOPES`) and
:mod:`nucleus_core.handles` (:func:`handle_operation`, :func:`operations_of`, :class:`ModuleRuntime`).
"""

from __future__ import annotations

from .access import SCOPES, SeedGrant
from .handles import HandleOperation, HandleParam, ModuleRuntime, handle_operation, operations_of
from .module_base import Module, ModuleContext, ModuleMetadata, ModuleState
from .module_registry import LedgerRuntime, ModuleRegistry
from .stateful import IDENTIFIER_PATTERN, MAX_SAFE_INT, DerivedState, StatefulModule, rejection

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_SAFE_INT",
    "SCOPES",
    "DerivedState",
    "HandleOperation",
    "HandleParam",
    "LedgerRuntime",
    "Module",
    "ModuleContext",
    "ModuleMetadata",
    "ModuleRegistry",
    "ModuleRuntime",
    "ModuleState",
    "SeedGrant",
    "StatefulModule",
    "handle_operation",
    "operations_of",
    "rejection",
]
