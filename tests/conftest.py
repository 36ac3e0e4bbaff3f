"""Shared fixtures: settings on tmp_path, the real app on loopback, users, and upload helpers."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from blockbuster import blockbuster_ctx

from proxy.config import Settings, settings_from_mapping
from proxy.storage.auth import AuthStore
from proxy.web.app import create_app, runner_options
from proxy.web.connections import GuardedAppRunner
from tests.builders import Dist
from tests.fakeupstream import FakeUpstream

PASSWORD = "correct horse battery"
# Shared-mode engines (issue 14) for any test module: a throwaway PostgreSQL cluster (pg_cluster,
# pg_url) and SeaweedFS (seaweedfs, s3_settings, seaweedfs_outage).
pytest_plugins = ("tests.pgserver", "tests.s3server")


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header (aiohttp.BasicAuth is deprecated)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[None]:
    """Fail any test in which blocking I/O runs on the event loop (STYLE: never block the loop)."""
    with blockbuster_ctx(scanned_modules=["proxy"]) as detector:
        # A single stat per request is bounded and tiny (the style guide allows it on the loop):
        # the freshness check of a private index and the cache-hit check of a file.
        detector.functions["os.stat"].can_block_in("proxy/storage/private.py", "stamp_of")
        detector.functions["os.stat"].can_block_in("proxy/storage/upstream_files.py", "stat_of")
        detector.functions["os.stat"].can_block_in("proxy/storage/advisories.py", "stamp")
        yield detector


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**sections: dict[str, Any]) -> Settings:
        # Upstream is off unless a test turns it on (pointing at the fake one): never the internet.
        data: dict[str, dict[str, Any]] = {
            "storage": {"data_dir": str(tmp_path / "data")},
            "upstream": {"enabled": False},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return settings_from_mapping(data)

    return make


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    """A fake PyPI on loopback (both flavours), with demo 1.0 and its dependency dep 2.0."""
    upstream = FakeUpstream()
    upstream.add(Dist("demo", "1.0", requires_dist=["dep>=2"]))
    upstream.add(Dist("dep", "2.0"))
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture
def upstream_settings(make_settings: Callable[..., Settings], fake_upstream: FakeUpstream) -> Callable[..., Settings]:
    """Settings with upstream on, pointed at the fake one; keyword sections override."""
    def make(upstream: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Settings:
        quick = {"enabled": True, "url": fake_upstream.url, "connect_timeout": 2, "read_timeout": 5}
        return make_settings(upstream={**quick, **(upstream or {})}, **sections)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def auth(settings: Settings) -> AuthStore:
    store = AuthStore(settings.data_dir)
    store.add_user("alice", PASSWORD)
    store.add_user("bob", PASSWORD, projects=["bob-*"])
    return store


class GuardedTestServer(TestServer):
    """A TestServer behind the runner `serve` uses: the connection limits of settings.server."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(create_app(settings))
        self.limits = settings.server

    async def _make_runner(self, **kwargs: Any) -> GuardedAppRunner:
        return GuardedAppRunner(self.app, limits=self.limits, max_connections=self.limits.max_connections or None,
                                **kwargs)


async def start_client(aiohttp_client: Any, settings: Settings) -> TestClient:
    """The real app on loopback, with the runner and runner options `serve` uses."""
    server = GuardedTestServer(settings)
    await server.start_server(**runner_options())  # TestServer ignores its constructor kwargs
    return await aiohttp_client(server)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, auth: AuthStore) -> TestClient:
    return await start_client(aiohttp_client, settings)


def upload_form(dist: Dist, kind: str = "wheel", content: bytes | None = None,
                filename: str | None = None, **overrides: str | None) -> aiohttp.FormData:
    """The multipart body twine sends (STANDARDS E1); ``None`` in overrides drops a field."""
    data = content if content is not None else (dist.wheel() if kind == "wheel" else dist.sdist())
    name = filename or (dist.wheel_filename if kind == "wheel" else dist.sdist_filename)
    fields: dict[str, str | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": dist.name,
        "version": dist.version,
        "filetype": "bdist_wheel" if kind == "wheel" else "sdist",
        "pyversion": "py3" if kind == "wheel" else "source",
        "summary": dist.summary,
        "md5_digest": hashlib.md5(data).hexdigest(),
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
    fields.update(overrides)
    form = aiohttp.FormData()
    for key, value in fields.items():
        if value is not None:
            form.add_field(key, value)
    form.add_field("content", data, filename=name, content_type="application/octet-stream")
    return form


Uploader = Callable[..., Awaitable[aiohttp.ClientResponse]]


@pytest.fixture
def upload(client: TestClient) -> Uploader:
    async def do(dist: Dist, kind: str = "wheel", auth: dict[str, str] | None = None,
                 **kwargs: Any) -> aiohttp.ClientResponse:
        headers = auth if auth is not None else basic("alice", PASSWORD)
        return await client.post("/pypi/", data=upload_form(dist, kind, **kwargs), headers=headers)

    return do


def snapshot(data_dir: Path) -> dict[str, str]:
    """Every stored byte under private/ and tmp/, by path: equal snapshots mean nothing changed."""
    found = {}
    for base in ("private", "tmp"):
        for path in sorted((data_dir / base).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
