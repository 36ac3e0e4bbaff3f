"""Private projects in the SQL database: the same methods and semantics as the filesystem's
``proxy.storage.private.PrivateStorage``, checked by one contract test suite against both.

The rows are the index and their transaction the commit: a file's bytes are placed (``Blobs``)
while the transaction holds the project's lock and before it commits, so a file is listed only
once its bytes are in place, and a crash leaves at most an unlisted blob. Writers of one project
are serialised by a lock on its row (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite's database
write lock); the UNIQUE constraints of ``schema.files`` make a duplicate distribution impossible
even so. Every committed change appends a row to ``changes`` (ids in commit order) and, on
PostgreSQL, notifies the ``CHANGES_CHANNEL`` with the project's name. Every method blocks: the
server calls them in its executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from sqlalchemy import Connection, Engine, delete, exc, func, insert, select, text

from proxy.core.errors import DatabaseUnavailable, ObjectStoreUnavailable, ProjectNotEmpty, ProjectNotFound
from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile
from proxy.core.names import normalize
from proxy.core.timestamps import utc_now
from proxy.storage.atomic import TEMP_PREFIX
from proxy.storage.private import refuse_duplicate
from proxy.storage.sql import rows
from proxy.storage.sql.blobs import Blobs
from proxy.storage.sql.engine import reading, writing
from proxy.storage.sql.schema import changes, files, projects, releases, upload_audit
from proxy.storage.sql.writes import (
    digests,
    insert_project_once,
    lock_blobs,
    lock_changes,
    project_exists,
    referenced,
    write_project,
)

CHANGES_CHANNEL = "pypi_proxy_changes"
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change of a private project: ``id`` grows with every change of any project,
    ``serial`` is the project's serial after it (0 when the name was released)."""

    id: int
    project: str
    serial: int


class SqlPrivateStorage:
    """Private projects: their rows in the database at ``engine``, their files in ``blobs``;
    uploads staged in ``temp_dir`` (local to this process's host)."""

    def __init__(self, engine: Engine, blobs: Blobs, temp_dir: Path) -> None:
        self.engine = engine
        self.blobs = blobs
        self.temp_dir = temp_dir

    def prepare(self) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.blobs.prepare()

    def new_temp_path(self) -> Path:
        return self.temp_dir / f"{TEMP_PREFIX}upload-{os.urandom(8).hex()}"

    def load(self, project: str) -> PrivateProject | None:
        """The project as one consistent snapshot, None when it is not private."""
        with reading(self.engine) as connection:
            return load_project(connection, normalize(project))

    def is_private(self, project: str) -> bool:
        """Whether ``project`` (any spelling) is a private project."""
        with reading(self.engine) as connection:
            return project_exists(connection, normalize(project))

    def project_names(self) -> list[str]:
        """Display names of every private project, sorted by normalised name (in Python: a
        database's collation may order "-" differently)."""
        with reading(self.engine) as connection:
            found = connection.execute(select(projects.c.name, projects.c.display_name)).all()
        return [display for _name, display in sorted(found)]

    def commit_file(
        self,
        staged: Path,
        stored: StoredFile,
        metadata: bytes,
        info: ReleaseInfo,
        display_name: str,
        project: str,
        token_id: str | None = None,
    ) -> bool:
        """Add an uploaded file. True if added, False if the identical file was already there.

        As ``PrivateStorage.commit_file``: FileExists when the filename is taken by different
        bytes (STANDARDS E4) or the file duplicates a stored one under another filename (the same
        distribution, H1, or the same bytes); storage untouched on refusal; ``staged`` consumed
        only on success. Of concurrent commits of one distribution from any number of threads,
        processes or hosts exactly one is stored. ``token_id`` (None: a password) goes to the
        upload audit with the uploader. DatabaseUnavailable when the database cannot be reached.
        """
        # The long part (an object store's put) before the transaction, without the project's lock.
        self.blobs.upload(stored, staged, metadata)
        for attempt in (1, 2):
            try:
                return self._commit_file(staged, stored, metadata, info, display_name, normalize(project), token_id)
            except exc.IntegrityError:
                # A constraint caught what the lock should have: read again, refuse as usual.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _commit_file(self, staged: Path, stored: StoredFile, metadata: bytes, info: ReleaseInfo,
                     display_name: str, project: str, token_id: str | None) -> bool:
        with writing(self.engine) as connection:
            insert_project_once(connection, project, display_name)
            current = load_project(connection, project, lock=True)
            assert current is not None
            existing = current.duplicate_of(stored)
            if existing is not None:
                refuse_duplicate(existing, stored)
                return False  # the identical file: nothing was written
            # E6: upload-time is the server's clock when the file becomes visible.
            updated = current.with_file(replace(stored, upload_time=utc_now()), info)
            write_project(connection, current, updated)
            new = updated.files[-1]
            connection.execute(insert(upload_audit).values(
                project=project, filename=new.filename, version=new.version, sha256=new.sha256, size=new.size,
                uploader=new.uploader, token_id=token_id, uploaded=new.upload_time))
            # Last before the commit: the blob is in place when a row lists it.
            if self.blobs.content_addressed:  # no removal of the same bytes may delete it meanwhile
                lock_blobs(connection, digests([new]))
            self.blobs.place(project, new, staged, metadata)
            try:
                log_change(connection, project, updated.serial, "upload")
            except BaseException:
                # Rolled back, and the lock still held: no one else has placed this filename. A
                # content-addressed blob may be another row's: left for the sweep instead.
                if not self.blobs.content_addressed:
                    self.blobs.remove(project, [new])
                raise
        # Should the commit itself fail, the blob stays unlisted (never served; a later upload
        # of the filename replaces it): whether a lost connection committed is not known here.
        return True

    def update(self, project: str, change: Callable[[PrivateProject], PrivateProject]) -> PrivateProject:
        """Apply ``change`` to the project under its lock (yank, unyank, ...); the serial grows
        by at least one. ProjectNotFound when it is not private. Returns what is now stored."""
        name = normalize(project)
        with writing(self.engine) as connection:
            current = load_project(connection, name, lock=True)
            if current is None:
                raise ProjectNotFound(f"No private project {project!r}.", project=project)
            updated = change(current)
            updated = replace(updated, serial=max(updated.serial, current.serial + 1))
            write_project(connection, current, updated)
            log_change(connection, name, updated.serial, "update")
        return updated

    def remove_files(self, project: str, filenames: set[str]) -> PrivateProject:
        """Unlist files, then delete them. The name stays private even with no files left."""
        gone: list[StoredFile] = []

        def change(current: PrivateProject) -> PrivateProject:
            gone[:] = [f for f in current.files if f.filename in filenames]
            return current.without_files(filenames)

        updated = self.update(project, change)
        self._drop_blobs(normalize(project), gone)
        return updated

    def release(self, project: str, with_files: bool = False) -> PrivateProject:
        """Make ``project`` public again: its rows go first, then its files. ProjectNotFound
        when it is not private, ProjectNotEmpty when it has files and not ``with_files``.
        Returns the project as it was."""
        name = normalize(project)
        with writing(self.engine) as connection:
            current = load_project(connection, name, lock=True)
            if current is None:
                raise ProjectNotFound(f"No private project {project!r}.", project=project)
            if current.files and not with_files:
                raise ProjectNotEmpty(project, len(current.files))
            for table in (files, releases):
                connection.execute(delete(table).where(table.c.project == name))
            connection.execute(delete(projects).where(projects.c.name == name))
            log_change(connection, name, 0, "release")
        self._drop_blobs(name, current.files)
        return current

    def _drop_blobs(self, project: str, gone: Sequence[StoredFile]) -> None:
        """Delete the blobs of unlisted files; of a content-addressed store only those no row lists
        (the same bytes in another project), under the locks commits of those bytes take."""
        if not gone:
            return
        if not self.blobs.content_addressed:
            self.blobs.remove(project, gone)
            return
        wanted = sorted(digests(gone))
        try:
            with writing(self.engine) as connection:
                lock_blobs(connection, wanted)
                self.blobs.remove(project, gone, keep=referenced(connection, wanted))
        except (ObjectStoreUnavailable, DatabaseUnavailable) as exc:
            # Unlisted already (the commit): the blobs are garbage, for `check --repair` to sweep.
            log.warning("unlisted_blobs_left", project=project, blobs=len(wanted), error=str(exc))

    def last_change(self) -> int:
        """The id of the latest committed change, 0 when there is none."""
        with reading(self.engine) as connection:
            return int(connection.execute(select(func.coalesce(func.max(changes.c.id), 0))).scalar_one())

    def changes_since(self, after: int, limit: int = 1000) -> list[Change]:
        """Changes with an id above ``after``, oldest first, at most ``limit`` of them."""
        with reading(self.engine) as connection:
            found = connection.execute(select(changes.c.id, changes.c.project, changes.c.serial)
                                       .where(changes.c.id > after).order_by(changes.c.id).limit(limit))
            return [Change(row.id, row.project, row.serial) for row in found]


def load_project(connection: Connection, name: str, lock: bool = False) -> PrivateProject | None:
    """The project's rows as one PrivateProject (``lock``: its row locked for the transaction)."""
    query = select(projects).where(projects.c.name == name)
    if lock:
        query = query.with_for_update()  # no-op on SQLite, whose writer holds the database lock
    project = connection.execute(query).first()
    if project is None:
        return None
    found_files = connection.execute(select(files).where(files.c.project == name).order_by(files.c.id)).all()
    found_releases = connection.execute(
        select(releases).where(releases.c.project == name).order_by(releases.c.id)).all()
    return rows.private_project(project, found_files, found_releases)


def log_change(connection: Connection, project: str, serial: int, kind: str) -> None:
    """Append the change to ``changes`` (and notify CHANGES_CHANNEL on PostgreSQL): last in a
    write transaction, as it serialises every writer until the commit."""
    lock_changes(connection)
    connection.execute(insert(changes).values(project=project, serial=serial, kind=kind, changed=utc_now()))
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, :project)"),
                           {"channel": CHANGES_CHANNEL, "project": project})
