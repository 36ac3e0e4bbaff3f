"""Whether the shared mode's database and object store answer (issue 14), for ``/-/health``.

A load balancer may ask every second or so: each is asked at most once every ``ttl`` seconds
per server process (concurrent health checks share one look), within ``timeout`` seconds.
SQLAlchemy loads with the first look (only the shared mode has one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from proxy.core.errors import DatabaseUnavailable, ObjectStoreUnavailable
from proxy.storage.backends import Shared

TTL = 5.0  # seconds a look is reused
TIMEOUT = 5.0  # seconds a look may take before the backend counts as unreachable


@dataclass(frozen=True, slots=True)
class Reachability:
    """One backend: ``name`` (its URL or bucket, no credentials), whether it answered, and if
    not, why (``error``)."""

    name: str
    reachable: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "reachable": self.reachable, "error": self.error}


class SharedHealth:
    """Looks at the database and the object store of ``shared``; database calls in ``executor``."""

    def __init__(self, shared: Shared, executor: Executor, ttl: float = TTL, timeout: float = TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._shared = shared
        self._executor = executor
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._last: tuple[float, Reachability, Reachability] | None = None
        self._looking = asyncio.Lock()

    async def report(self) -> dict[str, dict[str, Any]]:
        """``{"database": {...}, "objects": {...}}``, each ``Reachability.to_json``."""
        async with self._looking:
            if self._last is None or self._clock() - self._last[0] >= self._ttl:
                database, objects = await asyncio.gather(self._database(), self._objects())
                self._last = (self._clock(), database, objects)
        _, database, objects = self._last
        return {"database": database.to_json(), "objects": objects.to_json()}

    async def _database(self) -> Reachability:
        from proxy.storage.sql.engine import masked

        name = masked(self._shared.engine.url)
        run = asyncio.get_running_loop().run_in_executor(self._executor, self._select_one)
        return await self._look(name, run)

    def _select_one(self) -> None:
        from sqlalchemy import text

        from proxy.storage.sql.engine import reading

        with reading(self._shared.engine) as connection:
            connection.execute(text("SELECT 1"))

    async def _objects(self) -> Reachability:
        return await self._look(self._shared.objects.name, self._shared.objects.check())

    async def _look(self, name: str, work: Awaitable[None]) -> Reachability:
        try:
            await asyncio.wait_for(work, self._timeout)
        except (DatabaseUnavailable, ObjectStoreUnavailable) as exc:
            return Reachability(name, False, exc.reason)
        except asyncio.TimeoutError:
            return Reachability(name, False, f"no answer within {self._timeout:g} s")
        return Reachability(name, True)
