"""The supply-chain policy in PyPI's JSON API documents (``proxy.core.jsonapi``): pure.

Blocked releases never reach a document (the policy component filters the page it is built
from). A release the policy warns about is marked in ``info`` (when it is the document's release)
and in each of its file entries (``urls``, ``releases``) with ``policy`` (this proxy's extension;
PyPI has no such key, and clients ignore keys they do not know). ``vulnerabilities`` is PyPI's
array, in warehouse's shape, from the OSV records affecting the document's release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proxy.core.osv import Affected
from proxy.core.policy import Decision
from proxy.core.timestamps import iso_z


def policy_mark(decision: Decision | None) -> dict[str, Any] | None:
    """``{"action": "warn", "reasons": [{"rule", "message"}]}`` for a warned release (a dry run's
    block included, with ``"would": "block"``); None for one served without a finding."""
    if decision is None or decision.action != "warn":
        return None
    mark: dict[str, Any] = {"action": "warn",
                            "reasons": [{"rule": r.rule, "message": r.message} for r in decision.applied]}
    if decision.would != decision.action:
        mark["would"] = decision.would
    return mark


def vulnerability(affected: Affected) -> dict[str, Any]:
    """One entry of PyPI's ``vulnerabilities`` (warehouse ``legacy/api/json``): id, source, link,
    aliases, details, summary, fixed_in, withdrawn. ``details`` is the record's summary (or the
    start of its details): the full text stays at ``link``, so the loaded data stays small."""
    advisory = affected.advisory
    return {
        "id": advisory.id,
        "source": "osv",
        "link": advisory.url,
        "aliases": list(advisory.aliases),
        "details": advisory.summary,
        "summary": advisory.summary or None,
        "fixed_in": list(affected.fixed_in),
        "withdrawn": iso_z(advisory.withdrawn) if advisory.withdrawn else None,
    }


def annotate(document: dict[str, Any], decisions: Mapping[str, Decision],
             affecting: Sequence[Affected]) -> dict[str, Any]:
    """``document`` (``jsonapi.document``) with the policy's marks, ``decisions`` keyed by the
    versions as the document spells them, and ``vulnerabilities`` from ``affecting`` (the records
    that affect the document's release). Changes ``document`` in place and returns it."""
    chosen = document["info"].get("version")
    mark = policy_mark(decisions.get(chosen)) if chosen is not None else None
    if mark is not None:
        document["info"]["policy"] = mark
        for entry in document["urls"]:
            entry["policy"] = mark
    for version, entries in document.get("releases", {}).items():
        marked = policy_mark(decisions.get(version))
        for entry in entries if marked is not None else ():
            entry["policy"] = marked
    document["vulnerabilities"] = [vulnerability(affected) for affected in affecting]
    return document
