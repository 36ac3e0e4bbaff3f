"""Supply-chain policy: which upstream releases are served, warned about or blocked, and why. Pure.

Each rule is ``off``, ``warn`` or ``block``:
- ``vulnerabilities``: known advisories (OSV) at or above ``min_severity``;
- ``malicious``: OSV ``MAL-`` records, whatever the severity floor;
- ``cooldown``: a release younger than ``cooldown`` seconds, by upstream's upload-time (PEP 700)
  or, where upstream gives none, by when this server first saw it;
- ``deny`` / ``allow_only``: PEP 508 requirement strings on normalised names;
- ``quarantined`` / ``archived`` / ``deprecated``: PEP 792 project status from upstream.
Exemptions (a project pattern, the rules, an expiry date, a reason) lift rules for a project
until they expire. With ``dry_run`` every decision is computed and reported but nothing is hidden.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from proxy.core.names import normalize
from proxy.core.osv import LEVELS, Advisory

MODES = ("off", "warn", "block")
FLOORS = ("any", *LEVELS[1:])  # any | low | moderate | high | critical
RULES = ("vulnerabilities", "malicious", "cooldown", "deny", "allow_only", "quarantined", "archived", "deprecated")


@dataclass(frozen=True, slots=True)
class Exemption:
    """``project`` (an fnmatch pattern on normalised names) is exempt from ``rules`` (all when
    empty) until the end of ``until`` (UTC), for ``reason``."""

    project: str
    until: date
    reason: str
    rules: tuple[str, ...] = ()

    def covers(self, project: str, rule: str, today: date) -> bool:
        return (today <= self.until and fnmatch.fnmatchcase(project, self.project)
                and (not self.rules or rule in self.rules))


@dataclass(frozen=True, slots=True)
class Rules:
    """The configured policy (``[policy]``); the defaults serve everything."""

    vulnerabilities: str = "off"
    min_severity: str = "any"
    malicious: str = "off"
    cooldown: float = 0.0  # seconds; 0: off
    cooldown_exempt: tuple[str, ...] = ()  # fnmatch patterns on normalised names
    deny: tuple[str, ...] = ()  # PEP 508 requirement strings
    allow_only: tuple[str, ...] = ()
    quarantined: str = "off"
    archived: str = "off"
    deprecated: str = "off"
    exemptions: tuple[Exemption, ...] = ()
    dry_run: bool = False
    _deny: tuple[Requirement, ...] = field(default=(), compare=False, repr=False)
    _allow: tuple[Requirement, ...] = field(default=(), compare=False, repr=False)
    # Changes whenever the rules do: part of a rendered page's version (computed once: it is
    # read on every page request).
    digest: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_deny", tuple(Requirement(text) for text in self.deny))
        object.__setattr__(self, "_allow", tuple(Requirement(text) for text in self.allow_only))
        object.__setattr__(self, "digest", hashlib.sha256(repr(self).encode()).hexdigest()[:16])

    @property
    def active(self) -> bool:
        """Whether any rule can hide or mark an upstream release."""
        modes = (self.vulnerabilities, self.malicious, self.quarantined, self.archived, self.deprecated)
        return any(mode != "off" for mode in modes) or bool(self.cooldown or self.deny or self.allow_only)


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule's finding about a release: ``action`` is ``warn`` or ``block``."""

    rule: str
    action: str
    message: str
    advisories: tuple[Advisory, ...] = ()
    exempted_by: Exemption | None = None  # the finding stands, lifted by this exemption


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy does with one release, and every reason."""

    reasons: tuple[Reason, ...] = ()
    dry_run: bool = False

    @property
    def applied(self) -> tuple[Reason, ...]:
        return tuple(reason for reason in self.reasons if reason.exempted_by is None)

    @property
    def would(self) -> str:
        """What the rules say, dry run or not: ``serve``, ``warn`` or ``block``."""
        actions = {reason.action for reason in self.applied}
        return "block" if "block" in actions else "warn" if actions else "serve"

    @property
    def action(self) -> str:
        """What is done: in a dry run a block is only a warning."""
        return "warn" if self.dry_run and self.would == "block" else self.would

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def summary(self) -> str:
        """One line for a 403 body, a header or a log: the rules that apply and their messages."""
        return "; ".join(f"{reason.rule}: {reason.message}" for reason in self.applied)


@dataclass(frozen=True, slots=True)
class Release:
    """What the policy knows of one upstream release."""

    project: str  # normalised
    version: str
    uploaded: datetime | None = None  # the earliest upload-time of its files (PEP 700)
    first_seen: datetime | None = None  # when this server first listed it
    status: str | None = None  # the project's PEP 792 status


def decide(rules: Rules, release: Release, advisories: Iterable[Advisory], now: datetime) -> Decision:
    """Every rule's finding about ``release``; ``advisories`` are those affecting it (OSV)."""
    found = [*_advisory_reasons(rules, tuple(advisories)), *_cooldown(rules, release, now),
             *_lists(rules, release), *_status(rules, release)]
    today = now.astimezone(timezone.utc).date()
    reasons = []
    for reason in found:
        exemption = next((e for e in rules.exemptions if e.covers(release.project, reason.rule, today)), None)
        reasons.append(Reason(reason.rule, reason.action, reason.message, reason.advisories, exemption))
    return Decision(tuple(reasons), rules.dry_run)


def _advisory_reasons(rules: Rules, advisories: tuple[Advisory, ...]) -> list[Reason]:
    reasons = []
    malicious = tuple(a for a in advisories if a.malicious)
    if malicious and rules.malicious != "off":
        reasons.append(Reason("malicious", rules.malicious, "known malicious: " + _ids(malicious), malicious))
    floor = FLOORS.index(rules.min_severity) if rules.min_severity in FLOORS else 0
    severe = tuple(a for a in advisories if not a.malicious and (floor == 0 or a.severity.rank >= floor))
    if severe and rules.vulnerabilities != "off":
        reasons.append(Reason("vulnerabilities", rules.vulnerabilities,
                              f"known vulnerabilities (severity {rules.min_severity} or above): {_ids(severe)}",
                              severe))
    return reasons


def _ids(advisories: tuple[Advisory, ...]) -> str:
    return ", ".join(f"{a.id} ({a.severity.level}{f' {a.severity.score:g}' if a.severity.score is not None else ''})"
                     for a in advisories)


def _cooldown(rules: Rules, release: Release, now: datetime) -> list[Reason]:
    if not rules.cooldown or any(fnmatch.fnmatchcase(release.project, p) for p in rules.cooldown_exempt):
        return []
    moment, basis = (release.uploaded, "uploaded") if release.uploaded else (release.first_seen, "first seen here")
    if moment is None:
        return []
    age = (now - moment).total_seconds()
    if age >= rules.cooldown:
        return []
    return [Reason("cooldown", "block", f"{basis} {_span(age)} ago, younger than the cooldown of "
                   f"{_span(rules.cooldown)}; served from {_iso(moment.timestamp() + rules.cooldown)}")]


def cooldown_ends(rules: Rules, release: Release) -> float | None:
    """When (seconds since the epoch) ``release`` leaves its cooldown; None when it has none."""
    if not rules.cooldown or any(fnmatch.fnmatchcase(release.project, p) for p in rules.cooldown_exempt):
        return None
    moment = release.uploaded or release.first_seen
    return moment.timestamp() + rules.cooldown if moment else None


def _lists(rules: Rules, release: Release) -> list[Reason]:
    try:
        version = Version(release.version)
    except InvalidVersion:
        version = None
    reasons = []
    for requirement in rules._deny:
        if _matches(requirement, release.project, version):
            reasons.append(Reason("deny", "block", f"denied by {str(requirement)!r}"))
    if rules._allow and not any(_matches(r, release.project, version) for r in rules._allow):
        reasons.append(Reason("allow_only", "block", "not on the allow-only list"))
    return reasons


def _matches(requirement: Requirement, project: str, version: Version | None) -> bool:
    if normalize(requirement.name) != project:
        return False
    if not requirement.specifier:
        return True
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def _status(rules: Rules, release: Release) -> list[Reason]:
    status = release.status
    mode = {"quarantined": rules.quarantined, "archived": rules.archived, "deprecated": rules.deprecated}.get(
        status or "", "off")
    if mode == "off":
        return []
    return [Reason(str(status), mode, f"the project is {status} upstream (PEP 792)")]


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} seconds"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
