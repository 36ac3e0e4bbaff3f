"""The catalog: every component composed into the one repository that web, JSON API and UI use.

    Shadowing(private, valid_names(reserved(policy(upstream))))

A private name shadows upstream entirely (the first component that claims a name answers for it
alone); reserved and invalid names never reach upstream; the supply-chain policy filters what
upstream serves (never private releases). Upstream is absent when switched off, the policy when
no rule is on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import structlog

from proxy.core.errors import DatabaseUnavailable, ProjectNotFound, UploadRejected, UpstreamError
from proxy.core.osv import AdvisoryIndex
from proxy.repository import rules
from proxy.repository.base import PrivateComponent, ProjectList, ProjectPage, Repository, Resource
from proxy.repository.policy import Decided, PolicyFilter
from proxy.repository.shadowing import Shadowing
from proxy.repository.upstream import UpstreamRepository, Upstreams

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Findings:
    """What the policy found about an upstream project: its page as upstream lists it (blocked
    releases included), the decision about each release, and the advisory data (None: none loaded)."""

    page: ProjectPage
    decided: Decided
    advisories: AdvisoryIndex | None


class Catalog:
    """The composed Repository (``proxy.repository.base``), with the parts operations read:
    ``private`` (the private component) and ``upstreams`` (the upstream's parts, or None)."""

    def __init__(self, private: PrivateComponent, upstreams: Upstreams | None, reserved: tuple[str, ...],
                 executor: Executor, policy: Callable[[Repository], PolicyFilter] | None = None) -> None:
        self.private = private
        self.upstreams = upstreams
        self._upstream = UpstreamRepository(upstreams) if upstreams is not None else None
        self.policy = policy(self._upstream) if policy is not None and self._upstream is not None else None
        filtered: Repository | None = self.policy or self._upstream
        # What may be asked of upstream: the public half of the chain, on its own.
        self.public: Repository | None = (
            rules.valid_names(rules.reserved(filtered, reserved)) if filtered is not None else None
        )
        # Whether upstream serves a name is asked of it unfiltered: a name the policy hides is
        # still public, and making it private still needs what claim_public_names asks.
        self._upstream_names: Repository | None = (
            rules.valid_names(rules.reserved(self._upstream, reserved)) if self._upstream is not None else None
        )
        self._chain = Shadowing([private] + ([self.public] if self.public is not None else []), executor)

    async def claims(self, name: str) -> bool:
        return await self._chain.claims(name)

    async def owner(self, name: str) -> Repository | None:
        """The component answering for ``name``: ``private``, the public chain, or None."""
        return await self._chain.owner(name)

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        """The page of ``name`` (normalised) from the one component that answers for it."""
        return await self._chain.project_page(name, cached_only=cached_only)

    async def project_list(self) -> ProjectList:
        """Private projects, plus upstream's list when configured, merged."""
        return await self._chain.project_list()

    async def resource(self, project: str, filename: str) -> Resource:
        """A file of ``project``: a private project's own, else upstream's (cached or being fetched)."""
        return await self._chain.resource(project, filename)

    async def findings(self, name: str) -> Findings | None:
        """The policy's findings about upstream project ``name`` (normalised), from the page held
        here (upstream is never asked); None when no rule is on, when the name is not upstream's
        to serve (private projects are never hidden) or when its page is not cached."""
        if self.policy is None or self.public is None or await self.owner(name) is not self.public:
            return None
        try:
            page = await self.policy.inner.project_page(name, cached_only=True)
        except ProjectNotFound:
            return None
        return Findings(page, await self.policy.decided(page), await self.policy.advisory_index())

    async def served_upstream(self, name: str) -> bool:
        """Whether upstream serves a project ``name`` (read-only): a reserved name, or any name
        with upstream off, is served by nobody. UploadRejected (503) when upstream cannot say:
        a name it serves may only be made private with an explicit grant."""
        try:
            if self._upstream_names is None or not await self._upstream_names.claims(name):
                return False
            await self._upstream_names.project_page(name)
        except ProjectNotFound:
            return False
        except UpstreamError as exc:
            raise UploadRejected(
                f"Cannot tell whether upstream serves a project named {name!r} ({exc}), and a name that it "
                "serves may only be made private with an explicit grant; try again later.", status=503,
            ) from None
        return True

    async def is_private(self, name: str) -> bool:
        """Whether ``name`` (normalised) is a private project here."""
        return await self.private.claims(name)

    async def private_changed(self) -> None:
        """After a write through this process: the private component answers with it at once.
        Best effort: the write is committed, and the component's own follower takes it in later
        should the database fail just now."""
        try:
            await self.private.refresh()
        except DatabaseUnavailable as exc:
            log.warning("private_refresh_failed", error=str(exc))

    def pinned(self, project: str, filename: str) -> contextlib.AbstractContextManager[None]:
        """Hold while serving a file: cache eviction leaves it alone meanwhile."""
        return self._upstream.pinned(project, filename) if self._upstream is not None else contextlib.nullcontext()

    async def close(self) -> None:
        """Wait for work still running (at shutdown)."""
        await self._chain.close()
