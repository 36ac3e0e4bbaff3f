"""Reading an upload is bounded (issue 12 M2, L11) through the real app: each limit is refused with
a 400 naming it, storage and tmp/ unchanged; the uploader's right to the project is checked as
soon as the ``name`` field arrives, before anything larger is read."""

from __future__ import annotations

import asyncio
import hashlib
import io
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.core.identity import Identity
from proxy.repository.upload_form import UploadForm
from proxy.repository.uploads import UploadService
from proxy.storage.auth import AuthStore
from proxy.web import upload as web_upload
from tests import archivekit as kit
from tests.archivekit import MIB, Entry
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, snapshot, start_client

BOUNDARY = "B0undary"
Part = tuple[str, bytes] | tuple[str, bytes, str] | tuple[str, bytes, str | None, str]


def multipart(*parts: Part, boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body, parts in the order given: (name, value[, filename[, extra header]])."""
    out = []
    for part in parts:
        name, value = part[0], part[1]
        filename = part[2] if len(part) > 2 else None
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        extra = f"{part[3]}\r\n" if len(part) > 3 else ""
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{extra}\r\n".encode() + value + b"\r\n")
    return b"".join(out) + f"--{boundary}--\r\n".encode()


def fields_for(name: str, version: str, data: bytes, filetype: str = "sdist") -> list[Part]:
    return [(":action", b"file_upload"), ("protocol_version", b"1"), ("name", name.encode()),
            ("version", version.encode()), ("filetype", filetype.encode()),
            ("pyversion", b"source" if filetype == "sdist" else b"py3"), ("metadata_version", b"2.1"),
            ("sha256_digest", hashlib.sha256(data).hexdigest().encode())]


async def post(client: TestClient, body: bytes, auth: dict[str, str] | None = None) -> tuple[int, str, str]:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **(auth or basic("alice", PASSWORD))}
    response = await client.post("/pypi/", data=io.BytesIO(body), headers=headers)
    return response.status, response.reason or "", await response.text()


async def refused(client: TestClient, settings: Settings, body: bytes, status: int, needle: str,
                  auth: dict[str, str] | None = None) -> str:
    before = snapshot(settings.data_dir)
    got, reason, text = await post(client, body, auth)
    assert (got, needle in text) == (status, True), text
    assert needle.split(":")[0][:60] in reason
    assert snapshot(settings.data_dir) == before, "a refused upload changed storage or left a temp file"
    return text


def upload_of(filename: str, data: bytes, name: str = "tarbomb", version: str = "1.0",
              filetype: str = "sdist") -> bytes:
    return multipart(*fields_for(name, version, data, filetype), ("content", data, filename))


# --- M2: the inputs through the app -----------------------------------------------------------


@pytest.mark.parametrize(("filename", "build", "needle"), [
    pytest.param("tarbomb-1.0.tar.gz", lambda: kit.tar_bomb(1_000_000), "more than one top-level directory",
                 id="the-issues-tar-bomb"),
    pytest.param("tarbomb-1.0.tar.gz", lambda: kit.tar_bomb(1_000_000, "tarbomb-1.0/a"),
                 "more than 100000 members, the limit for this server", id="a-million-members"),
    pytest.param("tarbomb-1.0.tar.gz", lambda: kit.sdist(kit.tar_header("tarbomb-1.0/z", 2048 * MIB))
                 + kit.zeros(2048 * MIB), "unpacks to more than", id="gzip-bomb-2-gib"),
    pytest.param("tarbomb-1.0.tar.gz", lambda: kit.sdist(kit.tar_file("../../evil.py", b"x")),
                 "member path '../../evil.py' leaves the archive's directory", id="l11-dotdot"),
    pytest.param("tarbomb-1.0.tar.gz", lambda: kit.sdist(kit.tar_file("/etc/cron.d/x", b"x")),
                 "member path '/etc/cron.d/x' is absolute", id="l11-absolute"),
    pytest.param("tarbomb-1.0-py3-none-any.whl",
                 lambda: kit.wheel(*[Entry(f"t/{n}", b"", method=0) for n in range(300_000)], zip64=True).build(),
                 "more than 100000 members", id="300k-zip-entries"),
])
async def test_m2_hostile_archives_are_400_naming_the_limit(client: TestClient, settings: Settings, filename: str,
                                                           build: Any, needle: str) -> None:
    data = await asyncio.to_thread(build)
    filetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
    await refused(client, settings, upload_of(filename, data, filetype=filetype), 400, needle)


@pytest.mark.parametrize(("framing", "needle"), [
    pytest.param("content-length", "Upload too large: the body is 251660884 bytes", id="as-the-issue-sent-it"),
    pytest.param("chunked", "fields are larger than 8 MiB together", id="chunked"),
])
async def test_m2_60_fields_of_4_mib(client: TestClient, settings: Settings, auth: AuthStore, framing: str,
                                     needle: str) -> None:
    """M2's second input: 60 fields of 4 MiB with a token scoped to another project cost +245 MiB
    before the 403. Its declared length is beyond any upload's: refused before reading. Sent
    chunked (no length), without a name field to check the scope against, reading stops at the
    total field limit."""
    _, token = await asyncio.to_thread(auth.create_token, "alice", ["some-other-project"])
    value = b"A" * (4 * MIB - 16)
    body = multipart(*[(f"f{n}", value) for n in range(60)])
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **basic("__token__", token)}

    async def chunks() -> Any:
        for start in range(0, len(body), MIB):
            yield body[start:start + MIB]

    before = snapshot(settings.data_dir)
    data = io.BytesIO(body) if framing == "content-length" else chunks()
    response = await client.post("/pypi/", data=data, headers=headers)
    text = await response.text()
    assert (response.status, needle in text) == (400, True), text
    assert snapshot(settings.data_dir) == before


@pytest.mark.parametrize("order", ["name-first", "twine"])
async def test_m2_the_scope_is_checked_as_soon_as_the_name_arrives(
        client: TestClient, settings: Settings, auth: AuthStore, monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    """The same token, the name field first (as twine sends it): 403 when the name arrives, with
    nothing after it read."""
    _, token = await asyncio.to_thread(auth.create_token, "alice", ["some-other-project"])
    seen: list[list[str]] = []
    real = UploadService.authorize

    async def watched(self: UploadService, identity: Identity, form: UploadForm, name: str) -> str:
        seen.append(sorted(form.fields))
        return await real(self, identity, form, name)

    monkeypatch.setattr(UploadService, "authorize", watched)
    data = Dist("Acme", "1.0").sdist()
    head = [("name", b"acme")] if order == "name-first" else fields_for("acme", "1.0", data)
    body = multipart(*head, *[(f"f{n}", b"A" * MIB) for n in range(60)], ("content", data, "acme-1.0.tar.gz"))
    await refused(client, settings, body, 403, "not allowed to upload to project 'acme'", basic("__token__", token))
    names = [name for name, *_ in head]
    assert seen == [sorted(names[:names.index("name") + 1])], "refused when the name arrived"


async def test_m2_a_file_before_the_name_is_staged_on_disk_and_removed(
        client: TestClient, settings: Settings, auth: AuthStore) -> None:
    """When the file comes first, it is staged on disk (never in memory), bounded by
    max_file_size, and removed when the name then turns out to be out of scope."""
    _, token = await asyncio.to_thread(auth.create_token, "alice", ["some-other-project"])
    data = Dist("Acme", "1.0").sdist()
    fields = fields_for("acme", "1.0", data)
    body = multipart(("content", data, "acme-1.0.tar.gz"), *fields)
    await refused(client, settings, body, 403, "not allowed to upload to project 'acme'", basic("__token__", token))


@pytest.mark.parametrize(("build", "needle"), [
    pytest.param(lambda: multipart(("description", b"d" * (4 * MIB + 1))),
                 "Field 'description' is larger than 4 MiB, the limit for one field", id="one-field"),
    pytest.param(lambda: multipart(*[("classifiers", b"c" * (3 * MIB))] * 3),
                 "fields are larger than 8 MiB together", id="repeated-field"),
    pytest.param(lambda: multipart(*[("classifiers", b"c")] * 2001),
                 "more than 2000 parts, the limit for this server", id="parts"),
    pytest.param(lambda: multipart(("", b"x")), "a part without a field name", id="unnamed-part"),
    pytest.param(lambda: multipart(("summary", "caf\u00e9".encode("latin-1"), None,
                                    "Content-Type: text/plain; charset=latin-1")),
                 "charset 'latin-1'; fields must be UTF-8", id="charset"),
    pytest.param(lambda: multipart(("summary", b"\xff\xfe")), "Field 'summary' is not valid UTF-8", id="not-utf8"),
    pytest.param(lambda: multipart(("outer", multipart(("inner", b"x"), boundary="inner"), None,
                                    "Content-Type: multipart/mixed; boundary=inner")),
                 "a nested multipart part", id="nested"),
    pytest.param(lambda: multipart(("content", b"x", "a.tar.gz"), ("content", b"y", "b.tar.gz")),
                 "Only one file per upload", id="two-files"),
])
async def test_m2_form_bounds(client: TestClient, settings: Settings, build: Any, needle: str) -> None:
    await refused(client, settings, build(), 400, needle)


async def test_m2_a_declared_body_beyond_every_limit_is_refused_before_reading(
        aiohttp_client: Any, make_settings: Any, auth: AuthStore) -> None:
    settings = make_settings(upload={"max_file_size": 1000})
    client = await start_client(aiohttp_client, settings)
    limit = 1000 + web_upload.MAX_FORM_BYTES + web_upload.MAX_FRAMING_BYTES
    body = multipart(("content", b"x" * (limit + 1), "acme-1.0.tar.gz"))
    await refused(client, settings, body, 400, "Upload too large: the body is")


async def test_m2_limits_leave_real_uploads_alone(client: TestClient, settings: Settings) -> None:
    """A long description (3 MiB) and hundreds of classifiers are accepted."""
    dist = Dist("Acme", "1.0")
    data = dist.sdist()
    extra = [("description", b"d" * (3 * MIB))] + [("classifiers", b"Topic :: Utilities")] * 500
    status, _, text = await post(client, multipart(*fields_for("acme", "1.0", data), *extra,
                                                   ("content", data, dist.sdist_filename)))
    assert status == 200, text


@pytest.mark.parametrize("disposition", [
    pytest.param("form-data;", id="trailing-semicolon"),  # what the fuzzer found: a 500 under -W error
    pytest.param("form-data; name", id="parameter-without-value"),
    pytest.param('form-data; name="a"; name="b"', id="repeated-parameter"),
    pytest.param("not a token; name=x", id="bad-type"),
])
async def test_malformed_content_disposition_is_400(client: TestClient, settings: Settings, disposition: str) -> None:
    """Found by tests/test_fuzz_upload.py: aiohttp warns about a malformed Content-Disposition
    (and reads the part as nameless); where warnings are errors, the warning escaped as a 500."""
    body = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\nvalue\r\n--{BOUNDARY}--\r\n".encode()
    await refused(client, settings, body, 400, "Malformed multipart body")
