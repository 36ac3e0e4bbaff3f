"""The SQL model: every table of the metadata database, for SQLite and PostgreSQL alike.

The migrations in ``migrations/versions`` create exactly this (a test compares them). Names are
normalised project names (PEP 503); moments are UTC. Uniqueness of a distribution is enforced
here, not only checked in code (issue 11's rule, STANDARDS H1): in a project a filename once,
the same bytes once, and one file per distribution identity (kind, canonical version, build tag
and tag set, so a release has at most one sdist).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

# Constraint names that Alembic and both engines agree on (so a later migration can drop them).
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# An auto-incrementing 64-bit id; SQLite only auto-increments an "INTEGER PRIMARY KEY".
Serial = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware moment stored in UTC; read back aware, in UTC, on both engines (SQLite
    keeps no zone: its naive values are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value!r}")
        moment = value.astimezone(timezone.utc)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _project_column() -> Column[str]:
    return Column("project", String, ForeignKey("projects.name", ondelete="CASCADE"), nullable=False)


projects = Table(
    "projects", metadata,
    Column("name", String, primary_key=True),  # normalised
    Column("display_name", String, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("serial", BigInteger, nullable=False),  # bumped by every change of the project
)

files = Table(
    "files", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),  # upload order
    _project_column(),
    Column("filename", String, nullable=False),
    Column("version", String, nullable=False),  # as its release names it
    Column("packagetype", String, nullable=False),
    Column("python_version", String, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("blake2_256", String(64), nullable=False),
    Column("requires_python", Text),
    Column("metadata_sha256", String(64)),
    Column("yanked_reason", Text),  # NULL: not yanked; "": yanked without a reason (PEP 592)
    Column("uploader", String, nullable=False),
    Column("upload_time", UtcDateTime, nullable=False),
    # The distribution's identity (proxy.storage.sql.rows.identity_columns): sdist, bdist_wheel or file.
    Column("identity_kind", String, nullable=False),
    Column("canonical_version", String, nullable=False),
    Column("build_tag", String, nullable=False),  # "" when none
    Column("tag_set", String, nullable=False),  # a wheel's sorted tags; a "file"'s filename
    UniqueConstraint("project", "filename"),
    UniqueConstraint("project", "sha256"),
    UniqueConstraint("project", "identity_kind", "canonical_version", "build_tag", "tag_set", name="uq_files_identity"),
)

releases = Table(
    "releases", metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),  # order of first upload
    _project_column(),
    Column("version", String, nullable=False),
    Column("canonical_version", String, nullable=False),  # "1.0" and "1.0.0" are one release (PEP 440)
    # Core metadata of the release's first file (proxy.core.models.ReleaseInfo).
    Column("summary", Text, nullable=False),
    Column("description", Text, nullable=False),
    *(Column(name, Text) for name in (
        "description_content_type", "author", "author_email", "maintainer", "maintainer_email", "license",
        "license_expression", "keywords", "home_page", "download_url", "requires_python")),
    *(Column(name, JSON, nullable=False) for name in (
        "classifiers", "requires_dist", "provides_extra", "project_urls", "platform", "dynamic", "license_files")),
    UniqueConstraint("project", "canonical_version"),
)

users = Table(
    "users", metadata,
    Column("name", String, primary_key=True),
    Column("password", String, nullable=False),  # salted scrypt (proxy.storage.auth.hash_secret)
    Column("projects", JSON),  # normalised name patterns; NULL: every project
    Column("created", UtcDateTime, nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String, primary_key=True),
    Column("user_name", String, ForeignKey("users.name", ondelete="CASCADE"), nullable=False, index=True),
    Column("hash", String, nullable=False),  # salted scrypt of the token's secret part
    Column("projects", JSON),  # NULL: every project of the user
    Column("description", Text, nullable=False),
    Column("created", UtcDateTime, nullable=False),
)

upload_audit = Table(
    "upload_audit", metadata,  # kept when the file or project goes: who uploaded what, when
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("project", String, nullable=False, index=True),
    Column("filename", String, nullable=False),
    Column("version", String, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("uploader", String, nullable=False),
    Column("token_id", String),  # NULL: uploaded with the user's password
    Column("uploaded", UtcDateTime, nullable=False),
)

changes = Table(
    "changes", metadata,  # one row per committed change of a private project, ids in commit order
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("project", String, nullable=False),
    Column("serial", BigInteger, nullable=False),  # the project's serial after it (0: released)
    Column("kind", String, nullable=False),  # upload, update, release
    Column("changed", UtcDateTime, nullable=False),
)

# For the shared upstream cache (the next slice of issue 14): schema only, no store yet.
upstream_pages = Table(
    "upstream_pages", metadata,
    Column("name", String, primary_key=True),  # normalised project name; "" for the project list
    Column("body", LargeBinary),
    Column("content_type", String),
    Column("etag", String),
    Column("last_modified", String),
    Column("status", Integer, nullable=False),  # upstream's HTTP status (200, 404, ...)
    Column("fetched", UtcDateTime, nullable=False),
)

cached_files = Table(
    "cached_files", metadata,
    Column("key", String, primary_key=True),  # the object's key (or upstream URL)
    Column("project", String, nullable=False, index=True),
    Column("filename", String, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("last_used", UtcDateTime, nullable=False),
    Column("pinned_by", String),  # what keeps it from eviction, if anything
    Index(None, "last_used"),
)
