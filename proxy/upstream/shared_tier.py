"""Building the shared mode's tier of cached public files (``proxy.upstream.shared_files``) for an
app: its rows in the shared database, its locks, its blobs in the object store, its size limit
(``[cache] files_max_size``, for the whole cluster as for each replica's disk)."""

from __future__ import annotations

import contextlib
import functools
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from proxy.config import Settings

if TYPE_CHECKING:
    from proxy.storage.backends import Shared
    from proxy.upstream.shared_files import SharedFiles

WAIT_MAX_S = 6 * 3600.0  # the longest a replica waits for another one's download, whatever its size


def wait_bound(settings: Settings, size: int | None) -> float:
    """Seconds a replica waits for another one's download of a file of ``size`` bytes: what the
    holder may take at most (connecting, an idle read, the body at ``download_min_rate``, two
    requests to the object store), capped at WAIT_MAX_S (also without a size or a minimum rate)."""
    upstream = settings.upstream
    base = upstream.connect_timeout + upstream.read_timeout + 2 * settings.storage.objects.request_timeout
    if size is None or not upstream.download_min_rate:
        return WAIT_MAX_S
    return min(base + size / upstream.download_min_rate, WAIT_MAX_S)


async def open_shared_files(shared: Shared | None, settings: Settings, executor: Executor,
                            stack: contextlib.AsyncExitStack) -> SharedFiles | None:
    """The shared tier on ``shared``'s database and object store, started, closed with ``stack``;
    None in the embedded mode."""
    if shared is None:
        return None
    # SQLAlchemy, psycopg and obstore: only in the shared mode.
    from proxy.storage.shared_usage import SharedUsage
    from proxy.storage.sql.advisory import AdvisoryLocks, Locks, NoLocks
    from proxy.storage.sql.cached_files import CachedFileRows
    from proxy.storage.sql.changefeed import conninfo
    from proxy.upstream.shared_files import SharedFiles

    rows = CachedFileRows(shared.engine)
    url = conninfo(shared.engine)
    locks: Locks = AdvisoryLocks(url, settings.storage.database_connect_timeout) if url else NoLocks()
    usage = SharedUsage(rows, shared.objects, executor, settings.cache.files_max_size)
    await usage.start()
    stack.push_async_callback(usage.close)
    tier = SharedFiles(rows, locks, shared.objects, executor, functools.partial(wait_bound, settings), usage)
    stack.push_async_callback(tier.close)
    return tier
