"""OSV records evaluated with PEP 440 semantics (issue 15; OSV schema 1.6: affected ranges, events,
versions, withdrawn, aliases, severity)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.core.osv import AdvisoryIndex, InvalidAdvisory, Severity, parse_record, severity_of

CVSS3_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
CVSS3_MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"  # 4.2
CVSS4_CRITICAL = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"  # 9.3


def record(id: str = "PYSEC-2018-28", name: str = "requests", ranges: list[dict[str, Any]] | None = None,
           versions: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.6.0", "id": id, "modified": "2024-01-01T00:00:00Z",
        "published": "2018-06-01T00:00:00Z", "summary": "a bug", **extra,
        "affected": [{"package": {"ecosystem": "PyPI", "name": name, "purl": f"pkg:pypi/{name}"},
                      "ranges": ranges if ranges is not None else [], "versions": versions or []}],
    }


def ecosystem(*events: dict[str, str]) -> dict[str, Any]:
    return {"type": "ECOSYSTEM", "events": list(events)}


def affected_versions(data: dict[str, Any], candidates: list[str]) -> list[str]:
    index = AdvisoryIndex.from_records([data], "v1")
    return [v for v in candidates if index.for_release("requests", v)]


CANDIDATES = ["0.1", "1.0", "1.2", "1.5", "1.9", "2.0", "2.0.1", "2.5", "3.0rc1", "3.0"]


@pytest.mark.parametrize(("events", "expected"), [
    # introduced 0 .. fixed
    ([{"introduced": "0"}, {"fixed": "1.5"}], ["0.1", "1.0", "1.2"]),
    # several ranges in one list of events, out of order in the record
    ([{"fixed": "2.5"}, {"introduced": "2.0"}, {"introduced": "1.0"}, {"fixed": "1.5"}],
     ["1.0", "1.2", "2.0", "2.0.1"]),
    # last_affected closes after the version
    ([{"introduced": "1.2"}, {"last_affected": "2.0"}], ["1.2", "1.5", "1.9", "2.0"]),
    # introduced without an end: every later release, pre-releases included
    ([{"introduced": "2.0.1"}], ["2.0.1", "2.5", "3.0rc1", "3.0"]),
    # limit caps the range
    ([{"introduced": "0"}, {"limit": "1.2"}], ["0.1", "1.0"]),
])
def test_ecosystem_ranges_follow_pep_440_order(events, expected) -> None:
    assert affected_versions(record(ranges=[ecosystem(*events)]), CANDIDATES) == expected


def test_explicit_versions_match_by_pep_440_equality() -> None:
    assert affected_versions(record(versions=["1.0", "2.0.0"]), ["1.0", "1.0.0", "2.0", "2.0.1"]) == \
        ["1.0", "1.0.0", "2.0"]


def test_a_range_that_is_not_pep_440_is_ignored_but_explicit_versions_still_count() -> None:
    data = record(ranges=[{"type": "GIT", "repo": "https://x", "events": [{"introduced": "abc123"}]},
                          ecosystem({"introduced": "not a version"})], versions=["1.0"])
    assert affected_versions(data, CANDIDATES) == ["1.0"]


def test_a_withdrawn_record_affects_nothing() -> None:
    data = record(ranges=[ecosystem({"introduced": "0"})], withdrawn="2019-01-01T00:00:00Z")
    assert affected_versions(data, CANDIDATES) == []


def test_records_sharing_an_alias_count_once() -> None:
    one = record("GHSA-x84v-xcm2-53pg", ranges=[ecosystem({"introduced": "0"}, {"fixed": "2.20"})],
                 aliases=["CVE-2018-18074"])
    two = record("PYSEC-2018-28", ranges=[ecosystem({"introduced": "0"}, {"fixed": "2.20"})],
                 aliases=["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"])
    found = AdvisoryIndex.from_records([two, one], "v1").for_release("requests", "2.19.0")
    assert [a.id for a in found] == ["GHSA-x84v-xcm2-53pg"]
    assert found[0].url == "https://osv.dev/vulnerability/GHSA-x84v-xcm2-53pg"


def test_package_names_are_normalised_and_other_ecosystems_ignored() -> None:
    data = record(name="Django_Rest.Framework", ranges=[ecosystem({"introduced": "0"})])
    data["affected"].append({"package": {"ecosystem": "npm", "name": "requests"},
                             "ranges": [ecosystem({"introduced": "0"})]})
    index = AdvisoryIndex.from_records([data], "v1")
    assert index.for_release("django-rest-framework", "3.0") and not index.for_release("requests", "1.0")


@pytest.mark.parametrize(("entries", "specific", "expected"), [
    ([{"type": "CVSS_V3", "score": CVSS3_CRITICAL}], None, Severity("critical", 9.8, CVSS3_CRITICAL)),
    ([{"type": "CVSS_V3", "score": CVSS3_MEDIUM}], {"severity": "HIGH"}, Severity("moderate", 4.2, CVSS3_MEDIUM)),
    ([{"type": "CVSS_V3", "score": CVSS3_MEDIUM}, {"type": "CVSS_V4", "score": CVSS4_CRITICAL}], None,
     Severity("critical", 9.3, CVSS4_CRITICAL)),
    ([], {"severity": "MODERATE"}, Severity("moderate")),
    ([{"type": "CVSS_V3", "score": "CVSS:3.1/garbage"}], {"severity": "LOW"}, Severity("low")),
    ([], None, Severity("unknown")),
])
def test_severity_from_cvss_v4_then_v3_then_the_ghsa_label(entries, specific, expected) -> None:
    assert severity_of(entries, specific) == expected


def test_a_packages_own_severity_wins_over_the_records() -> None:
    data = record(ranges=[ecosystem({"introduced": "0"})], severity=[{"type": "CVSS_V3", "score": CVSS3_MEDIUM}])
    data["affected"][0]["severity"] = [{"type": "CVSS_V3", "score": CVSS3_CRITICAL}]
    [(_, affected)] = parse_record(data)
    assert affected.advisory.severity.level == "critical"


def test_mal_records_are_malicious() -> None:
    [(name, affected)] = parse_record(record("MAL-2024-1234", name="colourama", versions=["0.1"]))
    assert name == "colourama" and affected.advisory.malicious


@pytest.mark.parametrize("bad", [[], {"affected": []}, {"id": 5}])
def test_a_record_without_an_id_is_invalid(bad) -> None:
    with pytest.raises(InvalidAdvisory):
        parse_record(bad)


def test_invalid_records_are_skipped_when_indexing() -> None:
    index = AdvisoryIndex.from_records([{"nope": 1}, record(versions=["1.0"])], "v1")
    assert len(index) == 1 and index.for_release("requests", "1.0")


def test_an_invalid_release_version_matches_nothing() -> None:
    index = AdvisoryIndex.from_records([record(ranges=[ecosystem({"introduced": "0"})])], "v1")
    assert index.for_release("requests", "not-a-version") == ()


@pytest.mark.parametrize(("ranges", "expected"), [
    ([ecosystem({"introduced": "0"}, {"fixed": "2.0"})], ["2.0"]),
    # several ranges, out of order, one fixed twice: PEP 440 order, once each
    ([ecosystem({"introduced": "2.1"}, {"fixed": "2.10"}), ecosystem({"introduced": "0"}, {"fixed": "1.9"}),
      ecosystem({"introduced": "1.9.5"}, {"fixed": "2.10.0"})], ["1.9", "2.10"]),
    ([ecosystem({"introduced": "0"}, {"last_affected": "1.5"})], []),  # no fix published
    ([ecosystem({"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "1.5"}, {"fixed": "2.0.1"})], ["1.2", "2.0.1"]),
])
def test_fixed_in_lists_the_versions_fixed_events_name(ranges, expected) -> None:
    """PyPI's JSON API ``vulnerabilities[].fixed_in``: the record's fixed versions for the package."""
    [(_, affected)] = parse_record(record(ranges=ranges))
    assert list(affected.fixed_in) == expected


def test_affecting_gives_the_records_for_release_gives_the_advisories_of() -> None:
    index = AdvisoryIndex.from_records([
        record("GHSA-b", ranges=[ecosystem({"introduced": "0"}, {"fixed": "2.0"})], aliases=["CVE-1"]),
        record("PYSEC-a", ranges=[ecosystem({"introduced": "0"}, {"fixed": "3.0"})], aliases=["CVE-1"]),
        record("GHSA-c", ranges=[ecosystem({"introduced": "1.5"}, {"fixed": "1.6"})]),
    ], "v1")
    found = index.affecting("requests", "1.5")
    advisories = index.for_release("requests", "1.5")
    assert [a.advisory.id for a in found] == [a.id for a in advisories] == ["GHSA-b", "GHSA-c"]
    assert [list(a.fixed_in) for a in found] == [["2.0"], ["1.6"]]
    assert index.affecting("requests", "not a version") == () and index.affecting("nothing", "1.0") == ()
