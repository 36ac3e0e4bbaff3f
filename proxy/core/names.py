"""Project names, versions and distribution filenames (PEP 503, PEP 440, wheel and sdist specs)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from proxy.core.errors import InvalidName

# Core metadata "Name" (STANDARDS A2), case-insensitive.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE | re.ASCII)
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
# Older sdists on upstream indexes: name-version.zip / .tar.bz2 etc. (listed, never accepted on upload).
_LEGACY_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")

WHEEL = "bdist_wheel"
SDIST = "sdist"


def normalize(name: str) -> NormalizedName:
    """PEP 503 normalised form: runs of ``-_.`` become ``-``, lower case."""
    return canonicalize_name(name)


def is_valid_project_name(name: str) -> bool:
    """Whether ``name`` is a valid core-metadata Name (STANDARDS A2): ASCII letters, digits and
    ``._-``, starting and ending with a letter or digit; no spaces, no other characters."""
    return _VALID_NAME.fullmatch(name) is not None


def validate_project_name(name: str) -> NormalizedName:
    """Return the normalised name, or raise InvalidName for names PyPI refuses."""
    # fullmatch: with match(), "$" would also accept a trailing newline ("foo\n").
    if not _VALID_NAME.fullmatch(name):
        raise InvalidName(
            f"Invalid project name {name!r}: must start and end with a letter or digit "
            "and contain only ASCII letters, digits, '.', '-' and '_'."
        )
    return normalize(name)


def parse_version(text: str) -> Version:
    """PEP 440 version, or InvalidName."""
    try:
        return Version(text)
    except InvalidVersion:
        raise InvalidName(f"Invalid version {text!r}: not a PEP 440 version.") from None


def check_safe_filename(filename: str) -> str:
    """Reject anything that could escape a directory once used as a path component."""
    if (
        not filename
        or filename in (".", "..")
        or filename.startswith(".")
        or _UNSAFE_CHARS.search(filename)
        or ".." in filename.split("/")
        or len(filename) > 255
    ):
        raise InvalidName(f"Invalid filename {filename!r}.")
    return filename


@dataclass(frozen=True, slots=True)
class DistFilename:
    """What a distribution's filename says about it."""

    project: NormalizedName
    version: Version
    packagetype: str  # WHEEL or SDIST
    python_tag: str  # "source" for sdists, e.g. "py3" for wheels


def parse_dist_filename(filename: str) -> DistFilename:
    """Parse a wheel or PEP 625 sdist filename; raise InvalidName when it is neither."""
    check_safe_filename(filename)
    try:
        if filename.endswith(".whl"):
            name, version, _build, tags = parse_wheel_filename(filename)
            python_tag = ".".join(sorted({tag.interpreter for tag in tags}))
            return DistFilename(name, version, WHEEL, python_tag)
        if filename.endswith(".tar.gz"):
            name, version = parse_sdist_filename(filename)
            return DistFilename(name, version, SDIST, "source")
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise InvalidName(f"Invalid distribution filename {filename!r}: {exc}") from None
    raise InvalidName(
        f"Invalid distribution file extension in {filename!r}: only .whl and .tar.gz are accepted."
    )


def guess_packagetype(filename: str) -> str:
    """Classify any listed filename, including legacy sdists refused on upload (STANDARDS A4)."""
    if filename.endswith(".whl"):
        return WHEEL
    if filename.endswith(".egg"):
        return "bdist_egg"
    if filename.endswith(".exe") or filename.endswith(".msi"):
        return "bdist_wininst"
    if filename.endswith(_LEGACY_SDIST_SUFFIXES):
        return SDIST
    return "unknown"


def content_type_for(filename: str) -> str:
    """Content-Type for a served distribution or metadata file (STANDARDS D3)."""
    if filename.endswith((".whl", ".zip", ".egg")):
        return "application/zip"
    if filename.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    if filename.endswith(".metadata"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """Whether the normalised ``name`` matches one of the (normalised) fnmatch ``patterns``."""
    normalised = normalize(name)
    return any(fnmatch.fnmatchcase(normalised, pattern) for pattern in patterns)
