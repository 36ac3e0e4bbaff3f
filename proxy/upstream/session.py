"""The one client session to upstream and the rules it connects by: the file policy judges every
address a name resolves to (``PolicyResolver``); the environment's HTTP proxies are exempt."""

from __future__ import annotations

import socket
import urllib.request

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from proxy import __version__
from proxy.config import UpstreamSettings
from proxy.core.errors import UpstreamRefused
from proxy.upstream.fetchpolicy import Endpoint, FilePolicy, host_of

log = structlog.get_logger(__name__)
USER_AGENT = f"pypi-proxy/{__version__}"


def proxy_endpoints() -> list[Endpoint]:
    """The HTTP proxies of the environment (HTTPS_PROXY, HTTP_PROXY): connected to whatever
    address they have, as a proxy on the local network usually has a private one."""
    found = []
    for scheme, value in urllib.request.getproxies().items():
        if scheme != "no":
            try:
                url = URL(value if "://" in value else f"http://{value}")
            except ValueError:
                continue
            if url.raw_host:
                found.append((host_of(url), url.port or 0))
    return found


def file_policy(settings: UpstreamSettings) -> FilePolicy:
    """Where this upstream's files may be fetched from (proxy.upstream.fetchpolicy)."""
    return FilePolicy(URL(settings.url), settings.file_hosts, allow_private=settings.allow_private_file_hosts,
                      exempt=proxy_endpoints())


class PolicyResolver(AbstractResolver):
    """The connector's resolver: the addresses a name resolves to are judged by the file policy
    when a connection is made, so the answer that is connected to is the one judged (DNS
    rebinding). IP literals never reach a resolver: ``FilePolicy.check_url`` judges those.
    Names are looked up with getaddrinfo in a thread (``ThreadedResolver``): /etc/hosts and the
    system's resolver configuration apply, as for pip."""

    def __init__(self, policy: FilePolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        try:
            return self._policy.filter_resolved(host, port, [(r["host"], r) for r in results])
        except UpstreamRefused:
            log.warning("upstream_address_refused", host=host, port=port, addresses=[r["host"] for r in results])
            raise

    async def close(self) -> None:
        await self._inner.close()


def new_session(settings: UpstreamSettings) -> aiohttp.ClientSession:
    """The one client session; its resolver enforces the file policy (``PolicyResolver``)."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
    )
    connector = aiohttp.TCPConnector(resolver=PolicyResolver(file_policy(settings)))
    # trust_env: HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured, as pip does.
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=True, headers={"User-Agent": USER_AGENT}
    )
