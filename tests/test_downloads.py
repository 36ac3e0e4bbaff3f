"""Every download is bounded (issue 12 L1): by its listed size, else upstream's Content-Length,
else ``[upstream] max_file_size`` (or ``[cache] files_max_size`` when that is smaller). An
endless chunked body filled the disk whatever the limits said."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from proxy.config import Settings
from tests import rawhttp
from tests.conftest import start_client
from tests.fakeupstream import FakeFile, FakeUpstream

MakeSettings = Callable[..., Settings]
MiB = 1024 * 1024
SDIST = FakeFile("endless-1.0.tar.gz", b"listed bytes" * 100_000)  # 1.2 MB listed, for the sized cases
PATH = f"/pypi/files/endless/{SDIST.filename}"


def limits(max_file_size: int | None, files_max_size: int | None) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {"upstream": {}, "cache": {}}
    if max_file_size is not None:
        sections["upstream"]["max_file_size"] = max_file_size
    if files_max_size is not None:
        sections["cache"]["files_max_size"] = files_max_size
    return sections


@pytest.mark.parametrize(("max_file_size", "files_max_size", "bound"), [
    (1 * MiB, None, 1 * MiB),
    (1 * MiB, 3 * MiB, 1 * MiB),
    (3 * MiB, 1 * MiB, 1 * MiB),  # a file cannot be larger than the whole cache
])
async def test_an_endless_body_of_a_file_listed_without_size_is_abandoned_at_the_bound(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        max_file_size: int, files_max_size: int | None, bound: int) -> None:
    fake_upstream.add_file("endless", SDIST)
    fake_upstream.flavour = "html"  # no size in the listing
    fake_upstream.bad.endless_files = True
    sections = limits(max_file_size, files_max_size)
    settings = upstream_settings(upstream=sections["upstream"], cache=sections["cache"])
    client = await start_client(aiohttp_client, settings)
    assert (await client.get("/pypi/simple/endless/")).status == 200
    largest = 0

    async def watch_part_file() -> None:  # what is on disk never exceeds the bound either
        nonlocal largest
        tmp = settings.data_dir / "cache" / "tmp"
        while True:
            for part in tmp.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    largest = max(largest, part.stat().st_size)
            await asyncio.sleep(0.002)

    watcher = asyncio.ensure_future(watch_part_file())
    response = await rawhttp.request(client.host, client.port, PATH)
    watcher.cancel()
    assert (response.status, response.framing, response.complete) == (200, "chunked", False)
    assert 0 < len(response.body) <= bound
    assert 0 < largest <= bound
    for _ in range(400):  # the abandoned upstream response is closed: its body stops
        sent = fake_upstream.bytes_sent[f"/files/{SDIST.filename}"]
        await asyncio.sleep(0.02)
        if fake_upstream.bytes_sent[f"/files/{SDIST.filename}"] == sent:
            break
    else:
        pytest.fail("upstream is still being read")
    assert list((settings.data_dir / "cache" / "tmp").iterdir()) == []
    assert not (settings.data_dir / "cache" / "files" / "endless").exists()
    health = await (await client.get("/-/health")).json()
    assert health["upstream"]["breaker"]["consecutive_failures"] == 0, "a refusal is not upstream failing"


@pytest.mark.parametrize("how", ["listed", "announced"])
async def test_a_file_known_to_be_too_large_is_a_clean_502(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream, how: str) -> None:
    """Listed (PEP 700 size) or announced (Content-Length) beyond the bound: refused before any
    byte, with the reason; a listed one is not even requested."""
    fake_upstream.add_file("endless", SDIST)
    fake_upstream.flavour = "json" if how == "listed" else "html"
    settings = upstream_settings(upstream={"max_file_size": MiB})
    client = await start_client(aiohttp_client, settings)
    assert (await client.get("/pypi/simple/endless/")).status == 200
    response = await client.get(PATH)
    assert response.status == 502
    assert "more than the 1048576 bytes this server takes for one file" in await response.text()
    assert fake_upstream.requests[f"/files/{SDIST.filename}"] == (0 if how == "listed" else 1)
    assert list((settings.data_dir / "cache" / "tmp").iterdir()) == []


async def test_a_file_within_the_bound_is_served(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream) -> None:
    fake_upstream.add_file("endless", SDIST)
    fake_upstream.flavour = "html"
    fake_upstream.bad.chunked_files = True  # the size is known at the end only
    client = await start_client(aiohttp_client, upstream_settings(upstream={"max_file_size": len(SDIST.content)}))
    await client.get("/pypi/simple/endless/")
    response = await client.get(PATH)
    assert response.status == 200 and await response.read() == SDIST.content


def test_the_default_bound_is_large_but_finite(make_settings: MakeSettings) -> None:
    assert make_settings().upstream.max_file_size == 20 * 1024**3
