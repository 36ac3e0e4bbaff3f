"""Copying an existing install into the SQL stores (``pypi-proxy migrate``): each private file with
the upload time, uploader and yank state it was stored with, its blob put and verified first;
users and tokens with their hashes as stored. Every function is idempotent: what the target holds
identical already is left alone (False), what it holds different is never overwritten
(MigrationConflict). All of them block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, exc, insert, select

from proxy.core.errors import MigrationConflict
from proxy.core.models import ReleaseInfo, StoredFile
from proxy.core.timestamps import parse_iso, utc_now
from proxy.storage.sql.engine import reading, writing
from proxy.storage.sql.private_index import SqlPrivateStorage, load_project, log_change
from proxy.storage.sql.schema import files, tokens, upload_audit, users
from proxy.storage.sql.writes import digests, insert_project_once, lock_blobs, write_project


def import_file(store: SqlPrivateStorage, source: Path, stored: StoredFile, metadata: bytes, info: ReleaseInfo,
                project: str, display_name: str) -> bool:
    """Add the file at ``source`` (read, never moved) to ``project`` as ``stored`` records it,
    with ``info`` for its release if the target has none yet. True when copied, False when the
    identical file is there. ObjectIntegrityError when the bytes are not what ``stored`` says."""
    found = store.load(project)
    if found is not None and (existing := found.duplicate_of(stored)) is not None:
        return _same_file(project, existing, stored)
    store.blobs.upload(stored, source, metadata)  # verified against the sha256 and size recorded
    with writing(store.engine) as connection:
        insert_project_once(connection, project, display_name)
        current = load_project(connection, project, lock=True)
        assert current is not None
        existing = current.duplicate_of(stored)
        if existing is not None:
            return _same_file(project, existing, stored)
        updated = current.with_file(stored, info)
        write_project(connection, current, updated)
        connection.execute(insert(upload_audit).values(
            project=project, filename=stored.filename, version=stored.version, sha256=stored.sha256,
            size=stored.size, uploader=stored.uploader, token_id=None, uploaded=stored.upload_time))
        lock_blobs(connection, digests([stored]))
        store.blobs.place(project, stored, source, metadata)
        log_change(connection, project, updated.serial, "migrate")
    return True


def _same_file(project: str, existing: StoredFile, new: StoredFile) -> bool:
    what = f"file {project}/{new.filename}"
    if existing.filename != new.filename:
        raise MigrationConflict(what, f"the target has the same distribution as {existing.filename}")
    if existing.sha256 != new.sha256:
        raise MigrationConflict(what, f"the target's has other bytes (sha256 {existing.sha256})")
    if existing.yanked_reason != new.yanked_reason:
        raise MigrationConflict(what, f"yanked here as {new.yanked_reason!r}, in the target as "
                                      f"{existing.yanked_reason!r} (None: not yanked); yank or unyank it there")
    return False


def import_user(engine: Engine, name: str, record: dict[str, Any]) -> bool:
    """Add user ``name`` as ``auth.json`` records it (its password hash as stored). True when
    added, False when the target has it identical."""
    values = {"name": name, "password": record["password"], "projects": record.get("projects"),
              "created": _moment(record.get("created"))}
    with writing(engine) as connection:
        there = connection.execute(select(users).where(users.c.name == name)).first()
        if there is None:
            connection.execute(insert(users).values(values))
            return True
    if (there.password, there.projects) != (values["password"], values["projects"]):
        raise MigrationConflict(f"user {name!r}", "the target's has another password or project scope")
    return False


def import_token(engine: Engine, token_id: str, record: dict[str, Any]) -> bool:
    """Add token ``token_id`` as ``auth.json`` records it (its owner imported first). True when
    added, False when the target has it identical."""
    values = {"id": token_id, "user_name": record["user"], "hash": record["hash"], "projects": record.get("projects"),
              "description": record.get("description", ""), "created": _moment(record.get("created"))}
    try:
        with writing(engine) as connection:
            there = connection.execute(select(tokens).where(tokens.c.id == token_id)).first()
            if there is None:
                connection.execute(insert(tokens).values(values))
                return True
    except exc.IntegrityError:  # its owner is not in the target (auth.json lists no such user)
        raise MigrationConflict(f"token {token_id}", f"its user {record['user']!r} is not in the target") from None
    if (there.user_name, there.hash, there.projects) != (values["user_name"], values["hash"], values["projects"]):
        raise MigrationConflict(f"token {token_id}", "the target's has another owner, secret or scope")
    return False


def _moment(text: Any) -> Any:
    return parse_iso(text) if isinstance(text, str) and text else utc_now()


def blob_listing(engine: Engine) -> list[tuple[str, str, int | None, str]]:
    """Every blob the private files' rows list: (project, filename, size or None for a
    ``.metadata``, sha256), by project and upload order (``pypi-proxy check``)."""
    with reading(engine) as connection:
        rows = connection.execute(select(files.c.project, files.c.filename, files.c.size, files.c.sha256,
                                         files.c.metadata_sha256).order_by(files.c.project, files.c.id)).all()
    found: list[tuple[str, str, int | None, str]] = []
    for row in rows:
        found.append((row.project, row.filename, row.size, row.sha256))
        if row.metadata_sha256:
            found.append((row.project, f"{row.filename}.metadata", None, row.metadata_sha256))
    return found
