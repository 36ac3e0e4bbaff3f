"""Lock files: PEP 751 pylock.toml and uv.lock, read into locked packages and their files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.warm.lockfiles import PYLOCK, UV, LockedFile, LockFileError, lock_kind, parse_lock, read_lock
from tests.clitools import assert_fails_with, run_cli

PYLOCK_TEXT = """
lock-version = "1.0"
created-by = "tests"

[[packages]]
name = "demo-pkg"
version = "1.0"
marker = "python_version >= '3.9'"
index = "https://pypi.org/simple"
wheels = [
  { name = "demo_pkg-1.0-py3-none-any.whl", url = "https://files/demo_pkg-1.0-py3-none-any.whl", hashes = { sha256 = "AA" } },
  { url = "https://files/a/b/demo_pkg-1.0-cp312-cp312-win_amd64.whl?x=1", hashes = { sha256 = "bb", md5 = "cc" } },
]
sdist = { url = "https://files/demo_pkg-1.0.tar.gz", hashes = { sha256 = "dd" } }

[[packages]]
name = "dep"
version = "2.0"
sdist = { url = "https://files/dep-2.0.tar.gz%23x", name = "dep-2.0.tar.gz", hashes = { blake2b = "ff" } }

[[packages]]
name = "by-url"
version = "3.0+local"
wheels = [{ url = "https://files/by_url-3.0%2Blocal-py3-none-any.whl", hashes = { sha256 = "ee" } }]

[[packages]]
name = "from-git"
version = "0.1"
vcs = { type = "git", url = "https://host/repo.git", commit-id = "abc" }

[[packages]]
name = "here"
directory = { path = "." }
"""

UV_TEXT = """
version = 1
revision = 2
requires-python = ">=3.10"
resolution-markers = ["python_full_version >= '3.12'", "python_full_version < '3.12'"]

[[package]]
name = "Demo_Pkg"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "dep", marker = "sys_platform == 'win32'" }]
sdist = { url = "https://files/demo_pkg-1.0.tar.gz", hash = "sha256:DD", size = 10 }
wheels = [
  { url = "https://files/demo_pkg-1.0-py3-none-any.whl", hash = "sha256:aa", size = 10 },
  { url = "https://files/demo_pkg-1.0-cp312-cp312-win_amd64.whl", hash = "md5:zz", size = 10 },
]

[[package]]
name = "dep"
version = "2.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files/dep-2.0-py3-none-any.whl", hash = "sha256:ee", size = 10 }]

[[package]]
name = "myapp"
version = "0.1.0"
source = { editable = "." }

[[package]]
name = "virt"
version = "0.1.0"
source = { virtual = "packages/virt" }

[[package]]
name = "from-git"
version = "0.1.0"
source = { git = "https://host/repo.git?rev=main#abc" }
"""


@pytest.mark.parametrize(("filename", "kind"), [
    ("pylock.toml", PYLOCK), ("pylock.dev.toml", PYLOCK), ("some/dir/pylock.toml", PYLOCK),
    ("uv.lock", UV), ("/abs/uv.lock", UV),
])
def test_lock_kind_by_filename(filename: str, kind: str) -> None:
    assert lock_kind(filename) == kind


@pytest.mark.parametrize("filename", ["poetry.lock", "pylock.a.b.toml", "requirements.txt", "mypylock.toml"])
def test_other_filenames_are_refused(filename: str) -> None:
    with pytest.raises(LockFileError, match="not a lock file name"):
        lock_kind(filename)


def test_pylock() -> None:
    """PEP 751: wheels and sdist of each package, filenames from ``name`` or the URL's last segment."""
    lock = parse_lock("pylock.toml", PYLOCK_TEXT)
    demo, dep, by_url = lock.packages
    assert (demo.name, demo.version, str(demo.marker)) == ("demo-pkg", "1.0", 'python_version >= "3.9"')
    assert demo.files == (
        LockedFile("demo_pkg-1.0-py3-none-any.whl", "aa", True),
        LockedFile("demo_pkg-1.0-cp312-cp312-win_amd64.whl", "bb", True),  # last URL segment, no query
        LockedFile("demo_pkg-1.0.tar.gz", "dd", False),
    )
    # The name key wins over the URL; no sha256 among the hashes: nothing to check against.
    assert (dep.name, dep.marker, dep.files) == ("dep", None, (LockedFile("dep-2.0.tar.gz", None, False),))
    # A URL's last segment is percent-decoded (PEP 751: it is a URL).
    assert (by_url.version, by_url.files) == ("3.0+local", (
        LockedFile("by_url-3.0+local-py3-none-any.whl", "ee", True),))
    assert [(s.name, s.reason) for s in lock.skipped] == [
        ("from-git", "vcs source: not from an index"), ("here", "directory source: not from an index"),
    ]


def test_uv_lock() -> None:
    lock = parse_lock("uv.lock", UV_TEXT)
    demo, dep = lock.packages
    assert (demo.name, demo.version, demo.marker) == ("demo-pkg", "1.0", None)
    assert demo.files == (
        LockedFile("demo_pkg-1.0-py3-none-any.whl", "aa", True),
        LockedFile("demo_pkg-1.0-cp312-cp312-win_amd64.whl", None, True),  # not a sha256: no check
        LockedFile("demo_pkg-1.0.tar.gz", "dd", False),
    )
    assert dep.files == (LockedFile("dep-2.0-py3-none-any.whl", "ee", True),)
    assert [s.name for s in lock.skipped] == ["myapp", "virt", "from-git"]
    assert lock.skipped[0].reason == "editable source: not from an index"


@pytest.mark.parametrize(("filename", "text", "message"), [
    ("uv.lock", "version = [", "invalid TOML"),
    ("pylock.toml", "lock-version = [", "invalid TOML"),
    ("uv.lock", '[[package]]\nversion = "1"\nsource = { registry = "x" }\n', "unexpected structure"),
])
def test_broken_lock_files(filename: str, text: str, message: str) -> None:
    with pytest.raises(LockFileError, match=message):
        parse_lock(filename, text)


_HEAD = 'lock-version = "1.0"\ncreated-by = "tests"\n'
_SDIST = 'sdist = { url = "https://x/a-1.tar.gz", hashes = { sha256 = "aa" } }\n'


@pytest.mark.parametrize(("text", "message"), [
    # PEP 751 lock-version: a reader MUST refuse a major version it does not know.
    ('lock-version = "2.0"\ncreated-by = "t"\npackages = []\n', "pylock version 2.0 is not supported"),
    ('lock-version = "one"\ncreated-by = "t"\npackages = []\n', "Invalid version: 'one' in 'lock-version'"),
    # PEP 751: lock-version, created-by and packages are required.
    ('created-by = "t"\npackages = []\n', "Missing required value in 'lock-version'"),
    ('lock-version = "1.0"\npackages = []\n', "Missing required value in 'created-by'"),
    (_HEAD, "Missing required value in 'packages'"),
    (_HEAD + "packages = [1]\n", r"expected Mapping\) in 'packages\[0\]'"),
    # packages.name: the normalized name.
    (_HEAD + '[[packages]]\nname = "A_b"\nversion = "1"\n' + _SDIST, "Name 'A_b' is not normalized"),
    # packages.marker: a PEP 508 marker.
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\nmarker = "nonsense ="\n' + _SDIST,
     r"(?s)Expected a marker variable.*in 'packages\[0\]\.marker'"),
    # packages.sdist / packages.wheels: hashes required, a path or url required, the filename agrees.
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\nsdist = { url = "https://x/a-1.tar.gz", hashes = {} }\n',
     r"At least one hash must be provided in 'packages\[0\]\.sdist\.hashes'"),
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\nsdist = { hashes = { sha256 = "aa" } }\n',
     r"path or url must be provided in 'packages\[0\]\.sdist'"),
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\n'
             'sdist = { url = "https://x/b-1.tar.gz", hashes = { sha256 = "aa" } }\n',
     r"Name in 'b-1.tar.gz' is not consistent with package name 'a' in 'packages\[0\]\.sdist'"),
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\n'
             'wheels = [{ url = "https://x/a-2-py3-none-any.whl", hashes = { sha256 = "aa" } }]\n',
     r"Version in 'a-2-py3-none-any.whl' is not consistent .* in 'packages\[0\]\.wheels\[0\]'"),
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\n'
             'wheels = [{ url = "https://x/a-1.zip", hashes = { sha256 = "aa" } }]\n',
     r"Invalid wheel filename 'a-1.zip' in 'packages\[0\]\.wheels\[0\]'"),
    # packages.vcs/directory/archive exclude sdist and wheels.
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\ndirectory = { path = "." }\n' + _SDIST,
     r"None of vcs, directory, archive must be set if sdist or wheels are set in 'packages\[0\]'"),
    (_HEAD + '[[packages]]\nname = "a"\nversion = "1"\n',
     r"Exactly one of vcs, directory, archive must be set"),
])
def test_pylock_that_breaks_pep_751_is_a_lock_file_error(text: str, message: str) -> None:
    """PEP 751 (validated by packaging.pylock): the file and the rule broken are named."""
    with pytest.raises(LockFileError, match=r"^pylock\.dev\.toml: not a valid PEP 751 lock file: ") as caught:
        parse_lock("pylock.dev.toml", text)
    assert re.search(message, str(caught.value))


def test_pylock_package_with_files_but_no_version_is_skipped() -> None:
    """PEP 751 makes packages.version optional; the proxy's pages are per release, so it is skipped."""
    lock = parse_lock("pylock.toml", _HEAD + '[[packages]]\nname = "a"\n' + _SDIST)
    assert (lock.packages, [(s.name, s.reason) for s in lock.skipped]) == ((), [("a", "no version locked")])


def test_read_lock_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "pylock.web.toml"
    path.write_text(PYLOCK_TEXT)
    assert [p.name for p in read_lock(path).packages] == ["demo-pkg", "dep", "by-url"]
    assert [p.name for p in read_lock(tmp_path / "uv.lock", lambda _: UV_TEXT).packages] == ["demo-pkg", "dep"]


@pytest.mark.parametrize(("text", "line"), [
    ('lock-version = "2.0"\ncreated-by = "t"\npackages = []\n',
     "pylock.toml: not a valid PEP 751 lock file: pylock version 2.0 is not supported"),
    (_HEAD + '[[packages]]\nname = "Demo"\nversion = "1"\n' + _SDIST,
     "pylock.toml: not a valid PEP 751 lock file: Name 'Demo' is not normalized in 'packages[0].name'"),
])
def test_warm_names_the_pep_751_rule_a_lock_breaks_without_a_traceback(tmp_path: Path, text: str, line: str) -> None:
    """PEP 751 validation errors reach the user as one line and exit status 2, before any request."""
    (tmp_path / "pylock.toml").write_text(text)
    result = run_cli(tmp_path, "warm", "--lock", "pylock.toml", "--server", "http://127.0.0.1:9")
    assert_fails_with(result, 2, f"pypi-proxy warm: {line}")
