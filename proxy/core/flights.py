"""Single-flight: concurrent requests for one key share one owned task (STYLE: never
fire-and-forget; the owner awaits or cancels every task it started)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """Concurrent calls with one key share one owned task; cancelling a caller never cancels it."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[Any]] = {}

    def start(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """The task in flight for ``key``, or a new one running ``work()``."""
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda _: self._tasks.pop(key, None))
            task.add_done_callback(retrieved)  # its waiters may all be gone
        return task

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        result: T = await asyncio.shield(self.start(key, work))
        return result

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


def retrieved(task: asyncio.Future[Any]) -> None:
    """A done callback: a task whose waiters are all gone must not log "exception never retrieved"."""
    if not task.cancelled():
        task.exception()
