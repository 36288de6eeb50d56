"""The old import paths keep working after nucleus_core.auth and nucleus_core.modules were split.

Third-party plugins import from ``nucleus_core.auth`` and ``nucleus_core.modules``; each name those
modules had must still be importable from there, and be the very object of its new home (a copy
would break ``isinstance`` checks and subclassing).
"""

from __future__ import annotations

import importlib

import pytest

# Every public name the two modules defined before the split, and the module that holds it now.
MOVED = {
    "nucleus_core.auth": {
        "nucleus_core.tokens": [
            "MAX_TOKEN_LENGTH",
            "REDACTED",
            "KeySourceUnavailableError",
            "PassiveTokenParser",  # added after the split (the passive check of an open stream)
            "RedactingFormatter",
            "TokenParser",
            "TokenRegistry",
            "build_token_registry",
            "redact_secrets",
            "token_fingerprint",
        ],
        "nucleus_core.settings": ["check_unknown_settings", "setting"],
        "nucleus_core.plugin_store": ["SqlPluginStore", "plugin_connection", "plugin_database"],
        "nucleus_core.jwt_tools": [
            "ASYMMETRIC_ALGORITHMS",
            "MAX_JWT_HEADER_CHARS",
            "MAX_NUMERIC_DATE",
            "NUMERIC_DATE_CLAIMS",
            "REQUIRED_CLAIMS",
            "SERVICE_TOKEN_TYPE",
            "check_algorithms",
            "check_numeric_dates",
            "decode_jwt",
            "jwt_header",
            "jwt_unverified_claims",
            "load_public_key",
            "looks_like_jwt",
            "scopes_from_claim",
        ],
        "nucleus_core.context": ["get_requester_oid", "require_context"],
        # Not moved but re-exported for plugin authors: a principal in a log line.
        "nucleus_core.requester_log": ["loggable_oid"],
    },
    "nucleus_core.modules": {
        "nucleus_core.module_base": ["Module", "ModuleContext", "ModuleMetadata", "ModuleState"],
        "nucleus_core.module_registry": ["LedgerRuntime", "ModuleRegistry"],
        "nucleus_core.stateful": ["IDENTIFIER_PATTERN", "MAX_SAFE_INT", "DerivedState", "StatefulModule", "rejection"],
        "nucleus_core.access": ["SCOPES", "SeedGrant"],
        # Not moved but re-exported for module authors (issue 16): the handle operation vocabulary.
        "nucleus_core.handles": [
            "HandleOperation", "HandleParam", "ModuleRuntime", "handle_operation", "operations_of",
        ],
    },
}

CASES = [(old, new, name) for old, homes in MOVED.items() for new, names in homes.items() for name in names]


@pytest.mark.parametrize(("old", "new", "name"), CASES, ids=[f"{o}.{n}" for o, _, n in CASES])
def test_old_path_exports_the_same_object(old: str, new: str, name: str) -> None:
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_all_lists_every_moved_name(old: str) -> None:
    expected = {name for names in MOVED[old].values() for name in names}
    assert set(importlib.import_module(old).__all__) == expected


def test_loggers_keep_their_names() -> None:
    """Logging configuration written against the old module names still reaches these messages."""
    assert importlib.import_module("nucleus_core.module_registry").log.name == "nucleus_core.modules"
    assert importlib.import_module("nucleus_core.stateful").log.name == "nucleus_core.modules"
    assert importlib.import_module("nucleus_core.jwt_tools").log.name == "nucleus_core.auth"
