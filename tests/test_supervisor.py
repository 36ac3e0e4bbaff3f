"""The settings hand-over between `serve`, the supervisor and its workers (issue 12, L7): a
descriptor read once, never the environment (tests/e2e/test_service.py checks /proc)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from proxy.ops.supervisor import SETTINGS_FD_ENV, settings_handoff, take_settings

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
