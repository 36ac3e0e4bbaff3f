"""Advisories in the OSV format (https://ossf.github.io/osv-schema/), for PyPI packages: pure.

A record names the packages it affects (``affected[].package`` with ecosystem ``PyPI``), each
with ranges of events (``introduced``, ``fixed``, ``last_affected``, ``limit``) compared with
PEP 440 ordering, and/or an explicit list of ``versions``. ``withdrawn`` records affect nothing.
Severity comes from a CVSS v4 or v3 vector (scored with the ``cvss`` library, FIRST's
algorithms) where one is given, else from the GHSA label in ``database_specific.severity``.
Records whose id starts with ``MAL-`` (the OpenSSF malicious-packages feed) are *malicious*:
a policy blocks them whatever its severity floor.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from proxy.core.names import normalize
from proxy.core.timestamps import parse_iso

LEVELS = ("unknown", "low", "moderate", "high", "critical")
_GHSA_LABELS = {"low": "low", "moderate": "moderate", "medium": "moderate", "high": "high", "critical": "critical"}


class InvalidAdvisory(ValueError):
    """A record that is not OSV (no id, a malformed field): skipped with a warning when loading."""


@dataclass(frozen=True, slots=True)
class Severity:
    """``level`` one of LEVELS; ``score`` the CVSS base score (0.0-10.0) when a vector was given."""

    level: str = "unknown"
    score: float | None = None
    vector: str | None = None

    @property
    def rank(self) -> int:
        """Position in LEVELS: compare severities by this."""
        return LEVELS.index(self.level)


def level_of_score(score: float) -> str:
    """CVSS v3/v4 qualitative rating: 0.1-3.9 low, 4.0-6.9 moderate (medium), 7.0-8.9 high,
    9.0-10.0 critical (0.0, none, counts as low: it is still a published advisory)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "moderate"
    return "low"


def severity_of(entries: Any, database_specific: Any) -> Severity:
    """The most precise severity given: a CVSS v4 vector, else v3, else the GHSA label."""
    # Imported here: only a loaded advisory feed scores vectors, and cvss (with decimal) costs every
    # server process ~0.7 MiB resident, policy on or off (issue 16).
    from cvss import CVSS3, CVSS4

    by_type = {entry.get("type"): entry.get("score") for entry in entries or () if isinstance(entry, dict)}
    for kind, scorer in (("CVSS_V4", CVSS4), ("CVSS_V3", CVSS3)):
        vector = by_type.get(kind)
        if isinstance(vector, str):
            with contextlib.suppress(Exception):  # the library raises its own errors for bad vectors
                score = float(scorer(vector).base_score)
                return Severity(level_of_score(score), score, vector)
    label = database_specific.get("severity") if isinstance(database_specific, dict) else None
    return Severity(_GHSA_LABELS.get(str(label).lower(), "unknown"))


@dataclass(frozen=True, slots=True)
class Advisory:
    """One OSV record as a policy needs it."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: Severity
    published: datetime | None = None
    withdrawn: datetime | None = None

    @property
    def malicious(self) -> bool:
        return self.id.startswith("MAL-")

    @property
    def url(self) -> str:
        return f"https://osv.dev/vulnerability/{self.id}"

    @property
    def names(self) -> frozenset[str]:
        """Its id and aliases (CVE, GHSA, PYSEC): two records sharing one are the same advisory."""
        return frozenset((self.id, *self.aliases))


# An event: (kind, version) with kind "introduced", "fixed", "last_affected" or "limit";
# version None for "introduced: 0" (from the first release).
Event = tuple[str, Version | None]
_KINDS = ("introduced", "fixed", "last_affected", "limit")


@dataclass(frozen=True, slots=True)
class Affected:
    """What one record says of one package: ranges of events and explicit versions, these in
    their canonical form (``packaging.utils.canonicalize_version``: equal for PEP 440-equal
    versions, "2.0.0" and "2.0" both "2"), as a sorted tuple of shared strings: the export
    lists millions of versions, and a Version object costs ten times a string, a set's slots
    four times a tuple's (memory: issue 15 asks under 200 MB for the whole export)."""

    advisory: Advisory
    ranges: tuple[tuple[Event, ...], ...]
    versions: tuple[str, ...]

    def affects(self, version: Version) -> bool:
        """OSV's evaluation: listed explicitly, or inside a range (events in version order:
        introduced opens, fixed closes at it, last_affected closes after it, limit caps)."""
        return (bool(self.versions) and _listed(canonicalize_version(version), self.versions)) or any(
            _in_range(version, events) for events in self.ranges)

    @property
    def fixed_in(self) -> tuple[str, ...]:
        """The versions its ranges' ``fixed`` events name, in PEP 440 order (PyPI's ``fixed_in``)."""
        fixed = {at for events in self.ranges for kind, at in events if kind == "fixed" and at is not None}
        return tuple(str(version) for version in sorted(fixed))


def _listed(canonical: str, versions: tuple[str, ...]) -> bool:
    at = bisect.bisect_left(versions, canonical)
    return at < len(versions) and versions[at] == canonical


def _in_range(version: Version, events: tuple[Event, ...]) -> bool:
    affected = False
    for kind, at in events:
        if kind == "introduced" and (at is None or version >= at):
            affected = True
        elif kind == "fixed" and at is not None and version >= at:
            affected = False
        elif kind == "last_affected" and at is not None and version > at:
            affected = False
        elif kind == "limit" and at is not None and version >= at:
            return False
    return affected


def _version(text: Any) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


class Interner:
    """Equal values shared among the records of one load, each parsed once: versions and
    severities repeat across records (the PYSEC and GHSA copies of an advisory list the same
    versions), and a parsed Version or a scored CVSS vector costs far more than a lookup.
    One per load (not thread-safe); it holds every distinct value until dropped."""

    def __init__(self) -> None:
        self._versions: dict[str, Version | None] = {}
        self._canonical: dict[str, str | None] = {}
        self._severities: dict[tuple[str, ...], Severity] = {}

    def version(self, text: Any) -> Version | None:
        """The Version of ``text`` (the same object for the same text); None when not PEP 440."""
        key = str(text)
        if key not in self._versions:
            self._versions[key] = _version(key)
        return self._versions[key]

    def canonical(self, text: Any) -> str | None:
        """``text``'s canonical version string, one shared object per value; None when not PEP 440."""
        key = str(text)
        if key not in self._canonical:
            parsed = self.version(key)
            value = None if parsed is None else canonicalize_version(parsed)
            self._canonical[key] = None if value is None else self._canonical.setdefault(f"={value}", value)
        return self._canonical[key]

    def severity(self, entries: Any, database_specific: Any) -> Severity:
        """``severity_of``, scored once per distinct vectors and label."""
        label = database_specific.get("severity") if isinstance(database_specific, dict) else None
        key = (str(label), *(str(sorted(e.items())) if isinstance(e, dict) else str(e) for e in entries or ()))
        if key not in self._severities:
            self._severities[key] = severity_of(entries, database_specific)
        return self._severities[key]


def _events(raw: Any, interner: Interner) -> tuple[Event, ...] | None:
    """A range's events sorted by version (``introduced: 0`` first); None for a range that
    cannot be read with PEP 440 (a GIT range, a malformed version)."""
    if not isinstance(raw, dict) or raw.get("type") not in ("ECOSYSTEM", "SEMVER"):
        return None
    events: list[Event] = []
    for event in raw.get("events") or ():
        kind = next((k for k in _KINDS if isinstance(event, dict) and k in event), None)
        if kind is None:
            continue
        text = event[kind]
        at = None if kind == "introduced" and str(text) == "0" else interner.version(text)
        if at is None and not (kind == "introduced" and str(text) == "0"):
            return None
        events.append((kind, at))
    order = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}
    return tuple(sorted(events, key=lambda e: (e[1] is not None, e[1] or Version("0"), order[e[0]])))


def parse_record(data: Any, interner: Interner | None = None) -> list[tuple[str, Affected]]:
    """The PyPI packages (normalised names) a record affects, each with its Affected; [] for a
    withdrawn record or one about other ecosystems. InvalidAdvisory when it is not OSV.
    ``interner``: share one among the records of a load (memory and time; see Interner)."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise InvalidAdvisory("an OSV record needs a string id")
    if data.get("withdrawn"):
        return []
    interner = interner or Interner()
    record_severity = interner.severity(data.get("severity"), data.get("database_specific"))
    found: list[tuple[str, Affected]] = []
    for entry in data.get("affected") or ():
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict) or package.get("ecosystem") != "PyPI" or not package.get("name"):
            continue
        severity = record_severity
        if entry.get("severity"):
            severity = interner.severity(entry.get("severity"), entry.get("database_specific"))
        advisory = Advisory(data["id"], tuple(str(a) for a in data.get("aliases") or ()),
                            str(data.get("summary") or data.get("details") or "")[:300], severity,
                            _moment(data.get("published")))
        ranges = tuple(r for r in (_events(raw, interner) for raw in entry.get("ranges") or ()) if r)
        versions = tuple(sorted({v for v in (interner.canonical(t) for t in entry.get("versions") or ()) if v}))
        found.append((normalize(str(package["name"])), Affected(advisory, ranges, versions)))
    return found


def _moment(text: Any) -> datetime | None:
    try:
        return parse_iso(str(text)) if text else None
    except ValueError:
        return None


class AdvisoryIndex:
    """Advisories by normalised project name. ``version`` names the data (changes when it does)."""

    def __init__(self, by_project: dict[str, list[Affected]], version: str, fetched_at: float | None = None) -> None:
        self._by_project = by_project
        self.version = version
        self.fetched_at = fetched_at

    @classmethod
    def from_records(cls, records: Iterable[Any], version: str, fetched_at: float | None = None) -> AdvisoryIndex:
        """Index ``records`` (parsed JSON objects); invalid ones are skipped (``parse_record``)."""
        by_project: dict[str, list[Affected]] = {}
        interner = Interner()
        for record in records:
            with contextlib.suppress(InvalidAdvisory):
                for name, affected in parse_record(record, interner):
                    by_project.setdefault(name, []).append(affected)
        return cls(by_project, version, fetched_at)

    def __len__(self) -> int:
        return sum(len(items) for items in self._by_project.values())

    def has_project(self, project: str) -> bool:
        return project in self._by_project

    def for_release(self, project: str, version: str) -> tuple[Advisory, ...]:
        """Advisories affecting ``version`` of ``project`` (normalised), one per advisory (records
        that share an id or alias count once, the first by id kept), sorted by id."""
        return tuple(affected.advisory for affected in self.affecting(project, version))

    def affecting(self, project: str, version: str) -> tuple[Affected, ...]:
        """As ``for_release``, with what each record says of the package (its ranges)."""
        entries = self._by_project.get(project)
        parsed = _version(version)
        if not entries or parsed is None:
            return ()
        found: list[Affected] = []
        seen: set[str] = set()
        for affected in sorted(entries, key=lambda a: a.advisory.id):
            if affected.affects(parsed) and not (affected.advisory.names & seen):
                found.append(affected)
                seen |= affected.advisory.names
        return tuple(found)
