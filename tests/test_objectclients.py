"""obstore's clients from settings (proxy/storage/objectclients.py): the store's name in messages,
and one line of reason from obstore's long error texts."""

from __future__ import annotations

import pytest
from obstore.exceptions import GenericError, PermissionDeniedError

from proxy.objectsettings import ObjectStoreSettings
from proxy.storage.objectclients import failure_reason, store_name

# Texts obstore 0.12 gave against SeaweedFS (trimmed of the debug dump that follows them).
NO_BUCKET = ("Generic S3 error: Error performing list request: Error performing GET http://127.0.0.1:18333/"
             "no-such-bucket?list-type=2&prefix=x%2F in 2.2ms - Server returned non-2xx status code: 404 Not Found: "
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified "
             "bucket does not exist</Message></Error>\n\nDebug source:\nGeneric {\n    store: \"S3\",\n}")
BAD_SIGNATURE = ("Generic S3 error: Error performing list request: Error performing GET http://127.0.0.1:18333/b?"
                 "list-type=2 in 977µs - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>"
                 "\n<Error><Code>SignatureDoesNotMatch</Code></Error>")
HEAD_FORBIDDEN = ("The operation lacked the necessary privileges to complete for path x/y: Error performing HEAD "
                  "http://127.0.0.1:18333/b/x/y in 916µs - Server returned non-2xx status code: 403 Forbidden: \n\n"
                  "Debug source:\nPermissionDenied {")
REFUSED = ("Generic S3 error: Error performing HEAD http://127.0.0.1:1/b/x in 101.8ms, after 1 retries, "
           "max_retries: 1, retry_timeout: 3s  - HTTP error: error sending request\n\nDebug source:\nGeneric {")
SERVER_ERROR = ("Generic S3 error: Error performing POST http://127.0.0.1:18333/b/big?uploads= in 2.7s, after 10 "
                "retries, max_retries: 10, retry_timeout: 180s  - Server returned non-2xx status code: 500 Internal "
                "Server Error: <?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code></Error>")


@pytest.mark.parametrize(("error", "reason"), [
    (GenericError(NO_BUCKET), "GET: HTTP 404 Not Found (NoSuchBucket): the bucket does not exist"),
    (GenericError(BAD_SIGNATURE),
     "GET: HTTP 403 Forbidden (SignatureDoesNotMatch): check the credentials and the bucket's policy"),
    (PermissionDeniedError(HEAD_FORBIDDEN), "HEAD: HTTP 403 Forbidden: check the credentials and the bucket's policy"),
    (GenericError(REFUSED), "HTTP error: error sending request (after 1 retries)"),
    (GenericError(SERVER_ERROR), "POST: HTTP 500 Internal Server Error (InternalError)"),
    (PermissionError(13, "Permission denied"), "[Errno 13] Permission denied"),
    (TimeoutError(), "TimeoutError"),
])
def test_failure_reasons_are_one_line(error: Exception, reason: str) -> None:
    assert failure_reason(error) == reason


@pytest.mark.parametrize(("settings", "name"), [
    (ObjectStoreSettings(url="s3://bucket/prefix"), "s3://bucket/prefix"),
    (ObjectStoreSettings(url="s3://bucket", endpoint="https://minio.internal:9000"),
     "s3://bucket at https://minio.internal:9000"),
    (ObjectStoreSettings(url="s3://bucket", endpoint="https://user:pw@minio.internal"),
     "s3://bucket at https://minio.internal"),
    (ObjectStoreSettings(url="file:///srv/blobs"), "file:///srv/blobs"),
])
def test_the_store_is_named_without_credentials(settings: ObjectStoreSettings, name: str) -> None:
    assert store_name(settings) == name
