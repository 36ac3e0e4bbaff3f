"""Where upstream files may be fetched from (issue 12 M7): the policy's rules, pure, and the
resolver that applies them when a connection is made (DNS rebinding), on a real aiohttp session."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from proxy.config import settings_from_mapping
from proxy.core.errors import ConfigError, UpstreamRefused
from proxy.upstream.fetchpolicy import FilePolicy, is_public
from proxy.upstream.session import PolicyResolver

INDEX = URL("https://pypi.org/simple/")
PRIVATE_INDEX = URL("http://10.1.2.3:3141/root/pypi/+simple/")

# Addresses never connected to for a file, unless allow_private_file_hosts: every family of
# "not a public unicast address", and the IPv6 spellings that reach one.
NOT_PUBLIC = [
    "127.0.0.1", "127.255.255.254", "::1",  # loopback
    "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",  # private
    "169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0",  # link-local (cloud metadata)
    "0.0.0.0", "::",  # unspecified
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "224.0.0.1", "ff02::1", "255.255.255.255",  # multicast, broadcast
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::7f00:1", "64:ff9b::a00:1",  # NAT64 of loopback, private
    "2002:7f00:1::1", "2002:a00:1::1",  # 6to4 through loopback, private
    "192.0.2.1", "2001:db8::1",  # documentation
]
PUBLIC = ["8.8.8.8", "151.101.0.223", "172.32.0.1", "2a04:4e42::223", "::ffff:151.101.0.223",
          "64:ff9b::9765:df"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_m7_addresses_that_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_m7_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def bracketed(address: str) -> str:
    return f"[{address.replace('%', '%25')}]" if ":" in address else address


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_m7_a_listed_file_on_a_non_public_address_is_refused_even_on_an_allowed_host(address: str) -> None:
    """A literal address never reaches the resolver: the URL check judges it ("*": every host
    name is allowed here, so only the address rule is at work)."""
    url = URL(f"http://{bracketed(address)}:8080/secret")
    with pytest.raises(UpstreamRefused) as refused:
        FilePolicy(INDEX, ["*"]).check_url(url)
    assert refused.value.rule == "allow_private_file_hosts"
    FilePolicy(INDEX, ["*"], allow_private=True).check_url(url)  # unless configured


@pytest.mark.parametrize(("url", "rule"), [
    ("http://127.0.0.1:6379/", "file_hosts"),  # loopback, not a listed host
    ("http://localhost/secret", "file_hosts"),
    ("http://internal.example/x.whl", "file_hosts"),
    ("https://evil.example/files/x.whl", "file_hosts"),
    ("https://files.pythonhosted.org.evil.example/x.whl", "file_hosts"),
    ("https://pythonhosted.org/x.whl", "file_hosts"),
    ("file:///etc/passwd", "scheme"),
    ("ftp://files.pythonhosted.org/x.whl", "scheme"),
    ("data:,secret", "scheme"),
    ("gopher://files.pythonhosted.org:6379/_x", "scheme"),
])
def test_m7_urls_refused_for_pypi(url: str, rule: str) -> None:
    with pytest.raises(UpstreamRefused) as refused:
        FilePolicy(INDEX, ["files.pythonhosted.org"]).check_url(URL(url))
    assert refused.value.rule == rule


@pytest.mark.parametrize("url", [
    "https://files.pythonhosted.org/packages/ab/cd/x-1.0.tar.gz",
    "https://FILES.pythonhosted.org./packages/x.whl",  # case and a trailing dot do not matter
    "http://files.pythonhosted.org:8080/x.whl",  # another port of an allowed host: its address decides
    "https://pypi.org/packages/x.whl",  # the index's origin
    "https://pypi.org:8443/x.whl",  # the index's host on another port
])
def test_m7_urls_allowed_for_pypi(url: str) -> None:
    FilePolicy(INDEX, ["files.pythonhosted.org"]).check_url(URL(url))


def test_m7_host_patterns() -> None:
    policy = FilePolicy(INDEX, ["*.cdn.example"])
    policy.check_url(URL("https://eu.cdn.example/x.whl"))
    for refused in ("https://cdn.example/x.whl", "https://eu.cdn.example.evil/x.whl"):
        with pytest.raises(UpstreamRefused):
            policy.check_url(URL(refused))


def test_m7_an_index_on_a_private_address_is_trusted_on_its_own_origin_only() -> None:
    """A devpi on an internal address: its own origin is fine, its host's other ports are not."""
    policy = FilePolicy(PRIVATE_INDEX, [])
    policy.check_url(URL("http://10.1.2.3:3141/root/pypi/+f/ab/x-1.0.tar.gz"))
    for url, rule in (("http://10.1.2.3:6379/", "allow_private_file_hosts"),
                      ("https://10.1.2.3:3141/x", "allow_private_file_hosts"),  # another scheme: another origin
                      ("http://10.1.2.4:3141/x", "file_hosts")):
        with pytest.raises(UpstreamRefused) as refused:
            policy.check_url(URL(url))
        assert refused.value.rule == rule


# At connection time: what a name resolves to ------------------------------------------------------


def resolved(*addresses: str) -> list[tuple[str, str]]:
    return [(address, address) for address in addresses]


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["10.0.0.7"], ["::1"], ["169.254.169.254"],
                                       ["::ffff:127.0.0.1"], ["fd00::1", "192.168.0.1"]])
def test_m7_a_name_that_resolves_only_to_non_public_addresses_is_refused(addresses: list[str]) -> None:
    policy = FilePolicy(INDEX, ["files.pythonhosted.org"])
    with pytest.raises(UpstreamRefused) as refused:
        policy.filter_resolved("files.pythonhosted.org", 443, resolved(*addresses))
    assert refused.value.rule == "allow_private_file_hosts"
    assert FilePolicy(INDEX, [], allow_private=True).filter_resolved("x", 443, resolved(*addresses)) == addresses


def test_m7_of_mixed_answers_only_public_addresses_are_connected_to() -> None:
    policy = FilePolicy(INDEX, ["files.pythonhosted.org"])
    answer = resolved("127.0.0.1", "151.101.0.223", "fd00::1", "2a04:4e42::223")
    assert policy.filter_resolved("files.pythonhosted.org", 443, answer) == ["151.101.0.223", "2a04:4e42::223"]


def test_m7_the_index_origin_and_proxies_resolve_to_anything() -> None:
    policy = FilePolicy(URL("http://devpi.internal:3141/simple/"), [], exempt=[("proxy.corp", 3128)])
    assert policy.filter_resolved("devpi.internal", 3141, resolved("10.0.0.5")) == ["10.0.0.5"]
    assert policy.filter_resolved("DEVPI.internal.", 3141, resolved("10.0.0.5")) == ["10.0.0.5"]
    assert policy.filter_resolved("proxy.corp", 3128, resolved("10.0.0.9")) == ["10.0.0.9"]
    with pytest.raises(UpstreamRefused):  # the same host on another port is not the index
        policy.filter_resolved("devpi.internal", 6379, resolved("10.0.0.5"))


class FixedResolver(AbstractResolver):
    """A name service whose answer the test sets (for rebinding): every name resolves to
    ``address``, whatever it resolved to before."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        return [ResolveResult(hostname=host, host=self.address, port=port, family=socket.AF_INET,
                              proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)]

    async def close(self) -> None:
        pass


@pytest.fixture
async def internal_service() -> AsyncIterator[tuple[int, list[str]]]:
    """A service reachable on loopback only (a database, a metadata endpoint): its port and the
    paths it was asked for."""
    asked: list[str] = []

    async def secret(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(text="db_password=hunter2\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", secret)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield port, asked
    await runner.cleanup()


async def test_m7_dns_rebinding_is_judged_at_connection_time(internal_service: tuple[int, list[str]]) -> None:
    """An allowed name that resolves to loopback when it is connected to is never connected to;
    with private file hosts allowed, the same name reaches the service (the resolver is the one
    the connection uses)."""
    port, asked = internal_service
    names = FixedResolver("127.0.0.1")
    url = URL(f"http://cdn.example:{port}/secret")
    for allow_private in (False, True):
        policy = FilePolicy(INDEX, ["cdn.example"], allow_private=allow_private)
        policy.check_url(url)  # the URL itself is fine: only its address is not
        connector = aiohttp.TCPConnector(resolver=PolicyResolver(policy, names), use_dns_cache=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            if allow_private:
                async with session.get(url) as response:
                    assert await response.text() == "db_password=hunter2\n"
            else:
                with pytest.raises(UpstreamRefused) as refused:
                    await session.get(url)
                assert refused.value.rule == "allow_private_file_hosts"
                assert asked == []
    assert names.asked == ["cdn.example", "cdn.example"] and asked == ["/secret"]


# Settings ---------------------------------------------------------------------------------------------


def test_m7_defaults() -> None:
    upstream = settings_from_mapping({}).upstream
    assert upstream.file_hosts == ("files.pythonhosted.org",)
    assert upstream.allow_private_file_hosts is False and upstream.cache_unverified_files is False


@pytest.mark.parametrize("value", [["https://files.example"], ["files.example:443"], ["files.example/x"],
                                   ["a b"], "files.example", [""], [1]])
def test_m7_file_hosts_must_be_host_names(value: Any) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_mapping({"upstream": {"file_hosts": value}})
    assert error.value.key == "upstream.file_hosts"


def test_m7_file_hosts_are_lower_case_and_ipv6_may_be_bracketed() -> None:
    upstream = settings_from_mapping({"upstream": {"file_hosts": ["Files.Example", "[fd00::5]", "*.cdn.example"]}})
    assert upstream.upstream.file_hosts == ("files.example", "fd00::5", "*.cdn.example")
