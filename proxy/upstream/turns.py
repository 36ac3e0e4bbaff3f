"""One upstream fetch per stale page across the shared mode's replicas (issue 14).

A replica about to refresh a page takes the page's turn (``FetchTurns``), then reads the
stored record again: another replica may have refreshed it meanwhile, and then nothing is
fetched. Only a record still stale under the turn is fetched, and stored before the turn is
let go, so the next replica in line finds it. A replica that does not get the turn within
the wait it is given (the other's fetch hangs) keeps its stale copy, as after any failed
refresh; with no copy at all, it fetches for itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from proxy.core.merge import CacheState
from proxy.storage.upstream_pages import CachedPage, CachedProjectList, FetchTurns

R = TypeVar("R", CachedPage, CachedProjectList)
Out = TypeVar("Out")
log = structlog.get_logger(__name__)


def newer(stored: R | None, cached: R | None) -> R | None:
    """The later of two records of one page (by when upstream last answered)."""
    if stored is None or (cached is not None and cached.fetched_at > stored.fetched_at):
        return cached
    return stored


async def in_turn(turns: FetchTurns, key: str, wait: float, cached: R | None,
                  reread: Callable[[], Awaitable[R | None]], is_fresh: Callable[[R], bool],
                  fetch: Callable[[R | None], Awaitable[tuple[Out, CacheState]]]) -> tuple[R | Out, CacheState]:
    """Refresh the page ``key`` in its turn (module docstring). ``cached``: this replica's copy;
    ``reread`` reads the stored record; ``fetch`` asks upstream (revalidating the record it is
    given) and stores the answer before it returns. Waits ``wait`` seconds at most for the turn."""
    async with turns.turn(key, wait) as mine:
        record = newer(await reread(), cached)
        if record is not None and is_fresh(record):
            return record, CacheState.HIT  # another replica fetched it meanwhile
        if not mine and record is not None:
            log.warning("upstream_refresh_turn_busy", page=key, waited_s=wait)
            return record, CacheState.STALE
        return await fetch(record)
