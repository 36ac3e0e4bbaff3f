"""A failed file-system call explained in words a user acts on, for the commands and the data
directory check (issue 11 A4): it looks at the file system to name the path at fault."""

from __future__ import annotations

import errno
import os


def explain_os_error(exc: OSError) -> tuple[str, str]:
    """``(reason, what to do)`` for a failed file-system call, in words a user acts on.

    ``reason`` names the path at fault when the error carries one (``exc.filename``); for a
    path through a regular file (ENOTDIR) it names that file, found by walking up the path.
    """
    path = str(exc.filename) if exc.filename is not None else ""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied on {path}", "give the user running pypi-proxy access to it"
    if code == errno.EROFS:
        return f"{path} is on a read-only file system", "use a directory on a writable file system"
    if code == errno.ENOSPC:
        return f"no space left on the device of {path}", "free some space"
    if code == errno.EDQUOT:
        return f"disk quota exceeded writing {path}", "free some space or raise the quota"
    if code in (errno.ENOTDIR, errno.EEXIST) and path:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            return f"{blocker} is a file, not a directory", "move that file away"
    if code == errno.EISDIR:
        return f"{path} is a directory, not a file", "give the path of a file"
    if code == errno.ENOENT:
        return f"{path} does not exist", "check the path"
    reason = (exc.strerror or type(exc).__name__).lower()
    return (f"{reason}: {path}" if path else reason), "check the path and its file system"


def _file_in_the_way(path: str) -> str | None:
    """The first existing component of ``path`` that is not a directory (ENOTDIR's cause),
    spelt as the path was (relative stays relative)."""
    chain = [path]
    while (parent := os.path.dirname(chain[-1])) not in ("", chain[-1]):
        chain.append(parent)
    for candidate in reversed(chain):
        if os.path.lexists(candidate) and not os.path.isdir(candidate):
            return candidate
    return None
