"""Single-flight: one owned task per key, shared by every caller (STYLE)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from proxy.core.flights import SingleFlight


async def test_concurrent_calls_share_one_task_and_a_cancelled_caller_does_not_cancel_it() -> None:
    flights = SingleFlight()
    release, began = asyncio.Event(), asyncio.Event()
    started = 0

    async def work() -> str:
        nonlocal started
        started += 1
        began.set()
        await release.wait()
        return "done"

    first = asyncio.ensure_future(flights.run("k", work))
    second = asyncio.ensure_future(flights.run("k", work))
    await began.wait()  # the flight runs: both callers are waiting for it
    first.cancel()
    release.set()
    assert await second == "done"
    assert started == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await flights.run("k", work) == "done" and started == 2, "a finished flight is not reused"


async def test_close_cancels_and_awaits_what_is_in_flight() -> None:
    flights = SingleFlight()
    task = flights.start("k", lambda: asyncio.sleep(3600))
    await flights.close()
    assert task.cancelled()


async def test_a_failure_nobody_awaits_is_not_reported_as_never_retrieved() -> None:
    """A refresh whose waiters all went (served stale) may fail later: that is logged where it
    happens, not as asyncio's "Task exception was never retrieved"."""
    async def fail() -> None:
        raise RuntimeError("boom")

    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    try:
        task = SingleFlight().start("k", fail)
        await asyncio.wait({task})
        await asyncio.sleep(0)  # done callbacks run
        del task
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert reported == []
