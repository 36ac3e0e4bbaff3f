"""The systemd units in systemd/: valid for systemd-analyze, sandboxed, and consistent with the CLI."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import build_parser
from proxy.config import ServerSettings
from tests.tools import require_tool

UNITS = Path(__file__).resolve().parents[1] / "systemd"
INSTALLED = "/opt/pypi-proxy/bin/pypi-proxy"  # where README's install steps put the command
SERVICES = ["pypi-proxy.service", "pypi-proxy-warm.service"]


def analyze() -> str:
    """Skips without systemd-analyze, or fails under CI (tests/tools.py); no running systemd needed."""
    return require_tool("systemd-analyze", "apt-get install systemd")


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this test environment's command (verify checks it exists)."""
    command = Path(sys.executable).parent / "pypi-proxy"
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, str(command)))
    return tmp_path


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_units_pass_systemd_analyze_verify(units: Path) -> None:
    result = subprocess.run([analyze(), "verify", *sorted(str(p) for p in units.iterdir())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_exposure_score_is_at_most_2_5(units: Path, service: str) -> None:
    result = subprocess.run([analyze(), "security", "--offline=true", "--no-pager", str(units / service)],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5, result.stdout


def test_service_is_notify_with_state_and_config_directories() -> None:
    service = unit("pypi-proxy.service")["Service"]
    assert service["Type"] == "notify"
    assert service["StateDirectory"] == "pypi-proxy"  # → $STATE_DIRECTORY = /var/lib/pypi-proxy
    assert service["ConfigurationDirectory"] == "pypi-proxy"
    assert service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    stop = float(service["TimeoutStopSec"].removesuffix("s"))
    assert stop > ServerSettings().shutdown_timeout, "systemd must not kill a graceful stop"


@pytest.mark.parametrize("service", SERVICES)
def test_exec_start_is_a_valid_command_line(service: str) -> None:
    argv = shlex.split(unit(service)["Service"]["ExecStart"])
    assert argv[0] == INSTALLED
    build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown option


def test_timer_starts_the_warm_service_nightly() -> None:
    timer = unit("pypi-proxy-warm.timer")
    assert timer["Timer"]["OnCalendar"] == "*-*-* 03:00:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert (UNITS / "pypi-proxy-warm.service").exists()  # a timer starts the service of its own name
