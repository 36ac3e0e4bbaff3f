"""Alembic's environment for pypi-proxy: migrations run on the connection that
``proxy.storage.sql.migrate`` hands over, in its transaction (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

from proxy.storage.sql.schema import metadata


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    # Batch mode: SQLite alters a table by copying it, which later migrations may need.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file inside a migration run (its context proxy is installed then);
# imported anywhere else (the house's import checks) it does nothing.
if getattr(context, "_proxy", None) is not None:
    run_migrations()
