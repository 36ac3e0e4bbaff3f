"""The cap on a release's description at upload (issue 12 M1): a 400 naming the size and the
limit (STANDARDS E3: in the reason phrase and the body), and nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from proxy.config import Settings
from proxy.storage.auth import AuthStore
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, snapshot, start_client, upload_form
from tests.test_descriptions import rst


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
@pytest.mark.parametrize(("description", "accepted"), [
    ("a" * 1024, True),  # at the limit
    ("a" * 1025, False),
    ("é" * 512, True),  # 1024 bytes of UTF-8
    ("é" * 513, False),  # 513 characters, 1026 bytes: the limit is in bytes, as stored and served
])
async def test_descriptions_over_the_cap_are_refused(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                                     auth: AuthStore, kind: str, description: str,
                                                     accepted: bool) -> None:
    settings = make_settings(descriptions={"max_size": 1024})
    client = await start_client(aiohttp_client, settings)
    before = snapshot(settings.data_dir)
    form = upload_form(Dist("capped", "1.0", description=description), kind)
    response = await client.post("/pypi/", data=form, headers=basic("alice", PASSWORD))
    if accepted:
        assert response.status == 200, await response.text()
        return
    reason = f"Description too large: {len(description.encode())} bytes (UTF-8). Limit for this server is 1024 bytes."
    assert (response.status, response.reason) == (400, reason)
    assert reason in await response.text()
    assert snapshot(settings.data_dir) == before


@pytest.mark.parametrize(("limits", "accepted"), [
    ({}, False),  # the default cap, 1 MiB
    ({"max_size": "4 MiB"}, True),
    ({"max_size": ""}, True),  # no cap
])
async def test_the_m1_description_and_the_default_cap(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                                      auth: AuthStore, limits: dict[str, Any], accepted: bool) -> None:
    """The repro's 2 MiB of reStructuredText is over the default cap."""
    client = await start_client(aiohttp_client, make_settings(descriptions=limits))
    dist = Dist("bigdoc", "1.0", description=rst(2 * 1024 * 1024))
    response = await client.post("/pypi/", data=upload_form(dist, "sdist"), headers=basic("alice", PASSWORD))
    assert response.status == (200 if accepted else 400)
    if not accepted:
        assert response.reason is not None and response.reason.endswith("Limit for this server is 1048576 bytes.")
