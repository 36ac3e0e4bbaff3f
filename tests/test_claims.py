"""Who may make a name private, and how a name stops being private (issue 12 L10).

A private name hides upstream's project of that name from every user of the index. With
``[upload] claim_public_names = "grant"`` a first upload to a name upstream serves needs a user or
token whose project list names it exactly (the default, "any", lets anyone allowed to upload claim
it); ``pypi-proxy release-name`` is the one way back to the public project.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.cli import main
from proxy.config import Settings
from proxy.storage.auth import AuthStore
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, snapshot, start_client, upload_form
from tests.fakeupstream import FakeUpstream

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
MINE = Dist("Demo", "0.1")  # upstream serves demo 1.0


async def source_of(client: TestClient, name: str) -> tuple[int, str | None, list[str]]:
    response = await client.get(f"/pypi/simple/{name}/", headers=JSON)
    files = [f["filename"] for f in (await response.json())["files"]] if response.status == 200 else []
    return response.status, response.headers.get("X-Proxy-Source"), files


async def token(auth: AuthStore, *projects: str) -> dict[str, str]:
    _, secret = await asyncio.to_thread(auth.create_token, "alice", list(projects) or None)
    return basic("__token__", secret)


GRANT = {"claim_public_names": "grant"}


@pytest.fixture
async def proxy(aiohttp_client: Any, upstream_settings: Callable[..., Settings], auth: AuthStore) -> TestClient:
    return await start_client(aiohttp_client, upstream_settings({"reserved": ["acme-*"]}, upload=GRANT))


@pytest.mark.parametrize("scope", [None, (), ("de*",), ("dem?", "other")], ids=["user", "unscoped-token",
                                                                             "pattern", "single-char-pattern"])
async def test_l10_a_name_upstream_serves_is_not_claimed_without_an_explicit_grant(
        proxy: TestClient, settings: Settings, auth: AuthStore, scope: tuple[str, ...] | None) -> None:
    """403 naming the rule, storage unchanged, upstream's project still served: a pattern that
    matches the name is not a grant of it."""
    headers = basic("alice", PASSWORD) if scope is None else await token(auth, *scope)
    before = snapshot(settings.data_dir)
    response = await proxy.post("/pypi/", data=upload_form(MINE), headers=headers)
    text = await response.text()
    assert response.status == 403, text
    assert "Upstream serves a project named 'demo'" in text and "--project demo" in text
    assert "claim_public_names" in response.reason
    assert snapshot(settings.data_dir) == before
    assert await source_of(proxy, "demo") == (200, "upstream", ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"])


@pytest.mark.parametrize("grant", ["token", "user"])
async def test_l10_an_explicit_grant_claims_it_and_then_the_name_is_private(
        proxy: TestClient, auth: AuthStore, grant: str) -> None:
    if grant == "token":
        headers = await token(auth, "Demo")  # any spelling of the name (PEP 503)
    else:
        await asyncio.to_thread(auth.add_user, "carol", PASSWORD, ["demo", "carol-*"])
        headers = basic("carol", PASSWORD)
    assert (await proxy.post("/pypi/", data=upload_form(MINE), headers=headers)).status == 200
    assert await source_of(proxy, "demo") == (200, "private", [MINE.wheel_filename])
    # Once private, the name is the uploaders': scope rules alone apply to its next releases.
    response = await proxy.post("/pypi/", data=upload_form(Dist("demo", "0.2")), headers=basic("alice", PASSWORD))
    assert response.status == 200


@pytest.mark.parametrize("name", ["brand-new", "acme-tools"], ids=["not-upstream", "reserved"])
async def test_l10_names_upstream_does_not_serve_need_no_grant(
        proxy: TestClient, fake_upstream: FakeUpstream, name: str) -> None:
    fake_upstream.add(Dist("acme-tools", "9.9"))  # reserved: never asked about
    response = await proxy.post("/pypi/", data=upload_form(Dist(name, "1.0")), headers=basic("alice", PASSWORD))
    assert response.status == 200, await response.text()
    assert not any("acme" in path for path in fake_upstream.requests)


async def test_l10_an_upstream_outage_does_not_let_a_claim_through(
        proxy: TestClient, settings: Settings, fake_upstream: FakeUpstream) -> None:
    """When upstream cannot say whether it serves the name (and nothing is cached), the claim is
    refused with 503 naming the reason, never silently allowed."""
    fake_upstream.bad.page_status = 503
    before = snapshot(settings.data_dir)
    response = await proxy.post("/pypi/", data=upload_form(Dist("unknown-yet", "1.0")),
                                headers=basic("alice", PASSWORD))
    text = await response.text()
    assert response.status == 503, text
    assert "Cannot tell whether upstream serves a project named 'unknown-yet'" in text
    assert snapshot(settings.data_dir) == before
    fake_upstream.bad.page_status = None
    response = await proxy.post("/pypi/", data=upload_form(Dist("unknown-yet", "1.0")),
                                headers=basic("alice", PASSWORD))
    assert response.status == 200


@pytest.mark.parametrize(("upstream", "upload"), [
    pytest.param(None, {}, id="default-any"),
    pytest.param({"enabled": False}, GRANT, id="grant-with-upstream-off"),
])
async def test_l10_any_and_no_upstream_need_no_grant(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], auth: AuthStore,
        fake_upstream: FakeUpstream, upstream: dict[str, Any] | None, upload: dict[str, Any]) -> None:
    """The default, "any", keeps publishing independent of upstream: it is not even asked."""
    client = await start_client(aiohttp_client, upstream_settings(upstream, upload=upload))
    asked = sum(fake_upstream.requests.values())
    assert (await client.post("/pypi/", data=upload_form(MINE), headers=basic("alice", PASSWORD))).status == 200
    assert sum(fake_upstream.requests.values()) == asked


# --- release-name -----------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_l10_release_name_refuses_while_files_remain_then_serves_upstream_again(
        proxy: TestClient, settings: Settings, auth: AuthStore, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await proxy.post("/pypi/", data=upload_form(MINE), headers=await token(auth, "demo"))).status == 200
    data = str(settings.data_dir)
    before = snapshot(settings.data_dir)
    code, _, err = await asyncio.to_thread(run, capsys, "release-name", "Demo", "--data-dir", data)
    assert code == 1 and "still has 1 file(s)" in err and "--force" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal: --yes is needed
    code, _, err = await asyncio.to_thread(run, capsys, "release-name", "demo", "--force", "--data-dir", data)
    assert code == 2 and "pass --yes" in err
    assert snapshot(settings.data_dir) == before
    assert await source_of(proxy, "demo") == (200, "private", [MINE.wheel_filename])

    code, out, _ = await asyncio.to_thread(run, capsys, "release-name", "demo", "--force", "--yes", "--data-dir", data)
    assert code == 0 and "released 'demo': 1 file(s) deleted" in out
    assert not (settings.data_dir / "private" / "demo").exists()
    assert await source_of(proxy, "demo") == (200, "upstream", ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"])
    assert (await proxy.get("/pypi/files/demo/demo-1.0-py3-none-any.whl")).status == 200
    root = await proxy.get("/pypi/simple/", headers=JSON)
    assert "Demo" not in [p["name"] for p in (await root.json())["projects"]]


async def test_l10_an_emptied_project_is_released_without_force(
        proxy: TestClient, settings: Settings, auth: AuthStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert (await proxy.post("/pypi/", data=upload_form(MINE), headers=await token(auth, "demo"))).status == 200
    data = str(settings.data_dir)
    assert (await asyncio.to_thread(run, capsys, "remove", "demo", "0.1", "--yes", "--data-dir", data))[0] == 0
    assert await source_of(proxy, "demo") == (200, "private", [])
    code, out, _ = await asyncio.to_thread(run, capsys, "release-name", "demo", "--data-dir", data)
    assert code == 0 and "0 file(s) deleted" in out
    assert (await source_of(proxy, "demo"))[1] == "upstream"
    code, _, err = await asyncio.to_thread(run, capsys, "release-name", "demo", "--data-dir", data)
    assert code == 1 and "No private project 'demo'" in err
