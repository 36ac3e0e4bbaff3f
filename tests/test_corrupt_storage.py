"""Issue 11, D: a damaged project.json or auth.json is no bare 500. Every request that needs it
answers 500 naming the file (inside the data directory) and the fix; the CLI says the same in
one line; nothing is stored meanwhile, and a corrupt private project never falls back to the
public one of its name."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from tests.builders import Dist
from tests.clitools import run_cli
from tests.conftest import PASSWORD, Uploader, basic, snapshot, start_client, upload_form
from tests.fakeupstream import FakeUpstream

JSON_V1 = "application/vnd.pypi.simple.v1+json"
WIDGET = Dist("acme-widget", "1.0")
INDEX = "private/acme-widget/project.json"
INDEX_HINT = "restore it from a backup; `pypi-proxy check` lists every damaged index"
AUTH_HINT = ("restore it from a backup, or move it aside and add the users and their tokens again with "
             "`pypi-proxy user add` and `pypi-proxy token create`")


def json_error(raw: bytes) -> str:
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return str(exc)
    raise AssertionError("valid JSON")


def replace_file(path: Path, raw: bytes) -> None:
    """Damage a file as a crashed editor or a bad restore would: new bytes under the same name."""
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(raw)
    os.replace(temp, path)


Damage = Callable[[bytes], bytes]
OPEN_ENDED = "unexpected content: "  # followed by the words of the code that read the fields
# (how to damage the real index, the problem the answer names); None: "unexpected content: <any>".
INDEX_DAMAGE: list[Any] = [
    pytest.param(lambda raw: b"", f"not valid JSON: {json_error(b'')}", id="empty"),
    pytest.param(lambda raw: raw[:40], None, id="truncated"),
    pytest.param(lambda raw: raw.replace(b'"acme-widget"', b'"acme-\xffwidget"', 1), None, id="not-utf8"),
    pytest.param(lambda raw: b"[]", "unexpected content: a JSON list, not an object", id="array"),
    pytest.param(lambda raw: json.dumps({k: v for k, v in json.loads(raw).items() if k != "display_name"}).encode(),
                 "the field 'display_name' is missing", id="missing-field"),
    pytest.param(lambda raw: json.dumps({**json.loads(raw), "files": "oops"}).encode(), None, id="wrong-type"),
]


def expected_problem(damaged: bytes, given: str | None) -> str:
    if given is not None:
        return given
    try:
        damaged.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text at offset {exc.start}"
    try:
        json.loads(damaged)
    except json.JSONDecodeError:
        return f"not valid JSON: {json_error(damaged)}"
    return OPEN_ENDED


def assert_names(text: str, relative: str, problem: str, hint: str) -> None:
    """The whole answer: which file, what is wrong with it, what to do."""
    prefix = f"The server's stored file {relative} is corrupt ({problem}"
    assert text.startswith(prefix), text
    if problem == OPEN_ENDED:
        assert re.fullmatch(re.escape(prefix) + r".+" + re.escape(f"); its administrator should {hint}.\n"), text)
    else:
        assert text == f"{prefix}); its administrator should {hint}.\n"


@pytest.fixture
async def damaged(upload: Uploader, settings: Settings, request: pytest.FixtureRequest) -> str:
    """acme-widget 1.0 uploaded, then its index damaged; the problem an answer must name."""
    for kind in ("wheel", "sdist"):
        assert (await upload(WIDGET, kind)).status == 200
    index = settings.data_dir / INDEX
    damage, given = request.param
    raw = damage(index.read_bytes())
    replace_file(index, raw)
    return expected_problem(raw, given)


GETS = [
    ("/pypi/simple/acme-widget/", {}),
    ("/pypi/simple/acme-widget/", {"Accept": JSON_V1}),
    ("/pypi/acme-widget/json", {}),
    ("/pypi/acme-widget/1.0/json", {}),
    ("/-/projects/acme-widget/", {}),
    (f"/pypi/files/acme-widget/{WIDGET.wheel_filename}", {}),
    (f"/pypi/files/acme-widget/{WIDGET.wheel_filename}.metadata", {}),
]


@pytest.mark.parametrize("damaged", [p.values for p in INDEX_DAMAGE], ids=[p.id for p in INDEX_DAMAGE],
                         indirect=True)
async def test_every_read_of_a_damaged_index_names_it(client: TestClient, damaged: str) -> None:
    """The simple API (both formats), the JSON API, the web interface, the files."""
    for path, headers in GETS:
        response = await client.get(path, headers=headers)
        assert response.status == 500, path
        assert_names(await response.text(), INDEX, damaged, INDEX_HINT)


@pytest.mark.parametrize("damaged", [p.values for p in INDEX_DAMAGE], ids=[p.id for p in INDEX_DAMAGE],
                         indirect=True)
async def test_an_upload_to_a_damaged_project_names_it_and_stores_nothing(
        client: TestClient, upload: Uploader, settings: Settings, damaged: str) -> None:
    before = await asyncio.to_thread(snapshot, settings.data_dir)
    response = await upload(Dist("acme-widget", "2.0"))
    assert response.status == 500
    assert_names(await response.text(), INDEX, damaged, INDEX_HINT)
    assert await asyncio.to_thread(snapshot, settings.data_dir) == before
    other = await upload(Dist("acme-other", "1.0"))
    assert other.status == 200, "one damaged project leaves the others alone"


async def test_a_damaged_private_project_never_falls_back_to_the_public_one(
        aiohttp_client: Any, upstream_settings: Callable[..., Settings], fake_upstream: FakeUpstream,
        auth: Any) -> None:
    """The name is private as long as its index exists, readable or not."""
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    demo = Dist("demo", "3.0")
    assert (await client.post("/pypi/", data=upload_form(demo), headers=basic("alice", PASSWORD))).status == 200
    replace_file(settings.data_dir / "private" / "demo" / "project.json", b"{")
    for path in ("/pypi/simple/demo/", "/pypi/files/demo/demo-1.0-py3-none-any.whl", "/pypi/demo/json"):
        response = await client.get(path)
        assert response.status == 500, path
        assert_names(await response.text(), "private/demo/project.json", f"not valid JSON: {json_error(b'{')}",
                     INDEX_HINT)
    assert not [path for path in fake_upstream.requests if "demo" in path]


TRUNCATED_AUTH = b'{"users": {"alice": {"pass'
AUTH_DAMAGE = [
    pytest.param(b"", f"not valid JSON: {json_error(b'')}", id="empty"),
    pytest.param(TRUNCATED_AUTH, "not valid JSON: " + json_error(TRUNCATED_AUTH), id="truncated"),
    pytest.param(b'{"users": {"\xe9": {}}}', "not UTF-8 text at offset 12", id="not-utf8"),
    pytest.param(b"[]", "unexpected content: a JSON list, not an object", id="array"),
    pytest.param(b'{"users": []}', "unexpected content: 'users' is not an object", id="users-not-a-table"),
    pytest.param(b'{"users": {"alice": {"projects": null}}}',
                 "unexpected content: users['alice'] has no valid 'password'", id="user-without-password"),
    pytest.param(b'{"users": {"alice": {"password": "plain"}}}',
                 "unexpected content: users['alice'] has no valid 'password'", id="password-not-a-hash"),
    pytest.param(b'{"users": {}, "tokens": {"abc": {"user": "alice"}}}',
                 "unexpected content: tokens['abc'] has no valid 'hash'", id="token-without-hash"),
    pytest.param(b'{"users": {"alice": {"password": "scrypt$a$b", "projects": "acme-*"}}}',
                 "unexpected content: users['alice'] has no valid 'projects'", id="projects-not-a-list"),
]


@pytest.mark.parametrize(("raw", "problem"), AUTH_DAMAGE)
async def test_an_upload_with_damaged_auth_json_names_it_and_stores_nothing(
        client: TestClient, upload: Uploader, settings: Settings, raw: bytes, problem: str) -> None:
    replace_file(settings.data_dir / "auth.json", raw)
    before = await asyncio.to_thread(snapshot, settings.data_dir)
    response = await upload(WIDGET)
    assert response.status == 500
    assert_names(await response.text(), "auth.json", problem, AUTH_HINT)
    assert await asyncio.to_thread(snapshot, settings.data_dir) == before
    assert (await client.get("/pypi/simple/")).status == 200, "reading needs no auth.json"


# The command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "problem"), AUTH_DAMAGE[:4])
@pytest.mark.parametrize("args", [["user", "list"], ["token", "list"], ["token", "create", "alice"],
                                  ["user", "remove", "alice"]], ids=["user-list", "token-list", "token-create",
                                                                     "user-remove"])
def test_commands_name_a_damaged_auth_json(tmp_path: Path, args: list[str], raw: bytes, problem: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "auth.json").write_bytes(raw)
    result = run_cli(tmp_path, *args, "--data-dir", str(data))
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stderr) == (1, f"pypi-proxy: {data}/auth.json is corrupt ({problem}); "
                                                     f"{AUTH_HINT}\n")
    assert (data / "auth.json").read_bytes() == raw


async def test_commands_name_a_damaged_index_and_check_lists_it(
        upload: Uploader, settings: Settings, tmp_path: Path) -> None:
    for kind in ("wheel", "sdist"):
        assert (await upload(WIDGET, kind)).status == 200
    index = settings.data_dir / INDEX
    replace_file(index, b"")
    problem = f"not valid JSON: {json_error(b'')}"
    data = str(settings.data_dir)
    for args in (["yank", "acme-widget", "1.0"], ["unyank", "acme-widget", "1.0"],
                 ["remove", "acme-widget", "1.0", "--yes"]):
        result = await asyncio.to_thread(run_cli, tmp_path, *args, "--data-dir", data)
        assert "Traceback" not in result.stderr
        assert (result.returncode, result.stderr) == (1, f"pypi-proxy: {index} is corrupt ({problem}); {INDEX_HINT}\n")
    result = await asyncio.to_thread(run_cli, tmp_path, "check", "--data-dir", data)
    assert result.returncode == 1
    assert f"PROBLEM {index}: unreadable index: {problem}" in result.stdout.splitlines()
