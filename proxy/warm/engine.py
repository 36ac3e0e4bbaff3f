"""The ``warm`` engine: choose the files requirements or lock files need (``proxy.warm.resolver``),
then HEAD each one through a running proxy so that it fetches and caches them (no bytes pass
through this client), counting what happened."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from packaging.requirements import Requirement

from proxy.core.indexpage import IndexFile
from proxy.warm.client import FileOutcome, ProxyClient
from proxy.warm.lockfiles import LockedPackage
from proxy.warm.resolver import Notices, Resolver
from proxy.warm.targets import Target

DEFAULT_SERVER = "http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class WarmOptions:
    targets: tuple[Target, ...]
    server: str = DEFAULT_SERVER
    all_files: bool = False
    pre: bool = False
    concurrency: int = 8


@dataclass(frozen=True, slots=True)
class WarmInputs:
    requirements: tuple[Requirement, ...] = ()
    constraints: tuple[Requirement, ...] = ()
    locked: tuple[LockedPackage, ...] = ()


@dataclass(slots=True)
class Summary:
    """What a run did; ``failed`` counts failed files and failed projects alike."""

    projects: int = 0
    files: int = 0
    downloaded: int = 0  # bytes, from the Content-Length of misses
    fetched: int = 0
    cached: int = 0
    failed: int = 0
    done: int = 0

    def record(self, outcome: FileOutcome) -> None:
        self.done += 1
        if outcome.status == "fetched":
            self.fetched += 1
            self.downloaded += outcome.size
        elif outcome.status == "cached":
            self.cached += 1
        else:
            self.failed += 1

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0

    def line(self) -> str:
        return (f"warm: {self.projects} projects, {self.files} files, {megabytes(self.downloaded)} MB downloaded, "
                f"{self.cached} already cached, {self.failed} failed")


def megabytes(size: int) -> str:
    """Decimal megabytes, as short as is still honest: 0, 0.004, 0.5, 12.3, 1234."""
    mb = size / 1_000_000
    if size == 0:
        return "0"
    return f"{mb:.0f}" if mb >= 100 else f"{mb:.1f}" if mb >= 0.1 else f"{mb:.3f}"


class Progress(Notices, Protocol):
    """The resolver's notices, and each file's outcome as the run goes."""

    def file_done(self, outcome: FileOutcome, summary: Summary) -> None: ...


async def run_warm(inputs: WarmInputs, options: WarmOptions, progress: Progress) -> Summary:
    """Warm the proxy at ``options.server`` for ``inputs``; the summary tells what happened."""
    async with aiohttp.ClientSession() as session:
        return await warm(ProxyClient(session, options.server, options.concurrency), inputs, options, progress)


async def warm(client: ProxyClient, inputs: WarmInputs, options: WarmOptions, progress: Progress) -> Summary:
    resolver = Resolver(client, options.targets, progress, inputs.constraints,
                        all_files=options.all_files, pre=options.pre)
    try:
        await resolver.add_locked(inputs.locked)
        await resolver.add_requirements(inputs.requirements)
    finally:
        resolver.close()
    summary = Summary(projects=len({name for name, _ in resolver.selected.values()}),
                      files=len(resolver.selected), failed=len(resolver.failures))

    async def one(file: IndexFile) -> None:
        outcome = await client.head(file)
        summary.record(outcome)
        progress.file_done(outcome, summary)

    await asyncio.gather(*(one(file) for _, file in resolver.selected.values()))
    return summary


