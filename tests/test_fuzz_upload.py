"""Property tests over the upload parser (issue 12: fuzzing, bounded in time).

Whatever the bytes, core metadata is either parsed or refused with UploadRejected; random tar and
zip structures give METADATA/PKG-INFO bytes or UploadRejected; random multipart bodies sent to
the real app are answered 200 or 4xx (never 5xx), and a 4xx changes nothing stored. Examples are
derandomized (the same ones every run, so CI is stable) and no example database is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import Settings
from proxy.core.errors import UploadRejected
from proxy.core.metadata import check_metadata_identity, read_core_metadata, release_info
from proxy.core.names import SDIST, WHEEL
from proxy.storage.distributions import extract_metadata
from tests import archivekit as kit
from tests.archivekit import Entry, RawZip
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, snapshot

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

FIELDS = ["Metadata-Version", "Name", "Version", "Summary", "Description", "Description-Content-Type",
          "Requires-Dist", "Requires-Python", "Provides-Extra", "Dynamic", "License-Expression", "License-File",
          "Project-URL", "Keywords", "Classifier", "Author-email", "Home-page", "X-Unknown"]
VALUES = st.one_of(st.sampled_from(["1.0", "2.4", "3.0", "demo", "-x", ">=3.8", "MIT OR", "Name", "Version",
                                    "text/markdown", "a, b", "requests>=2; extra == 'x'", "", "UNKNOWN"]),
                   st.text(max_size=40))


@st.composite
def metadata_texts(draw: st.DrawFn) -> bytes:
    """Header-like core metadata: known fields with plausible or random values, maybe a body."""
    lines = draw(st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), max_size=12))
    text = "".join(f"{key}: {value}\n" for key, value in lines)
    if draw(st.booleans()):  # half of them valid up to the random fields: the deeper checks run
        text = f"Metadata-Version: {draw(st.sampled_from(['1.0', '2.1', '2.4']))}\nName: demo\nVersion: 1.0\n" + text
    if draw(st.booleans()):
        text += "\n" + draw(st.text(max_size=80))
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


def read_metadata_as_an_upload_does(raw: bytes, packagetype: str) -> None:
    core = read_core_metadata(raw, packagetype)
    check_metadata_identity(core, "demo", "1.0")
    release_info(core, "1.0")


@FUZZ
@given(raw=st.one_of(metadata_texts(), metadata_texts(), metadata_texts(), st.binary(max_size=600)),
       packagetype=st.sampled_from([WHEEL, SDIST]))
def test_fuzz_core_metadata_is_parsed_or_refused(raw: bytes, packagetype: str) -> None:
    try:
        read_metadata_as_an_upload_does(raw, packagetype)
    except UploadRejected as exc:
        assert exc.reason and exc.status == 400


# --- Archives -----------------------------------------------------------------------------------------

SAFE_NAMES = st.sampled_from(["demo-1.0/PKG-INFO", "demo-1.0/setup.py", "demo-1.0", "demo-1.0/a/b.py",
                              "demo-1.0/" + "n" * 300])
NAMES = st.one_of(
    SAFE_NAMES, SAFE_NAMES, SAFE_NAMES,  # mostly well-formed, so later members are reached too
    st.sampled_from(["../x", "/etc/x", "demo-1.0/../../x", "other/x", "./demo-1.0/x", "demo-1.0/a\\b", ""]),
    st.text(max_size=30).map(lambda text: "demo-1.0/" + text),
    st.text(max_size=30),
)
TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                         tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE, b"Z"])


@st.composite
def tar_members(draw: st.DrawFn) -> bytes:
    name, type_ = draw(NAMES), draw(TYPES)
    data = draw(st.one_of(st.binary(max_size=64), metadata_texts()))
    fmt = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type_, draw(st.sampled_from(["", "x", "../../x", "/etc", "demo-1.0/PKG-INFO"]))
    info.size = len(data) if type_ in (tarfile.REGTYPE, tarfile.CONTTYPE, b"Z") else 0
    try:
        header = info.tobuf(fmt, "utf-8", "surrogateescape")
    except ValueError:  # a name this format cannot hold
        header = tarfile.TarInfo("demo-1.0/x").tobuf(fmt)
        data, info.size = b"", 0
    return header + (data + b"\0" * (-len(data) % 512) if info.size else b"")


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """The archive as built, or with a byte flipped, a cut, or bytes added at the end."""
    kind = draw(st.sampled_from(["none", "none", "none", "none", "flip", "cut", "append"]))
    if not data or kind == "none":
        return data
    where = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:where] + bytes([data[where] ^ draw(st.integers(1, 255))]) + data[where + 1:]
    if kind == "cut":
        return data[:where]
    return data + draw(st.binary(min_size=1, max_size=64))


@st.composite
def sdists(draw: st.DrawFn) -> bytes:
    members = b"".join(draw(st.lists(tar_members(), max_size=6)))
    if draw(st.integers(0, 3)):
        members = kit.tar_file("demo-1.0/PKG-INFO", draw(metadata_texts())) + members
    tar = members + kit.tar_end() if draw(st.booleans()) else members
    return mutate(draw, kit.gzip_member(mutate(draw, tar)))


def zip_entry(draw: st.DrawFn, name: str) -> Entry:
    """An entry as written, mostly; sometimes its method, flags, size or CRC-32 lie."""
    def sometimes(values: Any, usual: Any) -> Any:
        return draw(values) if not draw(st.integers(0, 3)) else usual

    return Entry(name, draw(st.one_of(metadata_texts(), st.binary(max_size=64))),
                 method=sometimes(st.sampled_from([0, 12, 99]), 8), flags=sometimes(st.sampled_from([0, 0x801, 8]), 0x800),
                 size=sometimes(st.integers(0, 2**32 - 1), None), crc=sometimes(st.integers(0, 2**32 - 1), None))


@st.composite
def wheels(draw: st.DrawFn) -> bytes:
    entries = [zip_entry(draw, "demo-1.0.dist-info/METADATA")] if draw(st.integers(0, 4)) else []
    entries += [zip_entry(draw, draw(st.sampled_from(["demo-1.0.dist-info/METADATA", "demo-1.0.dist-info/WHEEL",
                                                      "a/b.py"])) if draw(st.booleans()) else draw(NAMES))
                for _ in range(draw(st.integers(0, 4)))]
    raw = RawZip(entries, comment=draw(st.binary(max_size=8)), gap=draw(st.sampled_from([b"", b"", b"", b"x"])),
                 claimed_count=draw(st.one_of(st.none(), st.integers(0, 0xFFFF))), zip64=draw(st.booleans()))
    return mutate(draw, raw.build())


def extract(data: bytes, packagetype: str, strict: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "upload"
        path.write_bytes(data)
        try:
            result = extract_metadata(path, packagetype, strict)
        except UploadRejected as exc:
            assert exc.reason and exc.status == 400
        else:
            assert isinstance(result, bytes) and len(result) <= kit.MIB


@FUZZ
@given(data=sdists())
def test_fuzz_random_sdists_are_read_or_refused(data: bytes) -> None:
    extract(data, SDIST, True)


@FUZZ
@given(data=wheels(), strict=st.booleans())
def test_fuzz_random_wheels_are_read_or_refused(data: bytes, strict: bool) -> None:
    extract(data, WHEEL, strict)


# --- Multipart bodies against the real app -------------------------------------------------------------

APP_FUZZ = settings(FUZZ, max_examples=200)

FORM_FIELDS = [":action", "protocol_version", "name", "version", "filetype", "pyversion", "metadata_version",
               "sha256_digest", "md5_digest", "summary", "description", "classifiers", "content", "x-unknown"]
DIST = Dist("demo", "1.0")


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body that is often nearly right: real fields, a real or broken file, in any order."""
    boundary = draw(st.sampled_from(["B0undary", "x", "----WebKitFormBoundary7MA4YWxkTrZu0gW"]))
    wheel = draw(st.sampled_from([DIST.wheel(), DIST.sdist(), b"", b"PK\x03\x04junk"]))
    valid = {":action": b"file_upload", "protocol_version": b"1", "name": b"demo", "version": b"1.0",
             "filetype": b"bdist_wheel", "pyversion": b"py3", "metadata_version": b"2.1",
             "sha256_digest": hashlib.sha256(wheel).hexdigest().encode()}
    parts = []
    for name in draw(st.lists(st.sampled_from(FORM_FIELDS), max_size=12)):
        value = draw(st.one_of(st.just(valid.get(name, b"v")), st.binary(max_size=40)))
        header = f'Content-Disposition: form-data; name="{name}"'
        if name == "content" and draw(st.booleans()):
            header += f'; filename="{draw(st.sampled_from([DIST.wheel_filename, "../x.whl", "a.tar.gz", ""]))}"'
            value = mutate(draw, wheel)
        extra = draw(st.sampled_from(["", "Content-Type: text/plain; charset=utf-16\r\n",
                                      "Content-Type: multipart/mixed; boundary=q\r\n"]))
        parts.append(f"--{boundary}\r\n{header}\r\n{extra}\r\n".encode() + value + b"\r\n")
    body = b"".join(parts) + (f"--{boundary}--\r\n".encode() if draw(st.booleans()) else b"")
    content_type = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}", "multipart/form-data",
                                         "application/octet-stream", f"multipart/form-data; boundary={boundary}x"]))
    return mutate(draw, body), content_type


async def test_fuzz_random_multipart_bodies_are_answered_200_or_4xx(client: TestClient, settings: Settings) -> None:
    """A few hundred bodies through the real app (each pays one scrypt for its login): never a
    5xx, and a refused one leaves storage and tmp/ as they were."""
    loop = asyncio.get_running_loop()
    headers = basic("alice", PASSWORD)

    async def send(body: bytes, content_type: str) -> tuple[int, str]:
        response = await client.post("/pypi/", data=body, headers={**headers, "Content-Type": content_type})
        return response.status, await response.text()

    @APP_FUZZ
    @given(case=bodies())
    def property_(case: tuple[bytes, str]) -> None:
        before = snapshot(settings.data_dir)
        status, text = asyncio.run_coroutine_threadsafe(send(*case), loop).result(timeout=60)
        assert status == 200 or 400 <= status < 500, (status, text)
        if status != 200:
            assert snapshot(settings.data_dir) == before, text

    await asyncio.to_thread(property_)

