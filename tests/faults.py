"""A full disk where the OS reports one: ENOSPC (or EDQUOT) from the system calls that write
files under one directory, so the code under test runs unchanged up to the failing call.

Intercepted (module ``os`` attributes, looked up at each call by the code under test): creating
a file (``os.open`` with O_CREAT, as ``tempfile.mkstemp`` does), ``os.write``, ``os.fsync`` of a
regular file (delayed allocation reports ENOSPC there) and ``os.replace`` into the directory
(a new directory entry may need a block). Linux: a descriptor's path comes from /proc/self/fd.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

OPERATIONS = ("create", "write", "fsync", "rename")


class DiskFull:
    """From the ``nth`` call of ``operation`` on a file under ``root`` on, that call fails with
    ``code``, as on a disk that filled up then. ``calls`` counts the calls seen, ``failed`` the
    failures raised."""

    def __init__(self, root: Path, operation: str, nth: int = 1, code: int = errno.ENOSPC) -> None:
        assert operation in OPERATIONS, operation
        self.root = os.path.realpath(root)
        self.operation = operation
        self.nth = nth
        self.code = code
        self.calls = 0
        self.failed = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> DiskFull:
        real_open, real_write, real_fsync, real_replace = os.open, os.write, os.fsync, os.replace

        def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT and self._under(path):
                self._call("create")
            return real_open(path, flags, *args, **kwargs)

        def fake_write(fd: int, data: Any) -> int:
            if self._fd_under(fd):
                self._call("write")
            return real_write(fd, data)

        def fake_fsync(fd: Any) -> None:
            descriptor = fd if isinstance(fd, int) else fd.fileno()
            if stat.S_ISREG(os.fstat(descriptor).st_mode) and self._fd_under(descriptor):
                self._call("fsync")
            real_fsync(fd)

        def fake_replace(source: Any, destination: Any, **kwargs: Any) -> None:
            if self._under(destination):
                self._call("rename")
            real_replace(source, destination, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "write", fake_write)
        monkeypatch.setattr(os, "fsync", fake_fsync)
        monkeypatch.setattr(os, "replace", fake_replace)
        return self

    def _call(self, operation: str) -> None:
        if operation != self.operation:
            return
        self.calls += 1
        if self.calls >= self.nth:
            self.failed += 1
            raise OSError(self.code, os.strerror(self.code))

    def _under(self, path: Any) -> bool:
        full = os.path.realpath(os.fspath(path))
        return full == self.root or full.startswith(self.root + os.sep)

    def _fd_under(self, fd: int) -> bool:
        try:
            return self._under(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return False
