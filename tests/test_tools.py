"""tests/tools.py: a missing system tool skips a test with a reason naming it, and fails it
under CI, so the README's test command passes on a fresh machine and CI never skips silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import CHROMIUM_ENV, require_chromium, require_tool

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds one directory with one executable, ``present-tool``."""
    directory = tmp_path / "bin"
    directory.mkdir()
    tool = directory / "present-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(directory))
    return directory


@pytest.mark.parametrize("ci", [None, "", "1", "true"])
def test_a_present_tool_is_found_whatever_ci_says(bin_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                 ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert require_tool("present-tool", "apt-get install it") == str(bin_dir / "present-tool")


@pytest.mark.parametrize("ci", [None, ""])
def test_a_missing_tool_skips_naming_it_and_how_to_install_it(
        bin_dir: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as outcome:
        require_tool("systemd-analyze", "apt-get install systemd")
    assert outcome.value.msg == "systemd-analyze is not installed (apt-get install systemd)"


@pytest.mark.parametrize("ci", ["1", "true"])
def test_a_missing_tool_fails_under_ci(bin_dir: Path, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as outcome:
        require_tool("systemd-analyze", "apt-get install systemd")
    assert outcome.value.msg == ("systemd-analyze is not installed (apt-get install systemd); "
                                 "CI is set, so this test fails rather than skips")


def test_chromium_comes_from_the_variable_before_path(bin_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    elsewhere = tmp_path / "chrome-linux" / "chrome"
    elsewhere.parent.mkdir()
    elsewhere.write_text("#!/bin/sh\n")
    elsewhere.chmod(0o755)
    monkeypatch.setenv(CHROMIUM_ENV, str(elsewhere))
    assert require_chromium() == str(elsewhere)
    monkeypatch.delenv(CHROMIUM_ENV)
    with pytest.raises(pytest.skip.Exception) as outcome:
        require_chromium()
    assert outcome.value.msg == f"chromium is not installed (apt-get install chromium, or set {CHROMIUM_ENV} to a Chromium binary)"


@pytest.mark.parametrize(("ci", "summary"), [("", "1 skipped"), ("1", "1 failed")])
def test_a_real_pytest_run_reports_the_skip_or_the_failure(tmp_path: Path, ci: str, summary: str) -> None:
    """The same, seen as a user sees it: pytest's own summary line and reason."""
    (tmp_path / "test_needs_tool.py").write_text(
        "from tests.tools import require_tool\n\n"
        "def test_needs_tool():\n"
        "    require_tool('no-such-tool-anywhere', 'apt-get install no-such-tool')\n"
    )
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", "-c", os.devnull,
         "--rootdir", str(tmp_path), str(tmp_path / "test_needs_tool.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert summary in result.stdout.splitlines()[-1], result.stdout + result.stderr
    assert "no-such-tool-anywhere is not installed (apt-get install no-such-tool)" in result.stdout
