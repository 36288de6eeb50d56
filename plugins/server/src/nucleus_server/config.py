"""``nucleus serve`` configuration: a TOML file, structured strictly, then overridden by flags.

``[ledger]`` and ``[plugins.*]`` are the core's (:mod:`nucleus_core.config`, read by every ``nucleus``
command with ``--config``); ``[server]`` is the server's own.

The ledger's sections are documented with an example in :mod:`nucleus_core.config`; the server's
own section (every key optional; unknown keys are refused)::

    [server]
    host = "127.0.0.1"
    port = 8080
    public_paths = ["/health", "/openapi.json", "/checkpoint/key", "/checkpoint", "/checkpoint/witnesses",
                    "/proof/consistency"]
    # realm = "nucleus"
    # max_body_bytes = 8388608
    # max_batch_records = 1000
    # threads = 8          # at least 2: entry streams take at most half of the pool
    # workers = 2          # processes serving the ledger; default: the number of cores (1 for memory storage)
    # shutdown_timeout = 30
    # log_level = "info"
    # log_format = "text"  # or "json": one JSON object per line (docs/OPERATIONS.md, "Logs")
    # log_requester = "none"  # or "hash": the access log's "requester", HMAC-SHA256 of the OID
    # log_requester_key_env = "NUCLEUS_LOG_REQUESTER_KEY"  # the variable holding that key
    # explorer = true      # the ledger explorer at /explorer (false: not served)
    # max_streams = 1000           # GET /entries/stream responses open at once (503 beyond)
    # stream_poll_interval = 0.2   # seconds: how soon streams see other processes' commits
    # stream_keepalive = 15        # seconds of silence before a stream's keep-alive comment (0.05-3600)
    # max_streams_per_principal = 16  # streams open at once for one principal (429 beyond)
    # stream_reauth_interval = 5   # seconds: how often an open stream authenticates its token again
    # metrics = "protected"  # GET /metrics with the metrics plugin: "protected" (a token), "public", "off"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from nucleus_core.config import LedgerSection, read_toml, structure_strictly
from nucleus_core.errors import ConfigurationError

from .logs import LOG_FORMATS, LOG_REQUESTERS, MIN_REQUESTER_KEY_BYTES
from .settings import (
    DEFAULT_MAX_BATCH_RECORDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_PRINCIPAL,
    DEFAULT_PUBLIC_PATHS,
    DEFAULT_STREAM_REAUTH_INTERVAL,
    ServerSettings,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_WORKERS = 256
"""Most processes ``nucleus serve --workers`` runs."""
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
DEFAULT_REQUESTER_KEY_ENV = "NUCLEUS_LOG_REQUESTER_KEY"


@attrs.frozen(kw_only=True)
class ServerSection:
    """``[server]``: where to listen and the HTTP limits."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    realm: str = "nucleus"
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS
    threads: int = 8
    workers: int | None = None
    max_header_bytes: int = 8192
    shutdown_timeout: int = 30
    log_level: str = "info"
    log_format: str = "text"
    log_requester: str = "none"
    log_requester_key_env: str = DEFAULT_REQUESTER_KEY_ENV
    explorer: bool = True
    max_streams: int = DEFAULT_MAX_STREAMS
    stream_poll_interval: float = 0.2
    stream_keepalive: float = 15.0
    max_streams_per_principal: int = DEFAULT_MAX_STREAMS_PER_PRINCIPAL
    stream_reauth_interval: float = DEFAULT_STREAM_REAUTH_INTERVAL
    metrics: str = "protected"

    def requester_key(self) -> bytes | None:
        """The key of ``log_requester = "hash"`` (from ``log_requester_key_env``), None for "none"."""
        if self.log_requester != "hash":
            return None
        value = os.environ.get(self.log_requester_key_env, "")
        if len(value.encode("utf-8")) < MIN_REQUESTER_KEY_BYTES:
            raise ConfigurationError(
                f'server.log_requester = "hash" needs a key of at least {MIN_REQUESTER_KEY_BYTES} bytes in the '
                f"environment variable {self.log_requester_key_env} (server.log_requester_key_env)"
            )
        return value.encode("utf-8")

    def settings(self) -> ServerSettings:
        """The HTTP layer's settings (validated)."""
        return ServerSettings(
            realm=self.realm,
            public_paths=self.public_paths,
            max_body_bytes=self.max_body_bytes,
            max_batch_records=self.max_batch_records,
            threads=self.threads,
            max_header_bytes=self.max_header_bytes,
            explorer=self.explorer,
            metrics=self.metrics,
            log_requester_key=self.requester_key(),
            max_streams=self.max_streams,
            stream_poll_interval=self.stream_poll_interval,
            stream_keepalive=self.stream_keepalive,
            max_streams_per_principal=self.max_streams_per_principal,
            stream_reauth_interval=self.stream_reauth_interval,
        )


@attrs.frozen(kw_only=True)
class ServeConfig:
    """The whole file: ``[ledger]``, ``[plugins.<name>]`` (settings per enabled plugin) and ``[server]``."""

    ledger: LedgerSection = attrs.field(factory=LedgerSection)
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    server: ServerSection = attrs.field(factory=ServerSection)

    def check(self) -> ServeConfig:
        """Validate values the types alone do not cover; returns self."""
        port = self.server.port
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"server.port must be from 0 to 65535, got {port}")
        if not 1 <= self.server.shutdown_timeout <= 3600:
            raise ConfigurationError("server.shutdown_timeout must be from 1 to 3600 seconds")
        if self.server.log_level not in LOG_LEVELS:
            raise ConfigurationError(f"server.log_level must be one of {', '.join(LOG_LEVELS)}")
        if self.server.log_format not in LOG_FORMATS:
            raise ConfigurationError(f"server.log_format must be one of {', '.join(LOG_FORMATS)}")
        if self.server.log_requester not in LOG_REQUESTERS:
            raise ConfigurationError(f"server.log_requester must be one of {', '.join(LOG_REQUESTERS)}")
        workers = self.server.workers
        if workers is not None and (type(workers) is not int or not 1 <= workers <= MAX_WORKERS):
            raise ConfigurationError(f"server.workers must be an integer from 1 to {MAX_WORKERS}, got {workers!r}")
        if not self.server.host:
            raise ConfigurationError("server.host must not be empty")
        self.server.settings()
        return self


def structure_config(data: Any, *, source: str = "configuration") -> ServeConfig:
    """Build a :class:`ServeConfig` from parsed TOML; a :class:`ConfigurationError` naming every bad key.
    ``[ledger]`` and ``[plugins]`` follow the core's schema (:mod:`nucleus_core.config`)."""
    config: ServeConfig = structure_strictly(data, ServeConfig, source=source)
    return config.check()


def load_config(path: str | Path | None) -> ServeConfig:
    """Read the TOML file at ``path`` (defaults for everything when None)."""
    if path is None:
        return ServeConfig().check()
    return structure_config(read_toml(path), source=str(Path(path)))
