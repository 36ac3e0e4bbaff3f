"""The first schema: private projects, files, releases, users, tokens, upload audit, changes, and
the upstream cache's records (used from a later version on).

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MOMENT = sa.DateTime(timezone=True)
RELEASE_TEXTS = ("description_content_type", "author", "author_email", "maintainer", "maintainer_email", "license",
                 "license_expression", "keywords", "home_page", "download_url", "requires_python")
RELEASE_LISTS = ("classifiers", "requires_dist", "provides_extra", "project_urls", "platform", "dynamic",
                 "license_files")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=False),
        sa.Column("created", MOMENT, nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_projects"),
    )
    op.create_table(
        "files",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("packagetype", sa.String(), nullable=False),
        sa.Column("python_version", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("blake2_256", sa.String(64), nullable=False),
        sa.Column("requires_python", sa.Text()),
        sa.Column("metadata_sha256", sa.String(64)),
        sa.Column("yanked_reason", sa.Text()),
        sa.Column("uploader", sa.String(), nullable=False),
        sa.Column("upload_time", MOMENT, nullable=False),
        sa.Column("identity_kind", sa.String(), nullable=False),
        sa.Column("canonical_version", sa.String(), nullable=False),
        sa.Column("build_tag", sa.String(), nullable=False),
        sa.Column("tag_set", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
        sa.ForeignKeyConstraint(["project"], ["projects.name"], name="fk_files_project_projects", ondelete="CASCADE"),
        sa.UniqueConstraint("project", "filename", name="uq_files_project_filename"),
        sa.UniqueConstraint("project", "sha256", name="uq_files_project_sha256"),
        sa.UniqueConstraint("project", "identity_kind", "canonical_version", "build_tag", "tag_set",
                            name="uq_files_identity"),
    )
    op.create_table(
        "releases",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("canonical_version", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *(sa.Column(name, sa.Text()) for name in RELEASE_TEXTS),
        *(sa.Column(name, sa.JSON(), nullable=False) for name in RELEASE_LISTS),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.ForeignKeyConstraint(["project"], ["projects.name"], name="fk_releases_project_projects",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("project", "canonical_version", name="uq_releases_project_canonical_version"),
    )
    op.create_table(
        "users",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("password", sa.String(), nullable=False),
        sa.Column("projects", sa.JSON()),
        sa.Column("created", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_users"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("user_name", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("projects", sa.JSON()),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.ForeignKeyConstraint(["user_name"], ["users.name"], name="fk_tokens_user_name_users", ondelete="CASCADE"),
    )
    op.create_index("ix_tokens_user_name", "tokens", ["user_name"])
    op.create_table(
        "upload_audit",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploader", sa.String(), nullable=False),
        sa.Column("token_id", sa.String()),
        sa.Column("uploaded", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_upload_audit"),
    )
    op.create_index("ix_upload_audit_project", "upload_audit", ["project"])
    op.create_table(
        "changes",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("changed", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
    )
    op.create_table(
        "upstream_pages",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("content_type", sa.String()),
        sa.Column("etag", sa.String()),
        sa.Column("last_modified", sa.String()),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("fetched", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_upstream_pages"),
    )
    op.create_table(
        "cached_files",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created", MOMENT, nullable=False),
        sa.Column("last_used", MOMENT, nullable=False),
        sa.Column("pinned_by", sa.String()),
        sa.PrimaryKeyConstraint("key", name="pk_cached_files"),
    )
    op.create_index("ix_cached_files_project", "cached_files", ["project"])
    op.create_index("ix_cached_files_last_used", "cached_files", ["last_used"])


def downgrade() -> None:
    for table in ("cached_files", "upstream_pages", "changes", "upload_audit", "tokens", "users", "releases", "files",
                  "projects"):
        op.drop_table(table)
