"""Read lock files (PEP 751 ``pylock.toml`` and ``uv.lock``) into the files they pin.

``pylock.toml`` is read and validated by ``packaging.pylock`` (the PEP 751 reference reader:
required keys, ``lock-version``, normalized names, hashes, filenames consistent with the package).
``Pylock.select`` is not used: it picks one file per package for one installing environment and
raises on what an installer must refuse, while warming chooses, for several targets at once, every
file any of them may install (the engine evaluates each package's marker per target). uv.lock has
no library reader (uv's format is its own, unversioned outside uv), so it stays hand-read here.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import Marker
from packaging.pylock import PackageSdist, PackageWheel, Pylock, PylockValidationError
from packaging.utils import NormalizedName

from proxy.core.names import normalize

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYLOCK = "pylock"
UV = "uv"
_PYLOCK_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")


class LockFileError(ValueError):
    """A lock file that cannot be read: not TOML, or not the shape its format requires."""


@dataclass(frozen=True, slots=True)
class LockedFile:
    filename: str
    sha256: str | None
    is_wheel: bool


@dataclass(frozen=True, slots=True)
class LockedPackage:
    name: NormalizedName
    version: str
    files: tuple[LockedFile, ...]
    marker: Marker | None = None  # pylock.toml only; None: always installed


@dataclass(frozen=True, slots=True)
class LockSkip:
    """A locked package not served by an index (a path, VCS, editable, or direct URL)."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Lock:
    packages: tuple[LockedPackage, ...]
    skipped: tuple[LockSkip, ...] = ()


def lock_kind(filename: str) -> str:
    """``PYLOCK`` for ``pylock.toml``/``pylock.<name>.toml`` (PEP 751), ``UV`` for ``uv.lock``."""
    base = PurePosixPath(filename.replace("\\", "/")).name
    if _PYLOCK_NAME.match(base):
        return PYLOCK
    if base == "uv.lock":
        return UV
    raise LockFileError(f"{filename}: not a lock file name (pylock.toml, pylock.<name>.toml or uv.lock)")


def parse_lock(filename: str, text: str) -> Lock:
    """Parse a lock file's text, its kind told by ``filename``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockFileError(f"{filename}: invalid TOML: {exc}") from None
    try:
        return (parse_pylock if lock_kind(filename) == PYLOCK else parse_uv_lock)(document)
    except PylockValidationError as exc:
        raise LockFileError(f"{filename}: not a valid PEP 751 lock file: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise LockFileError(f"{filename}: unexpected structure ({type(exc).__name__}: {exc})") from None


def read_lock(path: Path, reader: Callable[[Path], str] | None = None) -> Lock:
    """Read and parse one lock file from disk (or through ``reader``)."""
    return parse_lock(path.name, (reader or _read_text)(path))


def parse_pylock(document: dict[str, Any]) -> Lock:
    """PEP 751, read and validated by ``packaging.pylock``: ``[[packages]]`` with ``wheels`` and/or
    an ``sdist``; a vcs, directory or archive package is skipped (no index serves it).

    Raises ``PylockValidationError`` for a document that breaks PEP 751 (an unsupported
    ``lock-version``, a name that is not normalized, a file without hashes or whose filename
    disagrees with the package's name or version, a bad marker, ...).
    """
    packages: list[LockedPackage] = []
    skipped: list[LockSkip] = []
    for package in Pylock.from_dict(document).packages:
        if package.is_direct:
            kind = next(k for k in ("vcs", "directory", "archive") if getattr(package, k) is not None)
            skipped.append(LockSkip(package.name, f"{kind} source: not from an index"))
        elif package.version is None:
            skipped.append(LockSkip(package.name, "no version locked"))
        else:
            files = [_pylock_file(wheel, True) for wheel in package.wheels or ()]
            if package.sdist is not None:
                files.append(_pylock_file(package.sdist, False))
            packages.append(LockedPackage(package.name, str(package.version), tuple(files), package.marker))
    return Lock(tuple(packages), tuple(skipped))


def _pylock_file(distribution: PackageWheel | PackageSdist, is_wheel: bool) -> LockedFile:
    sha256 = distribution.hashes.get("sha256")
    return LockedFile(distribution.filename, sha256.lower() if sha256 else None, is_wheel)


def parse_uv_lock(document: dict[str, Any]) -> Lock:
    """uv's lock: ``[[package]]`` from a ``registry`` source; others (editable, git, path...) skipped."""
    packages: list[LockedPackage] = []
    skipped: list[LockSkip] = []
    for entry in document.get("package", ()):
        name = str(entry["name"])
        source = entry.get("source") or {}
        if "registry" not in source:
            kind = next(iter(source), "unknown")
            skipped.append(LockSkip(name, f"{kind} source: not from an index"))
            continue
        files = [_uv_file(wheel, True) for wheel in entry.get("wheels", ())]
        if "sdist" in entry:
            files.append(_uv_file(entry["sdist"], False))
        packages.append(LockedPackage(normalize(name), str(entry["version"]), tuple(files)))
    return Lock(tuple(packages), tuple(skipped))


def _uv_file(table: dict[str, Any], is_wheel: bool) -> LockedFile:
    filename = _url_filename(table.get("url") or table.get("path") or table.get("filename") or "")
    if not filename:
        raise KeyError("a wheel or sdist without url")
    algorithm, _, digest = str(table.get("hash", "")).partition(":")
    return LockedFile(filename, digest.lower() if algorithm == "sha256" and digest else None, is_wheel)


def _url_filename(url: str) -> str:
    """The last path segment of a URL or path, percent-decoded (``.../demo-1.0.tar.gz#sha256=``)."""
    return unquote(PurePosixPath(urlsplit(str(url)).path).name)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")
