"""The supply-chain policy in JSON API documents, pure (issue 15): marks on warned releases (this
proxy's extension) and PyPI's ``vulnerabilities`` array in warehouse's shape."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from proxy.core.jsonpolicy import annotate, policy_mark, vulnerability
from proxy.core.osv import Advisory, Affected, Severity
from proxy.core.policy import Decision, Exemption, Reason

DENY = Reason("deny", "block", "denied by 'demo<2'")
OLD = Reason("archived", "warn", "the project is archived upstream (PEP 792)")
LIFTED = Reason("deny", "block", "denied by 'demo<2'", exempted_by=Exemption("demo", date(2099, 1, 1), "fork"))


@pytest.mark.parametrize(("decision", "expected"), [
    (None, None),
    (Decision(), None),
    (Decision((DENY,)), None),  # blocked: never in a document at all
    (Decision((LIFTED,)), None),  # every finding lifted: served
    (Decision((OLD, LIFTED)), {"action": "warn", "reasons": [{"rule": "archived", "message": OLD.message}]}),
    (Decision((DENY, OLD), dry_run=True),
     {"action": "warn", "would": "block", "reasons": [{"rule": "deny", "message": DENY.message},
                                                      {"rule": "archived", "message": OLD.message}]}),
])
def test_only_a_warned_release_is_marked_with_the_findings_that_apply(decision, expected) -> None:
    assert policy_mark(decision) == expected


def affected(withdrawn: datetime | None = None) -> Affected:
    advisory = Advisory("GHSA-x", ("CVE-2024-1",), "", Severity("high", 7.5), None, withdrawn)
    return Affected(advisory, ((("introduced", None),),), frozenset())


def test_a_vulnerability_has_warehouses_keys() -> None:
    """warehouse legacy/api/json.py: id, source, link, aliases, details, summary, fixed_in, withdrawn."""
    withdrawn = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    entry = vulnerability(affected(withdrawn))
    assert entry == {"id": "GHSA-x", "source": "osv", "link": "https://osv.dev/vulnerability/GHSA-x",
                     "aliases": ["CVE-2024-1"], "details": "", "summary": None, "fixed_in": [],
                     "withdrawn": entry["withdrawn"]}
    assert entry["withdrawn"].startswith("2024-05-06T07:08:09")


def document() -> dict[str, Any]:
    file = {"filename": "demo-1.0.tar.gz"}
    return {"info": {"version": "1.0"}, "urls": [dict(file)], "vulnerabilities": [],
            "releases": {"1.0": [dict(file)], "2.0": [{"filename": "demo-2.0.tar.gz"}]}}


def test_annotate_marks_info_urls_and_releases_of_warned_releases_only() -> None:
    warned = Decision((OLD,))
    result = annotate(document(), {"1.0": warned, "2.0": Decision()}, [affected()])
    mark = policy_mark(warned)
    assert result["info"]["policy"] == mark and [f["policy"] for f in result["urls"]] == [mark]
    assert result["releases"]["1.0"][0]["policy"] == mark and "policy" not in result["releases"]["2.0"][0]
    assert [v["id"] for v in result["vulnerabilities"]] == ["GHSA-x"]
    plain = annotate(document(), {"1.0": Decision()}, [])
    assert plain == document(), "nothing added where the policy found nothing"
