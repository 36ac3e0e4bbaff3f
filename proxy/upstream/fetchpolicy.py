"""Where upstream files may be fetched from: the rules against SSRF through a listing (issue 12 M7).

A listing names file URLs, and its redirects name more; both come from upstream, which is not
trusted to choose what this server connects to. A URL is fetched only when:

- its scheme is http or https (rule ``scheme``);
- it is on the index's own origin (scheme, host and port of ``upstream.url``), trusted as the
  index itself is, wherever it lives: a devpi on an internal address is a normal set-up;
- or its host is the index's host or matches ``upstream.file_hosts`` (rule ``file_hosts``), and
  it is on a public address (rule ``allow_private_file_hosts``): not loopback, private,
  link-local, unspecified, multicast or reserved, also when written as an IPv4-mapped, NAT64 or
  6to4 IPv6 address. A name is judged by what it resolves to when the connection is made
  (``filter_resolved``, called by the client's resolver), so a name that resolves to a public
  address when looked at and to an internal one when connected to (DNS rebinding) is refused.

Pure: no I/O. Refusals raise UpstreamRefused, whose ``rule`` names the setting that governs it.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Sequence
from typing import TypeVar

from yarl import URL

from proxy.core.errors import UpstreamRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Endpoint = tuple[str, int]  # (host as yarl's raw_host gives it, lower case; port)
R = TypeVar("R")

_SCHEMES = ("http", "https")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits


def translated_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one is translated to on the way (IPv4-mapped ``::ffff:a.b.c.d``,
    NAT64 ``64:ff9b::a.b.c.d``), or None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """Whether ``address`` is a public unicast one: not loopback, private (RFC 1918, fc00::/7),
    link-local (169.254/16, fe80::/10), shared (100.64/10), unspecified, multicast or reserved.
    An IPv4-mapped or NAT64 address is judged as the IPv4 address it reaches; a 6to4 one also
    by the IPv4 address of its tunnel end."""
    translated = translated_ipv4(address)
    if translated is not None:
        return is_public(translated)
    tunnel_end = address.sixtofour if isinstance(address, ipaddress.IPv6Address) else None
    if tunnel_end is not None and not is_public(tunnel_end):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def address_of(host: str) -> Address | None:
    """``host`` as an IP address (an IPv6 zone ``%eth0`` allowed), or None for a name."""
    try:
        return ipaddress.ip_address(host.replace("%25", "%"))  # yarl keeps a zone percent-encoded
    except ValueError:
        return None


def host_of(url: URL) -> str:
    """The host as compared here: ASCII (IDNA), lower case, without a trailing dot."""
    return (url.raw_host or "").lower().rstrip(".")


class FilePolicy:
    """The rules above for one upstream. ``exempt`` endpoints (an HTTP proxy from the
    environment) are connected to whatever they resolve to, as the index's own origin is."""

    def __init__(self, index_url: URL, file_hosts: Sequence[str] = (), *, allow_private: bool = False,
                 exempt: Iterable[Endpoint] = ()) -> None:
        self._origin = (index_url.scheme, host_of(index_url), index_url.port)
        self._index_host = host_of(index_url)
        self._patterns = tuple(pattern.lower() for pattern in file_hosts)
        self._allow_private = allow_private
        self._exempt = frozenset({(host_of(index_url), index_url.port or 0), *exempt})

    def is_index_origin(self, url: URL) -> bool:
        return (url.scheme, host_of(url), url.port) == self._origin

    def check_url(self, url: URL) -> None:
        """Raise UpstreamRefused unless ``url`` may be fetched as a file (module docstring)."""
        if url.scheme not in _SCHEMES or not url.raw_host:
            raise UpstreamRefused(f"only http(s) URLs are fetched, not {_scheme_of(url)}", "scheme")
        if self.is_index_origin(url):
            return
        host = host_of(url)
        if host != self._index_host and not any(fnmatch.fnmatchcase(host, p) for p in self._patterns):
            raise UpstreamRefused(
                f"{host} is neither the index's host nor one of upstream.file_hosts", "file_hosts")
        address = address_of(host)
        if address is not None and not self._allow_private and not is_public(address):
            raise UpstreamRefused(f"{host} is not a public address", "allow_private_file_hosts")

    def filter_resolved(self, host: str, port: int, addresses: Sequence[tuple[str, R]]) -> list[R]:
        """The resolved ``(address, result)`` pairs of ``host`` that may be connected to: all of
        them for the index's origin, an exempt endpoint, or with ``allow_private``; else the public
        ones, and UpstreamRefused when none is. (Which hosts are asked for was checked by
        ``check_url`` before: this is the part only the connection can tell.)"""
        if self._allow_private or (host.lower().rstrip("."), port) in self._exempt:
            return [result for _, result in addresses]
        allowed = [result for text, result in addresses
                   if (address := address_of(text)) is not None and is_public(address)]
        if not allowed:
            raise UpstreamRefused(f"{host} resolves to no public address", "allow_private_file_hosts")
        return allowed


def _scheme_of(url: URL) -> str:
    return f"{url.scheme}: URLs" if url.scheme else "a URL without a scheme and host"
