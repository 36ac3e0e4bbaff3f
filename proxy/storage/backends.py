"""The private index's stores by mode, from the settings: the one place that picks them, for the
server, the administrative commands, ``check`` and uploads alike.

Embedded (the default: no ``[storage] database``, no ``[storage] objects``): the data directory's
files (``proxy.storage.private``, ``proxy.storage.auth``). Shared (both set, issue 14): metadata,
users and tokens in the database (``proxy.storage.sql``), files in the object store
(``proxy.storage.objectblobs``), so that several replicas serve one private index; uploads are
still staged on this host's disk (``<data_dir>/tmp``). One set without the other is a
ConfigError. SQLAlchemy and obstore load only in the shared mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from proxy.config import Settings, StorageSettings
from proxy.core.errors import ConfigError
from proxy.storage.atomic import sweep_temp_files
from proxy.storage.auth import AuthStore
from proxy.storage.private import PrivateStorage
from proxy.storage.stores import Authenticator, PrivateStore

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from proxy.storage.objects import ObjectStore
    from proxy.storage.sql.private_index import SqlPrivateStorage

log = structlog.get_logger(__name__)
_HALF = ("the shared mode needs both [storage] database (metadata, users, tokens) and [storage] objects "
         "(the files); set {missing} too, or neither for the embedded default (the data directory)")
_NO_DATABASE = ("not set: give the database with --database URL, or as [storage] database in the config file "
                "(postgresql://user:password@host/name or sqlite:///path)")


def shared_mode(storage: StorageSettings) -> bool:
    """True with ``database`` and ``objects`` set, False with neither; ConfigError naming the
    missing key when only one is."""
    if storage.database is None and storage.objects.url is None:
        return False
    if storage.database is None:
        raise ConfigError("storage.database", _HALF.format(missing="database"))
    if storage.objects.url is None:
        raise ConfigError("storage.objects", _HALF.format(missing="objects"))
    return True


def open_database(storage: StorageSettings, migrating: bool = False) -> Engine:
    """An engine for ``[storage] database`` with its pool settings (``migrating``: without the
    statement timeout, as a migration may take long); ConfigError when unset."""
    from proxy.storage.sql.engine import open_engine

    if storage.database is None:
        raise ConfigError("storage.database", _NO_DATABASE)
    return open_engine(storage.database, storage.database_pool_size, storage.database_max_overflow,
                       storage.database_pool_timeout, storage.database_connect_timeout,
                       None if migrating else storage.database_statement_timeout)


@dataclass
class Shared:
    """The shared mode's parts: the database's engine, the object store, the SQL private store."""

    engine: Engine
    objects: ObjectStore
    private: SqlPrivateStorage

    def close(self) -> None:
        """Blocking: closes the object store's threads and the database's pool."""
        self.objects.close()
        self.engine.dispose()


@dataclass
class Stores:
    """The stores of one mode; ``shared`` is None in the embedded mode."""

    private: PrivateStore
    auth: Authenticator
    shared: Shared | None = None

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()


def open_stores(settings: Settings) -> Stores:
    """The stores ``settings`` name (see the module's docstring); connects to nothing yet.
    Blocking (a ``file://`` object store creates its directory). ConfigError for half a shared
    mode. ``close`` the result when done."""
    if not shared_mode(settings.storage):
        return Stores(PrivateStorage(settings.data_dir), AuthStore(settings.data_dir))
    from proxy.storage.objectblobs import ObjectBlobs
    from proxy.storage.objects import ObjectStore
    from proxy.storage.sql.private_index import SqlPrivateStorage
    from proxy.storage.sql.users import SqlAuthStore

    engine = open_database(settings.storage)
    try:
        objects = ObjectStore(settings.storage.objects)
    except BaseException:
        engine.dispose()
        raise
    temp_dir = settings.data_dir / "tmp"
    private = SqlPrivateStorage(engine, ObjectBlobs(objects, temp_dir), temp_dir)
    return Stores(private, SqlAuthStore(engine), Shared(engine, objects, private))


@contextlib.contextmanager
def opened(settings: Settings) -> Iterator[Stores]:
    """``open_stores`` for a block (the command line's)."""
    stores = open_stores(settings)
    try:
        yield stores
    finally:
        stores.close()


def prepare_for_serving(stores: Stores) -> None:
    """At a server's start (blocking): the directories made, the embedded name list checked,
    staged uploads and temp files of earlier runs swept away."""
    private = stores.private
    private.prepare()
    removed = sweep_temp_files(private.temp_dir)
    if isinstance(private, PrivateStorage):
        private.check_names()
        removed += sweep_temp_files(private.root)
    if removed:
        log.warning("temp_files_swept", count=removed)
