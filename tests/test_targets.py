"""Targets: marker environments and wheel tags from platform tags; versions and files that fit."""

from __future__ import annotations

import pytest
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from proxy.core.indexpage import IndexFile, IndexPage
from proxy.warm.targets import (
    Target,
    choose_files,
    current_target,
    expand_platform,
    group_versions,
    locked_marker_applies,
    make_target,
    make_targets,
    marker_applies,
    platform_environment,
    select_version,
)


@pytest.mark.parametrize(("platform", "sys_platform", "system", "machine", "os_name"), [
    ("manylinux_2_17_x86_64", "linux", "Linux", "x86_64", "posix"),
    ("manylinux2014_aarch64", "linux", "Linux", "aarch64", "posix"),
    ("manylinux1_i686", "linux", "Linux", "i686", "posix"),
    ("musllinux_1_2_x86_64", "linux", "Linux", "x86_64", "posix"),
    ("linux_armv7l", "linux", "Linux", "armv7l", "posix"),
    ("macosx_11_0_arm64", "darwin", "Darwin", "arm64", "posix"),
    ("macosx_10_9_x86_64", "darwin", "Darwin", "x86_64", "posix"),
    ("macosx_10_9_universal2", "darwin", "Darwin", "arm64", "posix"),
    ("win_amd64", "win32", "Windows", "AMD64", "nt"),
    ("win32", "win32", "Windows", "x86", "nt"),
    ("win_arm64", "win32", "Windows", "ARM64", "nt"),
])
def test_platform_environment(platform: str, sys_platform: str, system: str, machine: str, os_name: str) -> None:
    environment = platform_environment(platform)
    assert (environment["sys_platform"], environment["platform_system"], environment["platform_machine"],
            environment["os_name"]) == (sys_platform, system, machine, os_name)


@pytest.mark.parametrize("platform", ["beos_x86", "any", ""])
def test_unknown_platforms_are_refused(platform: str) -> None:
    with pytest.raises(ValueError, match="unknown platform tag"):
        platform_environment(platform)


@pytest.mark.parametrize(("platform", "first", "contains", "last"), [
    ("manylinux_2_17_x86_64", ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_16_x86_64"],
     ["manylinux_2_12_x86_64", "manylinux2010_x86_64"], ["manylinux_2_5_x86_64", "manylinux1_x86_64"]),
    ("manylinux_2_28_aarch64", ["manylinux_2_28_aarch64", "manylinux_2_27_aarch64"], [],
     ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]),
    ("manylinux2010_i686", ["manylinux_2_12_i686", "manylinux2010_i686"], [], ["manylinux1_i686"]),
    ("musllinux_1_2_x86_64", ["musllinux_1_2_x86_64"], [], ["musllinux_1_1_x86_64", "musllinux_1_0_x86_64"]),
    ("linux_x86_64", ["linux_x86_64", "manylinux_2_17_x86_64"], [], ["manylinux1_x86_64"]),
    ("macosx_11_0_arm64", ["macosx_11_0_arm64", "macosx_11_0_universal2"], ["macosx_10_16_universal2"], []),
    ("win_amd64", ["win_amd64"], [], ["win_amd64"]),
])
def test_expand_platform(platform: str, first: list[str], contains: list[str], last: list[str]) -> None:
    expanded = expand_platform(platform)
    assert expanded[: len(first)] == first
    assert set(contains) <= set(expanded)
    assert not last or expanded[-len(last):] == last
    assert "manylinux2010_aarch64" not in expanded


def test_a_target_environment_and_tag_order() -> None:
    target = make_target("3.12", ["manylinux_2_17_x86_64"])
    assert target.name == "3.12/manylinux_2_17_x86_64"
    assert {k: target.environment[k] for k in ("python_version", "python_full_version", "implementation_name",
                                               "sys_platform", "platform_machine")} == {
        "python_version": "3.12", "python_full_version": "3.12.0", "implementation_name": "cpython",
        "sys_platform": "linux", "platform_machine": "x86_64"}
    assert target.tags[0] == Tag("cp312", "cp312", "manylinux_2_17_x86_64")
    assert Tag("cp312", "abi3", "manylinux2014_x86_64") in target.tags
    assert Tag("cp310", "abi3", "manylinux1_x86_64") in target.tags
    assert Tag("py3", "none", "any") in target.tags
    assert Tag("cp313", "cp313", "manylinux_2_17_x86_64") not in target.tags
    assert make_target("3.11.4", ["win_amd64"]).environment["python_full_version"] == "3.11.4"


@pytest.mark.parametrize(("versions", "platforms", "names"), [
    (["3.12"], ["manylinux_2_17_x86_64", "linux_x86_64"], ["3.12/manylinux_2_17_x86_64+linux_x86_64"]),
    (["3.11", "3.12"], ["win_amd64", "macosx_11_0_arm64"],
     ["3.11/win_amd64", "3.11/macosx_11_0_arm64", "3.12/win_amd64", "3.12/macosx_11_0_arm64"]),
    (["3.13"], [], ["3.13/current"]),
])
def test_make_targets_groups_platforms_of_one_machine(versions: list[str], platforms: list[str],
                                                      names: list[str]) -> None:
    assert [t.name for t in make_targets(versions, platforms)] == names


@pytest.mark.parametrize("version", ["3", "2.7", "3.x", "py3.12"])
def test_bad_python_versions(version: str) -> None:
    with pytest.raises(ValueError, match="expected 3.X"):
        make_targets([version], [])


def test_the_default_target_is_this_interpreter() -> None:
    (target,) = make_targets([], [])
    assert target == current_target()
    assert target.tag_rank("demo-1.0-py3-none-any.whl") is not None


LINUX = make_target("3.12", ["manylinux_2_17_x86_64"])
WINDOWS = make_target("3.12", ["win_amd64"])
MAC = make_target("3.12", ["macosx_11_0_arm64"])


@pytest.mark.parametrize(("target", "filename", "fits"), [
    (LINUX, "x-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
    (LINUX, "x-1-cp312-cp312-manylinux_2_28_x86_64.whl", False),
    (LINUX, "x-1-cp39-abi3-manylinux_2_5_x86_64.whl", True),
    (LINUX, "x-1-cp311-cp311-manylinux_2_17_x86_64.whl", False),
    (LINUX, "x-1-py2.py3-none-any.whl", True),
    (WINDOWS, "x-1-cp312-cp312-manylinux_2_17_x86_64.whl", False),
    (WINDOWS, "x-1-cp312-cp312-win_amd64.whl", True),
    (MAC, "x-1-cp312-cp312-macosx_10_9_universal2.whl", True),
    (MAC, "x-1-cp312-cp312-macosx_12_0_arm64.whl", False),
    (LINUX, "x-1.tar.gz", False),
])
def test_tag_rank(target: Target, filename: str, fits: bool) -> None:
    assert (target.tag_rank(filename) is not None) == fits


@pytest.mark.parametrize(("requires_python", "admitted"), [
    (None, True), (">=3.8", True), ("<3.12", False), (">=3.12.1", False), ("~=3.12", True), ("nonsense", True),
])
def test_admits(requires_python: str | None, admitted: bool) -> None:
    assert LINUX.admits(requires_python) is admitted


@pytest.mark.parametrize(("marker", "target", "extra", "applies"), [
    (None, LINUX, "", True),
    ('python_version < "3.0"', LINUX, "", False),
    ('sys_platform == "win32"', WINDOWS, "", True),
    ('sys_platform == "win32"', LINUX, "", False),
    ('platform_machine == "arm64" and sys_platform == "darwin"', MAC, "", True),
    ('extra == "feat"', LINUX, "", False),
    ('extra == "feat"', LINUX, "feat", True),
    ('python_version >= "3.8" and extra == "Feat"', LINUX, "feat", True),
])
def test_marker_applies(marker: str | None, target: Target, extra: str, applies: bool) -> None:
    assert marker_applies(Marker(marker) if marker else None, target, extra) is applies


@pytest.mark.parametrize(("marker", "applies"), [
    ("python_version < '3'", False), ("'dev' in dependency_groups", True), ("'x' in extras", True),
])
def test_locked_marker_applies(marker: str, applies: bool) -> None:
    assert locked_marker_applies(Marker(marker), LINUX) is applies


def f(filename: str, requires_python: str | None = None, yanked: str | None = None) -> IndexFile:
    return IndexFile(filename, f"https://files/{filename}", requires_python=requires_python, yanked_reason=yanked)


FILES = [
    f("x-1.0-py3-none-any.whl"), f("x-1.0.tar.gz"),
    f("x-2.0-cp312-cp312-win_amd64.whl"), f("x-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
    f("x-2.0-cp39-abi3-manylinux_2_17_x86_64.whl"), f("x-2.0.tar.gz"),
    f("x-3.0-cp313-cp313-win_amd64.whl", requires_python=">=3.13"), f("x-3.0.tar.gz", requires_python=">=3.13"),
    f("x-4.0b1-py3-none-any.whl"),
    f("x-2.5-py3-none-any.whl", yanked="broken"),
    f("x-2.1-cp312-cp312-win_amd64.whl"),
    f("unrelated-9.0.tar.gz"),
]
VERSIONS = group_versions(IndexPage("x", tuple(FILES), ()))


def test_group_versions() -> None:
    assert sorted(VERSIONS) == [Version(v) for v in ("1.0", "2.0", "2.1", "2.5", "3.0", "4.0b1")]


@pytest.mark.parametrize(("version", "target", "all_files", "expected"), [
    ("2.0", LINUX, False, ["x-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"]),  # cp312 ranks above abi3
    ("2.0", WINDOWS, False, ["x-2.0-cp312-cp312-win_amd64.whl"]),
    ("2.0", MAC, False, ["x-2.0.tar.gz"]),  # no wheel fits: the sdist
    ("2.1", LINUX, False, []),  # neither
    ("3.0", WINDOWS, False, []),  # requires-python excludes 3.12
    ("2.0", MAC, True, [f.filename for f in FILES if f.filename.startswith("x-2.0")]),
    ("2.1", LINUX, True, []),
])
def test_choose_files(version: str, target: Target, all_files: bool, expected: list[str]) -> None:
    assert [c.filename for c in choose_files(VERSIONS[Version(version)], target, all_files)] == expected


@pytest.mark.parametrize(("specifier", "targets", "pre", "expected"), [
    ("", [LINUX], False, "2.0"),  # 4.0b1 is a prerelease, 3.0 needs 3.13, 2.5 is yanked, 2.1 has no linux file
    ("", [WINDOWS], False, "2.1"),
    ("", [LINUX, WINDOWS], False, "2.0"),
    ("", [LINUX], True, "4.0b1"),
    (">=4.0b1", [LINUX], False, "4.0b1"),  # the specifier names a prerelease
    (">=3.5", [LINUX], False, "4.0b1"),  # only a prerelease matches
    ("==2.5", [LINUX], False, "2.5"),  # a yanked file counts for an exact pin (PEP 592)
    ("<2", [MAC], False, "1.0"),
    (">=3,<4", [LINUX], False, None),
    (">=5", [LINUX], False, None),
])
def test_select_version(specifier: str, targets: list[Target], pre: bool, expected: str | None) -> None:
    chosen = select_version(VERSIONS, SpecifierSet(specifier), targets, pre)
    assert chosen == (Version(expected) if expected else None)
