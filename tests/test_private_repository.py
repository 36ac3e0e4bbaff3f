"""The private component (proxy.repository.private): parsed projects are kept within a memory
budget per server process, and one evicted is read again from storage (issue 16: unbounded,
every private project ever asked for stayed parsed, long descriptions included)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.repository import private
from proxy.repository.private import PrivateRepository
from proxy.storage.private import PrivateStorage
from tests.test_storage import commit

DESCRIPTION = "A long description. " * 1000  # 20 KB, as READMEs go


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def stored_projects(tmp_path: Path, count: int) -> PrivateStorage:
    storage = PrivateStorage(tmp_path)
    storage.prepare()
    for number in range(count):
        name = f"proj-{number}"
        commit(storage, f"proj_{number}-1.0-py3-none-any.whl", f"{number}".encode(), project=name, display_name=name)
        storage.update(name, lambda p: replace(p, releases=tuple(replace(r, description=DESCRIPTION)
                                                                 for r in p.releases)))
    return storage


async def test_parsed_projects_stay_within_the_budget_and_evicted_ones_are_read_again(
        tmp_path: Path, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(private, "_PROJECTS_BUDGET", 100_000)  # about four of these projects
    storage = await asyncio.to_thread(stored_projects, tmp_path, 12)
    repository = PrivateRepository(storage, executor)
    for number in range(12):
        project = await repository.project(f"proj-{number}")
        assert project is not None and project.releases[0].description == DESCRIPTION
    assert 0 < len(repository._projects) <= 4 and repository._projects.weight <= 100_000
    first = await repository.project("proj-0")  # evicted long ago: parsed again from its index
    assert first is not None and first.files[0].filename == "proj_0-1.0-py3-none-any.whl"
