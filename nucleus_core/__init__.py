"""Nucleus: a verifiable, hash-chained ledger framework with plugins."""

from __future__ import annotations

import logging

from .access import AccessPolicy, AuthenticatedPolicy
from .context import RequestContext, get_requester_oid, require_context
from .errors import (
    AccessDeniedError,
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    ConflictError,
    DuplicateRecordError,
    IntegrityError,
    LedgerClosedError,
    LedgerNotFoundError,
    MissingRequesterError,
    ModuleError,
    NucleusError,
    PluginError,
    QueryError,
    ReadOnlyLedgerError,
    RecordRejectedError,
    RecordTooLargeError,
    RecordValidationError,
    StorageError,
    StorageUnavailableError,
    TokenExpiredError,
    TokenInvalidError,
    ValidationError,
)
from .handles import HandleOperation, HandleParam, ModuleRuntime, handle_operation, operations_of
from .hashing import GENESIS_HASH, entry_hash
from .hookspecs import hookimpl
from .ledger import Ledger, LedgerConfig, create_ledger, open_ledger, release_plugin
from .modules import LedgerRuntime, Module, ModuleContext, ModuleRegistry, ModuleState
from .oid import is_oid, validate_oid
from .query import QueryFilters, QueryResult
from .records import Entry, Record
from .specs import AclProviderSpec, ModuleSpec, PluginContext, StorageBackendSpec, TokenParserSpec
from .storage import ChainHead, MemoryStorage, StorageBackend, StorageQuery
from .verify import VerificationReport

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AccessDeniedError", "AccessPolicy", "AclProviderSpec", "AuthenticatedPolicy", "AuthenticationError",
    "AuthorizationError", "ChainHead", "ConfigurationError", "ConflictError", "DuplicateRecordError", "Entry",
    "GENESIS_HASH", "HandleOperation", "HandleParam", "IntegrityError", "Ledger", "LedgerClosedError", "LedgerConfig",
    "LedgerNotFoundError", "LedgerRuntime", "MemoryStorage", "MissingRequesterError", "Module", "ModuleContext",
    "ModuleError", "ModuleRegistry", "ModuleRuntime", "ModuleSpec", "ModuleState", "NucleusError", "PluginContext",
    "PluginError", "QueryError", "QueryFilters", "QueryResult", "ReadOnlyLedgerError", "Record",
    "RecordRejectedError", "RecordTooLargeError", "RecordValidationError", "RequestContext", "StorageBackend",
    "StorageBackendSpec", "StorageError", "StorageQuery", "StorageUnavailableError", "TokenExpiredError",
    "TokenInvalidError", "TokenParserSpec", "ValidationError", "VerificationReport", "__version__", "create_ledger",
    "entry_hash", "get_requester_oid", "handle_operation", "hookimpl", "is_oid", "open_ledger", "operations_of",
    "release_plugin", "require_context", "validate_oid",
]
