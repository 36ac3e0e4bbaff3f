"""Which files a warm run asks for: locked files as they are, requirements by following their
dependencies through PEP 658 metadata, for every target platform."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.metadata import parse_metadata
from proxy.core.names import normalize
from proxy.warm.client import ProxyClient, WarmError
from proxy.warm.lockfiles import LockedPackage
from proxy.warm.targets import (
    Target,
    choose_files,
    group_versions,
    locked_marker_applies,
    marker_applies,
    select_version,
    usable_files,
)


class Notices(Protocol):
    """Where the resolver tells what it skipped (``notice``) and what failed (``problem``)."""

    def notice(self, text: str) -> None: ...

    def problem(self, text: str) -> None: ...


def requires_dist(metadata: bytes) -> tuple[list[Requirement], list[str]]:
    """A core metadata file's Requires-Dist, and the entries that do not parse."""
    found, bad = [], []
    for value in parse_metadata(metadata).get_all("Requires-Dist") or ():
        try:
            found.append(Requirement(str(value)))
        except InvalidRequirement:
            bad.append(str(value))
    return found, bad


@dataclass(slots=True)
class _Need:
    """Everything asked of one project so far: specifiers, extras, and the targets needing it."""

    specifiers: set[SpecifierSet] = field(default_factory=set)
    extras: set[str] = field(default_factory=set)
    targets: set[int] = field(default_factory=set)

    def specifier(self, constraint: SpecifierSet) -> SpecifierSet:
        combined = constraint
        for spec in self.specifiers:  # "&" makes a new set: the constraint is not changed
            combined &= spec
        return combined


class Resolver:
    """Chooses files: locked ones as they are, requirements by following their dependencies.

    Each project gets the newest version that satisfies every specifier seen for it so far (and
    the constraints) and has files for every target needing it. When a later specifier rules the
    chosen version out, a new one is picked and the earlier one's files stay chosen as well:
    warming a superset costs only cache space, and without backtracking the run stays simple and
    predictable. Each (project, version, target, extra) is expanded once.
    """

    def __init__(self, client: ProxyClient, targets: tuple[Target, ...], progress: Notices,
                 constraints: Iterable[Requirement], *, all_files: bool = False, pre: bool = False) -> None:
        self._client = client
        self._targets = targets
        self._all_files = all_files
        self._pre = pre
        self._progress = progress
        self._constraints: dict[NormalizedName, SpecifierSet] = {}
        for constraint in constraints:
            if any(marker_applies(constraint.marker, t) for t in self._targets):
                name = normalize(constraint.name)
                self._constraints[name] = self._constraints.get(name, SpecifierSet()) & constraint.specifier
        self._pages: dict[NormalizedName, asyncio.Task[IndexPage | None | WarmError]] = {}
        self._versions: dict[NormalizedName, dict[Version, list[IndexFile]]] = {}
        self._metadata: dict[tuple[NormalizedName, Version], list[Requirement]] = {}
        self._needs: dict[NormalizedName, _Need] = {}
        self._chosen: dict[NormalizedName, Version] = {}
        self._expanded: set[tuple[NormalizedName, Version, int, str]] = set()
        self._queue: deque[tuple[Requirement, int]] = deque()
        self.selected: dict[str, tuple[NormalizedName, IndexFile]] = {}  # by URL
        self.failures: dict[str, str] = {}  # by project (or project and file), the reason

    def close(self) -> None:
        for task in self._pages.values():
            task.cancel()  # prefetches nobody awaited, after an error

    def _fail(self, key: str, reason: str) -> None:
        if key not in self.failures:
            self.failures[key] = reason
            self._progress.problem(f"{key}: {reason}")

    def _select(self, name: NormalizedName, file: IndexFile) -> None:
        self.selected.setdefault(file.url, (name, file))

    # Pages (fetched concurrently: a task starts as soon as a name is known) ------------------------

    def _prefetch(self, name: NormalizedName) -> asyncio.Task[IndexPage | None | WarmError]:
        if name not in self._pages:
            self._pages[name] = asyncio.ensure_future(self._fetch_page(name))
        return self._pages[name]

    async def _fetch_page(self, name: NormalizedName) -> IndexPage | None | WarmError:
        try:
            return await self._client.page(name)
        except WarmError as exc:
            return exc

    async def _page(self, name: NormalizedName) -> IndexPage | None:
        if name in self.failures:
            return None
        result = await self._prefetch(name)
        if isinstance(result, WarmError):
            self._fail(name, str(result))
            return None
        if result is None:
            self._fail(name, "no such project on the proxy")
        return result

    # Lock files ------------------------------------------------------------------------------------

    async def add_locked(self, packages: Iterable[LockedPackage]) -> None:
        """Choose exactly the locked files: wheels that fit a target (all with --all-files), sdists."""
        wanted = []
        for package in packages:
            targets = [t for t in self._targets if locked_marker_applies(package.marker, t)]
            if targets:
                wanted.append((package, targets))
                self._prefetch(package.name)
            else:
                self._progress.notice(f"{package.name} {package.version}: its marker excludes every target")
        for package, targets in wanted:
            page = await self._page(package.name)
            if page is None:
                continue
            for locked in package.files:
                if (locked.is_wheel and not self._all_files
                        and all(t.tag_rank(locked.filename) is None for t in targets)):
                    continue
                listed = page.file(locked.filename)
                key = f"{package.name} {locked.filename}"
                if listed is None:
                    self._fail(key, "locked file is not on the index")
                elif locked.sha256 and listed.hashes.get("sha256", locked.sha256) != locked.sha256:
                    self._fail(key, "the index's sha256 differs from the lock file's")
                else:
                    self._select(package.name, listed)

    # Requirements ----------------------------------------------------------------------------------

    async def add_requirements(self, requirements: Iterable[Requirement]) -> None:
        """Choose files for the requirements and, through PEP 658 metadata, their dependencies."""
        everywhere = range(len(self._targets))
        for requirement in requirements:
            if not self._enqueue(requirement, everywhere, ""):
                self._progress.notice(f"{requirement}: its marker excludes every target")
        while self._queue:
            requirement, index = self._queue.popleft()
            await self._visit(requirement, index)

    def _enqueue(self, requirement: Requirement, indexes: Iterable[int], extra: str) -> bool:
        hit = [i for i in indexes if marker_applies(requirement.marker, self._targets[i], extra)]
        for index in hit:
            self._queue.append((requirement, index))
        if hit:
            self._prefetch(normalize(requirement.name))
        return bool(hit)

    async def _visit(self, requirement: Requirement, index: int) -> None:
        name = normalize(requirement.name)
        need = self._needs.setdefault(name, _Need())
        need.specifiers.add(requirement.specifier)
        need.extras |= requirement.extras
        need.targets.add(index)
        page = await self._page(name)
        if page is None:
            return
        versions = self._versions.setdefault(name, group_versions(page))
        specifier = need.specifier(self._constraints.get(name, SpecifierSet()))
        version = self._pick(name, versions, specifier, [self._targets[i] for i in sorted(need.targets)])
        if version is None:
            return
        files = usable_files(versions[version], specifier)
        for target_index in sorted(need.targets):
            for extra in ("", *sorted(need.extras)):
                if (name, version, target_index, extra) not in self._expanded:
                    self._expanded.add((name, version, target_index, extra))
                    await self._expand(name, version, files, target_index, extra)

    def _pick(self, name: NormalizedName, versions: dict[Version, list[IndexFile]], specifier: SpecifierSet,
              targets: list[Target]) -> Version | None:
        current = self._chosen.get(name)
        all_files = self._all_files
        if current is not None and specifier.contains(current, prereleases=True) and all(
            choose_files(usable_files(versions[current], specifier), t, all_files) for t in targets
        ):
            return current
        picked = select_version(versions, specifier, targets, self._pre, all_files)
        if picked is None:
            where = ", ".join(t.name for t in targets)
            self._fail(name, f"no version matching '{specifier or 'any'}' has files for {where}")
        elif current is not None:
            self._progress.notice(f"{name}: {current} does not satisfy '{specifier}'; warming {picked} too")
        if picked is not None:
            self._chosen[name] = picked
        return picked

    async def _expand(self, name: NormalizedName, version: Version, files: list[IndexFile], index: int,
                      extra: str) -> None:
        chosen = choose_files(files, self._targets[index], self._all_files)
        for file in chosen:
            self._select(name, file)
        for requirement in await self._dependencies(name, version, [*chosen, *files]):
            self._enqueue(requirement, [index], extra)

    async def _dependencies(self, name: NormalizedName, version: Version, files: list[IndexFile]) -> list[Requirement]:
        """Requires-Dist from the PEP 658 metadata of one of the files (the chosen ones first);
        a failure of the run when no file offers it."""
        key = (name, version)
        if key not in self._metadata:
            self._metadata[key] = []
            source = next((f for f in files if f.core_metadata is not None), None)
            if source is None:  # the proxy offers metadata for every wheel: here, an sdist-only release
                self._fail(f"{name} {version}", "no wheel with core metadata (PEP 658), so its "
                           "dependencies could not be followed; warm them by name or from a lock file")
                return []
            try:
                raw = await self._client.metadata(source)
            except WarmError as exc:
                self._fail(f"{name} {version}", str(exc))
                return []
            found, bad = requires_dist(raw)
            for entry in bad:
                self._progress.notice(f"{name} {version}: invalid Requires-Dist {entry!r} ignored")
            self._metadata[key] = found
        return self._metadata[key]
