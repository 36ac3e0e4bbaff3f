"""What only the SQL stores promise (issue 14): uniqueness held by the database itself, one winner
among processes, the change feed replicas will follow, the upload audit, a bounded pool, and a
database that goes away and comes back."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import exc, insert, select

from proxy.core.errors import DatabaseUnavailable, FileExists
from proxy.core.models import ReleaseInfo, StoredFile
from proxy.storage.sql import rows
from proxy.storage.sql.blobs import LocalBlobs
from proxy.storage.sql.engine import engine_url, masked, open_engine
from proxy.storage.sql.private_index import CHANGES_CHANNEL, Change, SqlPrivateStorage
from proxy.storage.sql.schema import files, upload_audit
from proxy.storage.sql.writes import CHANGES_LOCK
from tests.pgserver import PgCluster, start_cluster
from tests.storebackends import (
    WHEEL,
    Backend,
    commit,
    file_path,
    open_backend,
    record,
    stage,
)

SQL_KINDS = ("sqlite", "postgresql")


@pytest.fixture(params=SQL_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture
def store(backend: Backend) -> SqlPrivateStorage:
    made = backend.private()
    assert isinstance(made, SqlPrivateStorage)
    return made


# Pairs of files: whether the model calls them one distribution (StoredFile.identity).
SAME = [
    (("demo-1.0-py3-none-any.whl", "1.0"), ("demo-1.0.0-py3-none-any.whl", "1.0.0")),
    (("demo-1.0-py2.py3-none-any.whl", "1.0"), ("demo-1.0-py3.py2-none-any.whl", "1.0")),
    (("demo-1.0-1-py3-none-any.whl", "1.0"), ("demo-1.0-01-py3-none-any.whl", "1.0")),
    (("demo-1.0.tar.gz", "1.0"), ("demo-01.0.zip", "01.0")),
    (("demo-1.0+ABC.tar.gz", "1.0+ABC"), ("demo-1.0+abc.tar.gz", "1.0+abc")),
    (("demo-1!2.0.tar.gz", "1!2.0"), ("demo-1!2.tar.gz", "1!2")),
]
OTHER = [
    (("demo-1.0-py3-none-any.whl", "1.0"), ("demo-1.0-1-py3-none-any.whl", "1.0")),
    (("demo-1.0-1a-py3-none-any.whl", "1.0"), ("demo-1.0-1b-py3-none-any.whl", "1.0")),
    (("demo-1.0-py3-none-any.whl", "1.0"), ("demo-1.0-py2.py3-none-any.whl", "1.0")),
    (("demo-1.0-py3-none-any.whl", "1.0"), ("demo-1.0.tar.gz", "1.0")),
    (("demo-1.0.tar.gz", "1.0"), ("demo-1.0.post0.tar.gz", "1.0.post0")),
    (("demo-1.0.tar.gz", "1.0"), ("demo-0!1.0a0.tar.gz", "1.0a0")),
    (("demo-1.0+abc.tar.gz", "1.0+abc"), ("demo-1.0.tar.gz", "1.0")),
    (("demo-1.0.egg", "1.0"), ("demo-1.0.exe", "1.0")),
]


def _file(filename: str, version: str) -> StoredFile:
    packagetype = "bdist_wheel" if filename.endswith(".whl") else "sdist" if ".tar" in filename or \
        filename.endswith(".zip") else "bdist_egg"
    return record(filename, filename.encode(), version, packagetype)


@pytest.mark.parametrize(("first", "second", "same"), [(*pair, True) for pair in SAME] + [(*pair, False) for pair in OTHER])
def test_identity_columns_agree_with_the_model(first: tuple[str, str], second: tuple[str, str], same: bool) -> None:
    """The UNIQUE constraint's columns say "the same distribution" exactly when the model does."""
    a, b = _file(*first), _file(*second)
    assert (a.identity == b.identity) is same
    assert (rows.identity_columns(a) == rows.identity_columns(b)) is same


@pytest.mark.parametrize("twin", ["filename", "bytes", "distribution"])
def test_the_database_itself_refuses_a_duplicate(store: SqlPrivateStorage, twin: str) -> None:
    """Uniqueness is a constraint, not only a check in code: a row written past the store fails."""
    commit(store, WHEEL, b"stored")
    duplicate = {
        "filename": record(WHEEL, b"other bytes"),
        "bytes": record("demo-2.0-py3-none-any.whl", b"stored", "2.0"),
        "distribution": record("demo-1.0.0-py3-none-any.whl", b"other bytes", "1.0.0"),
    }[twin]
    with pytest.raises(exc.IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(files).values(project="demo", **rows.file_values(duplicate)))
    loaded = store.load("demo")
    assert loaded is not None and [f.filename for f in loaded.files] == [WHEEL]


def _commit_in_a_process(url: str, root: str, n: int, barrier: Any, results: Any) -> None:
    """One uploader process: its own engine; all start committing at once (the barrier)."""
    engine = open_engine(url)
    try:
        store = SqlPrivateStorage(engine, LocalBlobs(Path(root) / "private"), Path(root) / "tmp")
        version = "1" + ".0" * (n + 1)  # 1.0, 1.0.0, ...: one PEP 440 version, other filenames
        staged = stage(store, f"content {n}".encode())
        stored = record(f"demo-{version}-py3-none-any.whl", f"content {n}".encode(), version)
        barrier.wait(timeout=60)
        try:
            outcome = "stored" if store.commit_file(staged, stored, b"Name: demo\n", ReleaseInfo(version),
                                                    "Demo", "demo") else "identical"
        except FileExists:
            outcome = "refused"
        results.put(outcome)
    finally:
        engine.dispose()


def test_processes_racing_one_distribution_exactly_one_wins(backend: Backend, store: SqlPrivateStorage) -> None:
    """Issue 14: uploads of one distribution through several processes (replicas), at once."""
    context = multiprocessing.get_context("spawn")
    count = 4
    barrier, results = context.Barrier(count), context.Queue()
    assert backend.url is not None
    workers = [context.Process(target=_commit_in_a_process, args=(backend.url, str(backend.root), n, barrier, results))
               for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * count
    outcomes = sorted(results.get(timeout=10) for _ in range(count))
    assert outcomes == ["refused"] * (count - 1) + ["stored"]
    project = store.load("demo")
    assert project is not None and len(project.files) == 1 and project.serial == 1
    [winner] = project.files
    assert hashlib.sha256(file_path(store, "demo", winner.filename).read_bytes()).hexdigest() == winner.sha256


def test_every_change_is_in_the_feed_in_order(store: SqlPrivateStorage) -> None:
    """The counter replicas will follow to drop rendered pages: one id per committed change."""
    assert store.last_change() == 0 and store.changes_since(0) == []
    commit(store, WHEEL, b"a")
    commit(store, "other-1.0-py3-none-any.whl", b"b", project="other", display_name="Other")
    commit(store, WHEEL, b"a")  # the identical file again: no change
    store.update("demo", lambda p: p.with_yank({WHEEL}, "broken"))
    store.release("other", with_files=True)
    feed = store.changes_since(0)
    assert [(c.project, c.serial) for c in feed] == [("demo", 1), ("other", 1), ("demo", 2), ("other", 0)]
    assert [c.id for c in feed] == sorted(c.id for c in feed) and len({c.id for c in feed}) == 4
    assert store.last_change() == feed[-1].id
    assert store.changes_since(feed[1].id, limit=1) == [Change(feed[2].id, "demo", 2)]


def test_postgresql_notifies_each_change_on_commit(pg_url: str, tmp_path: Path) -> None:
    backend = Backend("postgresql", tmp_path, pg_url)
    try:
        store = backend.private()
        with psycopg.connect(pg_url, autocommit=True) as listener:
            listener.execute(f"LISTEN {CHANGES_CHANNEL}")
            commit(store, WHEEL, b"a")
            store.update("demo", lambda p: p.with_yank({WHEEL}, None))
            heard = [(note.channel, note.payload) for note in listener.notifies(timeout=10, stop_after=2)]
        assert heard == [(CHANGES_CHANNEL, "demo")] * 2
    finally:
        backend.close()


def test_uploads_are_audited_with_their_token(store: SqlPrivateStorage) -> None:
    stored = record(WHEEL, b"a")
    store.commit_file(stage(store, b"a"), stored, b"", ReleaseInfo("1.0"), "Demo", "demo", token_id="0123456789ab")
    store.release("demo", with_files=True)
    with store.engine.connect() as connection:
        audit = connection.execute(select(upload_audit)).one()
    assert (audit.project, audit.filename, audit.sha256, audit.uploader, audit.token_id) == (
        "demo", WHEEL, stored.sha256, "alice", "0123456789ab"), "kept after the project went"


def test_a_failed_placement_leaves_nothing(backend: Backend, tmp_path: Path) -> None:
    """The bytes cannot be stored (here: the blob directory is a file): no project, no row."""
    (tmp_path / "not-a-directory").write_bytes(b"")
    engine = backend.engine()
    store = SqlPrivateStorage(engine, LocalBlobs(tmp_path / "not-a-directory"), tmp_path / "tmp")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    staged = stage(store, b"a")
    with pytest.raises(OSError):
        store.commit_file(staged, record(WHEEL, b"a"), b"", ReleaseInfo("1.0"), "Demo", "demo")
    assert store.load("demo") is None and store.project_names() == [] and store.last_change() == 0
    assert staged.read_bytes() == b"a"


def test_the_pool_is_bounded(backend: Backend) -> None:
    assert backend.url is not None
    engine = open_engine(backend.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    store = SqlPrivateStorage(engine, LocalBlobs(backend.root / "private"), backend.root / "tmp")
    try:
        with engine.connect(), pytest.raises(DatabaseUnavailable, match="no free connection in the pool"):
            store.project_names()
        assert store.project_names() == []
    finally:
        engine.dispose()


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A cluster of this test's own, to stop and restart without disturbing the others."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        finally:
            cluster.remove()


def test_a_restarted_database_is_reconnected_and_a_stopped_one_named(own_cluster: PgCluster, tmp_path: Path) -> None:
    url = own_cluster.url(own_cluster.create_database())
    backend = Backend("postgresql", tmp_path, url)
    try:
        store = backend.private()
        commit(store, WHEEL, b"a")
        own_cluster.restart()  # every pooled connection is now dead
        assert store.project_names() == ["Demo"], "the pool pings and reconnects"
        own_cluster.stop()
        with pytest.raises(DatabaseUnavailable) as error:
            store.load("demo")
        assert error.value.database == masked(url) and "127.0.0.1" in error.value.database
        own_cluster.start()
        loaded = store.load("demo")
        assert loaded is not None and [f.filename for f in loaded.files] == [WHEEL]
    finally:
        backend.close()


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:p@db/pypi", "postgresql+psycopg://u:p@db/pypi"),
    ("postgres://u:p@db:5433/pypi", "postgresql+psycopg://u:p@db:5433/pypi"),
    ("postgresql+psycopg://db/pypi", "postgresql+psycopg://db/pypi"),
    ("sqlite:////srv/pypi.db", "sqlite:////srv/pypi.db"),
    ("sqlite:///relative.db", "sqlite:///relative.db"),
])
def test_engine_urls(url: str, expected: str) -> None:
    assert engine_url(url).render_as_string(hide_password=False) == expected
    assert "p@" not in masked(url) and masked(url).startswith(url.split("://")[0].replace("+psycopg", ""))


@pytest.mark.parametrize("url", ["mysql://db/x", "sqlite://", "sqlite:///:memory:"])
def test_other_engine_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL or SQLite file URL"):
        engine_url(url)


def test_moments_come_back_aware_in_utc(store: SqlPrivateStorage) -> None:
    commit(store, WHEEL, b"a")
    loaded = store.load("demo")
    assert loaded is not None
    moment = loaded.files[0].upload_time
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_a_statement_waits_for_a_lock_only_so_long(pg_url: str, tmp_path: Path) -> None:
    """[storage] database_statement_timeout bounds a wait (here for a writer that never ends)."""
    backend = Backend("postgresql", tmp_path, pg_url)
    engine = open_engine(pg_url, statement_timeout=0.3)
    try:
        store = backend.private()
        commit(store, WHEEL, b"a")
        impatient = SqlPrivateStorage(engine, LocalBlobs(tmp_path / "private"), tmp_path / "tmp")
        with psycopg.connect(pg_url) as stuck:  # a transaction holding the project's row lock
            stuck.execute("SELECT * FROM projects WHERE name = 'demo' FOR UPDATE")
            with pytest.raises(DatabaseUnavailable, match="statement timeout"):
                impatient.update("demo", lambda p: p.with_yank({WHEEL}, "x"))
        assert impatient.update("demo", lambda p: p.with_yank({WHEEL}, "x")).files[0].yanked_reason == "x"
    finally:
        engine.dispose()
        backend.close()


def test_a_commit_failing_after_its_bytes_were_placed_leaves_neither_row_nor_bytes(pg_url: str,
                                                                                   tmp_path: Path) -> None:
    """The last step before the commit (the change feed's lock) times out: all is rolled back."""
    backend = Backend("postgresql", tmp_path, pg_url)
    engine = open_engine(pg_url, statement_timeout=0.3)
    try:
        store = SqlPrivateStorage(engine, LocalBlobs(tmp_path / "private"), tmp_path / "tmp")
        store.prepare()
        with psycopg.connect(pg_url, autocommit=True) as other_writer:
            other_writer.execute("SELECT pg_advisory_lock(%s)", (CHANGES_LOCK,))
            with pytest.raises(DatabaseUnavailable, match="statement timeout"):
                commit(store, WHEEL, b"a")
        assert store.load("demo") is None and store.last_change() == 0
        assert not file_path(store, "demo", WHEEL).exists()
        assert not file_path(store, "demo", f"{WHEEL}.metadata").exists()
        assert commit(store, WHEEL, b"a"), "and the same upload goes through once the lock is free"
    finally:
        engine.dispose()
        backend.close()
