"""Install targets (a Python version and platform tags): their marker environment and wheel tags,
and which versions and files of a project fit them."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from packaging import tags as tagging
from packaging.markers import Marker, default_environment
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.names import SDIST, guess_packagetype
from proxy.core.parse import version_from_filename

T = TypeVar("T")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_MUSLLINUX = re.compile(r"^musllinux_(\d+)_(\d+)_(.+)$")
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(.+)$")
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_VERSION = re.compile(r"^3\.\d+(\.\d+)?$")
# An unversioned "linux_<arch>" platform stands for a glibc Linux like uv's default: manylinux 2.17.
_DEFAULT_GLIBC = (2, 17)
_WINDOWS_MACHINE = {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where the files are for: the environment markers see, and wheel tags best first."""

    name: str  # for messages, e.g. "3.12/manylinux_2_17_x86_64"
    environment: dict[str, str] = field(hash=False)
    tags: tuple[Tag, ...] = field(hash=False)
    ranks: dict[Tag, int] = field(hash=False, compare=False, repr=False)

    @property
    def python_full_version(self) -> Version:
        return Version(self.environment["python_full_version"])

    def tag_rank(self, filename: str) -> int | None:
        """A wheel's rank among this target's tags (0 is best), None when it does not fit."""
        try:
            wheel_tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            return None
        found = [self.ranks[tag] for tag in wheel_tags if tag in self.ranks]
        return min(found) if found else None

    def admits(self, requires_python: str | None) -> bool:
        """Whether a file's Requires-Python admits this target's Python (unparseable: admitted)."""
        if not requires_python:
            return True
        try:
            return SpecifierSet(requires_python).contains(self.python_full_version, prereleases=True)
        except (InvalidSpecifier, InvalidVersion):
            return True


def target(name: str, environment: dict[str, str], tags: Iterable[Tag]) -> Target:
    """A Target, its tags deduplicated (first one wins) and ranked."""
    ordered = tuple(_unique(tags))
    return Target(name, environment, ordered, {tag: rank for rank, tag in enumerate(ordered)})


def current_target() -> Target:
    """This interpreter: packaging's default environment and ``sys_tags()``."""
    environment = {key: str(value) for key, value in default_environment().items()}
    return target(f"{environment['python_version']}/current", environment, tagging.sys_tags())


def make_targets(python_versions: Sequence[str], platforms: Sequence[str]) -> list[Target]:
    """One target per Python version and platform family; none given: this interpreter.

    Platforms of one operating system and machine (``manylinux_2_17_x86_64`` and
    ``linux_x86_64``) form one target, as pip's repeated ``--platform`` does; different ones
    (``win_amd64`` and ``macosx_11_0_arm64``) are separate targets, each needing its own files.
    """
    if not python_versions and not platforms:
        return [current_target()]
    for version in python_versions:
        if not _VERSION.match(version):
            raise ValueError(f"Python version {version!r}: expected 3.X or 3.X.Y")
    versions = list(python_versions) or [".".join(map(str, sys.version_info[:2]))]
    families: dict[tuple[str, str], list[str]] = {}
    for platform in platforms:
        environment = platform_environment(platform)
        families.setdefault((environment["sys_platform"], environment["platform_machine"]), []).append(platform)
    groups = list(families.values()) or [[]]
    return [make_target(version, group) for version in versions for group in groups]


def make_target(python_version: str, platforms: Sequence[str]) -> Target:
    """A CPython ``python_version`` (3.X or 3.X.Y) on ``platforms`` (none: this machine's)."""
    parts = tuple(int(p) for p in python_version.split("."))
    short = f"{parts[0]}.{parts[1]}"
    full = python_version if len(parts) > 2 else f"{short}.0"
    current = {key: str(value) for key, value in default_environment().items()}
    environment = {
        **current,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": full,
        "python_version": short,
        "python_full_version": full,
    }
    if platforms:
        environment |= platform_environment(platforms[0])
        expanded = list(_unique(p for platform in platforms for p in expand_platform(platform)))
    else:
        expanded = list(tagging.platform_tags())
    interpreter = f"cp{parts[0]}{parts[1]}"
    tags = [*tagging.cpython_tags(parts[:2], platforms=expanded),
            *tagging.compatible_tags(parts[:2], interpreter, expanded)]
    name = f"{short}/{'+'.join(platforms) if platforms else 'current'}"
    return target(name, environment, tags)


def platform_environment(platform: str) -> dict[str, str]:
    """Marker variables a platform tag implies (release and version are unknown: empty)."""
    unknown = {"platform_release": "", "platform_version": ""}
    if platform in _WINDOWS_MACHINE:
        return {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                "platform_machine": _WINDOWS_MACHINE[platform], **unknown}
    if match := _MACOS.match(platform):
        arch = match.group(3)
        machine = "arm64" if arch in ("arm64", "universal2") else "x86_64" if arch in ("intel", "universal") else arch
        return {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
                "platform_machine": machine, **unknown}
    arch = _linux_arch(platform)
    if arch is not None:
        return {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                "platform_machine": arch, **unknown}
    raise ValueError(f"unknown platform tag {platform!r} (e.g. manylinux_2_17_x86_64, "
                     "musllinux_1_2_aarch64, macosx_11_0_arm64, win_amd64, linux_x86_64)")


def _linux_arch(platform: str) -> str | None:
    for pattern in (_MANYLINUX, _MUSLLINUX):
        if match := pattern.match(platform):
            return match.group(3)
    for legacy in _LEGACY_MANYLINUX:
        if platform.startswith(legacy + "_"):
            return platform[len(legacy) + 1:]
    if platform.startswith("linux_"):
        return platform[len("linux_"):]
    return None


def expand_platform(platform: str) -> list[str]:
    """A platform tag and the older ones it implies, best first, as pip expands them.

    ``manylinux_2_17_x86_64`` also accepts glibc 2.16 down to 2.5 (2.17 for other machines)
    with the manylinux2014/2010/1 aliases; musllinux 1.x accepts 1.(x-1)..1.0; macOS accepts
    older releases and universal wheels (packaging's ``mac_platforms``).
    """
    if match := _MANYLINUX.match(platform):
        return _manylinux(int(match.group(1)), int(match.group(2)), match.group(3))
    for legacy, (major, minor) in _LEGACY_MANYLINUX.items():
        if platform.startswith(legacy + "_"):
            return _manylinux(major, minor, platform[len(legacy) + 1:])
    if match := _MUSLLINUX.match(platform):
        major, minor, arch = int(match.group(1)), int(match.group(2)), match.group(3)
        return [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
    if match := _MACOS.match(platform):
        version = (int(match.group(1)), int(match.group(2)))
        return list(tagging.mac_platforms(version, match.group(3)))
    if platform.startswith("linux_"):
        return [platform, *_manylinux(*_DEFAULT_GLIBC, platform[len("linux_"):])]
    return [platform]


def _manylinux(major: int, minor: int, arch: str) -> list[str]:
    lowest = 5 if arch in ("x86_64", "i686") else 17
    found = []
    for m in range(minor, lowest - 1, -1):
        found.append(f"manylinux_{major}_{m}_{arch}")
        for legacy, glibc in _LEGACY_MANYLINUX.items():
            if glibc == (major, m) and (legacy == "manylinux2014" or arch in ("x86_64", "i686")):
                found.append(f"{legacy}_{arch}")
    return found


def _unique(items: Iterable[T]) -> Iterator[T]:
    seen: set[T] = set()
    for item in items:
        if item not in seen:
            seen.add(item)
            yield item


# Versions and files that fit targets -----------------------------------------------------------------


def group_versions(page: IndexPage) -> dict[Version, list[IndexFile]]:
    """The page's files by the version their filenames name (unparseable ones are left out)."""
    grouped: dict[Version, list[IndexFile]] = {}
    for file in page.files:
        text = version_from_filename(file.filename, page.name)
        try:
            version = Version(text) if text else None
        except InvalidVersion:
            version = None
        if version is not None:
            grouped.setdefault(version, []).append(file)
    return grouped


def choose_files(files: Iterable[IndexFile], target: Target, all_files: bool = False) -> list[IndexFile]:
    """The best wheel for ``target`` by tag priority, else an sdist; [] when nothing fits.

    With ``all_files``, every file of the version, provided one of them fits the target.
    """
    listed = list(files)
    usable = [f for f in listed if target.admits(f.requires_python)]
    wheels = [(rank, f) for f in usable if (rank := target.tag_rank(f.filename)) is not None]
    sdists = sorted((f for f in usable if guess_packagetype(f.filename) == SDIST),
                    key=lambda f: not f.filename.endswith(".tar.gz"))
    best = [min(wheels, key=lambda pair: pair[0])[1]] if wheels else sdists[:1]
    return listed if all_files and best else best


def select_version(versions: dict[Version, list[IndexFile]], specifier: SpecifierSet,
                   targets: Iterable[Target], pre: bool = False, all_files: bool = False) -> Version | None:
    """The newest version the specifier admits that has files for every target.

    Prereleases only with ``pre``, when the specifier names one, or when nothing else matches
    (PEP 440, as packaging's ``filter``). Yanked files count only for an exact ``==`` pin (PEP 592).
    """
    wanted = list(targets)
    allowed = set(specifier.filter(versions, prereleases=True if pre else None))
    for version in sorted(allowed, reverse=True):
        if all(choose_files(usable_files(versions[version], specifier), t, all_files) for t in wanted):
            return version
    return None


def usable_files(files: Iterable[IndexFile], specifier: SpecifierSet) -> list[IndexFile]:
    pinned = any(spec.operator in ("==", "===") and "*" not in spec.version for spec in specifier)
    return [f for f in files if pinned or not f.yanked]


def marker_applies(marker: Marker | None, target: Target, extra: str = "") -> bool:
    """Whether a requirement's marker holds on ``target`` with ``extra`` requested."""
    return marker is None or marker.evaluate({**target.environment, "extra": extra})


def locked_marker_applies(marker: Marker | None, target: Target) -> bool:
    """pylock.toml markers; ones on ``extras`` or ``dependency_groups`` (PEP 751) are kept: warming
    a package that a narrower install would skip costs only cache space."""
    if marker is None or "extras" in str(marker) or "dependency_groups" in str(marker):
        return True
    return marker.evaluate(target.environment)
