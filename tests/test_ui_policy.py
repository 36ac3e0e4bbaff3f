"""The supply-chain policy in the web interface and the JSON API, through the real app (issue 15):
the project page marks every upstream release served, warned or hidden with every reason, links
to the advisories and to /-/explain, and its install line never names a hidden release; the JSON
API marks warned releases (``policy``, this proxy's extension) and lists PyPI's
``vulnerabilities`` from the advisory data. Upstream is FakeUpstream on loopback; the advisory
data is an AdvisoryIndex of OSV records in memory, injected into the policy component."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import proxy.web.app
from proxy.config import Settings
from proxy.core.osv import AdvisoryIndex
from proxy.repository.policy import PolicyFilter
from proxy.storage.auth import AuthStore
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeFile, FakeUpstream
from tests.test_policy_component import Data

MakeSettings = Callable[..., Settings]
EXEMPT = {"project": "demo", "until": "2099-12-31", "reason": "patched in our fork", "rules": ["deny"]}


def record(id: str, *ranges: tuple[str, str], severity: str = "HIGH", aliases: tuple[str, ...] = (),
           cvss: str | None = None, summary: str = "a flaw", package: str = "demo") -> dict[str, Any]:
    """An OSV record (the real schema) for ``package``: each range ``(introduced, fixed)``."""
    data: dict[str, Any] = {
        "schema_version": "1.6.0", "id": id, "modified": "2025-01-01T00:00:00Z", "aliases": list(aliases),
        "summary": summary, "details": summary + ", at length", "database_specific": {"severity": severity},
        "affected": [{"package": {"ecosystem": "PyPI", "name": package},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": start}, {"fixed": end}]}
                                 for start, end in ranges]}],
    }
    if cvss:
        data["severity"] = [{"type": "CVSS_V3", "score": cvss}]
    return data


@pytest.fixture
def three_releases(fake_upstream: FakeUpstream) -> FakeUpstream:
    """demo 1.0 (the fixture's), 2.0 and 3.0."""
    fake_upstream.add(Dist("demo", "2.0"))
    fake_upstream.add(Dist("demo", "3.0"))
    return fake_upstream


@pytest.fixture
def advisories(monkeypatch: pytest.MonkeyPatch) -> Data:
    """The advisory data every policy component the app builds reads (set ``.index``)."""
    data = Data(None)

    class Fed(PolicyFilter):
        def __init__(self, inner: Any, rules: Any, _: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(inner, rules, data, *args, **kwargs)

    monkeypatch.setattr(proxy.web.app, "PolicyFilter", Fed)
    return data


async def proxy_with(aiohttp_client: Any, upstream_settings: MakeSettings, policy: dict[str, Any]) -> TestClient:
    client = await start_client(aiohttp_client, upstream_settings(policy=policy))
    assert (await client.get("/pypi/simple/demo/")).status == 200  # the interface shows what is cached
    return client


async def releases_shown(client: TestClient, name: str = "demo") -> tuple[dict[str, str], str]:
    """Each release's section of the project page (by version), and the page."""
    response = await client.get(f"/-/projects/{name}/")
    assert response.status == 200
    page = await response.text()
    sections = re.findall(r'<details class="release" id="release-([^"]+)".*?</details>', page, re.S)
    blocks = re.findall(r'<details class="release" id="release-[^"]+".*?</details>', page, re.S)
    return dict(zip(sections, blocks)), page


def state_of(block: str) -> str | None:
    found = re.search(r'<span class="badge policy-(\w+)">', block)
    return found.group(1) if found else None


def install_line(page: str) -> str:
    found = re.search(r"pip install demo==(\S+) --index-url", html.unescape(page))
    assert found, "the page has an install line"
    return found.group(1)


async def test_the_project_page_marks_each_release_served_warned_or_hidden_and_why(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream, advisories: Data) -> None:
    advisories.index = AdvisoryIndex.from_records(
        [record("GHSA-aaaa-bbbb-cccc", ("2.0", "3.0"), aliases=("CVE-2025-1234",),
                cvss="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")], "v1")
    client = await proxy_with(aiohttp_client, upstream_settings, {"vulnerabilities": "warn", "deny": ["demo==3.0"]})
    blocks, page = await releases_shown(client)
    assert {version: state_of(block) for version, block in blocks.items()} == {
        "3": "hidden", "2": "warned", "1": "served"}
    hidden, warned, served = blocks["3"], blocks["2"], blocks["1"]
    assert "denied by &#39;demo==3.0&#39;" in hidden and "installers do not see this release" in hidden
    assert 'href="/-/explain/demo/3.0"' in hidden and "demo-3.0-py3-none-any.whl" in hidden
    assert "served, with a warning" in warned and 'href="/-/explain/demo/2.0"' in warned
    assert 'href="https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc"' in warned
    assert "critical 9.8" in warned and "CVE-2025-1234" in warned and "vulnerabilities" in warned
    assert "Policy: served." in served and "<li>" not in served.split("<ul class=\"files\">")[0]
    assert install_line(page) == "2.0", "the newest release installers see"


@pytest.mark.parametrize(("policy", "record_of_3"), [
    ({"deny": ["demo>=3"]}, None),
    ({"vulnerabilities": "block", "min_severity": "high"}, record("PYSEC-2025-1", ("3.0", "3.1"))),
    ({"malicious": "block"}, record("MAL-2025-1", ("3.0", "3.1"), severity="LOW")),
    ({"cooldown": "7 days"}, None),
    ({"allow_only": ["demo<3"]}, None),
], ids=["deny", "vulnerabilities", "malicious", "cooldown", "allow_only"])
async def test_the_install_line_never_names_a_hidden_release_whichever_rule_hides_it(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream, advisories: Data,
        policy: dict[str, Any], record_of_3: dict[str, Any] | None) -> None:
    advisories.index = AdvisoryIndex.from_records([record_of_3] if record_of_3 else [], "v1")
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for filename in ("demo-3.0-py3-none-any.whl", "demo-3.0.tar.gz"):
        three_releases.upload_times[filename] = yesterday
    client = await proxy_with(aiohttp_client, upstream_settings, policy)
    blocks, page = await releases_shown(client)
    assert state_of(blocks["3"]) == "hidden" and state_of(blocks["2"]) == "served"
    assert next(iter(policy)) in blocks["3"], "the rule that hides it is named"
    assert install_line(page) == "2.0"


async def test_an_exempted_finding_and_a_dry_run_are_shown_as_served_with_their_reasons(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream) -> None:
    exempted = await proxy_with(aiohttp_client, upstream_settings, {"deny": ["demo==3.0"], "exemptions": [EXEMPT]})
    blocks, page = await releases_shown(exempted)
    assert state_of(blocks["3"]) == "served" and "lifted by an exemption until 2099-12-31: patched in our fork" in (
        blocks["3"]) and install_line(page) == "3.0"
    dry = await proxy_with(aiohttp_client, upstream_settings, {"deny": ["demo==3.0"], "dry_run": True})
    blocks, page = await releases_shown(dry)
    assert state_of(blocks["3"]) == "warned" and "a dry run, which would hide it" in blocks["3"]
    assert install_line(page) == "3.0"


@pytest.mark.parametrize(("policy", "state"), [({"deny": ["demo==3.0"]}, "hidden"), ({"archived": "warn"}, None)])
async def test_files_that_name_no_release_are_shown_hidden_while_a_rule_blocks(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream,
        policy: dict[str, Any], state: str | None) -> None:
    three_releases.add_file("demo", FakeFile("demo-latest.zip", b"PK\x05\x06" + bytes(18)))
    client = await proxy_with(aiohttp_client, upstream_settings, policy)
    blocks, _ = await releases_shown(client)
    [block] = [block for block in blocks.values() if "demo-latest.zip" in block]
    assert state_of(block) == state and state_of(blocks["3"]) == ("hidden" if state else "served")
    if state == "hidden":
        assert "these files name no release" in block and "/-/explain/" not in block


async def test_a_private_project_is_never_marked(aiohttp_client: Any, upstream_settings: MakeSettings,
                                                 three_releases: FakeUpstream, auth: AuthStore) -> None:
    client = await start_client(aiohttp_client, upstream_settings(policy={"deny": ["app"]}))
    form = upload_form(Dist("app", "1.0"))
    assert (await client.post("/pypi/", data=form, headers=basic("alice", PASSWORD))).status == 200
    blocks, page = await releases_shown(client, "app")
    assert list(blocks) == ["1"] and state_of(blocks["1"]) is None and "Policy:" not in page
    assert "pip install app==1.0" in page


async def test_without_a_policy_the_project_page_has_no_marks(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream) -> None:
    client = await proxy_with(aiohttp_client, upstream_settings, {})
    blocks, page = await releases_shown(client)
    assert {v: state_of(b) for v, b in blocks.items()} == {"3": None, "2": None, "1": None}
    assert install_line(page) == "3.0"


async def json_api(client: TestClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_the_json_api_marks_warned_releases_and_lists_their_vulnerabilities(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream, advisories: Data) -> None:
    advisories.index = AdvisoryIndex.from_records([
        record("GHSA-aaaa-bbbb-cccc", ("0", "1.5"), ("1.8", "2.1"), severity="MODERATE",
               aliases=("CVE-2025-1", "PYSEC-2025-9")),
        record("PYSEC-2025-9", ("0", "2.1"), summary="the same advisory, by an alias"),
        record("GHSA-dddd-eeee-ffff", ("2.0", "2.0.1"), severity="LOW"),
    ], "v1")
    client = await proxy_with(aiohttp_client, upstream_settings, {"vulnerabilities": "warn",
                                                                  "min_severity": "moderate"})
    project = await json_api(client, "/pypi/demo/json")
    assert project["info"]["version"] == "3.0" and "policy" not in project["info"]
    assert project["vulnerabilities"] == [] and all("policy" not in f for f in project["releases"]["3.0"])
    mark = {"action": "warn", "reasons": [{"rule": "vulnerabilities", "message":
            "known vulnerabilities (severity moderate or above): GHSA-aaaa-bbbb-cccc (moderate)"}]}
    assert [f["policy"] for f in project["releases"]["2.0"]] == [mark, mark]
    release = await json_api(client, "/pypi/demo/2.0/json")
    assert release["info"]["policy"] == mark and [f["policy"] for f in release["urls"]] == [mark, mark]
    assert release["vulnerabilities"] == [
        {"id": "GHSA-aaaa-bbbb-cccc", "source": "osv", "link": "https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc",
         "aliases": ["CVE-2025-1", "PYSEC-2025-9"], "details": "a flaw", "summary": "a flaw",
         "fixed_in": ["1.5", "2.1"], "withdrawn": None},
        {"id": "GHSA-dddd-eeee-ffff", "source": "osv", "link": "https://osv.dev/vulnerability/GHSA-dddd-eeee-ffff",
         "aliases": [], "details": "a flaw", "summary": "a flaw", "fixed_in": ["2.0.1"], "withdrawn": None},
    ], "every advisory affecting it, below the severity floor too; one per alias group"
    old = await json_api(client, "/pypi/demo/1.0/json")
    assert [v["id"] for v in old["vulnerabilities"]] == ["GHSA-aaaa-bbbb-cccc"] and "policy" in old["info"]


async def test_the_json_api_lists_vulnerabilities_while_only_another_advisory_rule_is_on(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream, advisories: Data) -> None:
    advisories.index = AdvisoryIndex.from_records([record("GHSA-aaaa-bbbb-cccc", ("3.0", "3.1"))], "v1")
    client = await proxy_with(aiohttp_client, upstream_settings, {"malicious": "block"})
    project = await json_api(client, "/pypi/demo/json")
    assert [v["id"] for v in project["vulnerabilities"]] == ["GHSA-aaaa-bbbb-cccc"]
    assert "policy" not in project["info"], "no rule warns about it"


async def test_the_json_api_of_a_private_project_has_no_upstream_advisories(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream, advisories: Data,
        auth: AuthStore) -> None:
    advisories.index = AdvisoryIndex.from_records([record("GHSA-aaaa-bbbb-cccc", ("0", "9"), package="app")], "v1")
    client = await start_client(aiohttp_client, upstream_settings(policy={"vulnerabilities": "warn"}))
    form = upload_form(Dist("app", "1.0"))
    assert (await client.post("/pypi/", data=form, headers=basic("alice", PASSWORD))).status == 200
    document = await json_api(client, "/pypi/app/json")
    assert document["vulnerabilities"] == [] and "policy" not in document["info"]


async def test_the_json_api_of_a_blocked_release_is_a_404_that_names_the_rule(
        aiohttp_client: Any, upstream_settings: MakeSettings, three_releases: FakeUpstream) -> None:
    client = await proxy_with(aiohttp_client, upstream_settings, {"deny": ["demo==3.0"]})
    assert set((await json_api(client, "/pypi/demo/json"))["releases"]) == {"1.0", "2.0"}
    for spelling in ("3.0", "3"):
        response = await client.get(f"/pypi/demo/{spelling}/json")
        text = await response.text()
        assert response.status == 404 and "deny: denied by 'demo==3.0'" in text
        assert f"/-/explain/demo/{spelling}" in text
    missing = await client.get("/pypi/demo/9.9/json")
    assert missing.status == 404 and "No version '9.9'" in await missing.text()
