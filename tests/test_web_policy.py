"""The supply-chain policy through the real app (issue 15): blocked releases are absent from the
simple index (both formats), the JSON API and the web interface, their files answer 403 naming the
rule, warnings are marked, and /-/explain says why. Upstream is FakeUpstream on loopback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.storage.auth import AuthStore
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream

JSON_V1 = "application/vnd.pypi.simple.v1+json"
MakeSettings = Callable[..., Settings]


@pytest.fixture
def two_releases(fake_upstream: FakeUpstream) -> FakeUpstream:
    """demo 1.0 (the fixture's) and demo 2.0."""
    fake_upstream.add(Dist("demo", "2.0", requires_dist=["dep>=2"]))
    return fake_upstream


async def proxy_with(aiohttp_client: Any, upstream_settings: MakeSettings, policy: dict[str, Any],
                     **upstream: Any) -> TestClient:
    return await start_client(aiohttp_client, upstream_settings(upstream or None, policy=policy))


async def served_versions(client: TestClient, name: str = "demo") -> dict[str, set[str]]:
    """The releases each representation lists: simple JSON, simple HTML, JSON API."""
    page = await (await client.get(f"/pypi/simple/{name}/", headers={"Accept": JSON_V1})).json(content_type=None)
    html = await (await client.get(f"/pypi/simple/{name}/", headers={"Accept": "text/html"})).text()
    api = await (await client.get(f"/pypi/{name}/json")).json()
    return {
        "json": {f["filename"].split("-")[1].removesuffix(".tar.gz") for f in page["files"]} | set(page["versions"]),
        "html": {v for v in ("1.0", "2.0") if f"{name}-{v}-py3-none-any.whl" in html},
        "api": set(api["releases"]),
    }


async def explain(client: TestClient, name: str, version: str) -> dict[str, Any]:
    response = await client.get(f"/-/explain/{name}/{version}", headers={"Accept": "application/json"})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_deny_hides_the_release_everywhere_and_its_files_answer_403(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    client = await proxy_with(aiohttp_client, upstream_settings, {"deny": ["demo<2"]})
    assert await served_versions(client) == {"json": {"2.0"}, "html": {"2.0"}, "api": {"2.0"}}
    for filename in ("demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl.metadata"):
        response = await client.get(f"/pypi/files/demo/{filename}")
        text = await response.text()
        assert response.status == 403 and "deny" in text and "demo<2" in text and "/-/explain/demo/1.0" in text
    assert two_releases.requests["/files/demo-1.0-py3-none-any.whl"] == 0, "a blocked file is never fetched"
    assert (await client.get("/pypi/files/demo/demo-2.0-py3-none-any.whl")).status == 200
    blocked, served = await explain(client, "demo", "1.0"), await explain(client, "demo", "2.0")
    assert (blocked["action"], [r["rule"] for r in blocked["reasons"]]) == ("block", ["deny"])
    assert (served["action"], served["reasons"], served["source"]) == ("serve", [], "upstream")
    assert blocked["release"]["uploaded"] == "2025-01-02T03:04:05.000000Z"
    metrics = await (await client.get("/-/metrics")).text()
    assert 'pypi_proxy_policy_blocked_total{project="demo",rule="deny"} 3.0' in metrics


async def test_allow_only_is_a_curated_index(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    client = await proxy_with(aiohttp_client, upstream_settings, {"allow_only": ["dep", "demo>=2"]})
    assert await served_versions(client) == {"json": {"2.0"}, "html": {"2.0"}, "api": {"2.0"}}
    assert (await client.get("/pypi/simple/dep/")).status == 200
    two_releases.add(Dist("leftpad", "1.0"))
    response = await client.get("/pypi/simple/leftpad/")
    assert response.status == 404 and "allow-only" in await response.text()
    assert two_releases.requests["/simple/leftpad/"] == 0, "a project nothing allows is not even fetched"


async def test_cooldown_hides_a_release_younger_than_it_by_upload_time(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for filename in ("demo-2.0-py3-none-any.whl", "demo-2.0.tar.gz"):
        two_releases.upload_times[filename] = yesterday
    client = await proxy_with(aiohttp_client, upstream_settings, {"cooldown": "7 days"})
    assert await served_versions(client) == {"json": {"1.0"}, "html": {"1.0"}, "api": {"1.0"}}
    reasons = (await explain(client, "demo", "2.0"))["reasons"]
    assert [r["rule"] for r in reasons] == ["cooldown"] and "uploaded 1.0 days ago" in reasons[0]["message"]


async def test_cooldown_counts_from_first_seen_when_upstream_gives_no_upload_time(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    two_releases.flavour = "html"  # PEP 503 pages carry no upload-time
    client = await proxy_with(aiohttp_client, upstream_settings, {"cooldown": "1 day"})
    assert (await served_versions(client))["html"] == set()
    document = await explain(client, "demo", "1.0")
    assert document["release"]["first_seen"] and "first seen here" in document["reasons"][0]["message"]
    exempt = await proxy_with(aiohttp_client, upstream_settings, {"cooldown": "1 day", "cooldown_exempt": ["demo"]})
    assert (await served_versions(exempt))["html"] == {"1.0", "2.0"}


@pytest.mark.parametrize(("status", "mode", "page_status"), [
    ("quarantined", "block", 404), ("archived", "warn", 200), ("deprecated", "warn", 200),
])
async def test_pep_792_project_status(aiohttp_client: Any, upstream_settings: MakeSettings,
                                      two_releases: FakeUpstream, status: str, mode: str, page_status: int) -> None:
    two_releases.project_keys["demo"] = {"project-status": {"status": status, "reason": "see upstream"}}
    client = await proxy_with(aiohttp_client, upstream_settings, {status: mode})
    versions = await served_versions(client)
    assert versions["json"] == (set() if mode == "block" else {"1.0", "2.0"})
    response = await client.get("/pypi/files/demo/demo-2.0-py3-none-any.whl")
    assert response.status == (403 if mode == "block" else 200)
    if mode == "warn":
        assert response.headers["X-Proxy-Policy"].startswith(f"warn; {status}: the project is {status}")


async def test_dry_run_reports_and_hides_nothing(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    client = await proxy_with(aiohttp_client, upstream_settings, {"deny": ["demo<2"], "dry_run": True})
    assert (await served_versions(client))["json"] == {"1.0", "2.0"}
    response = await client.get("/pypi/files/demo/demo-1.0-py3-none-any.whl")
    assert response.status == 200 and response.headers["X-Proxy-Policy"].startswith("warn; deny:")
    document = await explain(client, "demo", "1.0")
    assert (document["would"], document["action"], document["dry_run"]) == ("block", "warn", True)


async def test_an_exemption_serves_the_release_and_the_explanation_keeps_the_finding(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    exemption = {"project": "demo", "until": "2099-12-31", "reason": "patched in our fork", "rules": ["deny"]}
    client = await proxy_with(aiohttp_client, upstream_settings, {"deny": ["demo<2"], "exemptions": [exemption]})
    assert (await served_versions(client))["json"] == {"1.0", "2.0"}
    [reason] = (await explain(client, "demo", "1.0"))["reasons"]
    assert reason["rule"] == "deny" and reason["exempted"] == {"project": "demo", "until": "2099-12-31",
                                                               "reason": "patched in our fork"}


async def test_private_releases_are_never_hidden_and_their_pinned_dependencies_are_explained(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream, auth: AuthStore) -> None:
    settings = upstream_settings(policy={"deny": ["app", "dep==2.0"]})  # alice: the auth fixture, same data dir
    client = await start_client(aiohttp_client, settings)
    form = upload_form(Dist("app", "1.0", requires_dist=["dep==2.0", "demo>=1"]))
    assert (await client.post("/pypi/", data=form, headers=basic("alice", PASSWORD))).status == 200
    page = await (await client.get("/pypi/simple/app/", headers={"Accept": JSON_V1})).json(content_type=None)
    assert [f["filename"] for f in page["files"]] == ["app-1.0-py3-none-any.whl"], "deny never hides private"
    document = await explain(client, "app", "1.0")
    assert (document["source"], document["action"]) == ("private", "serve")
    [dependency] = document["dependencies"]
    assert (dependency["project"], dependency["version"], dependency["action"]) == ("dep", "2.0", "block")


async def test_explain_answers_404_for_what_is_not_served_and_a_web_page_to_browsers(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    client = await proxy_with(aiohttp_client, upstream_settings, {"deny": ["demo<2"]})
    for path in ("/-/explain/demo/9.9", "/-/explain/nothing-here/1.0"):
        assert (await client.get(path, headers={"Accept": "application/json"})).status == 404
    page = await client.get("/-/explain/demo/1.0", headers={"Accept": "text/html,application/xhtml+xml"})
    text = await page.text()
    assert page.status == 200 and page.content_type == "text/html" and "Blocked" in text and "demo&lt;2" in text


async def test_with_every_rule_off_nothing_is_added_to_the_chain(
        aiohttp_client: Any, upstream_settings: MakeSettings, two_releases: FakeUpstream) -> None:
    client = await proxy_with(aiohttp_client, upstream_settings, {})
    assert (await served_versions(client))["json"] == {"1.0", "2.0"}
    document = await explain(client, "demo", "1.0")
    assert (document["action"], document["reasons"], document["advisory_data"]) == ("serve", [], None)
