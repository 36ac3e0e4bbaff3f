"""Vulnerability and malicious-package rules end to end (issue 15): OSV records in the real schema
from a local zip (the feed's local source), loaded by the real app, deciding what upstream
releases are served; /-/health, /-/metrics, the status page and /-/explain say how old the data is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.web.keys import ADVISORIES
from tests.builders import Dist
from tests.conftest import start_client
from tests.fakeosv import real_records, zip_of
from tests.fakeupstream import FakeUpstream
from tests.waiting import until

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def releases(fake_upstream: FakeUpstream) -> FakeUpstream:
    for version in ("2.19.0", "2.20.0", "2.31.0", "2.32.3"):
        fake_upstream.add(Dist("requests", version))
    fake_upstream.add(Dist("colourama", "0.1.6"))
    return fake_upstream


async def proxy(aiohttp_client: Any, upstream_settings: Callable[..., Settings], tmp_path: Path,
                **policy: Any) -> TestClient:
    source = tmp_path / "osv.zip"
    source.write_bytes(zip_of(real_records()))
    client = await start_client(aiohttp_client, upstream_settings(policy={"advisories": str(source), **policy}))

    async def loaded() -> bool:
        health = await (await client.get("/-/health")).json()
        return health["advisories"]["fetched_at"] is not None

    await until(loaded, "the advisory data to be loaded from the local zip")
    return client


async def versions(client: TestClient, name: str = "requests") -> list[str]:
    page = await (await client.get(f"/pypi/simple/{name}/", headers={"Accept": JSON_V1})).json(content_type=None)
    return page["versions"]


@pytest.mark.parametrize(("floor", "served"), [
    ("any", ["2.20.0", "2.32.3"]),  # 2.31.0: GHSA-9wx4-h78v-vm56 (its CVSS v4 vector)
    ("critical", ["2.20.0", "2.31.0", "2.32.3"]),  # 2.19.0: CVE-2018-18074, critical by its CVSS v3 vector
])
async def test_vulnerable_releases_at_or_above_the_floor_are_not_served(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], releases: FakeUpstream, tmp_path: Path,
        floor: str, served: list[str]) -> None:
    client = await proxy(aiohttp_client, upstream_settings, tmp_path, vulnerabilities="block", min_severity=floor)
    assert await versions(client) == served
    response = await client.get("/pypi/files/requests/requests-2.19.0-py3-none-any.whl")
    text = await response.text()
    assert response.status == 403 and "GHSA-x84v-xcm2-53pg" in text and "vulnerabilities" in text
    document = await (await client.get("/-/explain/requests/2.19.0", headers={"Accept": "application/json"})).json()
    [reason] = document["reasons"]
    [advisory] = reason["advisories"]  # PYSEC-2018-28 and its GHSA alias count once
    assert advisory["id"] == "GHSA-x84v-xcm2-53pg" and "CVE-2018-18074" in advisory["aliases"]
    assert advisory["severity"] == "critical" and advisory["url"].startswith("https://osv.dev/vulnerability/")
    assert document["advisory_data"]["records"] == len(real_records())


async def test_malicious_records_block_under_any_floor(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], releases: FakeUpstream,
        tmp_path: Path) -> None:
    client = await proxy(aiohttp_client, upstream_settings, tmp_path, malicious="block")
    assert await versions(client, "colourama") == []
    assert await versions(client) == ["2.19.0", "2.20.0", "2.31.0", "2.32.3"], "vulnerabilities are off"
    response = await client.get("/pypi/files/colourama/colourama-0.1.6.tar.gz")
    assert response.status == 403 and "MAL-2022-4521" in await response.text()


async def test_the_age_of_the_data_is_reported_everywhere(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], releases: FakeUpstream,
        tmp_path: Path) -> None:
    client = await proxy(aiohttp_client, upstream_settings, tmp_path, vulnerabilities="warn")
    health = (await (await client.get("/-/health")).json())["advisories"]
    assert health["source"].endswith("osv.zip") and health["records"] == len(real_records())
    assert health["age_s"] >= 0 and health["last_error"] is None
    metrics = await (await client.get("/-/metrics")).text()
    assert f"pypi_proxy_advisory_records {float(len(real_records()))}" in metrics
    assert "pypi_proxy_advisory_data_age_seconds " in metrics
    status = await (await client.get("/-/status")).text()
    assert "Advisory data" in status and "osv.zip" in status
    warned = await client.get("/pypi/files/requests/requests-2.31.0-py3-none-any.whl")
    assert warned.status == 200 and "GHSA-9wx4-h78v-vm56" in warned.headers["X-Proxy-Policy"]


async def test_a_page_changes_when_the_data_does(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], releases: FakeUpstream,
        tmp_path: Path) -> None:
    client = await proxy(aiohttp_client, upstream_settings, tmp_path, vulnerabilities="block",
                         min_severity="critical")
    assert "2.31.0" in await versions(client)
    records = real_records()
    records[2]["severity"] = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
    (tmp_path / "osv.zip").write_bytes(zip_of(records))
    assert client.app is not None
    await client.app[ADVISORIES].refresh()  # what its schedule does: a changed local source is read again

    async def hidden() -> bool:
        return "2.31.0" not in await versions(client)

    await until(hidden, "2.31.0 to be hidden once its advisory is critical")
