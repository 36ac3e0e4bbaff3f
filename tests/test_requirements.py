"""Requirements files: lines, continuations, comments, options, hashes, markers, nested includes."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.warm.requirements import Include, logical_lines, parse_text, read_requirements


@pytest.mark.parametrize(("text", "expected"), [
    ("demo\n", [(1, "demo")]),
    ("# only a comment\n\n   \n", []),
    ("demo>=1  # why\n", [(1, "demo>=1")]),
    ("   # indented comment\ndep\n", [(2, "dep")]),
    ("demo==1.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\nnext\n",
     [(1, "demo==1.0     --hash=sha256:aa     --hash=sha256:bb"), (4, "next")]),
    ("https://host/x.whl#sha256=ab\n", [(1, "https://host/x.whl#sha256=ab")]),  # no space: not a comment
    ("demo \\\n", [(1, "demo")]),  # a trailing backslash at the end of the file
    ("# comment \\\ndemo\n", [(2, "demo")]),  # a comment does not continue
])
def test_logical_lines(text: str, expected: list[tuple[int, str]]) -> None:
    assert logical_lines(text) == expected


@pytest.mark.parametrize(("line", "name", "specifier", "marker", "extras", "hashes"), [
    ("demo", "demo", "", None, set(), ()),
    ("Demo_Pkg[a,b] >= 1.0, < 2", "Demo_Pkg", "<2,>=1.0", None, {"a", "b"}, ()),
    ('dep>=2; python_version < "3.12"', "dep", ">=2", 'python_version < "3.12"', set(), ()),
    ("demo==1.0 --hash=sha256:aa --hash sha256:bb", "demo", "==1.0", None, set(), ("sha256:aa", "sha256:bb")),
    ('demo ; sys_platform == "win32" --hash=sha256:cc', "demo", "", 'sys_platform == "win32"', set(),
     ("sha256:cc",)),
])
def test_requirement_lines(line: str, name: str, specifier: str, marker: str | None, extras: set[str],
                           hashes: tuple[str, ...]) -> None:
    parsed = parse_text(line, "r.txt")
    assert parsed.skipped == ()
    (entry,) = parsed.entries
    assert entry.requirement.name == name
    assert str(entry.requirement.specifier) == specifier
    assert (str(entry.requirement.marker) if entry.requirement.marker else None) == marker
    assert entry.requirement.extras == extras
    assert entry.hashes == hashes and entry.where == "r.txt:1"


@pytest.mark.parametrize(("line", "reason"), [
    ("-e ./src", "editable"),
    ("--editable=git+https://host/repo#egg=x", "editable"),
    ("./local/pkg", "URL or path"),
    ("../pkg.tar.gz", "URL or path"),
    ("demo-1.0-py3-none-any.whl", "URL or path"),
    ("https://host/demo-1.0.tar.gz", "URL or path"),
    ("git+https://host/repo.git@main#egg=demo", "URL or path"),
    ("demo @ https://host/demo-1.0.tar.gz", "direct reference"),
    ("demo[x] @ file:///tmp/demo", "direct reference"),
    ("--index-url https://host/simple", "option --index-url ignored"),
    ("-i https://host/simple", "option -i ignored"),
    ("--extra-index-url=https://host/simple", "option --extra-index-url ignored"),
    ("--find-links ./wheels", "option --find-links ignored"),
    ("--pre", "option --pre ignored"),
    ("--require-hashes", "option --require-hashes ignored"),
    ("--trusted-host host", "option --trusted-host ignored"),
    ("demo===", "invalid requirement"),
    ("-r", "-r needs a file"),
    ("-r https://host/requirements.txt", "remote requirements files"),
])
def test_lines_skipped_with_a_reason(line: str, reason: str) -> None:
    parsed = parse_text(line, "r.txt")
    assert parsed.entries == () and parsed.includes == ()
    (skipped,) = parsed.skipped
    assert reason in skipped.reason and skipped.where == "r.txt:1"


def test_a_per_requirement_option_other_than_hash_is_noted_but_the_requirement_kept() -> None:
    parsed = parse_text('demo --config-settings="a=b"')
    assert [e.requirement.name for e in parsed.entries] == ["demo"]
    assert "--config-settings" in parsed.skipped[0].reason


@pytest.mark.parametrize(("line", "kind", "path"), [
    ("-r base.txt", "requirement", "base.txt"),
    ("-rbase.txt", "requirement", "base.txt"),
    ("--requirement=sub/base.txt", "requirement", "sub/base.txt"),
    ("--requirement sub/base.txt", "requirement", "sub/base.txt"),
    ("-c pins.txt", "constraint", "pins.txt"),
    ("--constraint=pins.txt", "constraint", "pins.txt"),
])
def test_includes(line: str, kind: str, path: str) -> None:
    assert parse_text(line, "r.txt").includes == (Include(kind, path, "r.txt:1"),)


def test_nested_files_are_followed_relative_to_the_including_file(tmp_path: Path) -> None:
    files = {
        tmp_path / "requirements.txt": "first\n-r sub/base.txt\nlast\n-c pins.txt\n",
        tmp_path / "sub" / "base.txt": "middle  # from sub\n-r ../requirements.txt\n-r more.txt\n",
        tmp_path / "sub" / "more.txt": "deeper\n",
        tmp_path / "pins.txt": "first==1.0\n-r pinned-too.txt\n",
        tmp_path / "pinned-too.txt": "deeper<3\n",
    }
    reads: list[Path] = []

    def reader(path: Path) -> str:
        reads.append(path)
        return files[path.parent.resolve() / path.name]

    found = read_requirements([tmp_path / "requirements.txt"], reader)
    assert [str(e.requirement) for e in found.requirements] == ["first", "middle", "deeper", "last"]
    assert [str(e.requirement) for e in found.constraints] == ["first==1.0", "deeper<3"]
    assert found.requirements[1].where == f"{tmp_path / 'sub' / 'base.txt'}:1"
    assert len(reads) == 5, "the include cycle back to requirements.txt ends"


def test_reading_from_disk(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("demo\n-e .\n")
    found = read_requirements([tmp_path / "r.txt"])
    assert [e.requirement.name for e in found.requirements] == ["demo"]
    assert [s.text for s in found.skipped] == ["-e ."]
    with pytest.raises(FileNotFoundError):
        read_requirements([tmp_path / "missing.txt"])
