"""Rendered descriptions on disk: written whole, checked on reading, failures kept per budget."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from proxy.storage.atomic import TEMP_PREFIX
from proxy.storage.descriptions import RenderedDescriptions

KEY = "ab" + "0" * 62
OTHER = "cd" + "1" * 62


def test_round_trip_by_key(tmp_path: Path) -> None:
    files = RenderedDescriptions(tmp_path)
    assert files.read(KEY) is None
    files.write(KEY, "<p>Grüße</p>")
    assert files.read(KEY) == "<p>Grüße</p>" and files.read(OTHER) is None
    assert (tmp_path / "cache" / "descriptions" / "ab" / f"{KEY}.html").is_file()
    files.write(KEY, "<p>again</p>")
    assert files.read(KEY) == "<p>again</p>"


@pytest.mark.parametrize("damage", [
    lambda data: data[:-3],  # torn by a crash
    lambda data: data + b"<script>x()</script>",  # changed behind our back
    lambda data: data.replace(b"\n", b"", 1),  # digest line gone
    lambda data: b"",
])
def test_a_damaged_file_is_a_miss(tmp_path: Path, damage: object) -> None:
    files = RenderedDescriptions(tmp_path)
    files.write(KEY, "<p>whole</p>")
    path = tmp_path / "cache" / "descriptions" / "ab" / f"{KEY}.html"
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    assert files.read(KEY) is None


def test_failures_are_kept_per_budget(tmp_path: Path) -> None:
    files = RenderedDescriptions(tmp_path)
    assert files.failure(KEY, "500ms-1024b-10b") is None
    files.mark_failed(KEY, "500ms-1024b-10b", "too slow")
    assert files.failure(KEY, "500ms-1024b-10b") == "too slow"
    assert files.failure(KEY, "5000ms-1024b-10b") is None  # a larger budget tries again
    assert files.read(KEY) is None  # a failure is no rendering


@pytest.mark.parametrize("key", ["../" + "a" * 61, "AB" + "0" * 62, "ab", KEY + "/x", ""])
def test_keys_are_only_our_digests(tmp_path: Path, key: str) -> None:
    files = RenderedDescriptions(tmp_path)
    with pytest.raises(ValueError):
        files.read(key)
    with pytest.raises(ValueError):
        files.write(key, "x")


@pytest.mark.parametrize("budget", ["../x", "5.0s", "a/b", ""])
def test_budget_tags_are_checked(tmp_path: Path, budget: str) -> None:
    with pytest.raises(ValueError):
        RenderedDescriptions(tmp_path).mark_failed(KEY, budget, "too slow")


def test_sweep_removes_old_temp_files_only(tmp_path: Path) -> None:
    files = RenderedDescriptions(tmp_path)
    assert files.sweep() == 0  # nothing there yet
    files.write(KEY, "<p>kept</p>")
    directory = tmp_path / "cache" / "descriptions" / "ab"
    old, young = directory / f"{TEMP_PREFIX}old", directory / f"{TEMP_PREFIX}young"
    old.write_bytes(b"partial")
    young.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert files.sweep() == 1
    assert not old.exists() and young.exists() and files.read(KEY) == "<p>kept</p>"
