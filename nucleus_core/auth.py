"""Authentication for plugin authors: one import path for the token-parser contract and its helpers.

The code lives in short modules, each with one job; this module re-exports their public names so
that ``from nucleus_core.auth import ...`` keeps working:

- :mod:`nucleus_core.tokens`: the :class:`TokenParser` contract (and :class:`PassiveTokenParser`), the per-ledger
  :class:`TokenRegistry` (``ledger.auth``) and secret-safe logging (:func:`token_fingerprint`,
  :func:`redact_secrets`, :class:`RedactingFormatter`);
- :mod:`nucleus_core.requester_log`: :func:`loggable_oid`, how a principal's OID may appear in a
  log line (the process's policy, ``[server] log_requester`` under ``nucleus serve``);
- :mod:`nucleus_core.settings`: :func:`setting` and :func:`check_unknown_settings`;
- :mod:`nucleus_core.plugin_store`: :class:`SqlPluginStore` and :func:`plugin_database` /
  :func:`plugin_connection`, for plugins with tables beside the ledger (through the storage
  capabilities, peewee imported lazily);
- :mod:`nucleus_core.jwt_tools`: the JWT helpers shared by the ``connect`` and ``service`` parsers
  (PyJWT imported lazily; the distributions that call them declare ``pyjwt[crypto]>=2.15``).
"""

from __future__ import annotations

from .context import get_requester_oid, require_context
from .jwt_tools import (
    ASYMMETRIC_ALGORITHMS,
    MAX_JWT_HEADER_CHARS,
    MAX_NUMERIC_DATE,
    NUMERIC_DATE_CLAIMS,
    REQUIRED_CLAIMS,
    SERVICE_TOKEN_TYPE,
    check_algorithms,
    check_numeric_dates,
    decode_jwt,
    jwt_header,
    jwt_unverified_claims,
    load_public_key,
    looks_like_jwt,
    scopes_from_claim,
)
from .plugin_store import SqlPluginStore, plugin_connection, plugin_database
from .requester_log import loggable_oid
from .settings import check_unknown_settings, setting
from .tokens import (
    MAX_TOKEN_LENGTH,
    REDACTED,
    KeySourceUnavailableError,
    PassiveTokenParser,
    RedactingFormatter,
    TokenParser,
    TokenRegistry,
    build_token_registry,
    redact_secrets,
    token_fingerprint,
)

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MAX_JWT_HEADER_CHARS",
    "MAX_NUMERIC_DATE",
    "MAX_TOKEN_LENGTH",
    "NUMERIC_DATE_CLAIMS",
    "REDACTED",
    "REQUIRED_CLAIMS",
    "SERVICE_TOKEN_TYPE",
    "KeySourceUnavailableError",
    "PassiveTokenParser",
    "RedactingFormatter",
    "SqlPluginStore",
    "TokenParser",
    "TokenRegistry",
    "build_token_registry",
    "check_algorithms",
    "check_numeric_dates",
    "check_unknown_settings",
    "decode_jwt",
    "get_requester_oid",
    "jwt_header",
    "jwt_unverified_claims",
    "load_public_key",
    "loggable_oid",
    "looks_like_jwt",
    "plugin_connection",
    "plugin_database",
    "redact_secrets",
    "require_context",
    "scopes_from_claim",
    "setting",
    "token_fingerprint",
]
