"""Schema migrations (issue 14): `pypi-proxy db upgrade` creates this version's schema, a second
run does nothing, `db current` tells where a database stands, and a server refuses to start on a
schema it does not know, with a message saying what to run."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from proxy.core.errors import SchemaMismatch
from proxy.storage.sql import migrate
from proxy.storage.sql.engine import open_engine
from proxy.storage.sql.schema import metadata
from tests.clitools import PYPI_PROXY, assert_fails_with, cli_env, run_cli

HEAD = migrate.head()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    made = open_engine(url)
    yield made
    made.dispose()


def test_upgrade_creates_the_head_schema_once(engine: Engine) -> None:
    assert migrate.state(engine) == migrate.SchemaState(None, HEAD, True)
    assert migrate.upgrade(engine) == (None, HEAD)
    assert set(inspect(engine).get_table_names()) == set(metadata.tables) | {"alembic_version"}
    migrate.check_schema(engine)
    assert migrate.upgrade(engine) == (HEAD, HEAD), "idempotent"
    assert migrate.state(engine).is_head


def test_the_migrations_build_exactly_the_model(engine: Engine) -> None:
    """schema.py and the migration scripts never drift apart (Alembic's autogenerate compares)."""
    migrate.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_an_empty_database_is_refused_naming_the_command(engine: Engine) -> None:
    with pytest.raises(SchemaMismatch) as error:
        migrate.check_schema(engine)
    assert (error.value.current, error.value.expected, error.value.known) == (None, HEAD, True)
    assert str(error.value).endswith(f"has no pypi-proxy schema yet (this version needs revision {HEAD}); "
                                     "run `pypi-proxy db upgrade`")


def _set_revision(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})


def test_an_unknown_revision_is_refused_and_not_upgraded(engine: Engine) -> None:
    """A newer pypi-proxy upgraded the database: this one neither serves from it nor touches it."""
    migrate.upgrade(engine)
    _set_revision(engine, "9999")
    for attempt in (migrate.check_schema, migrate.upgrade):
        with pytest.raises(SchemaMismatch) as error:
            attempt(engine)
        assert (error.value.current, error.value.expected, error.value.known) == ("9999", HEAD, False)
        assert "does not know" in str(error.value) and "`pypi-proxy db upgrade`" in str(error.value)
    assert migrate.state(engine).current == "9999"


def test_db_commands_in_a_subprocess(url: str, tmp_path: Path) -> None:
    """The console script, as an operator runs it after installing a version: twice is harmless."""
    shown = url  # no password in these URLs: shown as given
    before = run_cli(tmp_path, "db", "current", "--database", url)
    assert (before.returncode, before.stderr) == (1, "")
    assert before.stdout == f"{shown}: no schema; this version needs revision {HEAD}: run `pypi-proxy db upgrade`\n"
    first = run_cli(tmp_path, "db", "upgrade", "--database", url)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == f"{shown}: upgraded from an empty database to revision {HEAD} (head)\n"
    again = run_cli(tmp_path, "db", "upgrade", "--database", url)
    assert again.stdout == f"{shown}: already at revision {HEAD} (head); nothing to do\n"
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{url}"\n')
    now = run_cli(tmp_path, "db", "current", "--config", str(config))
    assert (now.returncode, now.stdout, now.stderr) == (0, f"{shown}: revision {HEAD} (head)\n", "")


def test_db_commands_fail_in_one_line(tmp_path: Path) -> None:
    assert_fails_with(run_cli(tmp_path, "db", "upgrade"), 2, (
        "pypi-proxy: configuration error: config key 'storage.database': not set: give the database with "
        "--database URL, or as [storage] database in the config file (postgresql://user:password@host/name "
        "or sqlite:///path)"))
    assert_fails_with(run_cli(tmp_path, "db", "current", "--database", "mysql://u:secret@db/x"), 2, (
        "pypi-proxy: configuration error: config key 'storage.database': expected "
        "postgresql://user:password@host:port/database or sqlite:///path/to/file.db, got 'mysql://u:***@db/x'"))
    down = run_cli(tmp_path, "db", "upgrade", "--database", "postgresql://u:secret@127.0.0.1:1/pypi")
    assert down.returncode == 1 and "Traceback" not in down.stderr and "secret" not in down.stderr
    assert down.stderr.startswith("pypi-proxy: the database postgresql://u:***@127.0.0.1:1/pypi is unavailable: ")
    assert down.stderr.count("\n") == 1


def test_serve_refuses_a_database_it_does_not_know(url: str, tmp_path: Path) -> None:
    """A replica never starts on a schema it does not know; it says what to run, in one line."""
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase = "{url}"\n'
                      f'objects = "file://{tmp_path / "objects"}"\n'
                      '[upstream]\nenabled = false\n')
    refused = run_cli(tmp_path, "serve", "--port", "0", "--config", str(config))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.endswith("has no pypi-proxy schema yet (this version needs revision "
                                   f"{HEAD}); run `pypi-proxy db upgrade`\n")
    engine = open_engine(url)
    try:
        migrate.upgrade(engine)
        _set_revision(engine, "9999")
    finally:
        engine.dispose()
    newer = run_cli(tmp_path, "serve", "--port", "0", "--config", str(config))
    assert newer.returncode == 1 and "revision 9999, which this version does not know" in newer.stderr


def test_serve_starts_on_an_upgraded_database(url: str, tmp_path: Path) -> None:
    """With the schema at head the check passes and the server comes up (then stops on SIGTERM)."""
    assert run_cli(tmp_path, "db", "upgrade", "--database", url).returncode == 0
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase = "{url}"\n'
                      f'objects = "file://{tmp_path / "objects"}"\n'
                      '[upstream]\nenabled = false\n[logging]\nformat = "json"\n')
    with subprocess.Popen([PYPI_PROXY, "serve", "--port", "0", "--config", str(config)], cwd=tmp_path,
                          env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as server:
        assert server.stdout is not None
        seen = []
        bound = threading.Timer(60, server.kill)  # a server that hangs silently ends the read below
        bound.start()
        try:
            for line in server.stdout:
                seen.append(line)
                if '"listening"' in line:
                    break
        finally:
            bound.cancel()
            server.terminate()
            server.wait(timeout=30)
        assert any('"listening"' in line for line in seen), "".join(seen)
