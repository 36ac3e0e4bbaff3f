"""Policy cost (issue 15): the cached pages with a policy of 10,000 advisories loaded, against the
same pages from the proxy with every rule off, in the same run. Decisions are made once per page
version and cached with the rendered page, so the two should be within a few percent."""

from __future__ import annotations

import io
import json
import time
import urllib.request
import zipfile
from pathlib import Path

from benchkit import plan
from benchkit.context import HTML, JSON, Context
from benchkit.load import fetch
from benchkit.systems import start_proxy
from benchkit.tree import version_of

ADVISORIES = 10_000
TABLES = (("big", plan.BIG), ("small", plan.SMALL))


def advisories_zip(path: Path) -> Path:
    """10,000 OSV records in the export's shape: most for other projects, some affecting a range
    of the big and the small project (a few of their releases are hidden)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(ADVISORIES):
            project = (plan.BIG, plan.SMALL)[i % 2] if i < 40 else f"advised-{i % 3000}"
            start = i % 50
            record = {
                "schema_version": "1.6.0", "id": f"PYSEC-2099-{i}", "modified": "2025-01-01T00:00:00Z",
                "aliases": [f"CVE-2099-{i}"], "summary": "a benchmark advisory",
                "database_specific": {"severity": ("LOW", "MODERATE", "HIGH", "CRITICAL")[i % 4]},
                "affected": [{"package": {"ecosystem": "PyPI", "name": project},
                              "ranges": [{"type": "ECOSYSTEM", "events": [
                                  {"introduced": version_of(start)}, {"fixed": version_of(start + 1)}]}],
                              "versions": [version_of(start)]}],
            }
            archive.writestr(f"PYSEC-2099-{i}.json", json.dumps(record))
    path.write_bytes(buffer.getvalue())
    return path


def policy(ctx: Context, run: int) -> None:
    """Pages big and small, HTML and JSON: the proxy without a policy, then with one."""
    plain = ctx.system("proxy")
    if plain is None:
        return
    source = advisories_zip(ctx.work / "advisories.zip")
    config = ctx.work / "policy.toml"
    config.write_text(f'[policy]\nvulnerabilities = "block"\nadvisories = "{source}"\n')
    guarded = start_proxy(ctx.work, ctx.reference, ctx.workers, name="proxy-policy", extra=["--config", str(config)],
                          label="proxy-policy")
    try:
        _wait_for_advisories(guarded.base)
        # Warm both as the other scenarios' warm-up does the proxy: each worker decides and
        # renders its own copy once (SO_REUSEPORT spreads these over the workers).
        for _, project in TABLES:
            for accept in (HTML, JSON):
                for system in (plain, guarded):
                    for _ in range(20):
                        fetch(system.page_url(project), accept)
        for size, project in TABLES:
            for fmt, accept in (("html", HTML), ("json", JSON)):
                table = f"policy-page-{size}-{fmt}"
                for system in (plain, guarded):
                    with ctx.measuring(table, system, {}) as row:
                        url = system.page_url(project)
                        check = fetch(url, accept)
                        load = ctx.loader.run(url, ctx.scale.page_clients, ctx.scale.duration, accept)
                        row.update(rps=load.rps, p50_ms=load.p50_ms, p99_ms=load.p99_ms, status=check.status,
                                   bytes=check.size, errors=load.errors)
                        print(f"  {table:<24} {system.name:<13} {load.rps:9.0f} req/s  {check.size} B", flush=True)
    finally:
        guarded.stop()


def _wait_for_advisories(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/-/health", timeout=5) as answer:
            if (json.load(answer).get("advisories") or {}).get("fetched_at"):
                return
        time.sleep(0.2)
    raise RuntimeError(f"the advisory data was not loaded within {timeout:g} s")
