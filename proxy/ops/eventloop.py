"""The event loop a server process runs on (``[server] event_loop``): uvloop where it is
installed (CPython on Linux and macOS), else asyncio's own.

uvloop runs the transports, the poller and the callbacks in C: a tenth fewer instructions per
small page than asyncio's selector loop (measured with callgrind, issue 16). It has no
``loop.sendfile`` and a millisecond clock; ``proxy.ops.fastloop`` adds the one and refines the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from proxy.core.errors import ConfigError

CHOICES = ("auto", "uvloop", "asyncio")


def choose(choice: str) -> tuple[str, Callable[[Coroutine[Any, Any, Any]], Any]]:
    """(the loop's name, "uvloop" or "asyncio"; a function running a coroutine to completion on a
    new loop of that kind, as ``asyncio.run`` does) for ``choice``, one of ``CHOICES``: "auto" is
    uvloop when it imports, else asyncio. Raises ConfigError when "uvloop" is asked for and
    does not import."""
    if choice not in CHOICES:
        raise ConfigError("server.event_loop", f"expected one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "asyncio":
        return "asyncio", asyncio.run
    try:
        import uvloop

        from proxy.ops.fastloop import FastLoop
    except ImportError as exc:
        if choice == "uvloop":
            raise ConfigError("server.event_loop", f"uvloop is not installed here ({exc}); install it "
                                                   f"(pip install uvloop), or set \"auto\" or \"asyncio\"") from None
        return "asyncio", asyncio.run

    def run(main: Coroutine[Any, Any, Any]) -> Any:
        return uvloop.run(main, loop_factory=FastLoop)

    return "uvloop", run

