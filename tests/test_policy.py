"""The policy's rules and decisions, without a server (issue 15 item 2)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from proxy.core.osv import Advisory, Severity
from proxy.core.policy import Exemption, Release, Rules, cooldown_ends, decide

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
HIGH = Advisory("GHSA-aaaa-bbbb-cccc", ("CVE-2018-18074",), "leaks credentials", Severity("high", 7.5, "v"))
LOW = Advisory("PYSEC-2020-1", (), "minor", Severity("low", 2.0, "v"))
UNKNOWN = Advisory("PYSEC-2020-2", (), "unrated", Severity())
MALWARE = Advisory("MAL-2024-1", (), "steals tokens", Severity())


def release(project: str = "requests", version: str = "2.19.0", **kw) -> Release:
    return Release(project, version, **kw)


@pytest.mark.parametrize(("floor", "advisories", "blocked"), [
    ("any", (LOW,), True),
    ("any", (UNKNOWN,), True),
    ("high", (LOW, UNKNOWN), False),
    ("high", (HIGH,), True),
    ("critical", (HIGH,), False),
    ("moderate", (LOW, HIGH), True),
])
def test_vulnerabilities_at_or_above_the_floor_block(floor, advisories, blocked) -> None:
    decision = decide(Rules(vulnerabilities="block", min_severity=floor), release(), advisories, NOW)
    assert decision.blocked is blocked
    if blocked:
        [reason] = decision.reasons
        assert reason.rule == "vulnerabilities" and all(a.severity.rank >= 0 for a in reason.advisories)


def test_the_block_message_names_the_advisory_and_its_severity() -> None:
    decision = decide(Rules(vulnerabilities="block", min_severity="high"), release(), (HIGH, LOW), NOW)
    assert decision.summary() == ("vulnerabilities: known vulnerabilities (severity high or above): "
                                  "GHSA-aaaa-bbbb-cccc (high 7.5)")


def test_warn_keeps_the_release_and_says_why() -> None:
    decision = decide(Rules(vulnerabilities="warn"), release(), (LOW,), NOW)
    assert (decision.action, decision.blocked, decision.reasons[0].action) == ("warn", False, "warn")


@pytest.mark.parametrize("floor", ["any", "critical"])
def test_malicious_records_block_under_any_floor_as_their_own_rule(floor) -> None:
    rules = Rules(vulnerabilities="off", min_severity=floor, malicious="block")
    decision = decide(rules, release("colourama", "0.1"), (MALWARE,), NOW)
    assert decision.blocked and [r.rule for r in decision.reasons] == ["malicious"]


@pytest.mark.parametrize(("uploaded", "first_seen", "blocked"), [
    (NOW - timedelta(days=2), None, True),
    (NOW - timedelta(days=8), None, False),
    (None, NOW - timedelta(hours=1), True),  # upstream gives no upload-time: first seen here
    (None, None, False),
    (NOW - timedelta(days=30), NOW - timedelta(hours=1), False),  # upload-time wins when given
])
def test_cooldown_by_upload_time_else_first_seen(uploaded, first_seen, blocked) -> None:
    rules = Rules(cooldown=7 * 86400)
    decision = decide(rules, release(uploaded=uploaded, first_seen=first_seen), (), NOW)
    assert decision.blocked is blocked
    if blocked:
        assert decision.reasons[0].rule == "cooldown" and "cooldown of 7.0 days" in decision.reasons[0].message


def test_cooldown_ends_seven_days_after_upload_and_exempt_projects_have_none() -> None:
    rules = Rules(cooldown=7 * 86400, cooldown_exempt=("certifi", "corp-*"))
    uploaded = NOW - timedelta(days=1)
    assert cooldown_ends(rules, release(uploaded=uploaded)) == (uploaded + timedelta(days=7)).timestamp()
    for name in ("certifi", "corp-auth"):
        assert cooldown_ends(rules, release(name, uploaded=uploaded)) is None
        assert not decide(rules, release(name, uploaded=uploaded), (), NOW).blocked


@pytest.mark.parametrize(("deny", "project", "version", "blocked"), [
    (("colourama",), "colourama", "0.1", True),
    (("requests<2.20",), "requests", "2.19.0", True),
    (("requests<2.20",), "requests", "2.20.0", False),
    (("Requests_Toolbelt<1",), "requests-toolbelt", "0.9", True),  # normalised names
    (("requests<2.20",), "requests", "2.20.0rc1", False),
    (("requests<=2.20",), "requests", "2.20.0rc1", True),  # pre-releases are matched too
])
def test_deny_is_pep_508_on_normalised_names(deny, project, version, blocked) -> None:
    assert decide(Rules(deny=deny), release(project, version), (), NOW).blocked is blocked


@pytest.mark.parametrize(("project", "version", "blocked"), [
    ("requests", "2.31.0", False), ("requests", "1.0", True), ("six", "1.16.0", False), ("leftpad", "1.0", True),
])
def test_allow_only_serves_nothing_else(project, version, blocked) -> None:
    rules = Rules(allow_only=("requests>=2", "six"))
    decision = decide(rules, release(project, version), (), NOW)
    assert decision.blocked is blocked and (not blocked or decision.reasons[0].rule == "allow_only")


@pytest.mark.parametrize(("status", "action"), [
    ("quarantined", "block"), ("archived", "warn"), ("deprecated", "warn"), ("active", "serve"), (None, "serve"),
])
def test_pep_792_statuses(status, action) -> None:
    rules = Rules(quarantined="block", archived="warn", deprecated="warn")
    assert decide(rules, release(status=status), (), NOW).action == action
    assert decide(Rules(), release(status=status), (), NOW).action == "serve"  # every rule is off by default


def test_an_exemption_lifts_its_rules_until_it_expires_and_the_finding_stays_visible() -> None:
    exemption = Exemption("requests", date(2026, 12, 31), "patched in our fork", ("vulnerabilities",))
    rules = Rules(vulnerabilities="block", deny=("requests<2.20",), exemptions=(exemption,))
    decision = decide(rules, release(), (HIGH,), NOW)
    assert [(r.rule, r.exempted_by) for r in decision.reasons] == [("vulnerabilities", exemption), ("deny", None)]
    assert decision.blocked  # deny is not exempted
    only_vulns = Rules(vulnerabilities="block", exemptions=(exemption,))
    assert not decide(only_vulns, release(), (HIGH,), NOW).blocked
    assert decide(only_vulns, release(), (HIGH,), datetime(2027, 1, 1, tzinfo=timezone.utc)).blocked


def test_dry_run_reports_without_hiding() -> None:
    decision = decide(Rules(vulnerabilities="block", dry_run=True), release(), (HIGH,), NOW)
    assert (decision.would, decision.action, decision.blocked) == ("block", "warn", False)


def test_rules_have_a_digest_that_changes_with_them() -> None:
    assert Rules().digest == Rules().digest != Rules(deny=("x",)).digest


def test_an_invalid_requirement_is_refused_when_the_rules_are_made() -> None:
    with pytest.raises(ValueError):
        Rules(deny=("requests <<< 2",))
