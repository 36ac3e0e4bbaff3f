"""The storage backends the contract tests run against: the filesystem stores of the embedded
default, and the SQL stores on SQLite and on PostgreSQL (tests/pgserver.py), each with a way to
open a second instance on the same storage (another process or replica, as far as the store knows)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine

from proxy.core.models import ReleaseInfo, StoredFile
from proxy.storage.auth import AuthStore
from proxy.storage.private import PrivateStorage
from proxy.storage.sql.blobs import LocalBlobs
from proxy.storage.sql.engine import open_engine
from proxy.storage.sql.migrate import upgrade
from proxy.storage.sql.private_index import SqlPrivateStorage
from proxy.storage.sql.users import SqlAuthStore

KINDS = ("filesystem", "sqlite", "postgresql")
WHEEL = "demo-1.0-py3-none-any.whl"
LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)
METADATA = b"Metadata-Version: 2.1\nName: demo\n"
PrivateStore = PrivateStorage | SqlPrivateStorage
AuthStores = AuthStore | SqlAuthStore


class Backend:
    """One kind of storage in ``root`` (and, for SQL, the database at ``url``, upgraded)."""

    def __init__(self, kind: str, root: Path, url: str | None) -> None:
        self.kind = kind
        self.root = root
        self.url = url
        self.engines: list[Engine] = []
        if url is not None:
            upgrade(self.engine())

    def engine(self) -> Engine:
        """A new engine on the database: each is its own pool, as another process's would be."""
        assert self.url is not None
        engine = open_engine(self.url)
        self.engines.append(engine)
        return engine

    def private(self) -> PrivateStore:
        """A private store on this storage; every call a new instance on the same data."""
        if self.url is None:
            store: PrivateStore = PrivateStorage(self.root)
        else:
            store = SqlPrivateStorage(self.engine(), LocalBlobs(self.root / "private"), self.root / "tmp")
        store.prepare()
        return store

    def auth(self) -> AuthStores:
        return AuthStore(self.root) if self.url is None else SqlAuthStore(self.engine())

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


def file_path(store: PrivateStore, project: str, filename: str) -> Path:
    """Where the store keeps a file's bytes (both keep local files in these tests)."""
    if isinstance(store, PrivateStorage):
        return store.file_path(project, filename)
    assert isinstance(store.blobs, LocalBlobs)
    return store.blobs.path(project, filename)


def open_backend(request: pytest.FixtureRequest, kind: str, root: Path) -> Iterator[Backend]:
    """The backend ``kind`` for a test; PostgreSQL's cluster starts only when a test needs it."""
    url = None
    if kind == "sqlite":
        url = f"sqlite:///{root / 'metadata.db'}"
    elif kind == "postgresql":
        url = request.getfixturevalue("pg_url")
    backend = Backend(kind, root, url)
    try:
        yield backend
    finally:
        backend.close()


def stage(store: PrivateStore, data: bytes) -> Path:
    """What the upload service does: a temp file in the data dir, written and fsynced."""
    path = store.new_temp_path()
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def record(filename: str, data: bytes, version: str = "1.0", packagetype: str = "bdist_wheel") -> StoredFile:
    return StoredFile(
        filename=filename, version=version, packagetype=packagetype, python_version="py3", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), md5=hashlib.md5(data).hexdigest(),
        blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(), upload_time=LONG_AGO, uploader="alice",
        requires_python=">=3.8", metadata_sha256=hashlib.sha256(METADATA).hexdigest(),
    )


def commit(store: PrivateStore, filename: str, data: bytes, version: str = "1.0", project: str = "demo",
           display_name: str = "Demo") -> bool:
    packagetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
    return store.commit_file(stage(store, data), record(filename, data, version, packagetype), METADATA,
                             ReleaseInfo(version, summary=f"v{version}", classifiers=("A :: B",),
                                         project_urls=(("Home", "https://example.org"),)), display_name, project)
