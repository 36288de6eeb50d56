"""The witness's configuration file, ``witness.toml``: TOML, structured strictly (unknown keys refused).

Example (the README of this distribution explains every key)::

    [witness]
    key_file = "/etc/nucleus/witness.key"    # its cosignature key (nucleus witness keygen), mode 0600
    state = "/var/lib/nucleus/witness.db"    # SQLite: per log, the latest checkpoint it cosigned
    host = "127.0.0.1"
    port = 8090
    # prefix = ""                            # URL path prefix of add-checkpoint and the monitoring path
    # insecure_key_permissions = false       # accept a key file others may read
    # log_level = "info"

    [[logs]]                                 # one table per log witnessed
    origin = "ledger.example.com/main"
    vkeys = ["ledger.example.com/main+1a2b3c4d+AX...="]   # the log's checkpoint verifier key(s)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from nucleus_core.config import read_toml, structure_strictly
from nucleus_core.errors import ConfigurationError
from nucleus_core.tlog_verify import NoteVerifier, VerificationError, parse_vkey

__all__ = ["LOG_LEVELS", "LogSection", "WitnessConfig", "WitnessSection", "load_config"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

DEFAULT_PORT = 8090
"""The port ``nucleus witness serve`` listens on unless configured."""


@attrs.frozen(kw_only=True)
class WitnessSection:
    """``[witness]``: the key, the state file and where to listen."""

    key_file: str
    state: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    prefix: str = ""
    insecure_key_permissions: bool = False
    log_level: str = "info"


@attrs.frozen(kw_only=True)
class LogSection:
    """One ``[[logs]]`` table: a log the witness cosigns for, by its origin and verifier key(s)."""

    origin: str
    vkeys: tuple[str, ...]

    def verifiers(self) -> tuple[NoteVerifier, ...]:
        """The log's keys, parsed (:class:`ConfigurationError` naming the bad one)."""
        found: dict[tuple[str, int], NoteVerifier] = {}
        for number, vkey in enumerate(self.vkeys, 1):
            try:
                verifier = parse_vkey(vkey)
            except VerificationError as err:
                raise ConfigurationError(f"logs {self.origin!r}: vkeys entry {number}: {err}") from None
            if (verifier.name, verifier.key_id) in found:
                raise ConfigurationError(
                    f"logs {self.origin!r}: vkeys entry {number}: a second key named "
                    f"{verifier.name}+{verifier.key_id:08x} (a signature could not tell them apart)"
                )
            found[verifier.name, verifier.key_id] = verifier
        return tuple(found.values())


@attrs.frozen(kw_only=True)
class WitnessConfig:
    """The whole file: ``[witness]`` and the ``[[logs]]`` witnessed."""

    witness: WitnessSection
    logs: tuple[LogSection, ...] = ()

    def check(self) -> WitnessConfig:
        """Refuse what cannot be served (:class:`ConfigurationError` saying what); return self."""
        w = self.witness
        if w.log_level not in LOG_LEVELS:
            raise ConfigurationError(f"witness.log_level must be one of {', '.join(LOG_LEVELS)}")
        if not w.host:
            raise ConfigurationError("witness.host must not be empty")
        if not 0 <= w.port <= 65535:
            raise ConfigurationError("witness.port must be from 0 to 65535")
        if w.prefix and (not w.prefix.startswith("/") or w.prefix.endswith("/") or "?" in w.prefix):
            raise ConfigurationError("witness.prefix is empty or a path such as /witness (no final '/')")
        if not w.key_file:
            raise ConfigurationError("witness.key_file must name the witness's key file")
        if not w.state or w.state == ":memory:" or w.state.startswith("file:"):
            raise ConfigurationError(
                "witness.state must be a SQLite file path: a witness that forgets what it cosigned would cosign a fork"
            )
        if not self.logs:
            raise ConfigurationError("no [[logs]] table: the witness would cosign nothing")
        seen = set()
        for log in self.logs:
            if not log.origin or any(ord(c) < 0x20 or ord(c) == 0x7F for c in log.origin):
                raise ConfigurationError(f"logs: the origin {log.origin!r} is empty or holds a control character")
            if log.origin in seen:
                raise ConfigurationError(f"logs: the origin {log.origin!r} is listed twice")
            seen.add(log.origin)
            if not log.vkeys:
                raise ConfigurationError(f"logs {log.origin!r}: no vkeys (the log's checkpoint verifier keys)")
            log.verifiers()
        return self


def structure_config(data: Any, *, source: str = "configuration") -> WitnessConfig:
    """Build a :class:`WitnessConfig` from parsed TOML; a :class:`ConfigurationError` naming every bad key."""
    config: WitnessConfig = structure_strictly(data, WitnessConfig, source=source)
    return config.check()


def load_config(path: str | Path) -> WitnessConfig:
    """Read and check the TOML file at ``path``."""
    return structure_config(read_toml(path), source=str(Path(path)))
