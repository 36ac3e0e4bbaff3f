"""Run the real ``pypi-proxy`` console script as a user would: in a subprocess, without the
privileges root has, on a terminal, or on a small file system of its own."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import require_tool

PYPI_PROXY = str(Path(sys.executable).parent / "pypi-proxy")
# What root may do regardless of file modes and port numbers; dropped so that root meets the
# same EACCES as everyone else (a child's bounding set limits what it can ever hold).
ROOT_ONLY_CAPS = "-dac_override,-dac_read_search,-net_bind_service"


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without this project's or systemd's variables, HOME in ``home``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYPI_PROXY_") and k not in ("STATE_DIRECTORY", "NOTIFY_SOCKET", "XDG_DATA_HOME")}
    return {**env, "HOME": str(home), **extra}


def run_cli(home: Path, *args: str, stdin: str | None = None, prefix: Sequence[str] = (),
            env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``pypi-proxy ARGS``; standard input is ``stdin`` through a pipe, else /dev/null (no terminal)."""
    return subprocess.run(
        [*prefix, PYPI_PROXY, *args], input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, env={**cli_env(home), **(env or {})}, cwd=cwd or home,
    )


def assert_fails_with(result: subprocess.CompletedProcess[str], status: int, line: str) -> None:
    """The command failed with ``status`` and said exactly ``line`` on stderr, and nothing else."""
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stderr) == (status, line + "\n"), result.stdout


def unprivileged() -> list[str]:
    """A command prefix that runs without root's exemptions (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    return [require_tool("setpriv", "apt-get install util-linux"), "--bounding-set", ROOT_ONLY_CAPS]


def on_tmpfs(mountpoint: Path, options: str, fill: bool = False) -> list[str]:
    """A command prefix that runs in a private mount namespace with a tmpfs (``options``, e.g.
    "ro" or "size=64k") on ``mountpoint``; ``fill`` fills it up first. Nothing leaks out: the
    mount goes with the process. Skips where namespaces are not allowed (a locked-down container):
    no tool to install would help there, so CI skips too."""
    command = [require_tool("unshare", "apt-get install util-linux"), "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        command.append("--map-root-user")
    trial = subprocess.run([*command, "mount", "-t", "tmpfs", "tmpfs", str(mountpoint)],
                           capture_output=True, text=True, timeout=30)
    if trial.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace here: {trial.stderr.strip()}")
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" || exit 99; '
    if fill:
        script += 'mkdir "$2/data" && (head -c 16777216 /dev/zero > "$2/data/filler") 2>/dev/null; '
    script += "shift 2; exec \"$@\""
    return [*command, "sh", "-c", script, "sh", options, str(mountpoint)]


@dataclass
class Terminal:
    """A command on a pseudo-terminal: what it printed, and how it ended."""

    output: str
    status: int


def on_terminal(args: Sequence[str], env: dict[str, str], *answers: tuple[str, bytes]) -> Terminal:
    """Run ``args`` on a pseudo-terminal, answering each ``(prompt, keys)`` in turn: ``keys`` are
    typed once ``prompt`` shows after the previous answer (b"\\x03" is Ctrl-C, b"\\x04" Ctrl-D, as
    the terminal turns them into SIGINT and end of input; getpass flushes what is typed earlier)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.execve(args[0], list(args), env)
    output = b""
    pending = list(answers)
    answered_at = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and pending[0][0].encode() in output[answered_at:]:
                os.write(fd, pending.pop(0)[1])
                answered_at = len(output)
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return Terminal(output.decode(errors="replace"), os.waitstatus_to_exitcode(status))
