"""The object store's settings (issue 14): the ``objects`` and ``objects_*`` keys of ``[storage]``,
parsed into one frozen dataclass, with credentials, region and endpoint taken from the usual AWS
variables when the file does not name them (read by the loader, never at import time)."""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from yarl import URL

from proxy import configvalues as kind
from proxy.core.errors import ConfigError

PREFIX = "objects"
# SigV4 presigned URLs live at most 7 days (X-Amz-Expires <= 604800).
MAX_PRESIGN_TTL = 7 * 86400
# Bucket names (AWS's rules, which SeaweedFS and MinIO apply too): 3-63 of a-z 0-9 . -
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SEGMENT = re.compile(r"^[A-Za-z0-9!_.*'()=+,@-]+$")


def object_store_url(key: str, value: Any) -> str | None:
    """``s3://bucket[/prefix]`` or ``file:///absolute/directory``, without a trailing slash; empty: none.
    Read as written (no URL normalisation: ``..`` and upper case are refused, not rewritten)."""
    text = kind.string(key, value).strip()
    if not text:
        return None
    scheme, _, rest = text.partition("://")
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(bucket):
            raise ConfigError(key, f"expected s3://bucket/prefix with a bucket name of 3-63 characters "
                                   f"a-z 0-9 . -, got {text!r}")
        prefix = prefix.rstrip("/")
        if prefix and any(not _SEGMENT.match(s) or s in (".", "..") for s in prefix.split("/")):
            raise ConfigError(key, f"the prefix of {text!r} must be path segments of letters, digits and "
                                   f"!_.*'()=+,@- (no empty, . or .. segment)")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if scheme == "file":
        if not rest.startswith("/") or any(s in (".", "..") for s in rest.split("/")) or re.search(r"[?#\x00]", rest):
            raise ConfigError(key, f"expected file:///absolute/directory, got {text!r}")
        return f"file://{rest.rstrip('/') or '/'}"
    raise ConfigError(key, f"expected s3://bucket/prefix or file:///directory, got {text!r}")


def optional_text(key: str, value: Any) -> str | None:
    """Text; empty means none."""
    return kind.string(key, value).strip() or None


def presign_ttl(key: str, value: Any) -> float:
    """Seconds a presigned URL stays valid: more than 0, at most 7 days (SigV4's limit)."""
    ttl = kind.positive_seconds(key, value)
    if ttl > MAX_PRESIGN_TTL or ttl < 1:
        raise ConfigError(key, f"expected 1 to {MAX_PRESIGN_TTL} seconds (S3 signs for 7 days at most)")
    return ttl


def _setting(default: Any, parse: Any, secret: bool = False) -> Any:
    return field(default=default, metadata={"parse": parse}, repr=not secret)


@dataclass(frozen=True)
class ObjectStoreSettings:
    """Where blobs live when not on the local disk. ``url`` is None in the embedded mode.

    The TOML key of ``url`` is ``objects``; of every other field, ``objects_<field>``."""

    url: str | None = _setting(None, object_store_url)
    # An S3-compatible endpoint (MinIO, SeaweedFS, R2, ...); None: AWS's regional one.
    endpoint: str | None = _setting(None, kind.optional_url)
    region: str | None = _setting(None, optional_text)
    access_key_id: str = _setting("", kind.string)
    secret_access_key: str = _setting("", kind.string, secret=True)
    session_token: str = _setting("", kind.string, secret=True)
    # Plain http to the endpoint (a store on loopback or a trusted network only).
    allow_http: bool = _setting(False, kind.boolean)
    # How files are served: streamed through this server, or a redirect to a presigned URL.
    serve: str = _setting("stream", kind.choice("stream", "redirect"))
    presign_ttl: float = _setting(300.0, presign_ttl)
    # Bytes of verified copies each replica keeps in data_dir/cache/blobs in stream mode (LRU).
    local_cache: int = _setting(10 * 1024**3, kind.size)
    connect_timeout: float = _setting(5.0, kind.positive_seconds)
    # Bound on a request to the store; for a streamed download, on each wait for its next bytes.
    request_timeout: float = _setting(30.0, kind.positive_seconds)
    retries: int = _setting(2, kind.count)

    @property
    def is_s3(self) -> bool:
        return self.url is not None and self.url.startswith("s3://")


def toml_key(name: str) -> str:
    """The ``[storage]`` key of a field of ObjectStoreSettings."""
    return PREFIX if name == "url" else f"{PREFIX}_{name}"


def keys() -> list[str]:
    """Every ``[storage]`` key the object store reads, in declaration order."""
    return [toml_key(f.name) for f in fields(ObjectStoreSettings)]


def take(section: str, table: MutableMapping[str, Any], environ: Mapping[str, str]) -> ObjectStoreSettings:
    """Remove the object store's keys from ``table`` (the ``[section]`` of the file) and parse them.

    Credentials, region and endpoint not in the file come from ``environ``: AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3
    / AWS_ENDPOINT_URL. Raises ConfigError naming the key for a bad value or combination."""
    by_key = {toml_key(f.name): f for f in fields(ObjectStoreSettings)}
    values = {}
    for key in [k for k in table if k == PREFIX or k.startswith(PREFIX + "_")]:
        value = table.pop(key)
        if key not in by_key:
            raise ConfigError(f"{section}.{key}", f"unknown key; the object store's keys: {', '.join(keys())}")
        item = by_key[key]
        values[item.name] = item.metadata["parse"](f"{section}.{key}", value)
    settings = ObjectStoreSettings(**values)
    if settings.is_s3:
        settings = _from_environment(section, settings, environ)
    _check(section, settings)
    return settings


def flatten(settings: ObjectStoreSettings) -> dict[str, Any]:
    """The settings as ``[storage]`` keys and TOML/JSON values that ``take`` reads back unchanged."""
    return {toml_key(f.name): ("" if (value := getattr(settings, f.name)) is None else value)
            for f in fields(ObjectStoreSettings)}


def _from_environment(section: str, settings: ObjectStoreSettings, environ: Mapping[str, str]) -> ObjectStoreSettings:
    if bool(settings.access_key_id) != bool(settings.secret_access_key):
        missing = "secret_access_key" if settings.access_key_id else "access_key_id"
        raise ConfigError(f"{section}.{toml_key(missing)}", "the access key id and its secret are set together")
    changes: dict[str, Any] = {}
    if not settings.access_key_id and environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        changes.update(access_key_id=environ["AWS_ACCESS_KEY_ID"], secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
                       session_token=settings.session_token or environ.get("AWS_SESSION_TOKEN", ""))
    if settings.region is None:
        changes["region"] = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if settings.endpoint is None and endpoint:
        changes["endpoint"] = kind.optional_url("$AWS_ENDPOINT_URL", endpoint)
    return replace(settings, **changes)


def _check(section: str, settings: ObjectStoreSettings) -> None:
    """Combinations no single value shows: nothing is silently ignored."""
    defaults = ObjectStoreSettings()
    s3_only = ("endpoint", "region", "access_key_id", "secret_access_key", "session_token", "allow_http")
    if not settings.is_s3:
        for name in (*s3_only, "serve"):
            if getattr(settings, name) != getattr(defaults, name):
                store = "no object store is set" if settings.url is None else "a file:// store"
                raise ConfigError(f"{section}.{toml_key(name)}",
                                  f"only for an s3:// object store, and {store} ({section}.{PREFIX})")
    endpoint = URL(settings.endpoint) if settings.endpoint else None
    if endpoint is not None and endpoint.scheme == "http" and not settings.allow_http:
        raise ConfigError(f"{section}.{toml_key('endpoint')}",
                          f"an http:// endpoint needs {toml_key('allow_http')} = true (use it only for a "
                          "store on loopback or a trusted network: the bytes travel unencrypted)")
