"""The pypi-proxy command: config errors, users, tokens, yank/unyank/remove on real storage."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import Settings
from proxy.storage.private import PrivateStorage
from tests.builders import Dist
from tests.conftest import Uploader


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def run_beside_server(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI blocks; beside a running server it runs in a thread, as it would in its own process."""
    return await asyncio.to_thread(run, capsys, *args)


@pytest.fixture
async def published(upload: Uploader) -> Dist:
    dist = Dist("Acme.Widget", "1.0.0")
    for kind in ("wheel", "sdist"):
        assert (await upload(dist, kind)).status == 200
    return dist


def test_bad_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[server]\nprot = 8080\n")
    code, _, err = run(capsys, "serve", "--config", str(config))
    assert code == 2
    assert "server.prot" in err


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[upload]\nmax_file_size = -3\n")
    monkeypatch.setenv("PYPI_PROXY_CONFIG", str(config))
    code, _, err = run(capsys, "serve")
    assert code == 2
    assert "upload.max_file_size" in err


def test_python_dash_m_proxy_works() -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("pypi-proxy ")


def test_user_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a long password\n"))
    assert run(capsys, "user", "add", "erin", "--password-stdin", "--project", "erin-*", "--data-dir", data)[0] == 0
    code, out, _ = run(capsys, "user", "list", "--data-dir", data)
    assert "erin" in out and "erin-*" in out
    code, token, err = run(capsys, "token", "create", "erin", "--data-dir", data)
    assert code == 0 and token.strip().startswith("pypi-proxy-") and "only this once" in err
    code, out, _ = run(capsys, "token", "list", "--data-dir", data)
    token_id = out.split()[0]
    assert token.strip() not in out
    assert run(capsys, "token", "revoke", token_id, "--data-dir", data)[0] == 0
    assert run(capsys, "token", "revoke", token_id, "--data-dir", data)[0] == 1
    assert run(capsys, "user", "remove", "erin", "--data-dir", data)[0] == 0
    assert "erin" not in run(capsys, "user", "list", "--data-dir", data)[1]


def test_short_password_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    code, _, err = run(capsys, "user", "add", "frank", "--password-stdin", "--data-dir", str(tmp_path))
    assert code == 1 and "too short" in err


async def test_yank_and_unyank_show_in_the_running_server(client: object, published: Dist, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """PEP 592 via the CLI while the server runs: the next request sees the change."""
    data = str(settings.data_dir)
    code, out, _ = await run_beside_server(capsys, "yank", "acme-widget", "1.0", "--reason", "broken", "--data-dir", data)
    assert code == 0 and "2 file(s)" in out
    page = await client.get("/pypi/simple/acme-widget/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})  # type: ignore[attr-defined]
    assert {f["yanked"] for f in (await page.json())["files"]} == {"broken"}
    assert (await run_beside_server(capsys, "unyank", "acme-widget", "1.0.0", "--file", published.wheel_filename, "--data-dir", data))[0] == 0
    page = await client.get("/pypi/simple/acme-widget/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})  # type: ignore[attr-defined]
    yanked = {f["filename"]: f["yanked"] for f in (await page.json())["files"]}
    assert yanked == {published.wheel_filename: False, published.sdist_filename: "broken"}


async def test_remove_file_keeps_the_name_private(client: object, published: Dist, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(settings.data_dir)
    code, out, _ = await run_beside_server(capsys, "remove", "acme-widget", "1.0.0", "--file", published.sdist_filename, "--yes", "--data-dir", data)
    assert code == 0
    directory = settings.data_dir / "private" / "acme-widget"
    assert not (directory / published.sdist_filename).exists()
    assert not (directory / f"{published.sdist_filename}.metadata").exists()
    assert (await run_beside_server(capsys, "remove", "acme-widget", "1.0.0", "--yes", "--data-dir", data))[0] == 0
    index = json.loads((directory / "project.json").read_bytes())
    assert index["files"] == []
    response = await client.get("/pypi/simple/acme-widget/")  # type: ignore[attr-defined]
    assert response.status == 200, "an emptied project still shadows the public name"
    assert await asyncio.to_thread(PrivateStorage(settings.data_dir).project_names) == ["Acme.Widget"]


def test_unknown_version_or_project_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "yank", "nothing", "1.0", "--data-dir", str(tmp_path))
    assert code == 1 and "nothing" in err
