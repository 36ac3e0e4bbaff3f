"""``pypi-proxy db``: create or upgrade the metadata database's schema (``upgrade``) and tell
where it stands (``current``); and the schema check a server makes before it starts."""

from __future__ import annotations

import argparse

from proxy.config import Settings, StorageSettings
from proxy.storage.backends import open_database
from proxy.storage.sql import migrate
from proxy.storage.sql.engine import masked


def check_configured_schema(storage: StorageSettings) -> None:
    """At start-up, when ``[storage] database`` is set: SchemaMismatch unless the database is at
    this version's schema, DatabaseUnavailable when it cannot be reached. Blocks."""
    if storage.database is None:
        return
    engine = open_database(storage)
    try:
        migrate.check_schema(engine)
    finally:
        engine.dispose()


def db(args: argparse.Namespace, settings: Settings) -> int:
    """``db upgrade``: 0 once the schema is at head. ``db current``: prints the revision; 0 at
    head, 1 when the database needs ``db upgrade`` (or a newer pypi-proxy)."""
    engine = open_database(settings.storage, migrating=args.action == "upgrade")
    try:
        where = masked(engine.url)
        if args.action == "upgrade":
            before, after = migrate.upgrade(engine)
            if before == after:
                print(f"{where}: already at revision {after} (head); nothing to do")
            else:
                print(f"{where}: upgraded from {before or 'an empty database'} to revision {after} (head)")
            return 0
        found = migrate.state(engine)
        if found.is_head:
            print(f"{where}: revision {found.current} (head)")
            return 0
        if found.current is None:
            print(f"{where}: no schema; this version needs revision {found.head}: run `pypi-proxy db upgrade`")
        elif found.known:
            print(f"{where}: revision {found.current}; head is {found.head}: run `pypi-proxy db upgrade`")
        else:
            print(f"{where}: revision {found.current}, unknown to this version (head {found.head}): "
                  "a newer pypi-proxy upgraded it")
        return 1
    finally:
        engine.dispose()
