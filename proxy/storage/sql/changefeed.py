"""Word of committed changes as they happen: PostgreSQL's LISTEN on the channel every commit of
the SQL private store notifies (``private_index.CHANGES_CHANNEL``), on a connection of its own.

Only a wake-up: what changed is read from the ``changes`` table, which a follower also polls, so
a lost connection (a database restart) only delays news until it is back, never loses it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql
from sqlalchemy import Engine

from proxy.storage.sql.engine import masked
from proxy.storage.sql.private_index import CHANGES_CHANNEL

log = structlog.get_logger(__name__)
# Seconds between attempts to connect again, doubling from the first to the last.
RETRY_FIRST, RETRY_MAX = 0.5, 10.0


def conninfo(engine: Engine) -> str | None:
    """psycopg's connection string for the engine's PostgreSQL database; None for another engine
    (SQLite has no notifications: followers poll)."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(url: str, on_notice: Callable[[], None], connect_timeout: float = 5.0) -> None:
    """Call ``on_notice`` for every notification on the changes channel, and once each time the
    connection is made (news may have been missed while there was none), for ever: a failure
    is logged and the connection made again after a pause. Cancel the task to stop."""
    delay = RETRY_FIRST
    where = masked(url)
    while True:
        try:
            connection = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout)))
        except psycopg.Error as exc:
            log.warning("change_feed_unavailable", database=where, error=_first_line(exc), retry_s=delay)
        else:
            try:
                await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANGES_CHANNEL)))
                log.info("change_feed_listening", database=where, channel=CHANGES_CHANNEL)
                delay = RETRY_FIRST
                on_notice()
                async for _notice in connection.notifies():
                    on_notice()
            except psycopg.Error as exc:
                log.warning("change_feed_lost", database=where, error=_first_line(exc), retry_s=delay)
            finally:
                with contextlib.suppress(psycopg.Error, OSError):
                    await connection.close()
        await asyncio.sleep(delay)  # not a stand-in for an await: a pause before reconnecting
        delay = min(delay * 2, RETRY_MAX)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
