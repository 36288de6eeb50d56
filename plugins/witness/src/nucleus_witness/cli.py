"""``nucleus witness keygen KEYFILE --name NAME``, ``nucleus witness key --config witness.toml`` (its
verifier key) and ``nucleus witness serve --config witness.toml``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import click

from nucleus_core.checkpoint import CosignatureSigner, read_signer_key_file, write_key_file
from nucleus_core.cli import EXIT_CONFIGURATION, CommandError, fail, json_option
from nucleus_core.errors import ConfigurationError, NucleusError, ValidationError

from .app import WitnessApp
from .config import LOG_LEVELS, WitnessConfig, load_config
from .state import WitnessState
from .witness import FAULT_ENV, Witness, WitnessedLog

__all__ = ["build_witness", "listen_socket", "serve", "witness_group"]

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    envvar="NUCLEUS_WITNESS_CONFIG",
    type=click.Path(dir_okay=False),
    help="The witness.toml file [env NUCLEUS_WITNESS_CONFIG].",
)
"""``--config FILE``: the witness's configuration file."""


@click.group("witness")
def witness_group() -> None:
    """A C2SP tlog-witness: cosign checkpoints of the logs it is configured for, each only when it
    is consistent with the last one it cosigned (docs/TRANSPARENCY.md, "Witnesses")."""


@witness_group.command("keygen")
@click.argument("path", metavar="KEYFILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The witness's name, a scheme-less URL such as witness.example.com/w1.")
@json_option
def keygen_command(path: Path, name: str, as_json: bool) -> None:
    """Write a new Ed25519 cosignature key named NAME to KEYFILE (mode 0600; an existing KEYFILE is
    never overwritten) and print its verifier key (type 0x04), the line logs and clients trust the
    witness by."""
    try:
        signer = CosignatureSigner.generate(name)
    except ValidationError as err:
        fail(f"--name {name!r}: {err}", exit_code=EXIT_CONFIGURATION, code=err.code)
    try:
        write_key_file(path, signer)
    except ConfigurationError as err:
        raise CommandError.from_error(err, as_json=as_json) from None
    if as_json:
        document = {"path": str(path), "name": signer.name, "key_id": f"{signer.key_id:08x}", "vkey": signer.vkey}
        click.echo(json.dumps(document))
        return
    click.echo(f"wrote a new witness key to {path} (keep it secret); its verifier key:", err=True)
    click.echo(signer.vkey)


@witness_group.command("key")
@config_option
@json_option
def key_command(config_path: str, as_json: bool) -> None:
    """Print the verifier key of the configured witness key (what logs and clients trust it by),
    without opening its state or serving."""
    try:
        section = load_config(config_path).witness
        signer = read_signer_key_file(
            section.key_file, CosignatureSigner, insecure_permissions=section.insecure_key_permissions
        )
    except NucleusError as err:
        raise CommandError.from_error(err, as_json=as_json) from None
    if as_json:
        click.echo(json.dumps({"name": signer.name, "key_id": f"{signer.key_id:08x}", "vkey": signer.vkey}))
        return
    click.echo(signer.vkey)


def build_witness(config: WitnessConfig, *, fault: str | None = None) -> Witness:
    """The witness a configuration describes: its key read, its state file opened."""
    section = config.witness
    signer = read_signer_key_file(
        section.key_file, CosignatureSigner, insecure_permissions=section.insecure_key_permissions
    )
    logs = [WitnessedLog(origin=log.origin, verifiers=log.verifiers()) for log in config.logs]
    return Witness(signer, logs, WitnessState(section.state), fault=fault)


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("nucleus_witness", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [h for h in logger.handlers if not getattr(h, "_nucleus_witness", False)]
        handler._nucleus_witness = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(level.upper())


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, exiting normally after a graceful shutdown on SIGINT or SIGTERM."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a port the system chooses), for uvicorn.

    It is made with the protocol number ``IPPROTO_TCP`` (``socket.create_server`` leaves it 0):
    asyncio turns Nagle's algorithm off only on connections whose socket says TCP, and without that
    every answer, written as headers then body, waits for the client's delayed acknowledgement
    (40 ms a request on Linux)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def serve(config: WitnessConfig, *, fault: str | None = None) -> None:
    """Serve the configured witness until SIGINT or SIGTERM. The listening socket is bound before
    the first line is printed, so a port 0 prints the port the system chose."""
    import uvicorn

    _configure_logging(config.witness.log_level)
    witness = build_witness(config, fault=fault)
    if fault is not None:
        click.echo(f"nucleus witness: TEST FAULT {fault!r} ENABLED ({FAULT_ENV}); never in production", err=True)
    try:
        sock = listen_socket(config.witness.host, config.witness.port)
    except OSError as err:
        witness.state.close()
        raise ConfigurationError(
            f"cannot listen on {config.witness.host}:{config.witness.port}: {err.strerror or err}"
        ) from None
    host, port = sock.getsockname()[:2]
    click.echo(f"nucleus witness: {witness.signer.name} verifier key {witness.signer.vkey}", err=True)
    click.echo(
        f"nucleus witness: {len(witness.logs)} log(s) ({', '.join(witness.logs)}); state {config.witness.state}; "
        f"listening on http://{host}:{port}{config.witness.prefix}",
        err=True,
    )
    server = _server_class()(
        uvicorn.Config(
            WitnessApp(witness, prefix=config.witness.prefix),
            lifespan="on",
            log_level=config.witness.log_level,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        witness.state.close()
    click.echo("nucleus witness: stopped", err=True)


@witness_group.command("serve")
@config_option
@click.option("--host", help="Interface to listen on (overrides [witness] host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (overrides [witness] port; 0: any free port).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="Overrides [witness] log_level.")
def serve_command(config_path: str, host: str | None, port: int | None, log_level: str | None) -> None:
    """Serve the witness over HTTP (POST /add-checkpoint, c2sp.org/tlog-witness) until interrupted."""
    try:
        config = load_config(config_path)
        changes: dict[str, Any] = {
            k: v for k, v in (("host", host), ("port", port), ("log_level", log_level)) if v is not None
        }
        config = attrs.evolve(config, witness=attrs.evolve(config.witness, **changes)).check()
        serve(config, fault=os.environ.get(FAULT_ENV) or None)
    except NucleusError as err:
        raise CommandError.from_error(err, as_json=False) from None
