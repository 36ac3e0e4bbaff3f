"""The policy component in the repository chain, without a server (issue 15): decisions made once
per page version, rules and advisory data, again when a cooldown ends (injected clock); legacy
file names; advisories from OSV records."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from proxy.core.errors import PolicyBlocked, ProjectNotFound
from proxy.core.merge import Source
from proxy.core.osv import AdvisoryIndex
from proxy.core.policy import Rules
from proxy.repository.policy import PolicyFilter, release_version
from tests.test_repository import Memory

DAY = 86400.0
FILES = {"demo-1.0.tar.gz": "/up/a", "demo-1.1-py3-none-any.whl": "/up/b", "demo-2.0.zip": "/up/c"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Seen:
    """First-seen moments in memory (the FirstSeen store's contract: the first caller wins)."""

    def __init__(self) -> None:
        self.moments_of: dict[str, float] = {}

    def moments(self, project: str, versions: Sequence[str], now: float) -> dict[str, float]:
        return {v: self.moments_of.setdefault(f"{project}=={v}", now) for v in versions}


class Data:
    def __init__(self, index: AdvisoryIndex | None) -> None:
        self.index = index

    async def current(self) -> AdvisoryIndex | None:
        return self.index


def osv(id: str, fixed: str, severity: str = "HIGH") -> dict:
    return {"id": id, "database_specific": {"severity": severity},
            "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def listed(page) -> list[str]:
    return [f.filename for f in page.build().files]


@pytest.mark.parametrize(("filename", "version"), [
    ("demo-1.0.tar.gz", "1.0"), ("demo-1.1-py3-none-any.whl", "1.1"), ("demo-2.0.zip", "2.0"),
    ("Demo_Pkg-3.0.tar.bz2", "3.0"), ("demo-1.0-py2.7.egg", "1.0"), ("demo-1.1-py3-none-any.whl.metadata", "1.1"),
    ("README.txt", None), ("demo-latest.zip", None),
])
def test_the_release_of_a_file_from_every_kind_of_name(filename, version) -> None:
    project = "demo-pkg" if filename.startswith("Demo_Pkg") else "demo"
    found = release_version(project, filename)
    assert (str(found) if found else None) == version


async def test_a_release_leaves_its_cooldown_without_any_change_upstream(executor) -> None:
    clock, seen = Clock(1_000_000.0), Seen()
    inner = Memory(Source.UPSTREAM, {"demo": dict(FILES)})
    policy = PolicyFilter(inner, Rules(cooldown=7 * DAY), None, seen, executor, clock)
    first = await policy.project_page("demo")
    assert listed(first) == [] and inner.builds == 2  # one build to decide, one to filter
    clock.now += 7 * DAY - 1
    assert (await policy.project_page("demo")).version == first.version
    clock.now += 1
    later = await policy.project_page("demo")
    assert later.version != first.version and listed(later) == sorted(FILES)


async def test_decisions_are_made_once_per_version_of_the_page_rules_and_data(executor) -> None:
    inner = Memory(Source.UPSTREAM, {"demo": dict(FILES)})
    data = Data(AdvisoryIndex.from_records([osv("GHSA-1", "1.1")], "v1"))
    policy = PolicyFilter(inner, Rules(vulnerabilities="block"), data, None, executor, recheck_every=0)
    page = await policy.project_page("demo")
    assert listed(page) == ["demo-1.1-py3-none-any.whl", "demo-2.0.zip"]
    builds = inner.builds
    for _ in range(3):
        assert (await policy.project_page("demo")).version == page.version
    assert inner.builds == builds, "no decision is remade for the same versions"
    data.index = AdvisoryIndex.from_records([osv("GHSA-1", "1.1"), osv("GHSA-2", "2.0", "LOW")], "v2")
    updated = await policy.project_page("demo")
    assert updated.version != page.version and listed(updated) == ["demo-2.0.zip"]
    with pytest.raises(PolicyBlocked) as raised:
        await policy.resource("demo", "demo-1.1-py3-none-any.whl")
    assert raised.value.rules == ("vulnerabilities",) and "GHSA-2 (low)" in str(raised.value)


async def test_a_file_whose_release_cannot_be_told_is_hidden_while_a_rule_blocks(executor) -> None:
    inner = Memory(Source.UPSTREAM, {"demo": {**FILES, "demo-latest.zip": "/up/x"}})
    strict = PolicyFilter(inner, Rules(deny=("demo<1",)), None, None, executor)
    assert "demo-latest.zip" not in listed(await strict.project_page("demo"))
    with pytest.raises(ProjectNotFound, match="cannot be identified"):
        await strict.resource("demo", "demo-latest.zip")
    warn_only = PolicyFilter(inner, Rules(archived="warn"), None, None, executor)
    assert "demo-latest.zip" in listed(await warn_only.project_page("demo"))


async def test_a_warned_release_is_served_with_its_reason(executor) -> None:
    inner = Memory(Source.UPSTREAM, {"demo": dict(FILES)})
    data = Data(AdvisoryIndex.from_records([osv("GHSA-1", "1.1", "MODERATE")], "v1"))
    policy = PolicyFilter(inner, Rules(vulnerabilities="warn"), data, None, executor)
    served = await policy.resource("demo", "demo-1.0.tar.gz")
    assert served.path is not None and served.policy == "warn; vulnerabilities: known vulnerabilities " \
                                                        "(severity any or above): GHSA-1 (moderate)"
    assert (await policy.resource("demo", "demo-2.0.zip")).policy is None
