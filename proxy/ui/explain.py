"""The web page of ``/-/explain/<project>/<version>``: the verdict on a release and every reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.ui.views import Site

VERDICTS = {"serve": "Served.", "warn": "Served, with a warning.", "block": "Blocked: installers do not see it."}


@dataclass(frozen=True, slots=True)
class ExplainView:
    site: Site
    project: str
    version: str
    action: str
    verdict: str
    reasons: list[dict[str, Any]]
    dependencies: list[dict[str, Any]]
    data_line: str


def explain_view(site: Site, document: dict[str, Any]) -> ExplainView:
    """The view of an explanation document (``Explanation.to_json``)."""
    verdict = VERDICTS[document["action"]]
    if document["dry_run"] and document["would"] == "block":
        verdict = "Served: the policy is a dry run, which would block it."
    if document["source"] == "private":
        verdict += " A private release: upstream data never hides it."
    data = document.get("advisory_data")
    if data is None:
        data_line = "No advisory rule is on."
    elif data.get("fetched_at"):
        data_line = (f"Advisory data: {data.get('records', 0)} records from {data.get('source')}, "
                     f"fetched {data['fetched_at']}.")
    else:
        data_line = f"Advisory data from {data.get('source')}: not loaded yet ({data.get('last_error') or 'pending'})."
    return ExplainView(site, document["project"], document["version"], document["action"], verdict,
                       document["reasons"], document["dependencies"], data_line)
