"""proxy.oserrors.explain_os_error: each file-system failure in words a user acts on (issue 11, A4)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from proxy.oserrors import explain_os_error


def error(code: int, filename: str | None = "/srv/data/auth.json") -> OSError:
    return OSError(code, os.strerror(code), filename)


@pytest.mark.parametrize(("code", "reason", "hint"), [
    (errno.EACCES, "permission denied on /srv/data/auth.json", "give the user running pypi-proxy access to it"),
    (errno.EPERM, "permission denied on /srv/data/auth.json", "give the user running pypi-proxy access to it"),
    (errno.EROFS, "/srv/data/auth.json is on a read-only file system", "use a directory on a writable file system"),
    (errno.ENOSPC, "no space left on the device of /srv/data/auth.json", "free some space"),
    (errno.EDQUOT, "disk quota exceeded writing /srv/data/auth.json", "free some space or raise the quota"),
    (errno.EISDIR, "/srv/data/auth.json is a directory, not a file", "give the path of a file"),
    (errno.ENOENT, "/srv/data/auth.json does not exist", "check the path"),
    (errno.EIO, "input/output error: /srv/data/auth.json", "check the path and its file system"),
])
def test_reasons_and_hints(code: int, reason: str, hint: str) -> None:
    assert explain_os_error(error(code)) == (reason, hint)


def test_without_a_file_name_the_reason_stands_alone() -> None:
    assert explain_os_error(error(errno.EIO, None)) == ("input/output error", "check the path and its file system")


@pytest.mark.parametrize("code", [errno.ENOTDIR, errno.EEXIST])
def test_a_file_in_the_way_is_named_as_the_path_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          code: int) -> None:
    monkeypatch.chdir(tmp_path)
    Path("srv").write_text("")
    assert explain_os_error(error(code, "srv/pypi-proxy/locks")) == ("srv is a file, not a directory",
                                                                     "move that file away")
    assert explain_os_error(error(code, str(tmp_path / "srv" / "x"))) == (
        f"{tmp_path / 'srv'} is a file, not a directory", "move that file away")
