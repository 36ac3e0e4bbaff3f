"""The policy component: upstream releases the supply-chain policy blocks are not served.

Wrapped around the upstream component (private releases are never hidden by upstream data), it
decides every release of a page once per version of the page, of the rules and of the advisory
data, and again when a cooldown or an exemption ends; the decisions are part of the page's
version, so representations render the filtered page once and keep it (no per-request lookups).
A blocked release is absent from the simple page (both formats) and so from the JSON API and the
web interface; its files answer PolicyBlocked (403). A file whose release cannot be identified is
hidden while any rule blocks: it cannot be vetted, and installers cannot use it either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import structlog
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from proxy.core.errors import PolicyBlocked, ProjectNotFound
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.lru import LruCache
from proxy.core.names import normalize, parse_dist_filename
from proxy.core.osv import AdvisoryIndex
from proxy.core.policy import Decision, Release, Rules, cooldown_ends, decide
from proxy.core.urls import METADATA_SUFFIX
from proxy.repository.base import ProjectList, ProjectPage, Repository, Resource

log = structlog.get_logger(__name__)
_LEGACY = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip", ".egg", ".exe", ".msi", ".rpm", ".whl")


class Advisories(Protocol):
    """Where the current advisory data comes from (``proxy.upstream.advisories.AdvisoryFeed``)."""

    async def current(self) -> AdvisoryIndex | None: ...


class FirstSeenStore(Protocol):
    """``proxy.storage.first_seen.FirstSeen``; blocking."""

    def moments(self, project: str, versions: Sequence[str], now: float) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class Decided:
    """The decisions about every release of one version of a page."""

    key: tuple[Any, ...]
    decisions: dict[Version, Decision]
    releases: dict[Version, Release]
    valid_until: float  # when a cooldown or an exemption ends: decide again
    blocked: frozenset[Version]
    hide_unknown: bool

    def of(self, version: str) -> tuple[Decision | None, Release | None]:
        """The decision and the facts for ``version`` (any PEP 440 spelling); Nones when unlisted."""
        parsed = version_or_none(version)
        return (self.decisions.get(parsed), self.releases.get(parsed)) if parsed is not None else (None, None)


def release_version(project: str, filename: str) -> Version | None:
    """The release a distribution file belongs to: its wheel or sdist name (PEP 427, 625), or
    a legacy name ``<project>-<version>.<ext>`` (.zip, .tar.bz2, .egg, ...); None when unknown."""
    filename = filename.removesuffix(METADATA_SUFFIX)
    try:
        return version_or_none(str(parse_dist_filename(filename).version))
    except Exception:  # noqa: BLE001 - InvalidName, or a legacy name: tried below
        pass
    stem = next((filename[: -len(ext)] for ext in _LEGACY if filename.endswith(ext)), None)
    parts = stem.split("-") if stem else []
    for index in range(1, len(parts)):
        if normalize("-".join(parts[:index])) == project:
            return version_or_none(parts[index])
    return None


def version_or_none(text: str) -> Version | None:
    """``text`` as a PEP 440 version, or None when it is not one."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


class PolicyFilter:
    """A Repository (``proxy.repository.base``) serving ``inner``'s projects as ``rules`` allow.
    ``advisories`` gives the current OSV data (None: no advisory rule is on); ``first_seen``
    records when releases without an upload-time were first listed (for the cooldown)."""

    def __init__(self, inner: Repository, rules: Rules, advisories: Advisories | None,
                 first_seen: FirstSeenStore | None, executor: Executor,
                 clock: Callable[[], float] = time.time, recheck_every: float = 1.0) -> None:
        self.inner = inner
        self.rules = rules
        self._advisories = advisories
        self._first_seen = first_seen
        self._executor = executor
        self._clock = clock
        self._allowed = frozenset(normalize(Requirement(text).name) for text in rules.allow_only)
        self._decided: LruCache[str, Decided] = LruCache(4096)
        # The advisory data is asked for (a stat of its store) at most every recheck_every
        # seconds: a refresh by another worker shows within that, and a request costs no stat.
        self._recheck_every = recheck_every
        self._index: AdvisoryIndex | None = None
        self._index_checked = -math.inf

    async def claims(self, name: str) -> bool:
        return await self.inner.claims(name)

    def _check_allowed(self, name: str) -> None:
        """A curated index (``allow_only``): a project no entry names is not served at all."""
        if self._allowed and name not in self._allowed:
            raise ProjectNotFound(f"No project named {name!r} (not on this index's allow-only list).", project=name)

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        self._check_allowed(name)
        page = await self.inner.project_page(name, cached_only=cached_only)
        decided = await self.decided(page)
        build = functools.partial(_filtered, page.build, decided.blocked, decided.hide_unknown, name)
        return ProjectPage(page.name, page.source, (page.version, decided.key[2:], decided.valid_until), build,
                           page.files, page.cache, page.project)

    async def resource(self, project: str, filename: str) -> Resource:
        self._check_allowed(project)
        decided = await self.decided(await self.inner.project_page(project))
        version = release_version(project, filename)
        if version is None:
            if decided.hide_unknown:
                raise ProjectNotFound(f"No file {filename!r} in project {project!r} (its release cannot be "
                                      "identified, so the policy cannot vet it).", project=project)
            return await self.inner.resource(project, filename)
        decision = decided.decisions.get(version)
        if decision is not None and decision.blocked:
            rules = tuple(reason.rule for reason in decision.applied)
            log.warning("policy_blocked", project=project, version=str(version), filename=filename, rules=list(rules))
            raise PolicyBlocked(project, str(version), rules, decision.summary())
        served = await self.inner.resource(project, filename)
        if decision is not None and decision.action == "warn":
            served = dataclasses.replace(served, policy=f"warn; {decision.summary()}")
        return served

    async def project_list(self) -> ProjectList:
        listed = await self.inner.project_list()
        if not self._allowed:
            return listed
        inner_names, allowed = listed.names, self._allowed

        def names() -> Sequence[str]:
            return [name for name in inner_names() if normalize(name) in allowed]

        return ProjectList(listed.source, listed.version, names, listed.cache)

    async def advisory_index(self) -> AdvisoryIndex | None:
        """The advisory data decisions are made with now; None when none is loaded."""
        return await self._advisories.current() if self._advisories is not None else None

    async def decided(self, page: ProjectPage) -> Decided:
        """The decisions for ``page``'s releases, computed once per key (in the executor)."""
        index = await self._current_index()
        key = (page.name, page.version, self.rules.digest, index.version if index is not None else None)
        held = self._decided.get(page.name)
        now = self._clock()
        if held is not None and held.key == key and now < held.valid_until:
            return held
        loop = asyncio.get_running_loop()
        decided = await loop.run_in_executor(self._executor, self._decide, key, page, index, now)
        self._decided.put(page.name, decided)
        return decided

    async def _current_index(self) -> AdvisoryIndex | None:
        if self._advisories is None:
            return None
        checked = time.monotonic()
        if checked - self._index_checked >= self._recheck_every:
            self._index = await self._advisories.current()
            self._index_checked = checked
        return self._index

    def _decide(self, key: tuple[Any, ...], page: ProjectPage, index: AdvisoryIndex | None, now: float) -> Decided:
        """Blocking: O(releases × advisories of the project)."""
        model = page.build()
        by_version: dict[Version, list[IndexFile]] = {}
        for file in model.files:
            version = release_version(page.name, file.filename)
            if version is not None:
                by_version.setdefault(version, []).append(file)
        first_seen: dict[str, float] = {}
        undated = [str(v) for v, files in by_version.items() if not any(f.upload_time for f in files)]
        if self.rules.cooldown and undated and self._first_seen is not None:
            first_seen = self._first_seen.moments(page.name, undated, now)
        moment = datetime.fromtimestamp(now, timezone.utc)
        decisions, releases, valid_until = {}, {}, math.inf
        for version, files in by_version.items():
            times = [f.upload_time for f in files if f.upload_time]
            seen = first_seen.get(str(version))
            release = Release(page.name, str(version), min(times) if times else None,
                              datetime.fromtimestamp(seen, timezone.utc) if seen else None, model.status)
            advisories = index.for_release(page.name, str(version)) if index is not None else ()
            decisions[version] = decision = decide(self.rules, release, advisories, moment)
            releases[version] = release
            valid_until = min(valid_until, _changes_at(self.rules, release, decision, now))
        blocked = frozenset(v for v, d in decisions.items() if d.blocked)
        modes = (self.rules.vulnerabilities, self.rules.malicious, self.rules.quarantined)
        hide_unknown = "block" in modes or bool(self.rules.cooldown or self.rules.deny or self.rules.allow_only)
        if blocked:
            log.info("policy_page_decided", project=page.name, blocked=sorted(str(v) for v in blocked))
        return Decided(key, decisions, releases, valid_until, blocked, hide_unknown and not self.rules.dry_run)


def _changes_at(rules: Rules, release: Release, decision: Decision, now: float) -> float:
    """When this release's decision may change without new data: its cooldown ending, or an
    exemption that lifts one of its findings expiring."""
    moments = [math.inf]
    ends = cooldown_ends(rules, release)
    if ends is not None and ends > now:
        moments.append(ends)
    for reason in decision.reasons:
        if reason.exempted_by is not None:
            moments.append(datetime.combine(reason.exempted_by.until, datetime.max.time(), timezone.utc).timestamp())
    return min(moments)


def _filtered(build: Callable[[], IndexPage], blocked: frozenset[Version], hide_unknown: bool,
              project: str) -> IndexPage:
    """The page without the files of blocked releases (and of unidentifiable ones when hidden),
    and without blocked versions in PEP 700 ``versions``."""
    model = build()
    if not blocked and not hide_unknown:
        return model
    kept = []
    for file in model.files:
        version = release_version(project, file.filename)
        if (version is None and hide_unknown) or (version is not None and version in blocked):
            continue
        kept.append(file)
    versions = tuple(v for v in model.versions if version_or_none(v) not in blocked)
    return dataclasses.replace(model, files=tuple(kept), versions=versions)
