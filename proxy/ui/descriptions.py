"""Descriptions on project pages: rendered once per text, outside the server process, within a budget.

A view asks for a description; it is answered from memory, else from disk (``descfiles``),
else rendered by a renderer process (``readmechild``) that is killed at the budget's deadline
and limited in memory by the kernel. Concurrent first views of one description share one
render (single-flight); at most ``CONCURRENT_RENDERS`` run at once per server process. A text
above the budget's size, or whose render ran out of time or memory, is shown plain; that
outcome is kept too, so it costs one render at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from markupsafe import Markup

from proxy.core.flights import SingleFlight
from proxy.core.lru import LruCache
from proxy.storage.descriptions import RenderedDescriptions
from proxy.ui import readme
from proxy.ui.readme import NOT_READY, RENDERED_EMPTY, TOO_LARGE, TOO_MUCH_MEMORY, TOO_SLOW, Shown
from proxy.ui.readmechild import OUT_OF_MEMORY, READY

T = TypeVar("T")
log = structlog.get_logger(__name__)
# Seconds for a renderer process to start and import docutils (~0.3 s): not part of the budget.
STARTUP_TIMEOUT = 30.0
CONCURRENT_RENDERS = 2  # renderer processes at once, per server process
MAX_PENDING = 16  # distinct descriptions rendering or queued; beyond, shown plain for now
_KEPT_STDERR = 4096
_RECORDED = (TOO_SLOW, TOO_MUCH_MEMORY)  # outcomes that are the text's, kept like a rendering


@dataclass(frozen=True, slots=True)
class Budget:
    """What one description may cost: ``max_size`` UTF-8 bytes of text (larger ones are never
    rendered), ``timeout`` seconds of rendering, ``memory`` bytes of the renderer's address space."""

    max_size: int
    timeout: float
    memory: int

    @property
    def output_cap(self) -> int:
        """Most bytes of HTML taken from a render (readme_renderer writes ~2 bytes per byte)."""
        return 8 * self.max_size + 64 * 1024

    @property
    def tag(self) -> str:
        """Names the budget in ``descfiles``: a failure within a smaller budget is tried again."""
        return f"{round(self.timeout * 1000)}ms-{self.memory}b-{self.max_size}b"


class RendererFailed(Exception):
    """The renderer process itself failed (could not start, crashed): not the text's fault."""


@dataclass(frozen=True, slots=True)
class _Rendered:
    html: bytes | None  # None: ``reason``
    reason: str = ""


class Descriptions:
    """Rendered descriptions of private releases, kept in memory (``cache_memory`` bytes, least
    recently used go first) and on disk. ``renders`` counts renderer processes started."""

    def __init__(self, files: RenderedDescriptions, executor: Executor, budget: Budget, cache_memory: int) -> None:
        self._files = files
        self._executor = executor
        self.budget = budget
        self._memory: LruCache[str, Shown] = LruCache(cache_memory, lambda shown: 64 + len(shown.html or ""))
        self._flights = SingleFlight()
        self._pending: set[str] = set()
        self._slots = asyncio.Semaphore(CONCURRENT_RENDERS)
        self._renderer: str | None = None
        self.renders = 0
        self.rendering = 0  # renderer processes alive now

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def shown(self, text: str, content_type: str | None) -> Shown:
        """How ``text`` (a Description-Content-Type ``content_type``) appears on its page.

        Waits for a render at most ``STARTUP_TIMEOUT + budget.timeout`` seconds; a render still
        queued or running then goes on (its result is kept) and this view shows the text plain,
        as it does when the renderer fails or the service closes.
        """
        if self._renderer is None:
            self._renderer = await self._run(readme.renderer_identity)
        key = await self._run(self._classify, text, content_type, self._renderer)
        if isinstance(key, Shown):
            return key
        found = self._memory.get(key)
        if found is not None:
            return found
        if key not in self._pending and len(self._pending) >= MAX_PENDING:
            log.warning("description_renders_busy", pending=len(self._pending))
            return Shown(None, NOT_READY)
        task = self._flights.start(key, lambda: self._settle(key, text, content_type))
        if key not in self._pending:
            self._pending.add(key)
            task.add_done_callback(lambda _: self._pending.discard(key))
        # Waits without ever cancelling the render: other views, and the cache, want its result.
        await asyncio.wait({task}, timeout=STARTUP_TIMEOUT + self.budget.timeout)
        if not task.done() or task.cancelled() or isinstance(task.exception(), RendererFailed):
            return Shown(None, NOT_READY)
        return task.result()

    def _classify(self, text: str, content_type: str | None, renderer: str) -> str | Shown:
        """The text's cache key, or how it is shown without rendering. O(len(text)): executor."""
        if not text.strip():
            return RENDERED_EMPTY
        if len(text.encode("utf-8", "surrogatepass")) > self.budget.max_size:
            return Shown(None, TOO_LARGE)
        return readme.description_key(text, content_type, renderer)

    async def _settle(self, key: str, text: str, content_type: str | None) -> Shown:
        """The stored outcome for ``key``, else a new render's, kept on disk and in memory."""
        shown = await self._run(self._stored, key)
        if shown is None:
            async with self._slots:
                started = time.monotonic()
                rendered = await self._render(text, content_type)
            shown = await self._run(self._keep, key, rendered)
            log.info("description_rendered", key=key[:16], chars=len(text), content_type=content_type,
                     outcome=shown.plain_reason or "rendered", ms=round(1000 * (time.monotonic() - started)))
        self._memory.put(key, shown)
        return shown

    def _stored(self, key: str) -> Shown | None:
        """Blocking: the outcome on disk, if any (a cache: an unreadable one is a miss)."""
        try:
            html = self._files.read(key)
            if html is not None:
                return Shown(Markup(html))  # sanitised when it was rendered
            reason = self._files.failure(key, self.budget.tag)
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("description_cache_unreadable", key=key[:16], error=str(exc))
            return None
        return Shown(None, reason) if reason in _RECORDED else None

    def _keep(self, key: str, rendered: _Rendered) -> Shown:
        """Blocking: the render's outcome, written to disk (a failure to write is only logged)."""
        if rendered.html is None:
            shown = Shown(None, rendered.reason)
        else:
            shown = Shown(Markup(rendered.html.decode("utf-8")))  # sanitised by readme_renderer (nh3)
        try:
            if shown.html is not None:
                self._files.write(key, shown.html)
            else:
                self._files.mark_failed(key, self.budget.tag, rendered.reason)
        except OSError as exc:
            log.warning("description_cache_unwritable", key=key[:16], error=str(exc))
        return shown

    async def _render(self, text: str, content_type: str | None) -> _Rendered:
        """Render in a new renderer process: its start-up is not counted, the render has
        ``budget.timeout`` seconds. Raises RendererFailed when the renderer itself fails."""
        payload = await self._run(_request, text, content_type)
        cpu = math.ceil(STARTUP_TIMEOUT + self.budget.timeout) + 1  # the child's own backstop
        self.renders += 1
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "proxy.ui.readmechild", str(self.budget.memory), str(cpu),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a terminal's ^C is the server's to handle, not the renderer's
            )
        except OSError as exc:  # no process to be had (EAGAIN, ENOMEM): the text is not to blame
            log.error("description_renderer_failed", stage="spawn", error=str(exc))
            raise RendererFailed(str(exc)) from exc
        self.rendering += 1
        try:
            return await self._exchange(process, payload)
        finally:
            _kill(process)
            await process.wait()
            self.rendering -= 1

    async def _exchange(self, process: asyncio.subprocess.Process, payload: bytes) -> _Rendered:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
        except asyncio.TimeoutError:
            raise RendererFailed("the renderer did not start in time") from None
        if ready != READY:
            _kill(process)
            errors = await _read_kept(process.stderr, _KEPT_STDERR)
            log.error("description_renderer_failed", stage="start", stderr=errors.decode("utf-8", "replace"))
            raise RendererFailed("the renderer did not start")
        try:
            html, errors, _ = await asyncio.wait_for(asyncio.gather(
                _read_capped(process, process.stdout, self.budget.output_cap),
                _read_kept(process.stderr, _KEPT_STDERR),
                _feed(process.stdin, payload),
            ), self.budget.timeout)
        except asyncio.TimeoutError:
            return _Rendered(None, TOO_SLOW)
        status = await process.wait()
        if status == 0 and html is not None:
            if errors:  # e.g. a resource limit it could not apply
                log.warning("description_renderer_warning", stderr=errors.decode("utf-8", "replace"))
            return _Rendered(html)
        if html is None or status in (OUT_OF_MEMORY, -signal.SIGKILL, -signal.SIGABRT):
            return _Rendered(None, TOO_MUCH_MEMORY)  # MemoryError, the OOM killer, a failed allocation
        log.error("description_renderer_failed", stage="render", status=status,
                  stderr=errors.decode("utf-8", "replace"))
        raise RendererFailed(f"the renderer exited with status {status}")

    async def close(self) -> None:
        """Stop renders in flight (their processes are killed)."""
        await self._flights.close()


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, unless it has exited already (it may have, between any check and this)."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _request(text: str, content_type: str | None) -> bytes:
    """The renderer's input (``readmechild``). O(len(text)): executor."""
    return json.dumps({"text": text, "content_type": content_type}).encode("ascii")


async def _feed(stream: asyncio.StreamWriter, payload: bytes) -> None:
    try:
        stream.write(payload)
        await stream.drain()
        stream.close()
    except (BrokenPipeError, ConnectionResetError):  # the renderer died: its status tells why
        pass


async def _read_capped(process: asyncio.subprocess.Process, stream: asyncio.StreamReader, cap: int) -> bytes | None:
    """All of ``stream``, or None (and the process killed) beyond ``cap`` bytes."""
    data = bytearray()
    while chunk := await stream.read(256 * 1024):
        data += chunk
        if len(data) > cap:
            _kill(process)
            return None
    return bytes(data)


async def _read_kept(stream: asyncio.StreamReader, keep: int) -> bytes:
    """``stream`` to its end, keeping its first ``keep`` bytes."""
    kept = bytearray()
    while chunk := await stream.read(64 * 1024):
        kept += chunk[: max(0, keep - len(kept))]
    return bytes(kept)
