"""obstore's S3 clients built from the object store's settings: credentials, endpoint, timeouts
and retries, and the store's name for messages (never a credential)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from obstore.store import S3Store
from yarl import URL

from proxy.objectsettings import ObjectStoreSettings

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

# The overall bound on a streamed download (seconds): its reads are bounded one by one by
# request_timeout, since a whole file to a slow client may take far longer than one request.
STREAM_DEADLINE = 86400.0
_STATUS = re.compile(r"Error performing ([A-Z]+) .*?non-2xx status code: (\d{3})([ A-Za-z]*)", re.DOTALL)
_S3_CODE = re.compile(r"<Code>(\w+)</Code>")
_RETRIES = re.compile(r"after (\d+) retries")
_HINTS = {"403": "check the credentials and the bucket's policy", "NoSuchBucket": "the bucket does not exist"}


def failure_reason(exc: Exception) -> str:
    """What an obstore (or OS) error says went wrong, in one line: the request and the store's
    answer (``HEAD: HTTP 403 Forbidden (SignatureDoesNotMatch): check the credentials…``), or what
    broke the connection, without the XML body or Rust's debug dump."""
    text = str(exc).strip()
    answer = _STATUS.search(text)
    if answer is not None:
        method, status, phrase = answer.groups()
        code = _S3_CODE.search(text)
        reason = f"{method}: HTTP {status}{phrase.rstrip()}" + (f" ({code.group(1)})" if code else "")
        hint = _HINTS.get(code.group(1) if code else "") or _HINTS.get(status)
        return f"{reason}: {hint}" if hint else reason
    first = text.splitlines()[0] if text else type(exc).__name__
    retries = _RETRIES.search(first)
    return first.rsplit(" - ", 1)[-1].strip()[:300] + (f" (after {retries.group(1)} retries)" if retries else "")


def store_name(settings: ObjectStoreSettings) -> str:
    """``s3://bucket/prefix at https://endpoint`` (user and password masked), or the file:// URL."""
    if not settings.endpoint:
        return str(settings.url)
    endpoint = URL(settings.endpoint)
    if endpoint.user or endpoint.password:
        endpoint = endpoint.with_user(None)
    return f"{settings.url} at {endpoint.with_query(None)}"


def s3_stores(settings: ObjectStoreSettings) -> tuple[S3Store, S3Store]:
    """Two clients of the bucket: one for requests bounded as a whole by ``request_timeout``
    (head, put, delete, list), one for streamed reads, whose every wait for bytes is bounded by it
    and whose whole by STREAM_DEADLINE. Credentials not set are obstore's to find (web identity,
    ECS or EC2 instance roles)."""
    assert settings.url is not None and settings.is_s3
    bucket, _, prefix = settings.url.removeprefix("s3://").partition("/")
    config: S3Config = {}
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    if settings.region:
        config["region"] = settings.region
    if settings.access_key_id:
        config["access_key_id"] = settings.access_key_id
        config["secret_access_key"] = settings.secret_access_key
    if settings.session_token:
        config["session_token"] = settings.session_token
    request = timedelta(seconds=settings.request_timeout)
    # Failures are retried (5xx, connections, timeouts of safe requests) settings.retries times,
    # within one request_timeout: a store that is down is reported in seconds, not minutes.
    retry: RetryConfig = {
        "max_retries": settings.retries,
        "retry_timeout": request,
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2), "base": 2},
    }

    def client(whole: timedelta) -> ClientConfig:
        return {"allow_http": settings.allow_http, "connect_timeout": timedelta(seconds=settings.connect_timeout),
                "read_timeout": request, "timeout": whole}

    def store(whole: timedelta) -> S3Store:
        return S3Store(bucket, prefix=prefix or None, config=config, client_options=client(whole), retry_config=retry)

    return store(request), store(timedelta(seconds=STREAM_DEADLINE))
