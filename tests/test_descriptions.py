"""Descriptions rendered once, in renderer processes, within a budget (issue 12 M1): the service
with real renderer processes and a real data directory, no server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from proxy.config import ConfigError, settings_from_mapping
from proxy.storage.descriptions import RenderedDescriptions
from proxy.ui import descriptions, readme
from proxy.ui.descriptions import Budget, Descriptions

# The repro's paragraph (/work/shared/repro/m1_rst_ui.sh): docutils renders ~60 KiB of it a second.
PARAGRAPH = "Some *emphasis* and ``code`` and a `link <https://example.com>`_.\n\n"
HEADINGS = "".join(f"# {number}\n" for number in range(20_000))
FAST = Budget(max_size=512 * 1024, timeout=60.0, memory=1024**3)


def rst(size: int, title: str = "Title") -> str:
    """About ``size`` bytes of reStructuredText that is slow to render."""
    return f"{title}\n{'=' * len(title)}\n\n" + PARAGRAPH * (size // len(PARAGRAPH))


async def until(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    """Poll for a state the service reaches on its own (a renderer process running)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "the state was never reached"
        await asyncio.sleep(0.01)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=4)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
async def service_for(tmp_path: Path, executor: ThreadPoolExecutor) -> AsyncIterator[Callable[..., Descriptions]]:
    """A new service on the same data directory each call, as after a restart (or another worker)."""
    made: list[Descriptions] = []

    def make(budget: Budget = FAST, cache_memory: int = 16 * 1024**2) -> Descriptions:
        made.append(Descriptions(RenderedDescriptions(tmp_path), executor, budget, cache_memory))
        return made[-1]

    yield make
    for service in made:
        await service.close()


async def test_concurrent_first_views_share_one_render(service_for: Callable[..., Descriptions]) -> None:
    """Single-flight: ten views of a new description start one renderer; later views none."""
    service = service_for()
    text = rst(16 * 1024) + "A `bad <javascript:alert(1)>`_ link, <script>alert(2)</script>.\n"
    first = await asyncio.gather(*(service.shown(text, "text/x-rst") for _ in range(10)))
    assert service.renders == 1
    assert len({shown.html for shown in first}) == 1
    for _ in range(5):
        assert await service.shown(text, "text/x-rst") == first[0]
    assert service.renders == 1
    html = first[0].markup(text)
    assert first[0].html is not None and "<em>emphasis</em>" in html  # rendered, and sanitised (nh3):
    assert "&lt;script&gt;alert(2)" in html and "<script" not in html and "javascript:" not in html


async def test_kept_on_disk_for_the_next_process(service_for: Callable[..., Descriptions]) -> None:
    """After a restart (or in another worker) the rendering is read, not rendered again."""
    text, kind = "# Hello\n\nSome *markdown*.\n", "text/markdown"
    shown = await service_for().shown(text, kind)
    again = service_for()
    assert await again.shown(text, kind) == shown and again.renders == 0
    assert shown.html is not None and "<em>markdown</em>" in shown.html
    other = service_for()  # the same text in another content type is another rendering
    assert (await other.shown(text, "text/x-rst")).html != shown.html and other.renders == 1


@pytest.mark.parametrize(("text", "plain"), [
    ("a" * 1024, False),  # at the limit: rendered
    ("a" * 1025, True),
    ("é" * 513, True),  # 513 characters, 1026 UTF-8 bytes: the limit is in bytes
    ("é" * 512, False),
])
async def test_above_the_size_budget_is_plain_and_never_rendered(service_for: Callable[..., Descriptions],
                                                                 text: str, plain: bool) -> None:
    service = service_for(Budget(max_size=1024, timeout=60.0, memory=1024**3))
    shown = await service.shown(text, "text/markdown")
    assert (shown.html is None, service.renders) == ((True, 0) if plain else (False, 1))
    assert shown.plain_reason == (readme.TOO_LARGE if plain else "")


@pytest.mark.parametrize("text", ["", "  \n\n"])
async def test_an_empty_description_costs_nothing(service_for: Callable[..., Descriptions], text: str) -> None:
    service = service_for()
    assert await service.shown(text, None) == readme.RENDERED_EMPTY and service.renders == 0


async def test_a_render_over_the_time_budget_is_plain_and_kept(service_for: Callable[..., Descriptions]) -> None:
    """docutils cannot be interrupted: its process is killed at the deadline. The outcome is kept
    so that the text costs one budget, not one per view; start-up is not in the budget."""
    budget = Budget(max_size=512 * 1024, timeout=1.0, memory=1024**3)
    slow = rst(384 * 1024)  # ~7 s of docutils on an idle machine
    service = service_for(budget)
    shown = await service.shown(slow, "text/x-rst")
    assert shown == readme.Shown(None, readme.TOO_SLOW) and service.renders == 1
    assert service.rendering == 0  # killed and reaped
    assert await service.shown(slow, "text/x-rst") == shown and service.renders == 1
    quick = await service.shown(rst(1024), "text/x-rst")  # the same budget is plenty for a short one
    assert quick.html is not None and "<em>emphasis</em>" in quick.html and service.renders == 2
    restarted = service_for(budget)
    assert await restarted.shown(slow, "text/x-rst") == shown and restarted.renders == 0


@pytest.mark.parametrize(("case", "content_type", "budget"), [
    # the renderer's address space (RLIMIT_AS) runs out
    ("96 MiB", "text/plain", Budget(max_size=128 * 1024**2, timeout=60.0, memory=160 * 1024**2)),
    # its output would exceed what is taken from it (8 bytes per byte of the size budget): each
    # ~7-byte heading becomes ~80 bytes of HTML
    ("headings", "text/markdown", Budget(max_size=len(HEADINGS), timeout=60.0, memory=1024**3)),
])
async def test_a_render_over_the_memory_budget_is_plain_and_kept(
    service_for: Callable[..., Descriptions], case: str, content_type: str, budget: Budget,
) -> None:
    text = HEADINGS
    if case == "headings":  # the output cap's case: check that it is one
        assert len(readme.render_description(text, content_type).encode()) > budget.output_cap
    else:
        text = "x" * 96 * 1024**2
    service = service_for(budget)
    shown = await service.shown(text, content_type)
    assert shown == readme.Shown(None, readme.TOO_MUCH_MEMORY) and service.renders == 1
    restarted = service_for(budget)
    assert await restarted.shown(text, content_type) == shown and restarted.renders == 0


async def test_a_renderer_that_cannot_start_is_not_the_texts_fault(service_for: Callable[..., Descriptions]) -> None:
    """16 MiB of address space is too little for Python and docutils to start: the view shows
    the text plain for now, and nothing is recorded against the text."""
    text = "Some *text*\n"
    starved = service_for(Budget(max_size=1024, timeout=60.0, memory=16 * 1024**2))
    assert await starved.shown(text, "text/markdown") == readme.Shown(None, readme.NOT_READY)
    assert starved.renders == 1 and starved.rendering == 0
    healthy = service_for()
    shown = await healthy.shown(text, "text/markdown")
    assert shown.html is not None and "<em>text</em>" in shown.html and healthy.renders == 1


async def test_closing_kills_a_render_in_flight(service_for: Callable[..., Descriptions]) -> None:
    service = service_for()
    view = asyncio.ensure_future(service.shown(rst(256 * 1024), "text/x-rst"))
    await until(lambda: service.rendering == 1)
    await service.close()
    assert service.rendering == 0  # killed and reaped
    assert await view == readme.Shown(None, readme.NOT_READY)


async def test_pending_renders_are_bounded(service_for: Callable[..., Descriptions],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_PENDING distinct descriptions in flight, a new one is shown plain at once."""
    monkeypatch.setattr(descriptions, "MAX_PENDING", 1)
    service = service_for()
    view = asyncio.ensure_future(service.shown(rst(256 * 1024), "text/x-rst"))
    try:
        await until(lambda: service.rendering == 1)
        assert await service.shown("# Other\n", "text/markdown") == readme.Shown(None, readme.NOT_READY)
        assert service.renders == 1
    finally:
        await service.close()
        await asyncio.gather(view, return_exceptions=True)


def test_settings() -> None:
    """[descriptions]: defaults, sizes as written elsewhere, and clear errors."""
    defaults = settings_from_mapping({}).descriptions
    assert (defaults.max_size, defaults.render_max_size, defaults.render_timeout, defaults.render_memory) == (
        1024**2, 512 * 1024, 5.0, 1024**3)
    chosen = settings_from_mapping({"descriptions": {"max_size": "", "render_timeout": 0.25,
                                                     "render_max_size": "64 KiB"}}).descriptions
    assert (chosen.max_size, chosen.render_timeout, chosen.render_max_size) == (None, 0.25, 64 * 1024)
    for key, value in (("render_timeout", 0), ("render_memory", "lots"), ("cache_memory", -1), ("max_sizes", 1)):
        with pytest.raises(ConfigError, match=f"descriptions.{key}"):
            settings_from_mapping({"descriptions": {key: value}})
