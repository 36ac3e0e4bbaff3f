"""Conditional and range requests on a stored file (RFC 9110 13, 14): the pure decisions."""

from __future__ import annotations

import pytest

from proxy.core.conditional import Answer, Validators, byte_range, evaluate, stat_version, strong_etag, tags_match

ETAG = strong_etag("abc123")
MODIFIED = 1_700_000_000.75  # a file's mtime: HTTP dates have whole seconds
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"  # int(MODIFIED)
EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"
LATER = "Tue, 14 Nov 2023 22:13:21 GMT"
SIZE = 1000


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("", None),
    ("bytes=0-9", (0, 10)),
    ("bytes=10-", (10, 990)),
    ("bytes=-22", (978, 22)),
    ("bytes=-5000", (0, 1000)),  # a suffix longer than the file: all of it
    ("bytes=990-5000", (990, 10)),  # last-pos past the end: to the end
    ("bytes=999-999", (999, 1)),
    ("BYTES = 0 - 0", (0, 1)),
    ("bytes=1000-", False),  # first-pos at the end: nothing satisfies it
    ("bytes=5000-6000", False),
    ("bytes=-0", False),
    ("bytes=5-4", None),  # invalid (last < first): ignored
    ("bytes=0-1,5-6", None),  # several ranges: the whole file
    ("bytes=-", None),
    ("items=0-9", None),  # another unit
    ("bytes=a-b", None),
])
def test_byte_range(header: str | None, expected: object) -> None:
    assert byte_range(header, SIZE) == expected


def test_a_suffix_range_of_an_empty_file_is_unsatisfiable() -> None:
    assert byte_range("bytes=-5", 0) is False
    assert byte_range("bytes=0-", 0) is False


@pytest.mark.parametrize(("header", "weak", "expected"), [
    (None, True, False),
    ('"abc123"', True, True),
    ('"abc123"', False, True),
    ('W/"abc123"', True, True),
    ('W/"abc123"', False, False),  # a weak tag never matches strongly
    ('"other", "abc123"', True, True),
    ('"other"', True, False),
    ("*", False, True),
    ("abc123", True, False),  # unquoted: not the tag
])
def test_tags_match(header: str | None, weak: bool, expected: bool) -> None:
    assert tags_match(header, ETAG, weak=weak) is expected


@pytest.mark.parametrize(("request_", "expected"), [
    (Validators(), Answer(200, 0, SIZE, SIZE)),
    # If-None-Match (weak comparison) -> 304, and it overrides If-Modified-Since (13.2.2)
    (Validators(if_none_match=ETAG), Answer(304)),
    (Validators(if_none_match=f"W/{ETAG}"), Answer(304)),
    (Validators(if_none_match="*"), Answer(304)),
    (Validators(if_none_match='"old"', if_modified_since=LATER), Answer(200, 0, SIZE, SIZE)),
    # If-Modified-Since: 304 when not modified since, by whole seconds
    (Validators(if_modified_since=LAST_MODIFIED), Answer(304)),
    (Validators(if_modified_since=LATER), Answer(304)),
    (Validators(if_modified_since=EARLIER), Answer(200, 0, SIZE, SIZE)),
    (Validators(if_modified_since="not a date"), Answer(200, 0, SIZE, SIZE)),
    # If-Match (strong) and If-Unmodified-Since -> 412 first, whatever else is asked
    (Validators(if_match='"old"', if_none_match=ETAG), Answer(412)),
    (Validators(if_match=f"W/{ETAG}"), Answer(412)),
    (Validators(if_match=ETAG, range="bytes=0-9"), Answer(206, 0, 10, SIZE)),
    (Validators(if_match="*"), Answer(200, 0, SIZE, SIZE)),
    (Validators(if_unmodified_since=EARLIER), Answer(412)),
    (Validators(if_unmodified_since=LAST_MODIFIED), Answer(200, 0, SIZE, SIZE)),
    (Validators(if_match=ETAG, if_unmodified_since=EARLIER), Answer(200, 0, SIZE, SIZE)),  # If-Match wins
    # Range, and If-Range by strong ETag or the exact date
    (Validators(range="bytes=0-9"), Answer(206, 0, 10, SIZE)),
    (Validators(range="bytes=2000-"), Answer(416, size=SIZE)),
    (Validators(range="bytes=0-9", if_range=ETAG), Answer(206, 0, 10, SIZE)),
    (Validators(range="bytes=0-9", if_range='"old"'), Answer(200, 0, SIZE, SIZE)),
    (Validators(range="bytes=0-9", if_range=f"W/{ETAG}"), Answer(200, 0, SIZE, SIZE)),
    (Validators(range="bytes=0-9", if_range=LAST_MODIFIED), Answer(206, 0, 10, SIZE)),
    (Validators(range="bytes=0-9", if_range=LATER), Answer(200, 0, SIZE, SIZE)),  # exact dates only
    (Validators(range="bytes=2000-", if_range='"old"'), Answer(200, 0, SIZE, SIZE)),
    # a 304 comes before any range
    (Validators(range="bytes=0-9", if_none_match=ETAG), Answer(304)),
])
def test_evaluate(request_: Validators, expected: Answer) -> None:
    assert evaluate(request_, ETAG, MODIFIED, SIZE) == expected


def test_without_a_modification_time_dates_are_ignored() -> None:
    assert evaluate(Validators(if_modified_since=LATER), ETAG, None, SIZE).status == 200
    assert evaluate(Validators(if_unmodified_since=EARLIER), ETAG, None, SIZE).status == 200
    assert evaluate(Validators(range="bytes=0-0", if_range=LAST_MODIFIED), ETAG, None, SIZE).status == 200


@pytest.mark.parametrize(("answer", "header"), [
    (Answer(206, 10, 5, SIZE), "bytes 10-14/1000"),
    (Answer(416, size=SIZE), "bytes */1000"),
    (Answer(200, 0, SIZE, SIZE), None),
    (Answer(304), None),
])
def test_content_range(answer: Answer, header: str | None) -> None:
    assert answer.content_range == header


def test_stat_version_is_what_aiohttp_made_etags_of() -> None:
    """Cached files keep the ETags aiohttp's FileResponse gave them: f"{mtime_ns:x}-{size:x}"."""
    assert stat_version(1024, 1_700_000_000_123_456_789) == "17979cfe3d85cd15-400"
