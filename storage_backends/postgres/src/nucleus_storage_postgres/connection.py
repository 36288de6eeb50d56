"""Connecting to PostgreSQL: DSN parsing, the pooled peewee database, and error translation.

Driver: psycopg 3 (``psycopg``), through peewee's ``PooledPsycopg3Database``. psycopg 3 is the
maintained PostgreSQL driver for Python (psycopg2 receives fixes only); it has server-side cursors
that stream inside a transaction, and per-connection ``connect_timeout``. peewee 4 drives it
natively (``playhouse.postgres_ext.Psycopg3Database``), so the entries model and queries are the
same peewee code the SQLite backend uses.

Pooling: peewee's pool hands each thread its own connection; every backend operation checks one out
and returns it when it ends (``connection_context``), so idle threads hold no connection. A
connection that died (server restart, ``pg_terminate_backend``) is discarded on check-in or
check-out and replaced by a fresh one. peewee finds dead ones at check-out with a ``SELECT 1``
round trip, which doubled the round trips of every read (a Merkle proof took eight instead of four);
:class:`NucleusPool` asks the socket first (:func:`socket_quiet`) and pings only when the server
has said something since the connection went idle, which is what a server closing it does.
"""

from __future__ import annotations

import contextlib
import re
import select
import threading
from typing import Any
from urllib.parse import quote

import peewee
import psycopg
from playhouse.postgres_ext import PooledPsycopg3Database  # type: ignore[import-untyped]
from psycopg.conninfo import conninfo_to_dict

from nucleus_core.errors import (
    ConfigurationError,
    ConflictError,
    StorageError,
    StorageUnavailableError,
)

SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""Schema names the backend accepts: lowercase SQL identifiers that never need quoting."""

DEFAULT_CONNECT_TIMEOUT = 10
"""Seconds libpq waits for a connection before giving up (``connect_timeout``)."""

# SQLSTATE classes: 08 connection exception, 57P0x operator intervention (admin shutdown,
# crash shutdown, cannot connect now), 53 insufficient resources (too many connections).
_UNAVAILABLE_PREFIXES = ("08", "57P", "53")
# 40001 serialization failure, 40P01 deadlock, 55P03 lock not available; class 23 (constraints) too.
_CONFLICT_STATES = frozenset({"40001", "40P01", "55P03"})


def parse_dsn(dsn: str) -> tuple[dict[str, Any], str]:
    """Split a libpq DSN (``postgresql://`` / ``postgres://`` URL or ``key=value`` string) into
    connection parameters and a display URL that never contains the password."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigurationError("dsn: must be a non-empty PostgreSQL connection string")
    try:
        params: dict[str, Any] = dict(conninfo_to_dict(dsn))
    except psycopg.ProgrammingError as err:
        # libpq's message quotes the offending part only, never the whole DSN (which may hold a password).
        raise ConfigurationError(f"dsn: not a valid PostgreSQL connection string ({_first_line(err)})") from None
    return params, display_url(params)


def display_url(params: dict[str, Any]) -> str:
    """``postgresql://user@host:port/dbname`` for logs and ``backend.url``; no password, no options."""
    user = params.get("user")
    host = params.get("host") or "localhost"
    port = params.get("port")
    netloc = (quote(str(user), safe="") + "@" if user else "") + str(host) + (f":{port}" if port else "")
    return f"postgresql://{netloc}/{quote(str(params.get('dbname', '')), safe='')}"


def check_schema(schema: object) -> str | None:
    """Return ``schema`` if it is None or a plain lowercase identifier; raise otherwise."""
    if schema is None:
        return None
    if not isinstance(schema, str) or SCHEMA_PATTERN.fullmatch(schema) is None:
        raise ConfigurationError(
            f"schema: {schema!r} is not a schema name (1-63 of a-z, 0-9, '_', not starting with a digit)"
        )
    return schema


def connect_kwargs(
    params: dict[str, Any], *, schema: str | None, connect_timeout: int, application_name: str
) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect``: the DSN's parameters plus the backend's defaults.

    With ``schema``, every connection's ``search_path`` is that schema, so the entries table and the
    tables of plugins live there.
    """
    connect = dict(params)
    connect.setdefault("connect_timeout", connect_timeout)
    connect.setdefault("application_name", application_name)
    if schema is not None:
        extra = f"-c search_path={schema}"
        connect["options"] = f"{connect['options']} {extra}" if connect.get("options") else extra
    return connect


def socket_quiet(conn: psycopg.Connection[Any]) -> bool:
    """True when nothing is waiting to be read on an idle connection's socket: no error, no EOF.

    A server that ends a connection (restart, ``pg_terminate_backend``, ``idle_session_timeout``)
    sends an error message and closes it, so the socket of a dead idle connection is readable;
    that of a live one is not (unless it LISTENs and a notification arrived: then False too, and the
    caller pings). A poll with timeout 0: a system call, not a round trip."""
    try:
        fd = conn.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        return not select.select([fd], [], [fd], 0)[0]
    except (OSError, ValueError, psycopg.Error):
        return False


class NucleusPool(PooledPsycopg3Database):  # type: ignore[misc]
    """peewee's psycopg 3 pool, minus the ``SELECT 1`` on every check-out when the connection is
    idle and its socket quiet (:func:`socket_quiet`); otherwise peewee's own check (a rollback or a
    ping) decides. A connection that dies unannounced (a silent network) fails its next statement
    with :class:`~nucleus_core.errors.StorageUnavailableError`, as one would after the ping too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held = threading.local()  # .pipeline: this thread's pipeline that the COMMIT will sync

    def _is_closed(self, conn: psycopg.Connection[Any]) -> bool:
        if conn.closed:
            return True
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and socket_quiet(conn):
            return False
        return bool(super()._is_closed(conn))

    # the last writes of a transaction and its COMMIT in one round trip ----------------------------
    def hold_pipeline(self) -> None:
        """Switch this thread's connection to pipeline mode until the transaction ends: statements
        from now on are sent without waiting for their results, and the COMMIT (or ROLLBACK) that
        ends the transaction waits for all of them (:meth:`commit`): one round trip. Only for the
        last writes of a transaction (nothing read after them: a result is not there before the
        sync, and a cursor's ``rowcount`` is not known). No-op when already held."""
        if getattr(self._held, "pipeline", None) is not None:
            return
        pipeline = self.connection().pipeline()
        pipeline.__enter__()
        self._held.pipeline = pipeline

    def _release_pipeline(self) -> contextlib.AbstractContextManager[Any] | None:
        pipeline: contextlib.AbstractContextManager[Any] | None = getattr(self._held, "pipeline", None)
        self._held.pipeline = None
        return pipeline

    def commit(self) -> None:
        pipeline = self._release_pipeline()
        if pipeline is None:
            super().commit()
            return
        try:
            with peewee.__exception_wrapper__:  # type: ignore[attr-defined]  # peewee's driver-error wrapper
                self.cursor().execute("COMMIT")
        except BaseException as err:
            pipeline.__exit__(type(err), err, err.__traceback__)
            raise
        pipeline.__exit__(None, None, None)  # the sync: raises the first statement's error, if any

    def rollback(self) -> None:
        pipeline = self._release_pipeline()
        if pipeline is not None:
            # The statements' results: the error being handled is theirs (or the caller's) already.
            with contextlib.suppress(psycopg.Error):
                pipeline.__exit__(None, None, None)
        super().rollback()


def make_database(
    connect: dict[str, Any], *, pool_size: int, pool_timeout: float, stale_timeout: int
) -> NucleusPool:
    """A pooled peewee database (psycopg 3) connecting with ``connect`` (see :func:`connect_kwargs`)."""
    kwargs = dict(connect)
    dbname = kwargs.pop("dbname", None) or kwargs.get("user") or "postgres"
    return NucleusPool(
        dbname,
        max_connections=pool_size,
        timeout=pool_timeout,
        stale_timeout=stale_timeout,
        **kwargs,
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def driver_error(err: BaseException) -> BaseException:
    """The most telling psycopg error behind ``err``.

    peewee passes the driver's error as its first argument; and when a commit fails on a dead
    connection, peewee's rollback fails too and hides the first error in ``__context__``. The chain
    is searched for an error carrying a SQLSTATE, else the first psycopg error, else ``err``.
    """
    found: list[BaseException] = []
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, psycopg.Error):
            if getattr(current, "sqlstate", None):
                return current
            found.append(current)
        todo.extend(
            c for c in (*getattr(current, "args", ())[:1], current.__cause__, current.__context__)
            if isinstance(c, BaseException)
        )
    return found[0] if found else err


def sqlstate(err: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error (directly or wrapped by peewee), or None."""
    driver = driver_error(err)
    return getattr(driver, "sqlstate", None)


def connection_lost(err: BaseException) -> bool:
    """True when ``err`` means the connection is gone or the server cannot serve it."""
    driver = driver_error(err)
    state: str | None = getattr(driver, "sqlstate", None)
    if state is not None:
        return state.startswith(_UNAVAILABLE_PREFIXES)
    # Errors without a SQLSTATE come from the client side: closed socket, failed connect, timeout.
    return isinstance(driver, (psycopg.OperationalError, psycopg.InterfaceError)) or isinstance(
        err, (peewee.OperationalError, peewee.InterfaceError)
    )


def translate(err: BaseException, action: str, where: str) -> StorageError:
    """A Nucleus storage error for a driver/peewee error that happened while doing ``action``.

    The message names the action and the server (never the password) and the SQLSTATE; the caller
    raises it ``from err``.
    """
    state = sqlstate(err)
    detail = _first_line(driver_error(err))
    code = f" [SQLSTATE {state}]" if state else ""
    committing = action == "commit"
    doing = "committing" if committing else action
    if connection_lost(err):
        hint = ""
        if action == "write":
            doing = "writing"
            hint = "; the transaction was rolled back, nothing was written"
        elif committing:
            hint = (
                "; the connection broke during COMMIT itself, so the write may or may not have committed: look "
                "the record ids up before retrying (a retry of an append that did commit fails as a duplicate)"
            )
        return StorageUnavailableError(
            f"PostgreSQL at {where}: connection lost or refused while {doing}{code}: {detail}{hint}"
        )
    if state in _CONFLICT_STATES or (state or "").startswith("23"):
        return ConflictError(f"PostgreSQL at {where}: conflicting write while {doing}{code}: {detail}")
    return StorageError(f"PostgreSQL at {where}: {action} failed{code}: {detail}")
