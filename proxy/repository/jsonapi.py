"""PyPI's JSON API for every project the index serves, private or upstream, shadowing included.

A private project's document comes from its stored index. An upstream project's comes from its
cached simple page (fetched, revalidated and served stale by the same rules as the page itself),
with ``info`` read from the core metadata of one wheel of the chosen release, fetched through
the file cache like any metadata file. No call to the upstream's own JSON API is made: upstreams
such as devpi, Nexus or a static mirror have none, and the listing is what this server serves.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import structlog

from proxy.core import jsonapi, jsonpolicy
from proxy.core.errors import ProjectNotFound, ProxyError
from proxy.core.lru import LruCache
from proxy.core.merge import CacheState, Source
from proxy.core.metadata import lenient_release_info
from proxy.core.models import ReleaseInfo
from proxy.core.urls import METADATA_SUFFIX
from proxy.repository.catalog import Catalog, Findings

log = structlog.get_logger(__name__)
_INFO_ENTRIES = 4096  # parsed ``info`` of upstream releases kept in memory


class JsonApiService:
    """Builds ``/pypi/<project>[/<version>]/json`` documents (STANDARDS F1-F3) as JSON bytes."""

    def __init__(self, catalog: Catalog, executor: Executor) -> None:
        self._catalog = catalog
        self._executor = executor
        self._infos: LruCache[tuple[str, str], ReleaseInfo] = LruCache(_INFO_ENTRIES)

    async def document(self, name: str, version: str | None,
                       base_url: str) -> tuple[bytes, Source, CacheState | None]:
        """The document of ``name`` (normalised), of release ``version`` when given (PEP 440
        equality), its URLs below ``base_url`` (``jsonapi.document``), with the policy's marks and
        vulnerabilities for an upstream project (``jsonpolicy``); ProjectNotFound when the index
        serves no such project or release (naming the policy when it blocks it), upstream errors
        as for its simple page."""
        loop = asyncio.get_running_loop()
        served = await self._catalog.project_page(name)
        if served.project is not None:
            private = served.project
            if version is not None and private.release(version) is None:
                raise ProjectNotFound(f"No version {version!r} of project {name!r}.", project=name)
            body = await loop.run_in_executor(self._executor, _encode, jsonapi.private_document, private,
                                              base_url, version)
            return body, served.source, None
        page = served.build()
        api = jsonapi.from_upstream(page)
        chosen = api.release(version) if version else jsonapi.current_version(api)
        findings = await self._catalog.findings(name)
        if version is not None and chosen is None:
            raise ProjectNotFound(_no_release(name, version, findings), project=name)
        offered = [f.filename for f in page.files if f.core_metadata is not None]
        source = jsonapi.metadata_source(api, chosen, offered) if chosen else None
        info = await self._info(name, source, chosen) if source and chosen else None
        body = await loop.run_in_executor(self._executor, _encode, _upstream_document, api, chosen, info,
                                          base_url, version is None, findings)
        return body, served.source, served.cache

    async def _info(self, name: str, filename: str, version: str) -> ReleaseInfo | None:
        """``info`` from the wheel's core metadata; None (and a warning) when it cannot be had:
        the document is still served, with what the listing says."""
        cached = self._infos.get((name, filename))
        if cached is not None:
            return cached
        try:
            served = await self._catalog.resource(name, filename + METADATA_SUFFIX)
            path = served.path
            if path is None:
                assert served.stream is not None
                try:
                    path = await served.stream.complete()
                finally:
                    served.stream.close()
            raw = await asyncio.get_running_loop().run_in_executor(self._executor, Path.read_bytes, path)
        except (ProxyError, OSError) as exc:
            log.warning("json_api_metadata_unavailable", project=name, filename=filename, error=str(exc))
            return None
        info = await asyncio.get_running_loop().run_in_executor(self._executor, lenient_release_info, raw, version)
        self._infos.put((name, filename), info)
        return info


def _no_release(name: str, version: str, findings: Findings | None) -> str:
    """Why ``/pypi/<name>/<version>/json`` is a 404: no such release, or the policy blocks it."""
    decision = findings.decided.of(version)[0] if findings is not None else None
    if decision is None or not decision.blocked:
        return f"No version {version!r} of project {name!r}."
    return (f"Version {version!r} of project {name!r} is not served: the policy blocks it ({decision.summary()}); "
            f"see /-/explain/{name}/{version}")


def _upstream_document(api: jsonapi.ApiProject, chosen: str | None, info: ReleaseInfo | None, base_url: str,
                       with_releases: bool, findings: Findings | None) -> dict[str, Any]:
    """An upstream project's document, with the policy's marks and the advisories affecting the
    chosen release when a policy is on (``jsonpolicy``). Blocking, O(releases)."""
    document = jsonapi.document(api, chosen, info, base_url, with_releases)
    if findings is None:
        return document
    decisions = {v: d for v in api.releases if (d := findings.decided.of(v)[0]) is not None}
    index = findings.advisories
    affecting = index.affecting(api.name, chosen) if index is not None and chosen is not None else ()
    return jsonpolicy.annotate(document, decisions, affecting)


def _encode(build: Any, *args: Any) -> bytes:
    return json.dumps(build(*args), ensure_ascii=False).encode()
