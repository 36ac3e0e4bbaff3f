"""The write statements of the SQL private store: a project's row created once under races,
the global order of changes, and a project written back as the difference of two versions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, Table, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from proxy.core.models import PrivateProject, StoredFile
from proxy.core.timestamps import utc_now
from proxy.storage.sql import rows
from proxy.storage.sql.schema import files, projects, releases

Item = TypeVar("Item")
# The PostgreSQL advisory lock that orders the ``changes`` rows (any constant of our own).
CHANGES_LOCK = 0x70797069  # "pypi"
# The key space of the blobs' locks (two-int advisory locks: apart from the one-bigint ones above).
BLOBS_LOCK_SPACE = 0x626C6F62  # "blob"


def insert_project_once(connection: Connection, name: str, display_name: str) -> None:
    """Create the project's row unless it exists. Of concurrent creators on PostgreSQL, the
    others wait for the first one's transaction and then find its row (ON CONFLICT DO NOTHING)."""
    values = {"name": name, "display_name": display_name, "created": utc_now(), "serial": 0}
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(projects).values(values).on_conflict_do_nothing(index_elements=["name"]))


def lock_changes(connection: Connection) -> None:
    """Hold, until the transaction ends, the lock that makes ``changes`` ids follow the commit
    order: a reader that has seen id N never later finds a smaller new one (a sequence alone
    hands out ids in the order transactions start, not commit). Take it last: it serialises
    every writer until the commit. SQLite's single writer needs nothing."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGES_LOCK})


def write_project(connection: Connection, old: PrivateProject, new: PrivateProject) -> None:
    """Make the stored ``old`` into ``new``: its name row, and its files and releases by the
    difference (rows of unchanged files keep their id, so the upload order stays)."""
    name = old.name
    connection.execute(update(projects).where(projects.c.name == name)
                       .values(display_name=new.display_name, serial=new.serial))
    _write_rows(connection, files, files.c.filename, name,
                {f.filename: f for f in old.files}, {f.filename: f for f in new.files}, rows.file_values)
    _write_rows(connection, releases, releases.c.version, name,
                {r.version: r for r in old.releases}, {r.version: r for r in new.releases}, rows.release_values)


def _write_rows(connection: Connection, table: Table, key: Column[str], project: str, old: Mapping[str, Item],
                new: Mapping[str, Item], values: Callable[[Item], dict[str, Any]]) -> None:
    """Delete the rows of ``old`` not in ``new``, update the changed ones, insert the new ones
    (in ``new``'s order), all keyed by ``key`` within ``project``."""
    gone = [k for k in old if k not in new]
    if gone:
        connection.execute(delete(table).where(table.c.project == project, key.in_(gone)))
    for k, item in new.items():
        if k not in old:
            connection.execute(insert(table).values(project=project, **values(item)))
        elif old[k] != item:
            connection.execute(update(table).where(table.c.project == project, key == k).values(**values(item)))


def project_exists(connection: Connection, name: str) -> bool:
    """Whether the normalised ``name`` has a project row."""
    return connection.execute(select(projects.c.name).where(projects.c.name == name)).first() is not None


def digests(files: Iterable[StoredFile]) -> set[str]:
    """The sha256 of every blob ``files`` use: each distribution's and its metadata's."""
    return {digest for stored in files for digest in (stored.sha256, stored.metadata_sha256) if digest}


def lock_blobs(connection: Connection, sha256s: Iterable[str]) -> None:
    """Hold, until the transaction ends, the locks of the content-addressed blobs ``sha256s``:
    a commit that lists those bytes and a removal that deletes them when no row lists them take
    turns. Taken in sorted order (no deadlock between two commits). SQLite's single writer needs
    nothing. Two digests may share a lock (32 bits of each): they then only wait for each other."""
    if connection.dialect.name != "postgresql":
        return
    for digest in sorted(set(sha256s)):
        key = int(digest[:8], 16) - 2**31  # a signed int4
        connection.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": BLOBS_LOCK_SPACE, "key": key})


def referenced(connection: Connection, sha256s: Sequence[str]) -> set[str]:
    """Which of ``sha256s`` a file row lists, as a distribution's or as its metadata's digest."""
    if not sha256s:
        return set()
    found = connection.execute(select(files.c.sha256).where(files.c.sha256.in_(sha256s))).scalars().all()
    found_meta = connection.execute(
        select(files.c.metadata_sha256).where(files.c.metadata_sha256.in_(sha256s))).scalars().all()
    return {digest for digest in (*found, *found_meta) if digest}
