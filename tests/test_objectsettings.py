"""The object store's settings (proxy/objectsettings.py): the ``objects`` and ``objects_*`` keys of
[storage], the AWS variables they fall back on, and the combinations refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.config import settings_from_mapping, settings_to_mapping
from proxy.core.errors import ConfigError
from proxy.objectsettings import ObjectStoreSettings, keys, take

AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
       "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's or the CI's AWS variables."""
    for name in AWS:
        monkeypatch.delenv(name, raising=False)


def objects(**storage: Any) -> ObjectStoreSettings:
    settings: ObjectStoreSettings = settings_from_mapping({"storage": {"data_dir": "/d", **storage}}).storage.objects
    return settings


def test_no_object_store_by_default() -> None:
    assert objects() == ObjectStoreSettings()
    assert ObjectStoreSettings().url is None and not ObjectStoreSettings().is_s3


def test_an_s3_store_with_every_key() -> None:
    settings = objects(objects="s3://pypi-artifacts/prod/", objects_endpoint="https://minio.internal:9000/",
                       objects_region="eu-west-1", objects_access_key_id="AKIA", objects_secret_access_key="s3cr3t",
                       objects_session_token="tok", objects_serve="redirect", objects_presign_ttl=60,
                       objects_connect_timeout=1, objects_request_timeout=9.5, objects_retries=0)
    assert settings == ObjectStoreSettings(
        url="s3://pypi-artifacts/prod", endpoint="https://minio.internal:9000", region="eu-west-1",
        access_key_id="AKIA", secret_access_key="s3cr3t", session_token="tok", allow_http=False, serve="redirect",
        presign_ttl=60.0, connect_timeout=1.0, request_timeout=9.5, retries=0)
    assert settings.is_s3


def test_secrets_stay_out_of_reprs() -> None:
    shown = repr(objects(objects="s3://bucket", objects_access_key_id="AKIA", objects_secret_access_key="s3cr3t",
                         objects_session_token="t0ken"))
    assert "AKIA" in shown and "s3cr3t" not in shown and "t0ken" not in shown


@pytest.mark.parametrize(("written", "url"), [
    ("s3://bucket", "s3://bucket"),
    ("s3://my.bucket-1/", "s3://my.bucket-1"),
    ("s3://bucket/a/b/", "s3://bucket/a/b"),
    (" s3://bucket/prod ", "s3://bucket/prod"),
    ("file:///srv/blobs/", "file:///srv/blobs"),
    ("file:///", "file:///"),
    ("", None),
])
def test_object_store_urls(written: str, url: str | None) -> None:
    assert objects(objects=written).url == url


@pytest.mark.parametrize(("storage", "key"), [
    pytest.param({"objects": "gs://bucket"}, "storage.objects", id="other-scheme"),
    pytest.param({"objects": "/srv/blobs"}, "storage.objects", id="a-path"),
    pytest.param({"objects": "s3://ab"}, "storage.objects", id="bucket-too-short"),
    pytest.param({"objects": "s3://Bucket"}, "storage.objects", id="bucket-upper-case"),
    pytest.param({"objects": "s3://bucket_1"}, "storage.objects", id="bucket-underscore"),
    pytest.param({"objects": "s3://user:pw@bucket"}, "storage.objects", id="credentials-in-url"),
    pytest.param({"objects": "s3://bucket/a//b"}, "storage.objects", id="empty-segment"),
    pytest.param({"objects": "s3://bucket/../b"}, "storage.objects", id="dot-dot"),
    pytest.param({"objects": "file://host/dir"}, "storage.objects", id="file-host"),
    pytest.param({"objects": "file:///srv/../etc"}, "storage.objects", id="file-dot-dot"),
    pytest.param({"objects": 5}, "storage.objects", id="not-text"),
    pytest.param({"objects": "s3://bucket", "objects_serve": "proxy"}, "storage.objects_serve", id="serve-choice"),
    pytest.param({"objects": "s3://bucket", "objects_presign_ttl": 0}, "storage.objects_presign_ttl", id="ttl-0"),
    pytest.param({"objects": "s3://bucket", "objects_presign_ttl": 604801}, "storage.objects_presign_ttl",
                 id="ttl-over-7-days"),
    pytest.param({"objects": "s3://bucket", "objects_endpoint": "minio:9000"}, "storage.objects_endpoint",
                 id="endpoint-not-a-url"),
    pytest.param({"objects": "s3://bucket", "objects_request_timeout": 0}, "storage.objects_request_timeout",
                 id="timeout-0"),
    pytest.param({"objects": "s3://bucket", "objects_retries": -1}, "storage.objects_retries", id="retries"),
    pytest.param({"objects": "s3://bucket", "objects_allow_http": "yes"}, "storage.objects_allow_http",
                 id="allow-http-string"),
    pytest.param({"objects_endpiont": "https://x"}, "storage.objects_endpiont", id="unknown-key"),
    pytest.param({"objects": "s3://bucket", "objects_endpoint": "http://127.0.0.1:9000"},
                 "storage.objects_endpoint", id="http-without-allow-http"),
    pytest.param({"objects_endpoint": "https://minio:9000"}, "storage.objects_endpoint", id="endpoint-without-store"),
    pytest.param({"objects": "file:///srv/b", "objects_serve": "redirect"}, "storage.objects_serve",
                 id="redirect-from-a-directory"),
    pytest.param({"objects": "file:///srv/b", "objects_region": "eu-west-1"}, "storage.objects_region",
                 id="region-of-a-directory"),
    pytest.param({"objects": "s3://bucket", "objects_access_key_id": "AKIA"}, "storage.objects_secret_access_key",
                 id="key-without-secret"),
    pytest.param({"objects": "s3://bucket", "objects_secret_access_key": "s"}, "storage.objects_access_key_id",
                 id="secret-without-key"),
])
def test_errors_name_the_key(storage: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        objects(**storage)
    assert error.value.key == key
    assert repr(key) in str(error.value)


def test_an_unknown_objects_key_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as error:
        objects(objects_endpiont="https://x")
    assert all(key in error.value.problem for key in keys())


def test_an_unknown_storage_key_lists_the_object_store_s_too() -> None:
    with pytest.raises(ConfigError) as error:
        objects(databse="x")
    assert "data_dir" in error.value.problem and "objects_endpoint" in error.value.problem


def test_credentials_region_and_endpoint_from_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in [("AWS_ACCESS_KEY_ID", "AKIAENV"), ("AWS_SECRET_ACCESS_KEY", "envsecret"),
                        ("AWS_SESSION_TOKEN", "envtoken"), ("AWS_DEFAULT_REGION", "us-west-2"),
                        ("AWS_ENDPOINT_URL", "https://s3.example/")]:
        monkeypatch.setenv(name, value)
    settings = objects(objects="s3://bucket")
    assert (settings.access_key_id, settings.secret_access_key, settings.session_token) == (
        "AKIAENV", "envsecret", "envtoken")
    assert (settings.region, settings.endpoint) == ("us-west-2", "https://s3.example")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3-only.example")
    settings = objects(objects="s3://bucket")
    assert (settings.region, settings.endpoint) == ("eu-central-1", "https://s3-only.example")


def test_the_file_beats_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "envtoken")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    settings = objects(objects="s3://bucket", objects_access_key_id="AKIAFILE", objects_secret_access_key="file",
                       objects_region="eu-west-1")
    assert (settings.access_key_id, settings.secret_access_key, settings.session_token, settings.region) == (
        "AKIAFILE", "file", "", "eu-west-1")


def test_the_aws_variables_matter_only_to_an_s3_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert objects() == ObjectStoreSettings()
    assert objects(objects="file:///srv/blobs") == ObjectStoreSettings(url="file:///srv/blobs")


def test_an_http_endpoint_from_the_environment_needs_allow_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")
    with pytest.raises(ConfigError, match="objects_allow_http"):
        objects(objects="s3://bucket")
    assert objects(objects="s3://bucket", objects_allow_http=True).endpoint == "http://127.0.0.1:8333"


def test_take_removes_only_its_keys() -> None:
    table = {"data_dir": "/d", "database": "x", "objects": "s3://bucket", "objects_retries": 5}
    assert take("storage", table, {}) == ObjectStoreSettings(url="s3://bucket", retries=5)
    assert table == {"data_dir": "/d", "database": "x"}


def test_the_settings_survive_the_hand_over_to_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers rebuild the supervisor's settings from a JSON document: credentials from the
    environment included, so every worker uses what the supervisor read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    original = settings_from_mapping({"storage": {
        "data_dir": "/d", "objects": "s3://bucket/p", "objects_endpoint": "http://127.0.0.1:1",
        "objects_allow_http": True, "objects_serve": "redirect", "objects_presign_ttl": 30}})
    handed_over = json.loads(json.dumps(settings_to_mapping(original)))
    for name in AWS:
        monkeypatch.delenv(name, raising=False)
    assert settings_from_mapping(handed_over) == original
    assert original.storage.objects.access_key_id == "AKIAENV"
