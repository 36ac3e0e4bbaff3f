"""Why a release is served, warned about or blocked: every reason, for ``/-/explain`` and the CLI.

A private release is always served (upstream data never hides it); its pinned dependencies
(``Requires-Dist`` with ``==``) are explained in turn, one level deep. An upstream release is
explained from the decision the policy component made for its page (the same one that filtered
the page), so the explanation and what installers see cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from proxy.core.errors import ProjectNotFound
from proxy.core.merge import Source
from proxy.core.names import normalize
from proxy.core.osv import Advisory
from proxy.core.policy import Decision, Reason, Release
from proxy.core.timestamps import iso_z
from proxy.repository.catalog import Catalog
from proxy.repository.policy import release_version, version_or_none


@dataclass(frozen=True, slots=True)
class Explanation:
    """The verdict on one release and every reason (``to_json`` is the endpoint's document)."""

    project: str
    version: str
    source: Source
    decision: Decision
    release: Release | None
    advisory_data: dict[str, Any] | None = None
    dependencies: tuple[Explanation, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        release = self.release
        return {
            "project": self.project, "version": self.version, "source": self.source.value,
            "action": self.decision.action, "would": self.decision.would, "dry_run": self.decision.dry_run,
            "reasons": [_reason(reason) for reason in self.decision.reasons],
            "release": {
                "uploaded": iso_z(release.uploaded) if release and release.uploaded else None,
                "first_seen": iso_z(release.first_seen) if release and release.first_seen else None,
                "status": release.status if release else None,
            },
            "advisory_data": self.advisory_data,
            "dependencies": [dependency.to_json() for dependency in self.dependencies],
        }


def _reason(reason: Reason) -> dict[str, Any]:
    exemption = reason.exempted_by
    return {
        "rule": reason.rule, "action": reason.action, "message": reason.message,
        "advisories": [_advisory(advisory) for advisory in reason.advisories],
        "exempted": {"project": exemption.project, "until": exemption.until.isoformat(),
                     "reason": exemption.reason} if exemption else None,
    }


def _advisory(advisory: Advisory) -> dict[str, Any]:
    return {"id": advisory.id, "aliases": list(advisory.aliases), "severity": advisory.severity.level,
            "score": advisory.severity.score, "url": advisory.url, "summary": advisory.summary}


class Explainer:
    """Explanations through the catalog. ``advisory_status`` describes the advisory data (source,
    age, records) or is None when no advisory rule is on."""

    def __init__(self, catalog: Catalog, advisory_status: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self._catalog = catalog
        self._advisory_status = advisory_status

    async def explain(self, project: str, version: str, *, follow: bool = True) -> Explanation:
        """The explanation for ``version`` of ``project`` (normalised). ProjectNotFound when the
        index serves no such project or release; upstream errors as for the project's page."""
        owner = await self._catalog.owner(project)
        status = self._advisory_status() if self._advisory_status is not None else None
        if owner is None:
            raise ProjectNotFound(f"No project named {project!r}.", project=project)
        if owner is self._catalog.private:
            stored = await self._catalog.private.project(project)
            info = stored.release(version) if stored is not None else None
            if info is None:
                raise ProjectNotFound(f"No version {version!r} of project {project!r}.", project=project)
            pinned = [await self._pinned(text) for text in info.requires_dist] if follow else []
            return Explanation(project, info.version, Source.PRIVATE, Decision(), Release(project, info.version),
                               status, tuple(item for item in pinned if item is not None))
        policy = self._catalog.policy
        if policy is None:  # no rule is on: whatever upstream lists is served
            page = await owner.project_page(project)
            wanted = version_or_none(version)
            if wanted is None or not any(release_version(project, f.filename) == wanted for f in page.build().files):
                raise ProjectNotFound(f"No version {version!r} of project {project!r}.", project=project)
            return Explanation(project, version, Source.UPSTREAM, Decision(), Release(project, version), status)
        decided = await policy.decided(await policy.inner.project_page(project))
        decision, release = decided.of(version)
        if decision is None or release is None:
            raise ProjectNotFound(f"No version {version!r} of project {project!r} upstream.", project=project)
        return Explanation(project, release.version, Source.UPSTREAM, decision, release, status)

    async def _pinned(self, text: str) -> Explanation | None:
        """A dependency pinned with ``==`` (no wildcard), explained; None for any other."""
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return None
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or specs[0].version.endswith(".*"):
            return None
        try:
            return await self.explain(normalize(requirement.name), specs[0].version, follow=False)
        except ProjectNotFound:
            missing = Reason("missing", "block", "this index serves no such release: installing it fails")
            return Explanation(normalize(requirement.name), specs[0].version, Source.NONE, Decision((missing,)), None)
