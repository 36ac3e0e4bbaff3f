"""`pypi-proxy check [--repair]`, `cache stats` and `cache prune` on a data directory filled by the
real server (private uploads, cached upstream files), then damaged on purpose (issue 4)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.cli import main
from proxy.config import Settings
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, start_client, upload_form
from tests.fakeupstream import FakeUpstream

MakeSettings = Callable[..., Settings]
MINE = Dist("mine", "1.0")
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"
DEP_WHEEL = "dep-2.0-py3-none-any.whl"


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(args))
    return code, capsys.readouterr().out


@pytest.fixture
async def filled(aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
                 auth: Any) -> Settings:
    """A private project `mine`, and demo's and dep's wheels (and their .metadata) in the cache."""
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    assert (await client.post("/pypi/", data=upload_form(MINE), headers=basic("alice", PASSWORD))).status == 200
    for project, wheel in (("demo", DEMO_WHEEL), ("dep", DEP_WHEEL)):
        await client.get(f"/pypi/simple/{project}/")
        for name in (wheel, wheel + ".metadata"):
            assert (await (await client.get(f"/pypi/files/{project}/{name}")).read())
    await client.close()
    return settings


def cached(settings: Settings, project: str, filename: str) -> Path:
    return settings.data_dir / "cache" / "files" / project / filename


def private(settings: Settings, filename: str) -> Path:
    return settings.data_dir / "private" / "mine" / filename


async def test_check_passes_on_an_intact_data_dir(filled: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = await cli(capsys, "check", "--data-dir", str(filled.data_dir))
    assert code == 0, out
    assert "checked 2 private and 4 cached files: 0 problems" in out


async def test_check_reports_every_problem_and_repair_never_touches_listed_private_files(
        filled: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad cached files go to cache/quarantine, an unlisted private file to private-quarantine
    (issue 12 L6); a listed private file, damaged or missing, is only reported."""
    rotten = bytes(b ^ 1 for b in MINE.wheel())  # same size, other bytes
    private(filled, MINE.wheel_filename).write_bytes(rotten)
    private(filled, MINE.wheel_filename + ".metadata").unlink()
    private(filled, "stray-1.0.tar.gz").write_bytes(b"?")
    cached(filled, "demo", DEMO_WHEEL).write_bytes(b"corrupt")
    data = str(filled.data_dir)

    code, out = await cli(capsys, "check", "--data-dir", data)
    assert code == 1
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 4, out
    assert f"{MINE.wheel_filename}: sha256 does not match the index" in out
    assert f"{MINE.wheel_filename}.metadata: listed in the index but missing" in out
    assert "stray-1.0.tar.gz: file not listed" in out
    assert f"{DEMO_WHEEL}: sha256 does not match upstream's listing" in out
    assert cached(filled, "demo", DEMO_WHEEL).exists(), "without --repair nothing moves"

    code, out = await cli(capsys, "check", "--repair", "--data-dir", data)
    assert code == 1, "problems found are still reported with --repair"
    assert not cached(filled, "demo", DEMO_WHEEL).exists()
    assert (filled.data_dir / "cache" / "quarantine" / "demo" / DEMO_WHEEL).read_bytes() == b"corrupt"
    assert private(filled, MINE.wheel_filename).read_bytes() == rotten, "listed private files are never moved"
    assert not private(filled, "stray-1.0.tar.gz").exists()
    quarantined = filled.data_dir / "private-quarantine" / "mine" / "stray-1.0.tar.gz"
    assert quarantined.read_bytes() == b"?"
    assert f"stray-1.0.tar.gz: file not listed in the project's index (moved to {quarantined})" in out

    private(filled, MINE.wheel_filename).write_bytes(MINE.wheel())
    private(filled, MINE.wheel_filename + ".metadata").write_bytes(MINE.metadata())
    code, out = await cli(capsys, "check", "--data-dir", data)
    assert code == 0, out


async def test_cached_files_of_a_project_that_became_private_are_a_problem(
        filled: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    shadow = filled.data_dir / "private" / "dep"
    shadow.mkdir()
    (shadow / "project.json").write_text(private(filled, "project.json").read_text().replace('"mine"', '"dep"')
                                         .replace('"display_name": "mine"', '"display_name": "dep"'))
    code, out = await cli(capsys, "check", "--repair", "--data-dir", str(filled.data_dir))
    assert code == 1
    assert "now private" in out
    assert not (filled.data_dir / "cache" / "files" / "dep").exists() or not any(
        (filled.data_dir / "cache" / "files" / "dep").iterdir())


async def test_cache_stats(filled: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = await cli(capsys, "cache", "stats", "--data-dir", str(filled.data_dir))
    assert code == 0
    assert "private:      1 projects, 2 files" in out
    assert "cached files: 2 projects, 4 files" in out
    assert "no limit" in out


async def test_cache_prune_keeps_the_most_recently_used_and_every_private_file(
        filled: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Least recently used first, by the last uses the servers recorded in the shared ledger
    (demo was fetched before dep), not by the files' atime (often not kept: noatime)."""
    demo = [cached(filled, "demo", n) for n in (DEMO_WHEEL, DEMO_WHEEL + ".metadata")]
    dep = [cached(filled, "dep", n) for n in (DEP_WHEEL, DEP_WHEEL + ".metadata")]
    for path in dep:
        os.utime(path, (1000, 1000))  # what the file system says does not decide
    keep = sum(p.stat().st_size for p in dep)
    private_before = sorted(p.name for p in private(filled, "x").parent.iterdir())

    code, out = await cli(capsys, "cache", "prune", "--max-size", str(keep), "--data-dir", str(filled.data_dir))
    assert code == 0
    assert "pruned 2 files" in out
    assert not any(p.exists() for p in demo)
    assert all(p.exists() for p in dep)
    assert sorted(p.name for p in private(filled, "x").parent.iterdir()) == private_before
    code, out = await cli(capsys, "cache", "stats", "--data-dir", str(filled.data_dir))
    assert "cached files: 1 projects, 2 files" in out


async def test_cache_stats_and_the_servers_figures_agree(
        filled: Settings, aiohttp_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 D: `cache stats` reads the ledger the servers share, corrected from the files
    first (here a file removed behind everyone's back); a server started then says the same."""
    cached(filled, "demo", DEMO_WHEEL).unlink()
    sizes = [p.stat().st_size for p in (filled.data_dir / "cache" / "files").rglob("*") if p.is_file()]
    code, out = await cli(capsys, "cache", "stats", "--data-dir", str(filled.data_dir))
    assert code == 0
    assert f"cached files: 2 projects, {len(sizes)} files, {sum(sizes) / 1024**2:,.1f} MiB" in out
    client = await start_client(aiohttp_client, filled)
    figures = (await (await client.get("/-/health")).json())["cache"]
    assert (figures["files"], figures["file_bytes"]) == (len(sizes), sum(sizes))


async def test_an_unusable_ledger_is_named_and_stats_still_count_the_files(
        filled: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """A ledger that cannot be opened (here a directory in its place; a read-only copy of a data
    directory too): `cache stats` counts the files themselves, `cache prune` says what to do."""
    ledger = filled.data_dir / "cache" / "usage.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        ledger.with_name(ledger.name + suffix).unlink(missing_ok=True)
    ledger.mkdir()
    code, out = await cli(capsys, "cache", "stats", "--data-dir", str(filled.data_dir))
    assert code == 0 and "cached files: 2 projects, 4 files" in out
    code = await asyncio.to_thread(main, ["cache", "prune", "--max-size", "1", "--data-dir", str(filled.data_dir)])
    assert code == 1
    err = capsys.readouterr().err
    assert "usage.sqlite3: the cache's ledger cannot be used" in err and "remove it" in err


async def test_check_verifies_extracted_metadata_against_its_cached_wheel(
        aiohttp_client: Any, upstream_settings: MakeSettings, fake_upstream: FakeUpstream,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Metadata this server extracted (upstream listed none) has no listed hash: it is checked
    against the METADATA of the verified wheel beside it instead of being "unverifiable"."""
    bare = Dist("bare", "1.0")
    fake_upstream.add(bare, metadata=False)
    settings = upstream_settings()
    client = await start_client(aiohttp_client, settings)
    for name in (bare.wheel_filename, bare.wheel_filename + ".metadata"):
        assert (await client.get(f"/pypi/files/bare/{name}")).status == 200
    await client.close()
    data = str(settings.data_dir)
    code, out = await cli(capsys, "check", "--data-dir", data)
    assert (code, "unverifiable" in out, "not verified" in out) == (0, False, False), out

    cached(settings, "bare", bare.wheel_filename + ".metadata").write_bytes(b"Metadata-Version: 2.1\nName: evil\n")
    code, out = await cli(capsys, "check", "--repair", "--data-dir", data)
    assert code == 1
    assert f"{bare.wheel_filename}.metadata: differs from the METADATA of the cached wheel" in out
    assert not cached(settings, "bare", bare.wheel_filename + ".metadata").exists()
