"""The kinds of value a setting can hold: one parser per kind, each turning what the TOML file
(or a command-line override) says into the typed value, or raising ConfigError keyed by the
setting's dotted name."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yarl import URL

from proxy.core.errors import ConfigError
from proxy.core.names import normalize

Parser = Callable[[str, Any], Any]
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
               "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def string(key: str, value: Any) -> str:
    """Any text."""
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {type(value).__name__}")
    return value


_REPLICA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")


def replica_name(key: str, value: Any) -> str:
    """A replica's name, as metrics label it: letters, digits, ``.``, ``_``, ``:``, ``-`` (64 at
    most); empty: the host's name (``host_name``)."""
    if value == "":
        return host_name()
    if not isinstance(value, str) or not _REPLICA.match(value):
        raise ConfigError(key, f"expected a name of letters, digits, '.', '_', ':' or '-' (64 at most), got {value!r}")
    return value


def host_name() -> str:
    """This host's name (its first label), the default replica name; "localhost" when it has none."""
    name = socket.gethostname().split(".")[0]
    return name if _REPLICA.match(name) else "localhost"


def port(key: str, value: Any) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ConfigError(key, "expected an integer port from 0 to 65535")
    return value


def size(key: str, value: Any) -> int:
    """Bytes, as an integer or a string such as "100 MiB" or "2GB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(key, f"expected a positive size such as 104857600 or \"100 MiB\", got {value!r}")
    unit = (match.group(2) or "").lower().removesuffix("b")
    total = int(match.group(1)) * _SIZE_UNITS[unit]
    if total <= 0:
        raise ConfigError(key, "must be positive")
    return total


def parse_size(text: str) -> int:
    """"100 MiB", "2GB" or a byte count, as the config file writes sizes."""
    return size("size", int(text) if text.isdigit() else text)


def optional_size(key: str, value: Any) -> int | None:
    """A size, or "" / 0 for no limit."""
    if value in ("", 0):
        return None
    return size(key, value)


def positive_count(key: str, value: Any) -> int:
    """An integer >= 1."""
    number = count(key, value)
    if not number:
        raise ConfigError(key, "expected an integer >= 1")
    return number


def database_url(key: str, value: Any) -> str | None:
    """A database URL: ``postgresql://user:password@host:port/name`` (``postgres://`` too) or
    ``sqlite:///path``; empty means none. The driver is chosen by proxy.storage.sql.engine."""
    text = string(key, value).strip()
    if not text:
        return None
    scheme, separator, rest = text.partition("://")
    if separator and scheme in _DATABASE_SCHEMES and rest.strip("/"):
        if scheme != "sqlite" or (rest.startswith("/") and rest != "/:memory:"):
            return text
    raise ConfigError(key, "expected postgresql://user:password@host:port/database or sqlite:///path/to/file.db, "
                           f"got {_without_password(text)!r}")


_DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite")


def _without_password(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (config errors are printed)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def workers(key: str, value: Any) -> int:
    """A process count; 0 means one per CPU."""
    return count(key, value) or os.cpu_count() or 1


def choice(*allowed: str) -> Parser:
    """A parser accepting exactly one of ``allowed``."""
    def parse(key: str, value: Any) -> str:
        if value not in allowed:
            raise ConfigError(key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)
    return parse


def optional_path(key: str, value: Any) -> Path | None:
    """A path; empty means "use the built-in default"."""
    text = string(key, value).strip()
    return Path(text).expanduser() if text else None


def optional_url(key: str, value: Any) -> str | None:
    """An absolute http(s) URL without its trailing slash; empty means none."""
    text = string(key, value).strip()
    if not text:
        return None
    url = URL(text)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(key, f"expected an absolute http(s) URL, got {text!r}")
    return text.rstrip("/")


def url_path_prefix(key: str, value: Any) -> str:
    """A URL path that starts and ends with "/", of letters, digits and ``._~-`` between."""
    text = string(key, value)
    segments = text.strip("/").split("/")
    if not re.fullmatch(r"/([A-Za-z0-9._~-]+/)+", text) or any(not part.strip(".") for part in segments):
        raise ConfigError(key, f'expected a path such as "/_pypi_proxy_internal/" (letters, digits, "._~-" '
                               f'between slashes, a slash at each end), got {text!r}')
    return text


def boolean(key: str, value: Any) -> bool:
    """true or false (TOML's own booleans, never strings)."""
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def seconds(key: str, value: Any) -> float:
    """Seconds >= 0 (an integer or a float); 0 usually turns the limit off."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(key, f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def positive_seconds(key: str, value: Any) -> float:
    """Seconds, more than 0 (a limit that cannot be turned off)."""
    duration = seconds(key, value)
    if not duration:
        raise ConfigError(key, "expected a number of seconds > 0")
    return duration


def count(key: str, value: Any) -> int:
    """An integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(key, f"expected an integer >= 0, got {value!r}")
    return value


def name_patterns(key: str, value: Any) -> tuple[str, ...]:
    """Project-name patterns such as "acme-*", normalised like the names they match (PEP 503)."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError(key, f"expected a list of name patterns such as [\"acme-*\"], got {value!r}")
    return tuple(normalize(item.strip()) for item in value)


def host_patterns(key: str, value: Any) -> tuple[str, ...]:
    """Host names or fnmatch patterns ("files.pythonhosted.org", "*.cdn.example"), lower case;
    an IPv6 address may be written in brackets."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError(key, f"expected a list of host names such as [\"files.pythonhosted.org\"], got {value!r}")
    hosts = tuple(item.strip().lower().removeprefix("[").removesuffix("]") for item in value)
    for host in hosts:
        if re.search(r"[/\s@?#\[\]]", host) or (":" in host and not _is_ipv6(host)):
            raise ConfigError(key, f"expected a host name without scheme, port or path, got {host!r}")
    return hosts


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def upstream_url(key: str, value: Any) -> str:
    """The upstream's simple index URL: an absolute http(s) URL, required."""
    url = optional_url(key, value)
    if url is None:
        raise ConfigError(key, "expected the upstream's simple index URL, e.g. https://pypi.org/simple")
    return url
