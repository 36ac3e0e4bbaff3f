"""What an interrupted upload leaves, and how it is cleared (issue 12 L6).

A crash between placing a file and writing its index leaves an unlisted file: never served,
reported by ``check``, moved to ``private-quarantine/`` by ``check --repair``. The crash is a
real one: a process that dies (``os._exit``) right after the file is placed. An exception at the
same point (a full disk) leaves nothing at all. Staged uploads are swept while the server runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.cli import main
from proxy.config import Settings
from proxy.storage.private import PrivateStorage
from tests.builders import Dist
from tests.conftest import PASSWORD, Uploader, basic, snapshot, start_client, upload_form
from tests.faults import OPERATIONS, DiskFull
from tests.waiting import until

OLD, NEW = Dist("Acme", "1.0"), Dist("Acme", "2.0")
# Commit NEW's wheel as the server would, in a process that dies as soon as the file is placed.
CRASH = """
import hashlib, os, sys
from pathlib import Path
from proxy.core.metadata import read_core_metadata, release_info
from proxy.core.models import StoredFile
from proxy.core.names import WHEEL, normalize
from proxy.core.timestamps import utc_now
from proxy.storage import private as storage
from proxy.storage.distributions import extract_metadata

data_dir, wheel = Path(sys.argv[1]), Path(sys.argv[2])
real_move = storage.move_into_place

def move_then_die(source, destination):
    real_move(source, destination)
    os._exit(70)  # no except, no finally: the process is gone

storage.move_into_place = move_then_die
private = storage.PrivateStorage(data_dir)
data = wheel.read_bytes()
staged = private.new_temp_path()
staged.write_bytes(data)
metadata = extract_metadata(staged, WHEEL, True)
core = read_core_metadata(metadata, WHEEL)
stored = StoredFile(wheel.name, core.version, WHEEL, "py3", len(data), hashlib.sha256(data).hexdigest(),
                    hashlib.md5(data).hexdigest(), hashlib.blake2b(data, digest_size=32).hexdigest(), utc_now(),
                    "alice", metadata_sha256=hashlib.sha256(metadata).hexdigest())
private.commit_file(staged, stored, metadata, release_info(core, core.version), core.name,
                    normalize(core.name))
sys.exit("the commit went through: no crash was simulated")
"""


def crash_while_committing(data_dir: Path, dist: Dist, tmp_path: Path) -> None:
    [wheel] = dist.write(tmp_path / "dist", sdist=False)
    result = subprocess.run([sys.executable, "-c", CRASH, str(data_dir), str(wheel)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 70, result.stderr


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(args))
    return code, capsys.readouterr().out


async def test_l6_a_crash_between_file_and_index_is_quarantined_by_check_repair(
        aiohttp_client: Any, settings: Settings, auth: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    client = await start_client(aiohttp_client, settings)
    assert (await client.post("/pypi/", data=upload_form(OLD), headers=basic("alice", PASSWORD))).status == 200
    await client.close()
    directory = settings.data_dir / "private" / "acme"
    await asyncio.to_thread(crash_while_committing, settings.data_dir, NEW, tmp_path)
    leftovers = [NEW.wheel_filename, NEW.wheel_filename + ".metadata"]
    assert all((directory / name).is_file() for name in leftovers)

    client = await start_client(aiohttp_client, settings)
    assert (await client.get(f"/pypi/files/acme/{NEW.wheel_filename}")).status == 404, "never served"
    page = await client.get("/pypi/simple/acme/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert [f["filename"] for f in (await page.json())["files"]] == [OLD.wheel_filename]

    data = str(settings.data_dir)
    code, out = await cli(capsys, "check", "--data-dir", data)
    assert code == 1
    assert [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("PROBLEM")] == [
        "file not listed in the project's index"] * 2
    code, out = await cli(capsys, "check", "--repair", "--data-dir", data)
    quarantine = settings.data_dir / "private-quarantine" / "acme"
    for name in leftovers:
        assert f"{directory / name}: file not listed in the project's index (moved to {quarantine / name})" in out
        assert not (directory / name).exists() and (quarantine / name).is_file()
    assert (quarantine / NEW.wheel_filename).read_bytes() == NEW.wheel(), "moved, not deleted"
    code, out = await cli(capsys, "check", "--data-dir", data)
    assert code == 0, out

    response = await client.post("/pypi/", data=upload_form(NEW), headers=basic("alice", PASSWORD))
    assert response.status == 200, "the same upload goes through afterwards"
    assert (await (await client.get(f"/pypi/files/acme/{NEW.wheel_filename}")).read()) == NEW.wheel()
    code, out = await cli(capsys, "check", "--data-dir", data)
    assert code == 0, out


async def test_l6_a_crash_during_a_first_upload_leaves_no_private_name_after_repair(
        aiohttp_client: Any, settings: Settings, auth: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    await asyncio.to_thread(PrivateStorage(settings.data_dir).prepare)
    await asyncio.to_thread(crash_while_committing, settings.data_dir, NEW, tmp_path)
    directory = settings.data_dir / "private" / "acme"
    assert not (directory / "project.json").exists()
    data = str(settings.data_dir)
    code, out = await cli(capsys, "check", "--data-dir", data)
    assert code == 1 and f"PROBLEM {directory}: project directory without an index\n" in out
    code, out = await cli(capsys, "check", "--repair", "--data-dir", data)
    quarantine = settings.data_dir / "private-quarantine" / "acme"
    assert f"(its 2 file(s) moved to {quarantine})" in out
    assert not directory.exists()
    assert sorted(p.name for p in quarantine.iterdir()) == sorted([NEW.wheel_filename, NEW.wheel_filename + ".metadata"])
    code, out = await cli(capsys, "check", "--data-dir", data)
    assert code == 0, out
    client = await start_client(aiohttp_client, settings)
    assert (await client.get("/pypi/simple/acme/")).status == 404


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("first", [True, False], ids=["first-upload", "next-upload"])
async def test_l6_a_full_disk_at_any_step_of_the_commit_leaves_storage_as_it_was(
        upload: Uploader, settings: Settings, monkeypatch: pytest.MonkeyPatch, operation: str,
        first: bool) -> None:
    """A full disk (ENOSPC from the OS, tests/faults.py) at each call of ``operation`` the commit
    makes in private/, one after the other (the 1st, the 2nd, ...): 507, and the project exactly as
    before (for a first upload: no directory, no name), until an upload needs fewer of them
    and goes through."""
    if not first:
        assert (await upload(OLD)).status == 200
    before = snapshot(settings.data_dir)
    for nth in range(1, 30):
        with monkeypatch.context() as patch:
            disk = DiskFull(settings.data_dir / "private", operation, nth).install(patch)
            response = await upload(NEW)
        if not disk.failed:
            break
        text = await response.text()
        assert response.status == 507 and "storage is full" in text, (nth, text)
        assert snapshot(settings.data_dir) == before, f"the {nth}. {operation} failed and storage changed"
    else:
        pytest.fail(f"the commit never ran without a failing {operation}")
    assert nth > 1, f"the commit made no {operation} call in private/: nothing was tested"
    assert response.status == 200, await response.text()
    stored = await asyncio.to_thread(PrivateStorage(settings.data_dir).load, "acme")
    assert stored is not None and NEW.wheel_filename in {f.filename for f in stored.files}


# --- Staged uploads --------------------------------------------------------------------------------


def age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


async def test_l6_idle_staged_uploads_are_swept_at_start_and_while_running(
        aiohttp_client: Any, make_settings: Callable[..., Settings], auth: Any) -> None:
    """Staged uploads idle longer than [upload] staged_max_age go, at start-up and every tenth of
    it (at most a minute) while the server runs; younger ones stay."""
    settings = make_settings(upload={"staged_max_age": 2})
    temp = settings.data_dir / "tmp"
    temp.mkdir(parents=True)
    left = temp / ".tmp-upload-left-by-a-crash"
    left.write_bytes(b"half")
    age(left, 60)
    client = await start_client(aiohttp_client, settings)
    young = temp / ".tmp-upload-in-progress"
    young.write_bytes(b"still coming")
    await until(lambda: not left.exists(), "the crash's staged upload swept at start", 10)
    assert young.exists()
    age(young, 60)  # its client went quiet
    await until(lambda: not young.exists(), "the idle staged upload swept while running", 10)
    assert (await client.get("/-/health")).status == 200


async def test_l6_an_upload_whose_staged_file_was_swept_is_408(
        client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload idle long enough to be swept, that then resumes, is told so, and stores nothing."""
    from proxy.storage.staging import StagedFile

    real = StagedFile.write

    def write_then_swept(self: StagedFile, chunk: bytes) -> None:
        real(self, chunk)
        self.path.unlink()  # what the sweeper does to an idle staged file

    monkeypatch.setattr(StagedFile, "write", write_then_swept)
    before = snapshot(settings.data_dir)
    response = await client.post("/pypi/", data=upload_form(NEW), headers=basic("alice", PASSWORD))
    assert response.status == 408
    assert "stalled" in await response.text()
    assert snapshot(settings.data_dir) == before
