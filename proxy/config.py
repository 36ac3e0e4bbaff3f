"""Settings: embedded defaults, overridden by a TOML file, overridden by command-line flags. The
sections and their keys are declared here, each with its default and the kind of value it holds
(``proxy.configvalues``); one loader reads and validates them all."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from proxy import configvalues as kind
from proxy import objectsettings, policyvalues
from proxy.configvalues import Parser
from proxy.core.errors import ConfigError
from proxy.core.policy import FLOORS, MODES, Exemption, Rules
from proxy.oserrors import explain_os_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def _setting(default: Any, parse: Parser) -> Any:
    return field(default=default, metadata={"parse": parse})


def default_data_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the XDG data directory."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pypi-proxy"


@dataclass(frozen=True)
class ServerSettings:
    host: str = _setting("127.0.0.1", kind.string)
    port: int = _setting(8080, kind.port)
    # Absolute URL clients use to reach this server, when behind a reverse proxy.
    public_url: str | None = _setting(None, kind.optional_url)
    # Seconds requests in flight may take to finish after SIGTERM (keep below TimeoutStopSec).
    shutdown_timeout: float = _setting(30.0, kind.seconds)
    # Server processes sharing the port (SO_REUSEPORT); 0: one per CPU.
    workers: int = _setting(1, kind.workers)
    # Slow and idle clients (proxy/web/deadlines.py, connections.py); 0 turns a limit off. Seconds from connecting,
    # or from the first byte of a request, to the end of its line and headers.
    header_timeout: float = _setting(10.0, kind.seconds)
    # A request body must bring at least body_min_rate bytes per second (and one byte at least)
    # in every window of body_idle_timeout seconds in which the server is reading it.
    body_idle_timeout: float = _setting(20.0, kind.seconds)
    body_min_rate: int = _setting(500, kind.count)
    # Seconds a response may wait with no byte of it taken by the client.
    send_idle_timeout: float = _setting(60.0, kind.seconds)
    # Seconds an idle connection is kept open for the client's next request.
    keepalive_timeout: float = _setting(75.0, kind.seconds)
    # Open connections per server process; at the limit the longest-idle one makes room, else the new one closes.
    max_connections: int = _setting(1000, kind.count)
    # The event loop (proxy/ops/eventloop.py): "auto" is uvloop where it is installed, else asyncio's.
    event_loop: str = _setting("auto", kind.choice("auto", "uvloop", "asyncio"))
    replica: str = field(default_factory=kind.host_name, metadata={"parse": kind.replica_name})  # metrics label
    front_server: str = _setting("none", kind.choice("none", "nginx", "sendfile"))  # who sends files: web/front.py
    front_internal_prefix: str = _setting("/_pypi_proxy_internal/", kind.url_path_prefix)  # nginx's internal URIs


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path = _setting(None, kind.optional_path)
    # Blobs in an object store (issue 14): the keys "objects" and "objects_*" of [storage].
    objects: objectsettings.ObjectStoreSettings = field(default_factory=objectsettings.ObjectStoreSettings,
                                                        metadata={"group": objectsettings})
    # Metadata, users and tokens in a database shared by replicas (issue 14): postgresql://... or
    # sqlite:///path; empty: the files of the data directory (the embedded default).
    database: str | None = _setting(None, kind.database_url)
    # Connections each server process keeps open to it, and how many more it may open at a peak.
    database_pool_size: int = _setting(5, kind.positive_count)
    database_max_overflow: int = _setting(5, kind.count)
    # Seconds to wait for a free connection of the pool, to connect, and for one statement.
    database_pool_timeout: float = _setting(10.0, kind.positive_seconds)
    database_connect_timeout: float = _setting(5.0, kind.positive_seconds)
    database_statement_timeout: float = _setting(30.0, kind.positive_seconds)


@dataclass(frozen=True)
class UploadSettings:
    max_file_size: int = _setting(100 * 1024**2, kind.size)
    # Failed logins allowed a minute (also as a burst), per client address and per user name.
    failed_logins_per_address: int = _setting(10, kind.count)
    failed_logins_per_user: int = _setting(30, kind.count)
    # Who may make private a name that upstream serves: "any" (anyone allowed to upload under
    # that name) or "grant" (only users or tokens whose project list names it exactly).
    claim_public_names: str = _setting("any", kind.choice("any", "grant"))
    # Seconds a staged upload may sit idle in <data_dir>/tmp before it is swept away.
    staged_max_age: float = _setting(900.0, kind.seconds)


@dataclass(frozen=True)
class UpstreamSettings:
    enabled: bool = _setting(True, kind.boolean)
    url: str = _setting("https://pypi.org/simple", kind.upstream_url)
    username: str = _setting("", kind.string)
    password: str = _setting("", kind.string)
    connect_timeout: float = _setting(10.0, kind.seconds)
    read_timeout: float = _setting(30.0, kind.seconds)
    retries: int = _setting(2, kind.count)
    fresh_for: float = _setting(600.0, kind.seconds)
    not_found_for: float = _setting(60.0, kind.seconds)
    retry_after_error: float = _setting(30.0, kind.seconds)
    list_projects: bool = _setting(False, kind.boolean)
    project_list_fresh_for: float = _setting(86400.0, kind.seconds)
    reserved: tuple[str, ...] = _setting((), kind.name_patterns)
    # Resilience (issue 11): bounds on what a slow or failing upstream can cost a client.
    stale_timeout: float = _setting(0.5, kind.seconds)
    page_deadline: float = _setting(10.0, kind.seconds)
    project_list_deadline: float = _setting(120.0, kind.seconds)
    download_min_rate: int | None = _setting(1024, kind.optional_size)
    # Largest upstream file fetched when neither the listing nor upstream gives its size (L1).
    max_file_size: int = _setting(20 * 1024**3, kind.size)
    breaker_threshold: int = _setting(5, kind.count)
    breaker_probe_every: float = _setting(5.0, kind.positive_seconds)
    # Where files may come from (issue 12 M7, proxy/upstream/fetchpolicy.py): the index's own origin, and
    # these hosts on public addresses; private addresses only when allowed.
    file_hosts: tuple[str, ...] = _setting(("files.pythonhosted.org",), kind.host_patterns)
    allow_private_file_hosts: bool = _setting(False, kind.boolean)
    # A file listed without a hash cannot be verified: refused (502) unless this is true.
    cache_unverified_files: bool = _setting(False, kind.boolean)


@dataclass(frozen=True)
class CacheSettings:
    page_cache_size: int = _setting(1024**3, kind.size)
    rendered_memory: int = _setting(32 * 1024**2, kind.size)  # per server process
    files_max_size: int | None = _setting(None, kind.optional_size)


@dataclass(frozen=True)
class LoggingSettings:
    level: str = _setting("info", kind.choice("debug", "info", "warning", "error"))
    format: str = _setting("auto", kind.choice("auto", "json", "console"))


@dataclass(frozen=True)
class DescriptionSettings:
    """Long descriptions (core metadata's Description): the upload cap and the rendering budget."""

    # Largest accepted on upload, in UTF-8 bytes; None: no limit (warehouse has none).
    max_size: int | None = _setting(1024**2, kind.optional_size)
    # Larger ones are shown as plain text, never rendered.
    render_max_size: int = _setting(512 * 1024, kind.size)
    # Seconds one render may take, and address space its process may use; beyond: plain text.
    render_timeout: float = _setting(5.0, kind.positive_seconds)
    render_memory: int = _setting(1024**3, kind.size)
    # Rendered descriptions kept in memory per server process (least recently used go first).
    cache_memory: int = _setting(8 * 1024**2, kind.size)


@dataclass(frozen=True)
class PolicySettings:
    """Supply-chain policy (proxy/core/policy.py): every rule off | warn | block; all off by default."""

    vulnerabilities: str = _setting("off", kind.choice(*MODES))
    min_severity: str = _setting("any", kind.choice(*FLOORS))
    malicious: str = _setting("off", kind.choice(*MODES))
    cooldown: float = _setting(0.0, policyvalues.duration)
    cooldown_exempt: tuple[str, ...] = _setting((), kind.name_patterns)
    deny: tuple[str, ...] = _setting((), policyvalues.requirements)
    allow_only: tuple[str, ...] = _setting((), policyvalues.requirements)
    quarantined: str = _setting("off", kind.choice(*MODES))
    archived: str = _setting("off", kind.choice(*MODES))
    deprecated: str = _setting("off", kind.choice(*MODES))
    exemptions: tuple[Exemption, ...] = _setting((), policyvalues.exemptions)
    dry_run: bool = _setting(False, kind.boolean)
    # OSV records: the OSV bulk export for PyPI (a zip), or a local directory or zip of records.
    advisories: str = _setting("https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip", kind.string)
    advisories_refresh: float = _setting(6 * 3600.0, kind.positive_seconds)

    def rules(self) -> Rules:
        """The rules these settings configure."""
        return Rules(self.vulnerabilities, self.min_severity, self.malicious, self.cooldown, self.cooldown_exempt,
                     self.deny, self.allow_only, self.quarantined, self.archived, self.deprecated, self.exemptions,
                     self.dry_run)

    @property
    def needs_advisories(self) -> bool:
        return self.vulnerabilities != "off" or self.malicious != "off"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    upload: UploadSettings = field(default_factory=UploadSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    descriptions: DescriptionSettings = field(default_factory=DescriptionSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)

    @property
    def data_dir(self) -> Path:
        return self.storage.data_dir


_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Settings)}  # type: ignore[misc]


def section_keys(cls: type) -> list[str]:
    """The keys a section's file table may hold: its fields', a group field's own keys in its place."""
    return [key for f in fields(cls) for key in (f.metadata["group"].keys() if "group" in f.metadata else [f.name])]


def _build_section(name: str, cls: type, table: Any) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(name, "expected a table")
    known = {f.name: f for f in fields(cls) if "group" not in f.metadata}
    table = dict(table)
    # A group field (ObjectStoreSettings) takes its keys out of the table first.
    values = {f.name: f.metadata["group"].take(name, table, os.environ) for f in fields(cls) if "group" in f.metadata}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", f"unknown key; known keys of [{name}]: {', '.join(section_keys(cls))}")
        values[key] = known[key].metadata["parse"](f"{name}.{key}", value)
    return cls(**values)


def settings_from_mapping(data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Settings:
    """Validate a parsed TOML document plus dotted-key overrides (``{"server.port": 9000}``)."""
    merged: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        if name not in _SECTIONS:
            raise ConfigError(name, f"unknown section; known sections: {', '.join(_SECTIONS)}")
        if not isinstance(table, Mapping):
            raise ConfigError(name, "expected a table")
        merged[name] = dict(table)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            section, _, key = dotted.partition(".")
            if section not in _SECTIONS or not key:
                raise ConfigError(dotted, "unknown setting")
            merged.setdefault(section, {})[key] = value
    sections = {name: _build_section(name, cls, merged.get(name, {})) for name, cls in _SECTIONS.items()}
    settings = Settings(**sections)
    if settings.storage.data_dir is None:
        settings = replace(settings, storage=replace(settings.storage, data_dir=default_data_dir()))
    return settings


def settings_to_mapping(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings as a config document (JSON/TOML types) that ``settings_from_mapping`` reads
    back unchanged: how a server process hands its settings to its workers."""
    def plain(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(item) for item in value]
        if isinstance(value, Exemption):
            return policyvalues.exemption_mapping(value)
        return value

    def items(section: Any, item: Any) -> dict[str, Any]:  # a group field: its own keys in its place
        value = getattr(section, item.name)
        return item.metadata["group"].flatten(value) if "group" in item.metadata else {item.name: plain(value)}

    return {name: {key: value for item in fields(cls) for key, value in items(getattr(settings, name), item).items()}
            for name, cls in _SECTIONS.items()}


def load_settings(path: Path | None = None, overrides: Mapping[str, Any] | None = None,
                  source: str = "--config") -> Settings:
    """Read the TOML file at ``path`` (if any) and apply ``overrides``.

    Raises ConfigError, keyed by ``source`` (the option or variable that named the file) when
    the file cannot be read, is not UTF-8 or not TOML, and by the dotted key when a value is
    invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(_read_config(Path(path), source))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, f"{path} is not valid TOML: {exc}") from None
    return settings_from_mapping(data, overrides)


def _read_config(path: Path, source: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(source, f"file not found: {path}") from None
    except OSError as exc:
        reason, hint = explain_os_error(exc)
        raise ConfigError(source, f"cannot read the config file: {reason}; {hint}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                                  f"offset {exc.start}); save it as UTF-8") from None
