"""Schema migrations with Alembic: upgrade a database to this version's schema, tell its
revision, and refuse to work on one this version does not know (``check_schema``).

The Alembic configuration is built here, not read from an ``alembic.ini``: its scripts live in
this package (``migrations/``), so it works the same from a checkout and an installed wheel.
Every function blocks (database I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, text

from proxy.core.errors import SchemaMismatch
from proxy.storage.sql.engine import masked, reading, writing

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Held while upgrading PostgreSQL, so replicas started together upgrade one after the other.
_UPGRADE_LOCK = 0x70797070  # "pypp"


def alembic_config() -> Config:
    """Alembic's configuration for this package's migrations (no file, no URL: the caller hands
    over a connection in ``attributes["connection"]``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The revision this version of pypi-proxy works with."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "no migrations in the package"
    return revision


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: its ``current`` revision (None: no schema), the ``head`` this
    version needs, and whether this version ``known``s the current one."""

    current: str | None
    head: str
    known: bool

    @property
    def is_head(self) -> bool:
        return self.current == self.head


def state(engine: Engine) -> SchemaState:
    """The database's schema revision against this version's. DatabaseUnavailable when it
    cannot be reached."""
    with reading(engine) as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory.from_config(alembic_config())
    known = current is None or _knows(scripts, current)
    return SchemaState(current, head(), known)


def _knows(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def check_schema(engine: Engine) -> None:
    """Return when the database is at this version's head revision; else SchemaMismatch, with
    the revision found and the one needed, whose message says to run `pypi-proxy db upgrade`.
    What a server checks before it serves from the database."""
    found = state(engine)
    if not found.is_head:
        raise SchemaMismatch(masked(engine.url), found.current, found.head, found.known)


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every migration the database lacks, in one transaction; returns the revisions
    (before, after). Idempotent: at head it does nothing. SchemaMismatch when the database has
    a revision this version does not know (a newer version upgraded it)."""
    with writing(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
        before = MigrationContext.configure(connection).get_current_revision()
        scripts = ScriptDirectory.from_config(alembic_config())
        if before is not None and not _knows(scripts, before):
            raise SchemaMismatch(masked(engine.url), before, head(), known=False)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head()
