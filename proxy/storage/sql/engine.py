"""Engines from a database URL, and the transactions every SQL store runs in.

``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver; ``sqlite:///path`` the
standard library's. Engines are synchronous: every call blocks, and the server makes them in its
executor. The pool is bounded (``[storage] database_pool_size`` + ``database_max_overflow``)
and pings a connection before lending it, so a restarted database is reconnected without a
restart of the server. A database that cannot be reached becomes DatabaseUnavailable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from proxy.core.errors import DatabaseUnavailable

# Seconds SQLite waits for another writer's lock before giving up ("database is locked").
SQLITE_BUSY_TIMEOUT = 30.0
# A write transaction on SQLite takes the database's write lock at BEGIN (see _sqlite_begin).
_WRITE = "pypi_proxy_write"


def engine_url(url: str) -> URL:
    """The SQLAlchemy URL for a configured database URL: PostgreSQL through psycopg 3
    (``postgresql+psycopg://``), SQLite as given. ValueError for any other kind."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed
    raise ValueError(f"not a PostgreSQL or SQLite file URL: {masked(url)}")


def masked(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs; as the user wrote it (the
    driver that ``engine_url`` adds is left out)."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        return "<an invalid database URL>"
    if parsed.drivername == "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql")
    return parsed.render_as_string(hide_password=True)


def open_engine(url: str, pool_size: int = 5, max_overflow: int = 5, pool_timeout: float = 10.0,
                connect_timeout: float = 5.0, statement_timeout: float | None = 30.0) -> Engine:
    """An engine for ``url`` (see ``engine_url``) with a bounded, pre-pinging pool; connects
    lazily, so this does not fail when the database is down. Seconds: ``pool_timeout`` to wait
    for a free connection, ``connect_timeout`` for the database to accept one,
    ``statement_timeout`` for one statement, lock waits included (None: no limit, for
    migrations; SQLite's lock wait is bounded by the same number or SQLITE_BUSY_TIMEOUT).
    Dispose of it when done."""
    target = engine_url(url)
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout, "pool_pre_ping": True}
    if target.get_backend_name() == "sqlite":
        engine = create_engine(target, **pool, connect_args={"timeout": statement_timeout or SQLITE_BUSY_TIMEOUT})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
    if statement_timeout is not None:  # a hung query must not hold an executor thread for ever
        connect_args["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
    return create_engine(target, **pool, connect_args=connect_args)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (the sqlite3 module's own transaction handling skips it for
    # SELECT and DDL, so reads would not be consistent and migrations not transactional).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")  # readers do not wait for the writer
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A writer takes the lock at BEGIN, so two writers queue instead of one failing midway
    # ("database is locked" when upgrading a read lock); readers read a snapshot.
    immediate = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def unavailable_as_domain_error(engine: Engine) -> Iterator[None]:
    """Turn "cannot reach the database" (connection refused or lost, pool exhausted, locked
    past the busy timeout) into DatabaseUnavailable naming it; other errors pass."""
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as error:
        raise DatabaseUnavailable(masked(engine.url), _first_line(error.orig or error)) from error
    except exc.TimeoutError as error:
        raise DatabaseUnavailable(masked(engine.url), f"no free connection in the pool: {error}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that sees one snapshot of the database (REPEATABLE READ on
    PostgreSQL; SQLite's deferred transaction under WAL)."""
    with unavailable_as_domain_error(engine), engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction, committed when the block ends, rolled back on any exception. On
    SQLite it holds the database's write lock from the start; on PostgreSQL writers lock the
    rows they change (READ COMMITTED)."""
    with unavailable_as_domain_error(engine), engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection
