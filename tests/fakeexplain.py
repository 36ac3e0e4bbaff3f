"""A stand-in for the proxy's ``GET /-/explain/<project>/<version>`` (issue 15): a real aiohttp server on
loopback answering the endpoint's JSON (or an HTML page to a browser), 404 for releases it does not serve.

The documents are built with the real decision rules (``proxy.core.policy.Decision``: exemptions
lift a finding, a dry run never blocks), so ``action`` and ``would`` agree with the server's. Once
the endpoint lands, the tests that use :class:`FakeExplain` can run against the real app instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.core.policy import Decision, Exemption, Reason

ADVISORY_DATA = {"source": "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip",
                 "fetched_at": "2025-06-01T10:00:00Z", "age_s": 7200.0, "records": 41234, "last_error": None}


def advisory(id: str, aliases: list[str] | None = None, severity: str = "high", score: float | None = 7.5,
             summary: str = "") -> dict[str, Any]:
    """An advisory as the endpoint lists it (OSV id, aliases, severity, CVSS score, osv.dev link)."""
    return {"id": id, "aliases": aliases or [], "severity": severity, "score": score,
            "url": f"https://osv.dev/vulnerability/{id}", "summary": summary}


@dataclass(frozen=True)
class Finding:
    """One rule's finding; ``exempt`` a (pattern, until, reason) that lifts it."""

    rule: str
    action: str
    message: str
    advisories: tuple[dict[str, Any], ...] = ()
    exempt: tuple[str, str, str] | None = None


def explanation(project: str, version: str, *findings: Finding, dry_run: bool = False, source: str = "upstream",
                uploaded: str | None = "2018-06-14T13:41:09Z", status: str | None = None,
                dependencies: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """The endpoint's JSON for one release, ``action``/``would`` decided by ``proxy.core.policy``."""
    reasons = tuple(Reason(f.rule, f.action, f.message, (), None if f.exempt is None else Exemption(
        f.exempt[0], date.fromisoformat(f.exempt[1]), f.exempt[2])) for f in findings)
    decision = Decision(reasons, dry_run)
    return {
        "project": project, "version": version, "source": source, "action": decision.action,
        "would": decision.would, "dry_run": dry_run,
        "reasons": [{"rule": f.rule, "action": f.action, "message": f.message, "advisories": list(f.advisories),
                     "exempted": None if f.exempt is None else
                     {"project": f.exempt[0], "until": f.exempt[1], "reason": f.exempt[2]}} for f in findings],
        "release": {"uploaded": uploaded, "first_seen": None, "status": status},
        "advisory_data": ADVISORY_DATA, "dependencies": list(dependencies),
    }


@dataclass
class FakeExplain:
    """What the fake serves and what it was asked. ``answers``: (project, version) → document;
    ``failures``: (project, version) → an HTTP status to answer instead; ``credentials``: the
    ``user:password`` it requires (401 otherwise); ``gate``: hold each request until this many are
    in flight at once (to see that a client reaches, and keeps to, its bound)."""

    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    credentials: str | None = None
    gate: int | None = None
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    accepts: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    url: str = ""
    _opened: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, document: dict[str, Any]) -> None:
        self.answers[(document["project"], document["version"])] = document

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["project"], request.match_info["version"])
        self.requests[key] += 1
        self.accepts.append(request.headers.get("Accept", ""))
        if self.credentials is not None and request.headers.get("Authorization") != (
                "Basic " + base64.b64encode(self.credentials.encode()).decode()):
            return web.Response(status=401, text="credentials needed", headers={"WWW-Authenticate": 'Basic realm="x"'})
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                if self.in_flight >= self.gate:
                    self._opened.set()
                await asyncio.wait_for(self._opened.wait(), 10)
            return self._answer(key, request)
        finally:
            self.in_flight -= 1

    def _answer(self, key: tuple[str, str], request: web.Request) -> web.Response:
        if key in self.failures:
            return web.Response(status=self.failures[key], text="something broke\nsecond line")
        document = self.answers.get(key)
        if document is None:
            return web.Response(status=404, text=f"no release {key[1]} of {key[0]} on this index")
        if "application/json" not in request.headers.get("Accept", ""):
            return web.Response(text=f"<h1>{key[0]} {key[1]}: {document['action']}</h1>", content_type="text/html")
        return web.Response(text=json.dumps(document), content_type="application/json")


@asynccontextmanager
async def running(fake: FakeExplain) -> AsyncIterator[FakeExplain]:
    """Serve ``fake`` on 127.0.0.1; ``fake.url`` is its base URL while the block runs."""
    app = web.Application()
    app.router.add_get("/-/explain/{project}/{version}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()
