"""Child processes: free loopback ports, start and readiness, RSS of a process tree, clean exit."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"
MIB = 1 << 20
_children: list[subprocess.Popen[bytes]] = []


class BenchError(Exception):
    """A problem worth a clear one-line message rather than a traceback."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for servers and clients: loopback never goes through an HTTP proxy."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "UV_"))}
    env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(name, None)
    env.update(extra or {})
    return env


class Server:
    """A server started as our child, in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.started_at = time.perf_counter()
        try:
            # cwd: the log's directory, so no package of the caller's cwd shadows an installed one.
            self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=child_env(env),
                                         cwd=cwd or log_path.parent, start_new_session=True)
        except OSError as error:
            raise BenchError(f"{name}: cannot run {argv[0]}: {error}") from error
        _children.append(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, url: str, timeout: float = 60.0, ok: Callable[[int], bool] = lambda s: s == 200) -> float:
        """Poll ``url`` every 10 ms until it answers; seconds since the process was started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} before it was ready;"
                                 f" see {self.log_path}:\n{self.log_tail()}")
            try:
                # An explicit Accept: proxpi answers 406 to a request without one.
                request = urllib.request.Request(url, headers={"Accept": "*/*"})
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if ok(answer.status):
                        return time.perf_counter() - self.started_at
            except urllib.error.HTTPError as error:
                if ok(error.code):
                    return time.perf_counter() - self.started_at
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        raise BenchError(f"{self.name} not ready at {url} after {timeout:.0f} s; see {self.log_path}:\n"
                         f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        stop_process(self.proc, grace)
        self._log.close()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        with _suppress_lookup():
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with _suppress_lookup():
        os.killpg(proc.pid, signal.SIGKILL)  # workers of a server whose master already exited
    proc.wait()
    if proc in _children:
        _children.remove(proc)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return isinstance(value, (ProcessLookupError, PermissionError))


@atexit.register
def _kill_children() -> None:
    while _children:
        stop_process(_children[-1], grace=2.0)  # removes it from _children


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP end the benchmark like Ctrl-C does, so children are stopped."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _status_kib(pid: int, field: str, path: str = "status") -> int:
    """A "<field>: <n> kB" line of /proc/<pid>/<path>, in KiB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_bytes(pids: list[int]) -> int:
    return sum(_status_kib(pid, "VmRSS") for pid in pids) * 1024


def pss_bytes(pid: int) -> int:
    """Proportional set size: resident pages, each shared one divided among the processes that map
    it (libpython, libcrypto, pages shared after a fork). Summed over a tree, the memory the tree
    costs the machine; summed RSS counts every shared page once per process."""
    return _status_kib(pid, "Pss", "smaps_rollup") * 1024


class RssSampler:
    """Peak memory of each watched process tree, sampled every 50 ms on a thread while in use:
    the tree's summed RSS (the figure the targets use), its root process's RSS (the supervisor,
    with workers), its largest process, and the tree's summed PSS."""

    def __init__(self, roots: dict[str, int], interval: float = 0.05) -> None:
        self.roots = roots
        self.interval = interval
        self.peaks = dict.fromkeys(roots, 0)  # the whole tree: master, workers, helpers
        self.largest = dict.fromkeys(roots, 0)  # the largest single process of the tree
        self.root_peaks = dict.fromkeys(roots, 0)  # the root process alone
        self.pss_peaks = dict.fromkeys(roots, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample({name: process_tree(pid) for name, pid in self.roots.items()})

    def figures(self, name: str) -> dict[str, float]:
        """The peaks of ``name``'s tree in MiB, as a result row's columns."""
        return {"peak_rss_mb": self.peaks[name] / MIB, "largest_process_mb": self.largest[name] / MIB,
                "root_rss_mb": self.root_peaks[name] / MIB, "peak_pss_mb": self.pss_peaks[name] / MIB}

    def _loop(self) -> None:
        trees: dict[str, list[int]] = {}
        refreshed = 0.0
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 1.0:  # workers may come and go
                trees = {name: process_tree(pid) for name, pid in self.roots.items()}
                refreshed = time.monotonic()
            self._sample(trees)
            self._stop.wait(self.interval)

    def _sample(self, trees: dict[str, list[int]]) -> None:
        for name, pids in trees.items():
            sizes = [rss_bytes([pid]) for pid in pids]
            self.peaks[name] = max(self.peaks[name], sum(sizes))
            self.largest[name] = max(self.largest[name], max(sizes, default=0))
            self.root_peaks[name] = max(self.root_peaks[name], rss_bytes([self.roots[name]]))
            self.pss_peaks[name] = max(self.pss_peaks[name], sum(pss_bytes(pid) for pid in pids))
