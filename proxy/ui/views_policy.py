"""What the supply-chain policy does with each upstream release, as the project page shows it.

Every release of an upstream project (when a policy is on) is *served*, *warned* (served, with
the reasons) or *hidden* (blocked: installers do not see it, its files answer 403), with every
finding, links to the advisories and to ``/-/explain/<project>/<version>``. Private projects
are never hidden by upstream data and get no marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote

from proxy.core.policy import Decision, Reason
from proxy.repository.policy import Decided
from proxy.ui.views import Site
from proxy.ui.views_releases import OTHER_FILES, Release

SERVED, WARNED, HIDDEN = "served", "warned", "hidden"
UNIDENTIFIED = ("hidden: these files name no release, so the policy cannot vet them "
                "(and installers cannot use them either)")


@dataclass(frozen=True, slots=True)
class AdvisoryLink:
    id: str
    url: str
    severity: str  # "high", or "high 7.5" with a CVSS score
    aliases: str  # "CVE-..., GHSA-..."


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    action: str  # "warn" or "block"
    message: str
    advisories: tuple[AdvisoryLink, ...]
    exempted: str | None  # "until 2099-12-31: patched in our fork" when an exemption lifts it


@dataclass(frozen=True, slots=True)
class PolicyMark:
    state: str  # SERVED, WARNED or HIDDEN
    note: str  # one line saying what is done
    findings: tuple[Finding, ...]
    explain_url: str | None  # None for files that name no release


def _finding(reason: Reason) -> Finding:
    links = tuple(AdvisoryLink(a.id, a.url, a.severity.level + (f" {a.severity.score:g}" if a.severity.score
                                                                 is not None else ""), ", ".join(a.aliases))
                  for a in reason.advisories)
    lifted = reason.exempted_by
    exempted = f"until {lifted.until.isoformat()}: {lifted.reason}" if lifted is not None else None
    return Finding(reason.rule, reason.action, reason.message, links, exempted)


def policy_mark(site: Site, project: str, version: str, decision: Decision) -> PolicyMark:
    """The mark of one release from the policy's ``decision`` about it."""
    if decision.blocked:
        state, note = HIDDEN, "hidden: installers do not see this release, and its files answer 403"
    elif decision.action == "warn":
        state = WARNED
        note = ("served: the policy is a dry run, which would hide it" if decision.would == "block"
                else "served, with a warning")
    else:
        state, note = SERVED, "served"
    explain = site.link(f"/-/explain/{quote(project)}/{quote(version)}")
    return PolicyMark(state, note, tuple(_finding(r) for r in decision.reasons), explain)


def with_policy(site: Site, project: str, releases: Sequence[Release], decided: Decided) -> tuple[Release, ...]:
    """``releases`` (``views_releases.cached_releases``) each with its mark. Files naming no
    release are hidden while a rule blocks (the policy component's ``hide_unknown``)."""
    marked = []
    for release in releases:
        decision = decided.of(release.version)[0] if release.version != OTHER_FILES else None
        if decision is not None:
            mark: PolicyMark | None = policy_mark(site, project, release.version, decision)
        else:
            mark = PolicyMark(HIDDEN, UNIDENTIFIED, (), None) if decided.hide_unknown else None
        marked.append(replace(release, policy=mark))
    return tuple(marked)
