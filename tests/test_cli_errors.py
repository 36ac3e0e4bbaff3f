"""Issue 11, A4: every command ends an ordinary mistake with one clear line on stderr, naming the
thing and what to do, and a non-zero status; never a traceback. Each case runs the real
``pypi-proxy`` console script in a subprocess, as a user (or systemd) would."""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.config import Settings
from proxy.storage.auth import AuthStore
from tests.builders import Dist
from tests.clitools import PYPI_PROXY, assert_fails_with, cli_env, on_terminal, on_tmpfs, run_cli, unprivileged
from tests.conftest import Uploader, snapshot
from tests.faults import DiskFull

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

ELSEWHERE = "or choose another directory with --data-dir (or [storage] data_dir)"
# Every command that reads settings, with the arguments it needs to get as far as using them.
COMMANDS = {
    "serve": ["serve", "--port", "0"],
    "user add": ["user", "add", "bob", "--password-stdin"],
    "user list": ["user", "list"],
    "user remove": ["user", "remove", "bob"],
    "token create": ["token", "create", "bob"],
    "token list": ["token", "list"],
    "token revoke": ["token", "revoke", "0123456789ab"],
    "yank": ["yank", "acme-widget", "1.0"],
    "unyank": ["unyank", "acme-widget", "1.0"],
    "remove": ["remove", "acme-widget", "1.0", "--yes"],
    "cache stats": ["cache", "stats"],
    "cache prune": ["cache", "prune"],
    "check": ["check"],
}
PASSWORD_LINE = "a long password\n"


def each_command() -> Iterator[object]:
    for name, args in COMMANDS.items():
        yield pytest.param(args, id=name.replace(" ", "-"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    directory = tmp_path / "home"
    directory.mkdir()
    return directory


# Prompts without a terminal ----------------------------------------------------------------------


@pytest.mark.parametrize("stdin", [PASSWORD_LINE, None], ids=["password-piped", "no-input"])
def test_user_add_without_a_terminal_points_to_password_stdin(home: Path, stdin: str | None) -> None:
    result = run_cli(home, "user", "add", "bob", "--data-dir", "data", stdin=stdin)
    assert_fails_with(result, 2, "pypi-proxy: cannot ask for the password: standard input is not a terminal; "
                                 "pipe it in with --password-stdin")
    assert not (home / "data" / "auth.json").exists()


def test_password_stdin_with_nothing_piped_says_so(home: Path) -> None:
    result = run_cli(home, "user", "add", "bob", "--password-stdin", "--data-dir", "data", stdin="")
    assert_fails_with(result, 1, "pypi-proxy: --password-stdin: standard input is empty; "
                                 "pipe the password in, on one line.")


@pytest.fixture
async def published(upload: Uploader, settings: Settings) -> Path:
    """acme-widget 1.0 (wheel and sdist) uploaded to the real app; its data directory."""
    dist = Dist("acme-widget", "1.0")
    for kind in ("wheel", "sdist"):
        assert (await upload(dist, kind)).status == 200
    return settings.data_dir


async def test_remove_without_yes_and_without_a_terminal_points_to_yes(published: Path, home: Path) -> None:
    before = await asyncio.to_thread(snapshot, published)
    result = await asyncio.to_thread(run_cli, home, "remove", "acme-widget", "1.0", "--data-dir", str(published))
    assert_fails_with(result, 2, "pypi-proxy: cannot ask for confirmation: standard input is not a terminal; "
                                 "pass --yes to go ahead without asking")
    assert await asyncio.to_thread(snapshot, published) == before


async def test_remove_answered_with_end_of_input_removes_nothing(published: Path, home: Path) -> None:
    """On a terminal, Ctrl-D at the question is no answer, so no yes."""
    before = await asyncio.to_thread(snapshot, published)
    done = await asyncio.to_thread(on_terminal, [PYPI_PROXY, "remove", "acme-widget", "1.0", "--data-dir",
                                                 str(published)], cli_env(home), ("for good? [y/N] ", b"\x04"))
    assert done.status == 1, done.output
    assert done.output.strip().splitlines()[-1] == "nothing removed"
    assert "Traceback" not in done.output
    assert await asyncio.to_thread(snapshot, published) == before


def test_ctrl_c_at_the_password_prompt_exits_130_without_a_traceback(home: Path) -> None:
    done = on_terminal([PYPI_PROXY, "user", "add", "bob", "--data-dir", str(home / "data")], cli_env(home),
                       ("Password: ", b"\x03"))
    assert done.status == 130, done.output
    assert "Traceback" not in done.output
    assert done.output.strip().splitlines()[-1].strip() == "pypi-proxy: interrupted"
    assert not (home / "data" / "auth.json").exists()


# The config file ---------------------------------------------------------------------------------


def _toml_error(text: str) -> str:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return str(exc)
    raise AssertionError("valid TOML")


@pytest.mark.parametrize("args", list(each_command()))
def test_every_command_names_a_config_path_that_is_a_directory(home: Path, args: list[str]) -> None:
    (home / "conf.d").mkdir()
    result = run_cli(home, *args, "--config", "conf.d", "--data-dir", "data", stdin=PASSWORD_LINE)
    assert_fails_with(result, 2, "pypi-proxy: configuration error: --config: cannot read the config file: "
                                 "conf.d is a directory, not a file; give the path of a file")


@pytest.mark.parametrize(("content", "expected"), [
    pytest.param(b"[server]\nport = 80\x81\n", "config.toml is not UTF-8 text (byte 0x81 at offset 18); "
                                              "save it as UTF-8", id="not-utf8"),
    pytest.param(b"\xff\xfe[\x00s\x00", "config.toml is not UTF-8 text (byte 0xff at offset 0); save it as UTF-8",
                 id="utf16"),
    pytest.param(b"[server\nport = 1\n", "config.toml is not valid TOML: " + _toml_error("[server\nport = 1\n"),
                 id="not-toml"),
    pytest.param(None, "file not found: config.toml", id="missing"),
])
def test_an_unusable_config_file_is_one_line(home: Path, content: bytes | None, expected: str) -> None:
    if content is not None:
        (home / "config.toml").write_bytes(content)
    result = run_cli(home, "serve", "--config", "config.toml")
    assert_fails_with(result, 2, f"pypi-proxy: configuration error: --config: {expected}")


def test_the_config_from_the_environment_is_named_by_its_variable(home: Path) -> None:
    (home / "config.toml").write_bytes(b"\xff")
    result = run_cli(home, "user", "list", env={"PYPI_PROXY_CONFIG": "config.toml"})
    assert_fails_with(result, 2, "pypi-proxy: configuration error: $PYPI_PROXY_CONFIG: config.toml is not "
                                 "UTF-8 text (byte 0xff at offset 0); save it as UTF-8")


def test_a_config_file_without_read_permission(home: Path) -> None:
    config = home / "config.toml"
    config.write_text("[server]\nport = 9000\n")
    config.chmod(0)
    result = run_cli(home, "serve", "--config", str(config), prefix=unprivileged())
    assert_fails_with(result, 2, f"pypi-proxy: configuration error: --config: cannot read the config file: "
                                 f"permission denied on {config}; give the user running pypi-proxy access to it")


# The data directory ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", list(each_command()))
def test_every_command_names_a_file_in_the_way_of_the_data_dir(home: Path, args: list[str]) -> None:
    (home / "srv").write_text("a file where a directory should be\n")
    result = run_cli(home, *args, "--data-dir", "srv/pypi-proxy", stdin=PASSWORD_LINE)
    assert_fails_with(result, 1, f"pypi-proxy: data directory srv/pypi-proxy: srv is a file, not a directory; "
                                 f"move that file away, {ELSEWHERE}")


@pytest.mark.parametrize("args", [COMMANDS["serve"], COMMANDS["user add"], COMMANDS["user list"]],
                         ids=["serve", "user-add", "user-list"])
def test_a_data_dir_that_is_a_file(home: Path, args: list[str]) -> None:
    (home / "data").write_text("")
    result = run_cli(home, *args, "--data-dir", "data", stdin=PASSWORD_LINE)
    assert_fails_with(result, 1, f"pypi-proxy: data directory data: data is a file, not a directory; "
                                 f"move that file away, {ELSEWHERE}")


@pytest.mark.parametrize(("args", "data_dir", "denied"), [
    pytest.param(COMMANDS["serve"], "locked/data", "locked/data", id="serve-cannot-create"),
    pytest.param(COMMANDS["user add"], "locked/data", "locked/data", id="user-add-cannot-create"),
    pytest.param(COMMANDS["token create"], "locked", "locked", id="token-create-cannot-write"),
    pytest.param(COMMANDS["yank"], "locked", "locked", id="yank-cannot-write"),
])
def test_a_data_dir_without_write_permission(home: Path, args: list[str], data_dir: str, denied: str) -> None:
    (home / "locked").mkdir(mode=0o555)
    result = run_cli(home, *args, "--data-dir", data_dir, stdin=PASSWORD_LINE, prefix=unprivileged())
    assert_fails_with(result, 1, f"pypi-proxy: data directory {data_dir}: permission denied on {denied}; "
                                 f"give the user running pypi-proxy access to it, {ELSEWHERE}")


def test_a_data_dir_that_cannot_be_listed(home: Path) -> None:
    (home / "data").mkdir(mode=0o300)
    result = run_cli(home, "user", "list", "--data-dir", "data", prefix=unprivileged())
    assert_fails_with(result, 1, f"pypi-proxy: data directory data: permission denied on data; "
                                 f"give the user running pypi-proxy access to it, {ELSEWHERE}")


@pytest.mark.parametrize("args", [COMMANDS["serve"], COMMANDS["user add"]], ids=["serve", "user-add"])
def test_a_data_dir_on_a_read_only_file_system(home: Path, args: list[str]) -> None:
    mountpoint = home / "ro"
    mountpoint.mkdir()
    result = run_cli(home, *args, "--data-dir", str(mountpoint / "data"), stdin=PASSWORD_LINE,
                     prefix=on_tmpfs(mountpoint, "ro"))
    assert_fails_with(result, 1, f"pypi-proxy: data directory {mountpoint}/data: {mountpoint}/data is on a "
                                 f"read-only file system; use a directory on a writable file system, {ELSEWHERE}")


@pytest.mark.parametrize("args", [COMMANDS["serve"], COMMANDS["user add"]], ids=["serve", "user-add"])
def test_a_data_dir_on_a_full_disk(home: Path, args: list[str]) -> None:
    mountpoint = home / "small"
    mountpoint.mkdir()
    result = run_cli(home, *args, "--data-dir", str(mountpoint / "data"), stdin=PASSWORD_LINE,
                     prefix=on_tmpfs(mountpoint, "size=64k", fill=True))
    assert_fails_with(result, 1, f"pypi-proxy: data directory {mountpoint}/data: no space left on the device "
                                 f"of {mountpoint}/data; free some space, {ELSEWHERE}")


def test_a_disk_filling_up_during_a_command_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """After the checks up front: any file-system error still ends in one line naming the file
    (in-process, as a disk cannot be made to fill up between the check and the write from
    outside): ENOSPC from the OS's write, which names no file, after the check's own write."""
    DiskFull(tmp_path, "write", nth=2).install(monkeypatch)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD_LINE))
    assert main(["user", "add", "bob", "--password-stdin", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"pypi-proxy: no space left on the device of {tmp_path / 'auth.json'}; "
                                       f"free some space\n")


# Listening ---------------------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use(home: Path, taken_port: int, workers: str) -> None:
    result = run_cli(home, "serve", "--port", str(taken_port), "--workers", workers, "--data-dir", "data")
    assert_fails_with(result, 1, f"pypi-proxy: cannot listen on 127.0.0.1:{taken_port}: the address is already "
                                 f"in use; stop the program listening there, or choose another port with --port "
                                 f"(or [server] port)")


def test_a_privileged_port(home: Path) -> None:
    prefix = unprivileged()
    if not prefix and int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 1:
        pytest.skip("this kernel lets every user bind low ports (net.ipv4.ip_unprivileged_port_start)")
    result = run_cli(home, "serve", "--port", "1", "--data-dir", "data", prefix=prefix)
    assert_fails_with(result, 1, "pypi-proxy: cannot listen on 127.0.0.1:1: permission denied: ports below 1024 "
                                 "need privileges; choose a port from 1024 up with --port (or [server] port), or "
                                 "give the service CAP_NET_BIND_SERVICE")


@pytest.mark.parametrize(("host", "reason"), [
    pytest.param("192.0.2.1", "the address is not one of this machine's", id="foreign-address"),
    pytest.param("no-such-host.invalid", "the host name does not resolve", id="unknown-name"),
    pytest.param("not a host name", "the host name does not resolve", id="malformed"),
])
def test_a_host_to_listen_on_that_is_not_here(home: Path, host: str, reason: str) -> None:
    result = run_cli(home, "serve", "--host", host, "--port", "8080", "--data-dir", "data")
    assert_fails_with(result, 1, f"pypi-proxy: cannot listen on {host}:8080: {reason}; set --host (or [server] "
                                 f"host) to an address of this machine, such as 127.0.0.1 or 0.0.0.0")


# Output ------------------------------------------------------------------------------------------


def test_a_reader_that_goes_away_ends_quietly(home: Path) -> None:
    """`pypi-proxy user list | head -0`: the closed pipe is no error worth a traceback."""
    data = home / "data"
    AuthStore(data).add_user("bob", PASSWORD_LINE.strip())
    with subprocess.Popen([PYPI_PROXY, "user", "list", "--data-dir", str(data)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli_env(home)) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # long before the command writes: its flush meets a closed pipe
        error = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141, error
    assert error == ""


@pytest.mark.parametrize(("option", "make", "line"), [
    pytest.param("-r", None, "pypi-proxy warm: reqs does not exist; check the path", id="missing"),
    pytest.param("-r", "dir", "pypi-proxy warm: reqs is a directory, not a file; give the path of a file",
                 id="a-directory"),
    pytest.param("--lock", "dir", "pypi-proxy warm: reqs is a directory, not a file; give the path of a file",
                 id="lock-a-directory"),
])
def test_warm_names_an_unreadable_input_file(home: Path, option: str, make: str | None, line: str) -> None:
    if make == "dir":
        (home / "reqs").mkdir()
    result = run_cli(home, "warm", option, "reqs", "--server", "http://127.0.0.1:9")
    assert_fails_with(result, 2, line)
