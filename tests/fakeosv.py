"""An OSV bulk-export stand-in for tests: a real aiohttp server on loopback serving a zip of OSV
records (written in the real schema, as osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip
does), honouring If-None-Match and If-Modified-Since, and able to misbehave on request."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tests.fakeupstream import free_port

CVSS3_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
CVSS3_MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"  # 4.2
CVSS4_HIGH = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N"


def _affected(name: str, *ranges: list[dict[str, str]], versions: tuple[str, ...] = (),
              **extra: Any) -> dict[str, Any]:
    return {"package": {"ecosystem": "PyPI", "name": name, "purl": f"pkg:pypi/{name.lower()}"},
            "ranges": [{"type": "ECOSYSTEM", "events": events} for events in ranges],
            "versions": list(versions), **extra}


def real_records() -> list[dict[str, Any]]:
    """Records shaped like the export's: PYSEC with several ranges and explicit versions, a GHSA
    alias of it with CVSS v3, a CVSS v4 record, ``last_affected``, a withdrawn record, a MAL- one,
    and a GIT range (not PEP 440: ignored) beside an ECOSYSTEM one."""
    return [
        {"schema_version": "1.6.0", "id": "PYSEC-2018-28", "modified": "2024-11-21T09:00:00Z",
         "published": "2018-10-29T18:29:00Z", "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
         "details": "The Requests package before 2.20.0 sends an HTTP Authorization header to an http URI "
                    "upon receiving a same-hostname https-to-http redirect.",
         "affected": [_affected("requests", [{"introduced": "0"}, {"fixed": "2.20.0"}],
                                versions=("2.19.0", "2.19.1"))],
         "references": [{"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2018-18074"}]},
        {"schema_version": "1.6.0", "id": "GHSA-x84v-xcm2-53pg", "modified": "2024-09-26T00:00:00Z",
         "published": "2018-10-29T19:08:45Z", "aliases": ["CVE-2018-18074"],
         "summary": "Insufficiently Protected Credentials in Requests",
         "severity": [{"type": "CVSS_V3", "score": CVSS3_CRITICAL}],
         "affected": [_affected("requests", [{"introduced": "0"}, {"fixed": "2.20.0"}])],
         "database_specific": {"severity": "HIGH", "cwe_ids": ["CWE-522"], "github_reviewed": True}},
        {"schema_version": "1.6.0", "id": "GHSA-9wx4-h78v-vm56", "modified": "2024-06-01T00:00:00Z",
         "published": "2024-05-20T20:15:00Z", "aliases": ["CVE-2024-35195"],
         "summary": "Requests Session object does not verify requests after making first request with verify=False",
         "severity": [{"type": "CVSS_V4", "score": CVSS4_HIGH}],
         "affected": [_affected("requests", [{"introduced": "2.0"}, {"fixed": "2.2"},
                                             {"introduced": "2.25"}, {"fixed": "2.32.0"}])],
         "database_specific": {"severity": "MODERATE"}},
        {"schema_version": "1.6.0", "id": "PYSEC-2023-100", "modified": "2023-07-01T00:00:00Z",
         "published": "2023-06-01T00:00:00Z", "summary": "a bug in some versions of flask",
         "severity": [{"type": "CVSS_V3", "score": CVSS3_MEDIUM}],
         "affected": [_affected("Flask", [{"introduced": "1.0"}, {"last_affected": "1.1.4"}],
                                [{"introduced": "2.0.0"}, {"fixed": "2.2.5"}])]},
        {"schema_version": "1.6.0", "id": "GHSA-wwww-xxxx-yyyy", "modified": "2022-01-01T00:00:00Z",
         "published": "2021-01-01T00:00:00Z", "withdrawn": "2021-02-01T00:00:00Z",
         "summary": "withdrawn: not a vulnerability", "database_specific": {"severity": "CRITICAL"},
         "affected": [_affected("urllib3", [{"introduced": "0"}])]},
        {"schema_version": "1.6.0", "id": "MAL-2022-4521", "modified": "2024-03-01T00:00:00Z",
         "published": "2022-08-10T00:00:00Z", "summary": "Malicious code in colourama (PyPI)",
         "details": "---\n_-= Per source details. Do not edit below this line.=-_\n",
         "affected": [_affected("colourama", [{"introduced": "0"}],
                                database_specific={"malicious-packages-origins": [{"source": "ossf-package-analysis"}]})],
         "database_specific": {"malicious-packages-origins": [{"source": "ossf-package-analysis"}]}},
        {"schema_version": "1.6.0", "id": "PYSEC-2021-59", "modified": "2021-05-01T00:00:00Z",
         "published": "2021-04-01T00:00:00Z", "summary": "urllib3 catastrophic backtracking",
         "affected": [{**_affected("urllib3", [{"introduced": "1.25.0"}, {"fixed": "1.26.5"}]),
                       "ranges": [{"type": "GIT", "repo": "https://github.com/urllib3/urllib3",
                                   "events": [{"introduced": "0"}, {"fixed": "2d4a3fee"}]},
                                  {"type": "ECOSYSTEM", "events": [{"introduced": "1.25.0"}, {"fixed": "1.26.5"}]}]}]},
    ]


def zip_of(records: list[dict[str, Any]], extra: dict[str, bytes] | None = None) -> bytes:
    """A zip like the export: one ``<id>.json`` per record, deflated; ``extra`` adds raw members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in records:
            archive.writestr(f"{item['id']}.json", json.dumps(item, indent=2))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class FakeOSV:
    """Serves ``body`` at ``/PyPI/all.zip`` with an ETag (its sha256) and a Last-Modified.
    ``mode``: "ok", "error" (500), "hang" (no answer), "stall" (headers and half the body, then
    nothing), "truncate" (Content-Length of the whole, half sent, connection closed)."""

    body: bytes = b""
    mode: str = "ok"
    send_etag: bool = True  # False: Last-Modified only (If-Modified-Since revalidates)
    last_modified: float = 1_700_000_000.0
    requests: list[dict[str, str]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/PyPI/all.zip"

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.body).hexdigest()[:20]}"'

    def publish(self, body: bytes, last_modified: float) -> None:
        self.body, self.last_modified = body, last_modified

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/PyPI/all.zip", self._serve)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.mode == "error":
            return web.Response(status=500, text="backend error")
        if self.mode == "hang":
            await self.released.wait()
        validators = {"Last-Modified": formatdate(self.last_modified, usegmt=True)}
        if self.send_etag:
            validators["ETag"] = self.etag
        if (self.send_etag and request.headers.get("If-None-Match") == self.etag) or (
                "If-None-Match" not in request.headers
                and request.headers.get("If-Modified-Since") == validators["Last-Modified"]):
            return web.Response(status=304, headers=validators)
        if self.mode in ("stall", "truncate"):
            response = web.StreamResponse(headers={**validators, "Content-Length": str(len(self.body))})
            await response.prepare(request)
            await response.write(self.body[: len(self.body) // 2])
            if self.mode == "stall":
                await self.released.wait()
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=self.body, headers=validators, content_type="application/zip")
