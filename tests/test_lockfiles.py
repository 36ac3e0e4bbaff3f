"""Lock files: PEP 751 pylock.toml and uv.lock, read into locked packages and their files."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.warm.lockfiles import PYLOCK, UV, LockedFile, LockFileError, lock_kind, parse_lock, read_lock

PYLOCK_TEXT = """
lock-version = "1.0"
created-by = "tests"

[[packages]]
name = "Demo.Pkg"
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
sdist = { path = "dist/dep%2B-2.0.tar.gz", hashes = {} }

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
    lock = parse_lock("pylock.toml", PYLOCK_TEXT)
    demo, dep = lock.packages
    assert (demo.name, demo.version, str(demo.marker)) == ("demo-pkg", "1.0", 'python_version >= "3.9"')
    assert demo.files == (
        LockedFile("demo_pkg-1.0-py3-none-any.whl", "aa", True),
        LockedFile("demo_pkg-1.0-cp312-cp312-win_amd64.whl", "bb", True),  # last URL segment, no query
        LockedFile("demo_pkg-1.0.tar.gz", "dd", False),
    )
    assert (dep.name, dep.marker, dep.files) == ("dep", None, (LockedFile("dep+-2.0.tar.gz", None, False),))
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
    ("uv.lock", '[[package]]\nversion = "1"\nsource = { registry = "x" }\n', "unexpected structure"),
    ("pylock.toml", '[[packages]]\nname = "a"\nversion = "1"\nsdist = { hashes = {} }\n', "unexpected structure"),
    ("pylock.toml", '[[packages]]\nname = "a"\nversion = "1"\nmarker = "nonsense ="\nsdist = { name = "a-1.tar.gz" }\n',
     "invalid marker"),
])
def test_broken_lock_files(filename: str, text: str, message: str) -> None:
    with pytest.raises(LockFileError, match=message):
        parse_lock(filename, text)


def test_read_lock_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "pylock.web.toml"
    path.write_text(PYLOCK_TEXT)
    assert [p.name for p in read_lock(path).packages] == ["demo-pkg", "dep"]
    assert [p.name for p in read_lock(tmp_path / "uv.lock", lambda _: UV_TEXT).packages] == ["demo-pkg", "dep"]
