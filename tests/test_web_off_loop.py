"""O(N) work over every project name runs off the event loop (issue 11 D): with ``list_projects``
upstream lists 600,000 names, whose merge with the private ones took 2 s on the loop, and the web
interface lists every cached project. Checked by the thread the work runs in, never by timing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.core import merge
from proxy.storage.auth import AuthStore
from proxy.ui import browse, views_list
from proxy.ui.templates import Templates
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream

JSON = "application/vnd.pypi.simple.v1+json"
CONTENT_TYPES = [JSON, "application/vnd.pypi.simple.v1+html", "text/html"]
EXECUTOR_THREAD = "pypi-proxy-io"
NAMES = 5000


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
        before: Callable[[], None] = lambda: None) -> list[str]:
    """Record the thread each call of ``module.name`` runs in (``before`` runs first in it)."""
    threads: list[str] = []
    real = getattr(module, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        before()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return threads


@pytest.fixture
async def listing(aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
                  auth: AuthStore) -> TestClient:
    """A proxy with list_projects on, an upstream of many names, a private project among them."""
    for number in range(NAMES):
        fake_upstream.project_names[f"name-{number}"] = f"Name_{number}"
    client = await start_client(aiohttp_client, upstream_settings(upstream={"list_projects": True}))
    response = await client.post("/pypi/", data=upload_form(Dist("mine", "1.0")), headers=basic("alice", PASSWORD))
    assert response.status == 200
    return client


async def test_the_root_merge_runs_in_the_executor_once_per_version(
        listing: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """One merge per version of the two lists, shared by every format and by concurrent requests."""
    threads = spy(monkeypatch, merge, "project_names")
    for accept in CONTENT_TYPES:
        answers = await asyncio.gather(*(listing.get("/pypi/simple/", headers={"Accept": accept}) for _ in range(4)))
        assert {answer.status for answer in answers} == {200}
    data = await (await listing.get("/pypi/simple/", headers={"Accept": JSON})).json()
    assert len(data["projects"]) == NAMES + 3 and {"name": "mine"} in data["projects"]  # + demo, dep
    assert len(threads) == 1 and threads[0].startswith(EXECUTOR_THREAD)

    upload = upload_form(Dist("second", "1.0"))
    assert (await listing.post("/pypi/", data=upload, headers=basic("alice", PASSWORD))).status == 200
    data = await (await listing.get("/pypi/simple/", headers={"Accept": JSON})).json()
    assert len(data["projects"]) == NAMES + 4, "a new private project is a new version: merged again"
    assert len(threads) == 2 and threads[1].startswith(EXECUTOR_THREAD)


async def test_the_server_answers_while_the_root_merge_runs(
        listing: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the merge is held mid-way, another request is served: the loop is free."""
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    release = threading.Event()

    def hold() -> None:
        loop.call_soon_threadsafe(started.set)
        # On the loop this would freeze the server: the health request below could never be served.
        assert release.wait(timeout=60), "the merge was never released: it held the event loop"

    spy(monkeypatch, merge, "project_names", hold)
    root = asyncio.ensure_future(listing.get("/pypi/simple/", headers={"Accept": JSON}))
    await started.wait()
    health = await listing.get("/-/health")
    assert health.status == 200 and not root.done()
    release.set()
    assert (await root).status == 200


@pytest.mark.parametrize(("path", "module", "name"), [
    ("/-/projects", views_list, "listed_projects"),
    ("/-/projects", browse, "cached_projects"),
    ("/", browse, "cached_projects"),
    ("/-/projects/demo/", browse, "cached_files"),
])
async def test_the_interface_lists_projects_in_the_executor(
        listing: TestClient, monkeypatch: pytest.MonkeyPatch, path: str, module: Any, name: str) -> None:
    """The web interface's listings of private and cached projects, O(projects + cached files)."""
    assert (await listing.get("/pypi/simple/demo/")).status == 200  # its listing, cached
    assert (await listing.get("/pypi/files/demo/demo-1.0-py3-none-any.whl")).status == 200  # a cached file
    threads = spy(monkeypatch, module, name)
    response = await listing.get(path)
    assert response.status == 200, await response.text()
    assert threads and all(thread.startswith(EXECUTOR_THREAD) for thread in threads)


@pytest.mark.parametrize(("path", "status"), [
    ("/", 200), ("/-/projects", 200), ("/-/projects/demo/", 200), ("/-/projects/mine/", 200),
    ("/-/projects/absent/", 404), ("/-/projects/not..valid/", 404), ("/help/", 200), ("/-/status", 200),
])
async def test_every_interface_page_renders_its_template_in_the_executor(
        listing: TestClient, monkeypatch: pytest.MonkeyPatch, path: str, status: int) -> None:
    """The template renders in the executor: a big project page takes ~200 ms to render."""
    assert (await listing.get("/pypi/simple/demo/")).status == 200  # its listing, cached
    threads = spy(monkeypatch, Templates, "render")
    response = await listing.get(path)
    assert response.status == status, await response.text()
    assert len(threads) == 1 and threads[0].startswith(EXECUTOR_THREAD)
    assert response.content_type == "text/html" and response.charset == "utf-8"
