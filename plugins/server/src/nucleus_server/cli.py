"""``nucleus serve``: run a ledger as an HTTP service with uvicorn."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import click

from nucleus_core.auth import RedactingFormatter
from nucleus_core.ledger import DEFAULT_SQLITE_FILE, DEVELOPMENT, current_environment
from nucleus_core.requester_log import set_requester_policy

from .config import MAX_WORKERS, ServeConfig, load_config
from .logs import LOG_FORMATS, JsonFormatter

DEV_PARSER = "auth.dev"

DEV_BANNER = """
################################################################################
#  NUCLEUS DEVELOPMENT MODE                                                    #
#  Anyone can act as any principal with a token "dev:oid:<ns>:<type>:<id>".    #
#  NEVER use this in production: no real authentication is performed.          #
################################################################################
"""
DEV_NOTICE = (
    "NUCLEUS DEVELOPMENT MODE: anyone can act as any principal with a development token; "
    "NEVER use this in production: no real authentication is performed"
)
"""The banner as one log line (``--log-format json``)."""


def apply_flags(
    config: ServeConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    storage: str | None = None,
    ledger_id: str | None = None,
    plugins: tuple[str, ...] = (),
    admins: tuple[str, ...] = (),
    public_paths: tuple[str, ...] = (),
    log_level: str | None = None,
    log_format: str | None = None,
    workers: int | None = None,
    dev: bool = False,
) -> ServeConfig:
    """The configuration with command-line flags applied on top (flags win). ``--plugin`` and
    ``--admin`` add to the file's lists; ``--public-path`` replaces its list. ``dev`` adds the
    development token parser and, without another storage, uses ``./nucleus.db``."""
    ledger = config.ledger
    server = config.server
    enabled = dict(config.plugins)
    for name in plugins:
        enabled.setdefault(name, {})
    if dev:
        enabled.setdefault(DEV_PARSER, {})
        if storage is None and ledger.storage is None:
            storage = f"sqlite:///{DEFAULT_SQLITE_FILE}"
    ledger = attrs.evolve(
        ledger,
        id=ledger_id if ledger_id is not None else ledger.id,
        storage=storage if storage is not None else ledger.storage,
        admins=tuple(dict.fromkeys((*ledger.admins, *admins))),
    )
    server = attrs.evolve(
        server,
        host=host if host is not None else server.host,
        port=port if port is not None else server.port,
        public_paths=public_paths or server.public_paths,
        log_level=log_level or server.log_level,
        log_format=log_format or server.log_format,
        workers=workers if workers is not None else server.workers,
    )
    return attrs.evolve(config, ledger=ledger, server=server, plugins=enabled).check()


DEV_KEY_SUFFIX = ".checkpoint.key"
"""``nucleus serve --dev`` keeps its generated checkpoint key in ``<database file>.checkpoint.key``."""


def dev_checkpoint_key(config: ServeConfig) -> ServeConfig:
    """Under ``--dev``, a ledger on a SQLite file with no checkpoint key configured gets one: the key
    file beside the database, made on the first start (mode 0600, named after the origin) and
    reused on the next ones. Any other configuration is returned unchanged."""
    from nucleus_core.checkpoint import NoteSigner, write_key_file
    from nucleus_core.checkpoints import checkpoint_config

    ledger = config.ledger
    url = ledger.storage or ""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return config
    settings = ledger.checkpoint.config()
    keys = checkpoint_config(settings).load(ledger.id)
    if keys.signers:
        return config
    path = Path(url.removeprefix("sqlite:///").split("?", 1)[0] + DEV_KEY_SUFFIX)
    if not path.exists():
        write_key_file(path, NoteSigner.generate(keys.origin))
        _notice(config, f"nucleus: made a development checkpoint key in {path}")
    checkpoint = attrs.evolve(ledger.checkpoint, key_files=(str(path),))
    return attrs.evolve(config, ledger=attrs.evolve(ledger, checkpoint=checkpoint))


def open_ledger(config: ServeConfig) -> Any:
    """Open the configured ledger (verifying its chain), creating it when it does not exist yet."""
    from nucleus_core import create_ledger
    from nucleus_core.config import ledger_kwargs

    return create_ledger(**ledger_kwargs(config.ledger, config.plugins))


class _OwnLevel(logging.Filter):
    """Lets through the lines of Nucleus's own loggers (``nucleus*``: the core, the server, every
    plugin package) and uvicorn's from ``level``, those of other libraries from WARNING."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.startswith(("nucleus", "uvicorn"))
        return record.levelno >= (self.level if own else max(self.level, logging.WARNING))


def _configure_logging(level: str, log_format: str = "text") -> None:
    # One handler, on the root logger, so that every logger's lines pass it: the core's, the
    # server's, uvicorn's, the plugin packages' (nucleus_token_*, nucleus_storage_*), other
    # libraries' and Python's warnings; never logging's last-resort handler, which writes bare text.
    # Every line goes through redact_secrets (message, exception and traceback alike; in JSON every
    # field). uvicorn's own access log is off (it writes query strings, and with them a token sent
    # as ?access_token=); the app writes one without query values.
    threshold = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_OwnLevel(threshold))
    handler._nucleus_serve = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_nucleus_serve", False)]
    root.addHandler(handler)
    root.setLevel(threshold)
    logging.captureWarnings(True)
    for name in ("nucleus_core", "nucleus_server", "nucleus", "uvicorn"):
        logger = logging.getLogger(name)
        # The nucleus command's own handler (its "_nucleus_cli" one on nucleus_core) would write
        # every error line a second time; its level (errors only) would hide the rest.
        logger.handlers[:] = [
            h for h in logger.handlers if not (getattr(h, "_nucleus_serve", False) or getattr(h, "_nucleus_cli", False))
        ]
        logger.setLevel(threshold)


def configure_requester_log(config: ServeConfig) -> None:
    """Every log line of this process (the core's, every plugin's) names a principal as
    ``[server] log_requester`` says: its keyed hash, or nothing (:mod:`nucleus_core.requester_log`)."""
    set_requester_policy(config.server.log_requester, config.server.requester_key())


def _notice(config: ServeConfig, message: str, level: int = logging.INFO) -> None:
    """What the command reports on stderr (the ledger it serves, its keys, warnings): as it is in
    the text log format, as a log line on ``nucleus_server.serve`` in the JSON one (so that every
    line a log pipeline reads parses)."""
    if config.server.log_format == "json":
        logging.getLogger("nucleus_server.serve").log(level, message.strip())
    else:
        click.echo(message, err=True)


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, exiting normally (status 0) after a graceful shutdown on SIGINT or
        SIGTERM instead of re-raising the signal, so the command reports that the ledger closed;
        its shutdown first ends the app's entry streams (``NucleusApp.begin_shutdown``), which
        would otherwise hold the wait for open connections until ``shutdown_timeout``."""

        async def shutdown(self, sockets: Any = None) -> None:
            _begin_shutdown(self.config.app)
            await super().shutdown(sockets)

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


def _begin_shutdown(app: Any) -> None:
    begin = getattr(app, "begin_shutdown", None)
    if callable(begin):
        begin()


def end_streams_on_exit_signals(app: Any) -> None:
    """In a worker process (uvicorn's own server runs it): on SIGINT or SIGTERM, end ``app``'s
    entry streams, then run the handler uvicorn installed (its graceful shutdown). uvicorn puts
    its handlers back when it stops."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            _begin_shutdown(app)
            previous(signum, frame)

        signal.signal(sig, handler)


def default_workers() -> int:
    """The number of cores this process may run on (the default of ``--workers``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def worker_count(config: ServeConfig, ledger: Any) -> int:
    """How many processes serve ``ledger``: ``server.workers`` (``--workers``), by default the
    number of cores, or 1 when witnesses are configured (each worker would submit its own
    checkpoints and report its own witnesses' state: docs/SERVER.md); always 1 for storage that
    lives in one process's memory (``memory://``), where a second process would serve another,
    empty ledger."""
    requested = config.server.workers
    if ledger.storage.persistent:
        if requested is not None:
            return int(requested)
        return 1 if getattr(ledger, "witnessing", None) is not None else default_workers()
    if requested is not None and requested > 1:
        raise click.UsageError(
            f"--workers {requested}: the storage {ledger.storage.url} lives in this process's memory, "
            "so other processes cannot serve it; use a database file or server, or --workers 1"
        )
    return 1


def _uvicorn_config(config: ServeConfig, app: Any, **extra: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        lifespan="on",
        log_level=config.server.log_level,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=config.server.shutdown_timeout,
        server_header=False,
        **extra,
    )


@attrs.frozen
class WorkerApp:
    """The app factory each worker process of ``nucleus serve --workers N`` calls (uvicorn pickles
    it to the worker): set up logging, open the ledger (verifying it, as every open does), build
    the app. A worker that cannot open the ledger exits with uvicorn's startup-failure status, so
    the supervisor stops instead of starting it again and again."""

    config: ServeConfig

    def __call__(self) -> Any:
        from uvicorn.config import STARTUP_FAILURE

        from .app import create_app

        _configure_logging(self.config.server.log_level, self.config.server.log_format)
        configure_requester_log(self.config)
        try:
            ledger = open_ledger(self.config)
        except Exception as err:  # noqa: BLE001 - reported, then the worker exits
            log = logging.getLogger("nucleus_server")
            log.error("worker %d could not open the ledger: %s: %s", os.getpid(), type(err).__name__, err)
            sys.exit(STARTUP_FAILURE)
        app = create_app(ledger, self.config.server.settings(), owns_ledger=True)
        end_streams_on_exit_signals(app)
        return app


def _supervisor_class() -> type:
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, calling ``on_exit(pid)`` once for each worker process that ended:
        died (and was replaced), retired (SIGHUP replaces every worker, SIGTTOU removes one) or
        stopped with the server. uvicorn changes its list of processes in those places only, all
        run by its loop between the checks below."""

        def __init__(self, *args: Any, on_exit: Callable[[int], None], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._on_exit = on_exit
            self._running: set[int] = set()

        def _reap(self) -> None:
            current = {p.pid: p for p in self.processes if p.pid is not None}
            self._running |= {pid for pid, p in current.items() if p.exitcode is None}
            ended = sorted(pid for pid in self._running if pid not in current or current[pid].exitcode is not None)
            for pid in ended:
                self._running.discard(pid)
                self._on_exit(pid)

        def init_processes(self) -> None:
            super().init_processes()
            self._reap()

        def handle_signals(self) -> None:
            super().handle_signals()
            self._reap()

        def keep_subprocess_alive(self) -> None:
            super().keep_subprocess_alive()
            self._reap()

        def join_all(self) -> None:
            super().join_all()
            self._reap()

    return Supervisor


def _worker_exited(pm: Any) -> Callable[[int], None]:
    """Tell the plugins of ``pm`` (``nucleus_worker_exited``, each isolated) that a worker ended."""
    from nucleus_core.plugins import call_each

    def exited(pid: int) -> None:
        for error in call_each(pm, "nucleus_worker_exited", pid=pid):
            logging.getLogger("nucleus_server").error("%s", error, exc_info=error.__cause__)

    return exited


def _serve_workers(config: ServeConfig, workers: int, on_exit: Callable[[int], None] = lambda _pid: None) -> None:
    """Serve with ``workers`` processes sharing one listening socket (uvicorn's supervisor: it
    restarts a worker that dies, stops all on SIGINT/SIGTERM). Each opens the ledger itself; the
    storage's exclusive write transactions keep their appends on one chain, and each issues the
    checkpoints of its own writes (the checkpoint store refuses a conflicting one). ``on_exit(pid)``
    runs here for each worker that ended."""
    import socket

    from uvicorn.config import STARTUP_FAILURE

    uconfig = _uvicorn_config(config, WorkerApp(config), factory=True, workers=workers)
    bound = uconfig.bind_socket()
    # uvicorn makes the socket with protocol 0, and asyncio sets TCP_NODELAY only on connections of
    # a socket that says IPPROTO_TCP: without it a response (headers and body are two writes) waited
    # for the client's delayed ACK, ~40 ms a request on keep-alive connections (179 req/s instead
    # of ~2,500 in bench/bench_server.py).
    sock = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    supervisor = _supervisor_class()(uconfig, sockets=[sock], on_exit=on_exit)
    try:
        supervisor.run()
    finally:
        sock.close()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise click.ClickException("a worker could not start (see its error above); the server stopped")


def serve(config: ServeConfig, *, dev: bool = False) -> None:
    """Open the ledger and serve it until SIGINT/SIGTERM; in-flight requests finish, then modules
    stop and storage closes. With more than one worker (``server.workers``) this process opens the
    ledger first (creating it if needed, reporting it), closes it and runs the workers, each of
    which opens it again."""
    from .app import create_app

    _Server = _server_class()

    if dev:
        os.environ["NUCLEUS_ENV"] = DEVELOPMENT
    _configure_logging(config.server.log_level, config.server.log_format)
    configure_requester_log(config)
    if dev:
        config = dev_checkpoint_key(config)
    # Opened first: a configuration the environment refuses (auth.dev in production) fails
    # before anything claims development mode.
    ledger = open_ledger(config)
    try:
        workers = worker_count(config, ledger)
    except BaseException:
        ledger.close()
        raise
    if dev or current_environment() == DEVELOPMENT or DEV_PARSER in config.plugins:
        if config.server.log_format == "json":
            _notice(config, DEV_NOTICE, logging.WARNING)
        else:
            click.echo(DEV_BANNER, err=True)
    app = create_app(ledger, config.server.settings(), owns_ledger=True) if workers == 1 else None
    try:
        if len(ledger.auth) == 0:
            _notice(
                config,
                "warning: no token parser is enabled; every request to a ledger route will get 401 "
                '(enable one, e.g. [plugins."auth.api_key"], or use --dev on a development machine)',
                logging.WARNING,
            )
        for vkey in ledger.checkpoint_keys():
            _notice(config, f"nucleus: checkpoint verifier key {vkey}")
        witnessing = ledger.config.checkpoint
        if witnessing.witnesses:
            _notice(
                config,
                f"nucleus: checkpoints go to {len(witnessing.witnesses)} witness(es), policy "
                f"{witnessing.witness_quorum} of them: {', '.join(w.label for w in witnessing.witnesses)}",
            )
        _notice(
            config,
            f"nucleus: ledger {ledger.id!r} at {ledger.storage.url} ({ledger.length()} entries); "
            f"plugins: {', '.join(config.plugins) or 'none'}; "
            f"listening on http://{config.server.host}:{config.server.port}"
            + ("" if workers == 1 else f" with {workers} worker processes"),
        )
        if app is None:
            ledger.close()
            _serve_workers(
                attrs.evolve(config, server=attrs.evolve(config.server, workers=workers)), workers,
                on_exit=_worker_exited(ledger.plugin_manager),
            )
        else:
            _Server(_uvicorn_config(config, app)).run()
    finally:
        if app is not None:
            app.close()  # idempotent: the lifespan shutdown normally did it already
        else:
            ledger.close()  # idempotent
    _notice(config, f"nucleus: ledger {ledger.id!r} closed")


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    envvar="NUCLEUS_CONFIG",
    type=click.Path(dir_okay=False),
    help="TOML configuration file [env NUCLEUS_CONFIG].",
)
@click.option("--host", help="Interface to listen on [default from the file, else 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="Port [default from the file, else 8080].")
@click.option("--ledger", "storage", metavar="URL", help="Storage URL (overrides [ledger] storage).")
@click.option("--ledger-id", help="Ledger id (overrides [ledger] id).")
@click.option(
    "--plugin", "plugins", multiple=True, metavar="NAME", help="Enable a plugin (repeatable; adds to the file's)."
)
@click.option("--admin", "admins", multiple=True, metavar="OID", help="An administrator OID (repeatable; adds).")
@click.option(
    "--public-path", "public_paths", multiple=True, metavar="PATH", help="Exact public path (repeatable; replaces)."
)
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    help="text: 'LEVEL logger: message'; json: one JSON object per line [default from the file, else text].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="Processes serving the ledger [default from the file, else the number of cores; 1 for memory storage].",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Development mode: NUCLEUS_ENV=development, dev:oid:<oid> tokens, ./nucleus.db. Never in production.",
)
def serve_command(
    config_path: str | None,
    host: str | None,
    port: int | None,
    storage: str | None,
    ledger_id: str | None,
    plugins: tuple[str, ...],
    admins: tuple[str, ...],
    public_paths: tuple[str, ...],
    log_level: str | None,
    log_format: str | None,
    workers: int | None,
    dev: bool,
) -> None:
    """Serve a ledger over HTTP (JSON API, OpenAPI at /openapi.json) until interrupted."""
    config = apply_flags(
        load_config(config_path),
        host=host,
        port=port,
        storage=storage,
        ledger_id=ledger_id,
        plugins=tuple(p.strip() for value in plugins for p in value.split(",") if p.strip()),
        admins=admins,
        public_paths=public_paths,
        log_level=log_level,
        log_format=log_format,
        workers=workers,
        dev=dev,
    )
    serve(config, dev=dev)
