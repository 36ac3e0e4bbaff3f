"""Waiting in tests for something that happens elsewhere (another task, a thread, a server
process, the kernel) when there is nothing to await: a bounded poll of the condition itself,
failing with a message that says what never happened. Never a bare sleep standing in for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.02


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str, within: float = 5.0) -> None:
    """Return once ``condition()`` (sync or async) is true; AssertionError naming ``what`` when it
    is still false after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        outcome = condition()
        if await outcome if isinstance(outcome, Awaitable) else outcome:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {within:g} s")
        await asyncio.sleep(POLL_S)


def until_sync(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """``until`` for tests without an event loop (a server in a subprocess, a thread)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {within:g} s")
        time.sleep(POLL_S)
