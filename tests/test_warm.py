"""``pypi-proxy warm`` against the real app on loopback, in front of the fake upstream."""

from __future__ import annotations

import argparse
import asyncio
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from packaging.requirements import Requirement

from proxy.config import Settings
from proxy.warm.cli import LineProgress, progress_for, register, run
from proxy.warm.client import FileOutcome
from proxy.warm.engine import Summary, WarmInputs, WarmOptions, megabytes, run_warm
from proxy.warm.lockfiles import read_lock
from proxy.warm.requirements import read_requirements
from proxy.warm.targets import Target, make_target
from proxy.web.app import create_app, runner_options
from tests.builders import Dist
from tests.fakeupstream import FakeUpstream, free_port

SUMMARY = re.compile(r"^warm: \d+ projects, \d+ files, [0-9.]+ MB downloaded, \d+ already cached, \d+ failed$")
DEMO_WHEEL = "demo-1.0-py3-none-any.whl"
DEP_WHEEL = "dep-2.0-py3-none-any.whl"


@pytest.fixture
async def serve(upstream_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start the real app on a loopback port, upstream the fake one; returns its base URL."""
    servers = []

    async def start(**upstream: object) -> str:
        test_server = TestServer(create_app(upstream_settings(upstream)))
        await test_server.start_server(**runner_options())
        servers.append(test_server)
        return str(test_server.make_url("")).rstrip("/")

    yield start
    for test_server in servers:
        await test_server.close()


@pytest.fixture
async def server(serve: Callable[..., Awaitable[str]]) -> str:
    return await serve()


@pytest.fixture
def linux() -> Target:
    return make_target("3.12", ["manylinux_2_17_x86_64"])


class Run:
    def __init__(self, summary: Summary, out: str, err: str) -> None:
        self.summary, self.out, self.err = summary, out, err


async def warm(server: str, targets: list[Target], requirements: list[str] | None = None,
               inputs: WarmInputs | None = None, **options: bool) -> Run:
    out, err = io.StringIO(), io.StringIO()
    given = inputs or WarmInputs(tuple(Requirement(r) for r in requirements or ()))
    summary = await run_warm(given, WarmOptions(tuple(targets), server, **options), LineProgress(out, err))
    assert SUMMARY.match(summary.line()), summary.line()
    return Run(summary, out.getvalue(), err.getvalue())


def file_requests(upstream: FakeUpstream) -> dict[str, int]:
    """Upstream downloads of distributions (PEP 658 .metadata files left out)."""
    return {path: n for path, n in upstream.requests.items()
            if path.startswith("/files/") and not path.endswith(".metadata")}


async def test_closure_is_fetched_then_a_second_run_downloads_nothing(
    server: str, fake_upstream: FakeUpstream, linux: Target
) -> None:
    first = await warm(server, [linux], ["demo"])
    assert file_requests(fake_upstream) == {f"/files/{DEMO_WHEEL}": 1, f"/files/{DEP_WHEEL}": 1}
    assert (first.summary.projects, first.summary.files, first.summary.fetched) == (2, 2, 2)
    assert first.summary.downloaded == sum(len(fake_upstream.file(f).content) for f in (DEMO_WHEEL, DEP_WHEEL))
    assert first.summary.exit_status == 0
    assert f"fetched {DEMO_WHEEL}" in first.out and f"fetched {DEP_WHEEL}" in first.out

    second = await warm(server, [linux], ["demo"])
    assert file_requests(fake_upstream) == {f"/files/{DEMO_WHEEL}": 1, f"/files/{DEP_WHEEL}": 1}
    assert second.summary.line() == "warm: 2 projects, 2 files, 0 MB downloaded, 2 already cached, 0 failed"
    assert second.summary.fetched == 0 and f"cached {DEMO_WHEEL}" in second.out


async def test_markers_extras_and_targets_decide_what_is_followed(
    server: str, fake_upstream: FakeUpstream, linux: Target
) -> None:
    fake_upstream.add(Dist("app", "1.0", requires_dist=[
        'old>=1; python_version < "3.0"', 'winonly; sys_platform == "win32"', 'feature-dep; extra == "feat"', "demo",
    ]))
    for name in ("old", "winonly", "feature-dep"):
        fake_upstream.add(Dist(name, "1.0"))

    plain = await warm(server, [linux], ["app"])
    assert plain.summary.files == 3  # app, demo, dep
    assert not any(p.startswith(("/simple/old", "/files/old", "/simple/winonly", "/simple/feature-dep"))
                   for p in fake_upstream.requests)

    windows = make_target("3.12", ["win_amd64"])
    both = await warm(server, [linux, windows], ["app[feat]"])
    assert fake_upstream.requests["/files/winonly-1.0-py3-none-any.whl"] == 1
    assert fake_upstream.requests["/files/feature_dep-1.0-py3-none-any.whl"] == 1
    assert "/simple/old/" not in fake_upstream.requests
    assert (both.summary.fetched, both.summary.cached, both.summary.failed) == (2, 3, 0)


async def test_requirements_file_with_hashes_markers_and_includes(
    server: str, fake_upstream: FakeUpstream, linux: Target, tmp_path: Path
) -> None:
    fake_upstream.add(Dist("legacy", "1.0"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.txt").write_text("-c pins.txt\ndep\n")
    (tmp_path / "sub" / "pins.txt").write_text("dep==2.0\n")
    sha = fake_upstream.file(DEMO_WHEEL).sha256
    (tmp_path / "requirements.txt").write_text(
        "--index-url https://example.invalid/simple\n"
        "-r sub/base.txt  # the base\n"
        f"demo==1.0 \\\n    --hash=sha256:{sha}\n"
        'legacy; python_version < "3.0"\n'
        "-e ./somewhere\n"
    )
    parsed = await asyncio.to_thread(read_requirements, [tmp_path / "requirements.txt"])
    assert [str(r.requirement) for r in parsed.requirements] == ["dep", "demo==1.0", 'legacy; python_version < "3.0"']
    inputs = WarmInputs(tuple(e.requirement for e in parsed.requirements),
                        tuple(e.requirement for e in parsed.constraints))
    result = await warm(server, [linux], inputs=inputs)
    assert file_requests(fake_upstream) == {f"/files/{DEMO_WHEEL}": 1, f"/files/{DEP_WHEEL}": 1}
    assert "legacy" in result.err and "marker excludes every target" in result.err
    assert result.summary.exit_status == 0


async def test_a_later_specifier_picks_again_and_warms_both_versions(
    server: str, fake_upstream: FakeUpstream, linux: Target
) -> None:
    fake_upstream.add(Dist("dep", "1.5"))
    fake_upstream.add(Dist("pinner", "1.0", requires_dist=["dep<2"]))
    result = await warm(server, [linux], ["dep", "pinner"])
    assert fake_upstream.requests[f"/files/{DEP_WHEEL}"] == 1
    assert fake_upstream.requests["/files/dep-1.5-py3-none-any.whl"] == 1
    assert "dep: 2.0 does not satisfy '<2'" in result.err
    assert result.summary.exit_status == 0


async def test_all_files_and_sdist_fallback(server: str, fake_upstream: FakeUpstream, linux: Target) -> None:
    fake_upstream.add(Dist("sdistonly", "1.0"), wheel=False)
    result = await warm(server, [linux], ["demo", "sdistonly"], all_files=True)
    assert set(file_requests(fake_upstream)) == {
        f"/files/{DEMO_WHEEL}", "/files/demo-1.0.tar.gz", f"/files/{DEP_WHEEL}", "/files/dep-2.0.tar.gz",
        "/files/sdistonly-1.0.tar.gz",
    }
    assert "sdistonly 1.0: no wheel with core metadata (PEP 658), so its dependencies could not be followed" in result.err
    assert result.summary.exit_status == 1


@pytest.mark.parametrize("flavour", ["json", "html"])
async def test_dependencies_are_followed_against_an_upstream_without_pep_658(
    server: str, fake_upstream: FakeUpstream, linux: Target, flavour: str
) -> None:
    """Devpi, Nexus, HTML mirrors offer no .metadata: the proxy extracts it from each wheel."""
    fake_upstream.flavour = flavour
    fake_upstream.projects.clear()
    fake_upstream.add(Dist("demo", "1.0", requires_dist=["dep>=2"]), metadata=False)
    fake_upstream.add(Dist("dep", "2.0", requires_dist=["leaf"]), metadata=False)
    fake_upstream.add(Dist("leaf", "3.0"), metadata=False)
    result = await warm(server, [linux], ["demo"])
    assert set(file_requests(fake_upstream)) == {
        f"/files/{DEMO_WHEEL}", f"/files/{DEP_WHEEL}", "/files/leaf-3.0-py3-none-any.whl"}
    assert (result.summary.files, result.summary.failed, result.summary.exit_status) == (3, 0, 0)


def _pylock(upstream: FakeUpstream) -> str:
    demo, sdist, dep = (upstream.file(f) for f in (DEMO_WHEEL, "demo-1.0.tar.gz", DEP_WHEEL))
    return f"""
lock-version = "1.0"
created-by = "tests"

[[packages]]
name = "demo"
version = "1.0"
wheels = [{{ name = "{DEMO_WHEEL}", url = "https://files.example/{DEMO_WHEEL}", hashes = {{ sha256 = "{demo.sha256}" }} }}]
sdist = {{ url = "https://files.example/demo-1.0.tar.gz", hashes = {{ sha256 = "{sdist.sha256}" }} }}

[[packages]]
name = "dep"
version = "2.0"
marker = "python_version >= '3.8'"
wheels = [
  {{ url = "https://files.example/{DEP_WHEEL}", hashes = {{ sha256 = "{dep.sha256}" }} }},
  {{ url = "https://files.example/dep-2.0-cp312-cp312-win_amd64.whl", hashes = {{ sha256 = "00" }} }},
]

[[packages]]
name = "old"
version = "1.0"
marker = "python_version < '3.0'"
sdist = {{ url = "https://files.example/old-1.0.tar.gz", hashes = {{ sha256 = "00" }} }}

[[packages]]
name = "mine"
directory = {{ path = "." }}
"""


def _uv_lock(upstream: FakeUpstream) -> str:
    demo, sdist, dep = (upstream.file(f) for f in (DEMO_WHEEL, "demo-1.0.tar.gz", DEP_WHEEL))
    registry = 'source = { registry = "https://pypi.org/simple" }'
    return f"""
version = 1
requires-python = ">=3.10"

[[package]]
name = "demo"
version = "1.0"
{registry}
dependencies = [{{ name = "dep" }}]
sdist = {{ url = "https://files.example/demo-1.0.tar.gz", hash = "sha256:{sdist.sha256}", size = 10 }}
wheels = [{{ url = "https://files.example/{DEMO_WHEEL}", hash = "sha256:{demo.sha256}", size = 10 }}]

[[package]]
name = "dep"
version = "2.0"
{registry}
wheels = [{{ url = "https://files.example/{DEP_WHEEL}", hash = "sha256:{dep.sha256}", size = 10 }}]

[[package]]
name = "myapp"
version = "0.1.0"
source = {{ editable = "." }}
"""


@pytest.mark.parametrize(("filename", "content"), [("pylock.toml", _pylock), ("uv.lock", _uv_lock)])
async def test_lock_files_warm_exactly_their_files(
    server: str, fake_upstream: FakeUpstream, linux: Target, tmp_path: Path,
    filename: str, content: Callable[[FakeUpstream], str],
) -> None:
    path = tmp_path / filename
    path.write_text(content(fake_upstream))
    lock = await asyncio.to_thread(read_lock, path)
    result = await warm(server, [linux], inputs=WarmInputs(locked=lock.packages))
    assert file_requests(fake_upstream) == {
        f"/files/{DEMO_WHEEL}": 1, "/files/demo-1.0.tar.gz": 1, f"/files/{DEP_WHEEL}": 1,
    }
    assert not any(p.endswith(".metadata") for p in fake_upstream.requests), "no dependency following"
    assert (result.summary.projects, result.summary.files, result.summary.failed) == (2, 3, 0)
    again = await warm(server, [linux], inputs=WarmInputs(locked=lock.packages))
    assert again.summary.line() == "warm: 2 projects, 3 files, 0 MB downloaded, 3 already cached, 0 failed"


async def test_a_locked_file_missing_or_with_another_hash_fails(
    server: str, fake_upstream: FakeUpstream, linux: Target, tmp_path: Path
) -> None:
    text = _pylock(fake_upstream).replace(fake_upstream.file(DEMO_WHEEL).sha256, "ab" * 32)
    path = tmp_path / "pylock.toml"
    path.write_text(text + '\n[[packages]]\nname = "dep"\nversion = "9"\n'
                           'sdist = { url = "https://files.example/dep-9.tar.gz", hashes = { sha256 = "00" } }\n')
    lock = await asyncio.to_thread(read_lock, path)
    result = await warm(server, [linux], inputs=WarmInputs(locked=lock.packages))
    assert "sha256 differs" in result.err and "dep-9.tar.gz: locked file is not on the index" in result.err
    assert result.summary.failed == 2 and result.summary.exit_status == 1
    assert f"/files/{DEMO_WHEEL}" not in fake_upstream.requests


async def test_unknown_project_and_unmatched_version_fail(server: str, fake_upstream: FakeUpstream,
                                                         linux: Target) -> None:
    result = await warm(server, [linux], ["no-such-project", "dep>=3", "demo"])
    assert "no-such-project: no such project on the proxy" in result.err
    assert "dep: no version matching '>=3'" in result.err
    assert result.summary.failed == 2 and result.summary.exit_status == 1
    assert fake_upstream.requests[f"/files/{DEMO_WHEEL}"] == 1  # the rest is still warmed


async def test_a_failing_upstream_file_fails_the_run(serve: Callable[..., Awaitable[str]],
                                                     fake_upstream: FakeUpstream, linux: Target) -> None:
    server = await serve(retries=0)
    fake_upstream.bad.file_status = 500
    result = await warm(server, [linux], ["dep"])
    assert f"FAILED {DEP_WHEEL} (HTTP 502)" in result.out
    assert f"metadata of {DEP_WHEEL}: HTTP 502" in result.err  # its PEP 658 file failed as well
    assert result.summary.line().endswith("0 already cached, 2 failed")
    assert result.summary.exit_status == 1


async def test_an_unreachable_proxy_fails_every_project(linux: Target) -> None:
    result = await warm(f"http://127.0.0.1:{free_port()}", [linux], ["demo"])
    assert result.summary.exit_status == 1 and "demo: page of demo:" in result.err


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pypi-proxy")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["warm", *argv])


async def test_the_command_warms_and_reports(server: str, fake_upstream: FakeUpstream, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "requirements.txt").write_text("dep\n")
    args = await asyncio.to_thread(  # argparse stats files: not on the loop
        parse, "demo", "-r", str(tmp_path / "requirements.txt"), "--server", server,
        "--python-version", "3.12", "--platform", "manylinux_2_17_x86_64", "--concurrency", "2")
    assert args.handler is run and args.concurrency == 2
    assert await asyncio.to_thread(args.handler, args) == 0
    out = capsys.readouterr().out
    size = sum(len(fake_upstream.file(f).content) for f in (DEMO_WHEEL, DEP_WHEEL))
    summary = [line for line in out.splitlines() if line.startswith("warm: ")]  # the server logs here too
    assert summary == [f"warm: 2 projects, 2 files, {megabytes(size)} MB downloaded, 0 already cached, 0 failed"]
    assert f"fetched {DEMO_WHEEL}" in out
    quiet = await asyncio.to_thread(parse, "--server", server, "nope", "--quiet")
    assert await asyncio.to_thread(run, quiet) == 1
    assert "nope: no such project" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [(), ("demo", "--server", "ftp://x"), ("demo", "--platform", "beos_x86"),
                                  ("-r", "/nonexistent/requirements.txt"), ("demo", "--python-version", "3")])
def test_the_command_refuses_bad_input(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse(*argv)) == 2
    assert capsys.readouterr().err.startswith("pypi-proxy warm: ")


def test_the_server_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYPI_PROXY_URL", "not-a-url")
    assert run(parse("demo")) == 2
    assert "'not-a-url'" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line_and_plain_lines_elsewhere() -> None:
    summary = Summary(projects=1, files=2)
    outcomes = [FileOutcome("a.whl", "fetched", 1_500_000), FileOutcome("b.whl", "failed", detail="HTTP 502")]
    terminal, plain, err = FakeTerminal(), io.StringIO(), io.StringIO()
    for out in (terminal, plain):
        progress = progress_for(out, err, quiet=False)
        replay = Summary(projects=1, files=2)
        for outcome in outcomes:
            replay.record(outcome)
            progress.file_done(outcome, replay)
        progress.finish()
    assert plain.getvalue() == "fetched a.whl (1.5 MB)\nFAILED b.whl (HTTP 502)\n"
    shown = terminal.getvalue()
    assert "\rwarm: 1/2 files" not in shown and "warm: 1/2 files, 1 fetched (1.5 MB), 0 cached, 0 failed" in shown
    assert "FAILED b.whl (HTTP 502)\nwarm: 2/2 files, 1 fetched (1.5 MB), 0 cached, 1 failed\r\x1b[K" in shown
    assert shown.endswith("\r\x1b[K") and summary.exit_status == 0 and replay.exit_status == 1


@pytest.mark.parametrize(("size", "text"), [(0, "0"), (1064, "0.001"), (150_000, "0.1"), (12_345_678, "12.3"),
                                            (1_234_000_000, "1234")])
def test_megabytes(size: int, text: str) -> None:
    assert megabytes(size) == text
