"""The settings hand-over between `serve`, the supervisor and its workers (issue 12, L7): a
descriptor read once, never the environment (tests/e2e/test_service.py checks /proc); and a
supervisor that stays small (issue 16)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from pathlib import Path

import pytest

from proxy.config import settings_from_mapping, settings_to_mapping
from proxy.ops.supervisor import SETTINGS_FD_ENV, Supervision, settings_handoff, take_settings

# Larger than a pipe's buffer (64 KiB), with text that is not ASCII: all of it arrives.
DOCUMENT = json.dumps({"upstream": {"password": "pässwörd", "reserved": [f"acme-{i}-*" for i in range(20000)]}})


def test_another_program_reads_the_document_once_through_the_descriptor() -> None:
    handoff = settings_handoff(DOCUMENT)
    try:
        reader = ("import hashlib, os; from proxy.ops.supervisor import SETTINGS_FD_ENV, take_settings; "
                  "fd = os.environ[SETTINGS_FD_ENV]; document = take_settings(); "
                  "print(hashlib.sha256(document.encode()).hexdigest(), SETTINGS_FD_ENV in os.environ, "
                  "os.path.exists(f'/proc/self/fd/{fd}'))")
        result = subprocess.run([sys.executable, "-c", reader], env={**os.environ, SETTINGS_FD_ENV: str(handoff)},
                                pass_fds=(handoff,), capture_output=True, text=True, timeout=60)
    finally:
        os.close(handoff)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [hashlib.sha256(DOCUMENT.encode()).hexdigest(), "False", "False"]


def test_take_settings_closes_the_descriptor_and_forgets_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    handoff = settings_handoff(DOCUMENT)
    monkeypatch.setenv(SETTINGS_FD_ENV, str(handoff))
    assert take_settings() == DOCUMENT
    assert SETTINGS_FD_ENV not in os.environ
    with pytest.raises(OSError):
        os.fstat(handoff)


def test_the_supervisor_reads_its_settings_from_the_handed_over_document(tmp_path: Path) -> None:
    settings = settings_from_mapping({"server": {"workers": 3, "host": "::1", "port": 9001, "shutdown_timeout": 7},
                                      "storage": {"data_dir": str(tmp_path)},
                                      "logging": {"level": "warning", "format": "json"}})
    document = json.loads(json.dumps(settings_to_mapping(settings)))  # as it crosses the descriptor
    assert Supervision.from_document(document) == Supervision(3, "::1", 9001, 7.0, tmp_path, "warning", "json")


# Issue 16: the supervisor is a process of its own in the tree measured against 120 MiB; it imports
# none of these (about 17 MiB resident together). Checked in a fresh interpreter.
HEAVY = ("asyncio", "ssl", "structlog", "prometheus_client", "aiohttp", "jinja2", "proxy.config", "yarl",
         "packaging", "tempfile")


def test_the_supervisor_imports_nothing_heavy() -> None:
    code = f"import sys, proxy.ops.supervisor; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
