"""The upload API against the real app (STANDARDS E1-E6): every rejection leaves storage unchanged."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.core.identity import Identity
from proxy.repository.uploads import UploadService
from proxy.storage.auth import AuthStore
from tests.builders import Dist, build_with_poetry
from tests.conftest import PASSWORD, Uploader, basic, snapshot, start_client, upload_form
from tests.faults import DiskFull

DIST = Dist("Acme.Widget", "1.0.0", requires_python=">=3.8")
JSON_PAGE = {"Accept": "application/vnd.pypi.simple.v1+json"}


async def test_wheel_and_sdist_upload_are_listed_at_once(client: TestClient, upload: Uploader, settings: Settings) -> None:
    """E1, E5: both files land and appear in the index immediately."""
    for kind in ("wheel", "sdist"):
        response = await upload(DIST, kind)
        assert response.status == 200, await response.text()
    page = await client.get("/pypi/simple/acme-widget/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    files = {f["filename"]: f for f in (await page.json())["files"]}
    assert set(files) == {DIST.wheel_filename, DIST.sdist_filename}
    assert files[DIST.wheel_filename]["hashes"]["sha256"] == hashlib.sha256(DIST.wheel()).hexdigest()
    stored = settings.data_dir / "private" / "acme-widget"
    assert (stored / DIST.wheel_filename).read_bytes() == DIST.wheel()


async def test_metadata_file_is_the_archives_own(client: TestClient, upload: Uploader, settings: Settings) -> None:
    """E6, PEP 658: the .metadata file is METADATA from the wheel, byte for byte."""
    assert (await upload(DIST)).status == 200
    stored = settings.data_dir / "private" / "acme-widget" / f"{DIST.wheel_filename}.metadata"
    assert stored.read_bytes() == DIST.metadata()


async def test_upload_at_path_without_slash(client: TestClient) -> None:
    """E1: /pypi and /pypi/ both take uploads."""
    response = await client.post("/pypi", data=upload_form(DIST), headers=basic("alice", PASSWORD))
    assert response.status == 200


async def test_same_file_twice_succeeds_and_changes_nothing(upload: Uploader, settings: Settings) -> None:
    """E4: same filename, same bytes -> success, nothing changes."""
    assert (await upload(DIST)).status == 200
    before = snapshot(settings.data_dir)
    response = await upload(DIST)
    assert response.status == 200
    assert snapshot(settings.data_dir) == before


async def test_same_filename_different_bytes_is_rejected_for_skip_existing(upload: Uploader, settings: Settings) -> None:
    """E4: 400 with 'File already exists' in reason and body, the stored file untouched."""
    assert (await upload(DIST)).status == 200
    before = snapshot(settings.data_dir)
    other = Dist("Acme.Widget", "1.0.0", summary="changed")
    response = await upload(other)
    assert response.status == 400
    assert "File already exists" in response.reason
    assert "File already exists" in await response.text()
    assert snapshot(settings.data_dir) == before


async def _assert_rejected(upload: Uploader, settings: Settings, status: int, needle: str, *args: object, **kwargs: object) -> aiohttp.ClientResponse:
    before = snapshot(settings.data_dir)
    response = await upload(*args, **kwargs)
    text = await response.text()
    assert response.status == status, text
    assert needle.lower() in text.lower()
    assert snapshot(settings.data_dir) == before, "a rejected upload changed storage"
    return response


async def test_no_credentials_is_401_with_basic_challenge(client: TestClient, settings: Settings) -> None:
    """E2: no credentials -> 401 with WWW-Authenticate: Basic."""
    before = snapshot(settings.data_dir)
    response = await client.post("/pypi/", data=upload_form(DIST))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert snapshot(settings.data_dir) == before


@pytest.mark.parametrize("auth", [
    basic("alice", "wrong password"),
    basic("nobody", PASSWORD),
    basic("__token__", "pypi-proxy-000000000000-bogus"),
    basic("__token__", "not-even-a-token"),
], ids=["wrong-password", "unknown-user", "unknown-token", "malformed-token"])
async def test_bad_credentials_are_rejected(upload: Uploader, settings: Settings, auth: dict[str, str]) -> None:
    """E2: bad credentials are refused with a message."""
    response = await _assert_rejected(upload, settings, 401, "invalid", DIST, auth=auth)
    assert "WWW-Authenticate" in response.headers


async def test_malformed_authorization_header(client: TestClient) -> None:
    response = await client.post("/pypi/", data=upload_form(DIST), headers={"Authorization": "Bearer abc"})
    assert response.status == 401


async def test_token_uploads_and_revoked_token_is_refused(upload: Uploader, auth: AuthStore, settings: Settings) -> None:
    """E2: an API token arrives as user __token__; a revoked one stops working."""
    token_id, token = await asyncio.to_thread(auth.create_token, "alice")
    assert (await upload(DIST, auth=basic("__token__", token))).status == 200
    await asyncio.to_thread(auth.revoke_token, token_id)
    await _assert_rejected(upload, settings, 401, "revoked", Dist("Acme.Widget", "1.0.1"),
                           auth=basic("__token__", token))


async def test_token_scoped_to_another_project_is_403(upload: Uploader, auth: AuthStore, settings: Settings) -> None:
    """E2: valid credentials without the right to this project -> 403."""
    _, token = await asyncio.to_thread(auth.create_token, "alice", ["other-project"])
    await _assert_rejected(upload, settings, 403, "not allowed", DIST, auth=basic("__token__", token))
    allowed = Dist("Other_Project", "0.1")
    assert (await upload(allowed, auth=basic("__token__", token))).status == 200


async def test_user_restricted_to_a_pattern_is_403_elsewhere(upload: Uploader, settings: Settings) -> None:
    """E2: bob may upload bob-* only."""
    bob = basic("bob", PASSWORD)
    await _assert_rejected(upload, settings, 403, "not allowed", DIST, auth=bob)
    assert (await upload(Dist("bob-tools", "1.0"), auth=bob)).status == 200


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"name": None}, "missing required field 'name'"),
    ({"version": None}, "missing required field 'version'"),
    ({"filetype": None}, "missing required field 'filetype'"),
    ({":action": None}, "missing required field ':action'"),
    ({":action": "submit"}, "unsupported :action"),
    ({"name": "-acme"}, "invalid project name"),
    ({"name": "fo/o"}, "invalid project name"),
    ({"version": "not a version"}, "invalid version"),
    ({"filetype": "bdist_egg"}, "invalid value for filetype"),
    ({"filetype": "sdist"}, "invalid file extension"),
    ({"name": "Other"}, "start filename"),
    ({"version": "2.0"}, "version in filename"),
    ({"sha256_digest": "0" * 64}, "digest supplied does not match"),
    ({"md5_digest": "0" * 32}, "digest supplied does not match"),
    ({"blake2_256_digest": "0" * 64}, "digest supplied does not match"),
    ({"md5_digest": None, "sha256_digest": None, "blake2_256_digest": None}, "at least one message digest"),
], ids=lambda v: str(v)[:40])
async def test_invalid_fields_are_400(upload: Uploader, settings: Settings, overrides: dict[str, str | None], needle: str) -> None:
    """A2, A3, A4, E1, E3: each reason is in the status line and the body."""
    response = await _assert_rejected(upload, settings, 400, needle, DIST, **overrides)
    assert needle.split()[0].lower() in response.reason.lower()


@pytest.mark.parametrize("filename", [
    "../acme_widget-1.0.0-py3-none-any.whl",
    "../../etc/acme_widget-1.0.0-py3-none-any.whl",
    "/etc/acme_widget-1.0.0-py3-none-any.whl",
    "..\\acme_widget-1.0.0-py3-none-any.whl",
    ".acme_widget-1.0.0-py3-none-any.whl",
    "acme_widget-1.0.0-py3-none-any.zip",
    "acme_widget-1.0.0.zip",
])
async def test_unsafe_or_unknown_filenames_are_400(upload: Uploader, settings: Settings, filename: str, tmp_path: Path) -> None:
    """A4 and path safety: nothing is written outside (or inside) storage."""
    await _assert_rejected(upload, settings, 400, "invalid", DIST, filename=filename)
    assert not (settings.data_dir.parent / "etc").exists()


@pytest.mark.parametrize(("kind", "content", "needle"), [
    ("wheel", b"this is not a zip", "not a valid zip"),
    ("sdist", b"\x1f\x8b\x08\x00truncated", "not a valid .tar.gz"),
    ("wheel", b"", "empty"),
])
async def test_archives_that_are_not_distributions_are_400(upload: Uploader, settings: Settings, kind: str, content: bytes, needle: str) -> None:
    """E3: not a valid wheel/sdist."""
    await _assert_rejected(upload, settings, 400, needle, DIST, kind=kind, content=content)


async def test_metadata_naming_another_project_is_400(upload: Uploader, settings: Settings) -> None:
    """E6: the archive's metadata must match the form."""
    impostor = Dist("Other", "1.0.0").wheel()
    await _assert_rejected(upload, settings, 400, "metadata names project", DIST, content=impostor)


async def test_oversize_file_is_400_and_nothing_kept(aiohttp_client: object, make_settings: object, auth: AuthStore) -> None:
    """E3: file too large; the partial temp file is removed."""
    from tests.conftest import start_client

    settings = make_settings(upload={"max_file_size": 2000})  # type: ignore[operator]
    client = await start_client(aiohttp_client, settings)
    big = Dist("Acme.Widget", "1.0.0", description="x" * 50_000)
    before = snapshot(settings.data_dir)
    response = await client.post("/pypi/", data=upload_form(big, content=big.wheel() + b"\0" * 0),
                                 headers=basic("alice", PASSWORD))
    assert response.status == 400
    assert "too large" in (await response.text()).lower()
    assert snapshot(settings.data_dir) == before


@pytest.mark.parametrize(("headers", "body"), [
    ({"Content-Type": "application/json"}, b"{}"),
    ({"Content-Type": "multipart/form-data; boundary=XYZ"}, b"--XYZ\r\ngarbage without headers end"),
    ({"Content-Type": "multipart/form-data"}, b"no boundary at all"),
])
async def test_malformed_bodies_are_400(client: TestClient, settings: Settings, headers: dict[str, str], body: bytes) -> None:
    before = snapshot(settings.data_dir)
    response = await client.post("/pypi/", data=body, headers={**headers, **basic("alice", PASSWORD)})
    assert response.status == 400, await response.text()
    assert snapshot(settings.data_dir) == before


async def test_content_without_filename_is_400(client: TestClient, settings: Settings) -> None:
    form = aiohttp.FormData()
    for key, value in {":action": "file_upload", "name": "acme", "version": "1.0", "filetype": "sdist"}.items():
        form.add_field(key, value)
    form.add_field("content", "just text")
    response = await client.post("/pypi/", data=form, headers=basic("alice", PASSWORD))
    assert response.status == 400


async def test_concurrent_uploads_of_different_files_both_land(client: TestClient, upload: Uploader) -> None:
    """Storage: two different files of one project, uploaded at once, are both listed."""
    dists = [Dist("Acme.Widget", f"1.0.{n}") for n in range(6)]
    responses = await asyncio.gather(*(upload(d) for d in dists))
    assert [r.status for r in responses] == [200] * 6
    page = await client.get("/pypi/simple/acme-widget/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert len((await page.json())["files"]) == 6


async def test_concurrent_uploads_of_one_filename_one_wins(upload: Uploader, settings: Settings) -> None:
    """Storage: of two different contents for one filename, exactly one is stored."""
    first, second = Dist("Acme.Widget", "1.0.0", summary="one"), Dist("Acme.Widget", "1.0.0", summary="two")
    responses = await asyncio.gather(upload(first), upload(second))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 400]
    index = json.loads((settings.data_dir / "private" / "acme-widget" / "project.json").read_bytes())
    assert len(index["files"]) == 1
    stored = (settings.data_dir / "private" / "acme-widget" / first.wheel_filename).read_bytes()
    winner = first if responses[0].status == 200 else second
    assert stored == winner.wheel()
    assert hashlib.sha256(stored).hexdigest() == index["files"][0]["sha256"]


async def test_version_spellings_share_one_release(client: TestClient, upload: Uploader) -> None:
    """A3: 1.0 and 1.0.0 are one PEP 440 version."""
    assert (await upload(Dist("Acme.Widget", "1.0"), "sdist")).status == 200
    response = await upload(Dist("Acme.Widget", "1.0.0"), "wheel", version="1.0.0")
    assert response.status == 200
    page = await client.get("/pypi/simple/acme-widget/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert (await page.json())["versions"] == ["1.0"]


@pytest.mark.parametrize(("stage", "operation"), [("staging", "fsync"), ("commit", "write")])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
async def test_full_disk_is_507_and_loses_nothing(upload: Uploader, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                  stage: str, operation: str, code: int) -> None:
    """A full disk (ENOSPC, or EDQUOT for a quota, from the OS: tests/faults.py) while the upload
    is staged in tmp/ or committed into private/ is a clear 507; storage unchanged. Every step of
    the commit: tests/test_crash_recovery.py."""
    assert (await upload(DIST)).status == 200
    before = snapshot(settings.data_dir)
    disk = DiskFull(settings.data_dir / ("tmp" if stage == "staging" else "private"), operation, code=code)
    disk.install(monkeypatch)
    response = await upload(Dist("Acme.Widget", "2.0"))
    assert disk.failed == 1
    assert response.status == 507
    assert "storage is full" in await response.text()
    assert snapshot(settings.data_dir) == before


# --- H1: one distribution per identity (STANDARDS H1, E4; warehouse forklift/legacy.py) -------------


def marked(name: str, version: str, mark: str) -> Dist:
    """A wheel of ``name`` whose module says ``mark``: different bytes, same identity."""
    return Dist(name, version, module_source=f"VALUE = {mark!r}\n")


async def listed(client: TestClient, project: str) -> list[str]:
    page = await client.get(f"/pypi/simple/{project}/", headers=JSON_PAGE)
    return [f["filename"] for f in (await page.json())["files"]]


@pytest.mark.parametrize(("name", "version", "filename"), [
    pytest.param("Demo", "1.0.0", "Demo-1.0.0-py3-none-any.whl", id="name-case"),
    pytest.param("demo", "01.0.0", "demo-01.0.0-py3-none-any.whl", id="leading-zero"),
    pytest.param("demo", "1.0", "demo-1.0-py3-none-any.whl", id="trailing-zero-dropped"),
    pytest.param("demo", "1.0.0.0", "demo-1.0.0.0-py3-none-any.whl", id="trailing-zero-added"),
    pytest.param("demo", "v1.0.0", "demo-v1.0.0-py3-none-any.whl", id="v-prefix"),
    pytest.param("DEMO", "1.0.0", "DEMO-1.0.0-py3-none-any.whl", id="name-upper"),
])
async def test_h1_another_filename_for_the_same_wheel_is_refused(
        client: TestClient, upload: Uploader, settings: Settings, name: str, version: str, filename: str) -> None:
    """H1: the issue's case. pip and uv would otherwise install different bytes for demo==1.0.0."""
    first = marked("demo", "1.0.0", "first")
    assert (await upload(first)).status == 200
    response = await _assert_rejected(upload, settings, 400, "File already exists",
                                      marked(name, version, "impostor"), filename=filename)
    assert response.reason.startswith("File already exists")
    assert first.wheel_filename in await response.text(), "the reason names the stored file"
    assert await listed(client, "demo") == [first.wheel_filename]


@pytest.mark.parametrize("filename", ["demo_pkg-1.0-py3-none-any.whl", "demo.pkg-1.0-py3-none-any.whl",
                                      "Demo_Pkg-1.0-py3-none-any.whl"])
@pytest.mark.parametrize("form_name", ["demo-pkg", "demo_pkg", "Demo.Pkg"])
async def test_h1_separator_variants_of_the_name_are_one_project_and_one_wheel(
        client: TestClient, upload: Uploader, settings: Settings, filename: str, form_name: str) -> None:
    """A1 (PEP 503) with H1: demo_pkg, demo.pkg and Demo_Pkg name one project, so one wheel."""
    assert (await upload(marked("demo-pkg", "1.0", "first"))).status == 200
    await _assert_rejected(upload, settings, 400, "File already exists", marked(form_name, "1.0", "other"),
                           filename=filename)
    assert await listed(client, "demo-pkg") == ["demo_pkg-1.0-py3-none-any.whl"]


async def test_h1_same_bytes_under_another_filename_of_the_identity_is_refused(
        upload: Uploader, settings: Settings) -> None:
    """Only same bytes *and* same filename is the no-op re-upload (E4)."""
    dist = marked("demo", "1.0.0", "first")
    assert (await upload(dist)).status == 200
    await _assert_rejected(upload, settings, 400, "File already exists", dist, filename="Demo-1.0.0-py3-none-any.whl")


async def test_h1_same_bytes_as_another_release_file_are_refused(upload: Uploader, settings: Settings) -> None:
    """warehouse refuses a known digest under a new filename; here a new tag set with old bytes."""
    dist = marked("demo", "1.0.0", "first")
    assert (await upload(dist)).status == 200
    await _assert_rejected(upload, settings, 400, "same content", dist, filename="demo-1.0.0-py2.py3-none-any.whl")


@pytest.mark.parametrize("filename", [
    pytest.param("demo-1.0.0-1-py3-none-any.whl", id="build-tag"),
    pytest.param("demo-1.0.0-py2.py3-none-any.whl", id="wider-tag-set"),
    pytest.param("demo-1.0.0-cp311-cp311-manylinux_2_17_x86_64.whl", id="binary-tags"),
])
async def test_h1_build_tag_or_tag_set_makes_another_distribution(
        client: TestClient, upload: Uploader, filename: str) -> None:
    """H1: a build tag or another tag set is another wheel of the release, accepted (each once)."""
    assert (await upload(marked("demo", "1.0.0", "first"))).status == 200
    response = await upload(marked("demo", "1.0.0", "second"), filename=filename)
    assert response.status == 200, await response.text()
    assert sorted(await listed(client, "demo")) == sorted(["demo-1.0.0-py3-none-any.whl", filename])


async def test_h1_tag_set_order_is_one_identity(client: TestClient, upload: Uploader, settings: Settings) -> None:
    """H1: py2.py3 and py3.py2 are the same set of tags."""
    assert (await upload(marked("demo", "1.0", "first"), filename="demo-1.0-py2.py3-none-any.whl")).status == 200
    await _assert_rejected(upload, settings, 400, "File already exists", marked("demo", "1.0", "other"),
                           filename="demo-1.0-py3.py2-none-any.whl")


@pytest.mark.parametrize(("version", "filename"), [
    pytest.param("1.0.0", "demo-1.0.0.tar.gz", id="same-spelling-other-bytes"),
    pytest.param("1.0", "demo-1.0.tar.gz", id="other-version-spelling"),
    pytest.param("1.0.0", "Demo-1.0.0.tar.gz", id="other-name-spelling"),
    pytest.param("01.0", "demo-01.0.tar.gz", id="leading-zero"),
])
async def test_h1_a_release_has_at_most_one_sdist(client: TestClient, upload: Uploader, settings: Settings,
                                                  version: str, filename: str) -> None:
    """H1 (warehouse: "Only one sdist may be uploaded per release"): refused whatever its filename."""
    assert (await upload(marked("demo", "1.0.0", "first"), "sdist")).status == 200
    await _assert_rejected(upload, settings, 400, "File already exists", marked("demo", version, "second"),
                           "sdist", filename=filename)
    assert await listed(client, "demo") == ["demo-1.0.0.tar.gz"]


async def test_h1_refusal_is_what_twines_skip_existing_skips(upload: Uploader) -> None:
    """E4: twine --skip-existing's own rule treats our answer to a duplicate identity as "skip"."""
    from types import SimpleNamespace

    from twine.commands.upload import skip_upload

    assert (await upload(marked("demo", "1.0.0", "first"))).status == 200
    response = await upload(marked("demo", "1.0", "other"), filename="demo-1.0-py3-none-any.whl")
    answer = SimpleNamespace(status_code=response.status, reason=response.reason, text=await response.text())
    assert skip_upload(answer, skip_existing=True, package=None)  # type: ignore[arg-type]


async def test_h1_concurrent_uploads_of_one_identity_store_exactly_one(
        client: TestClient, upload: Uploader, settings: Settings) -> None:
    """H1 under a race: eight spellings of demo 1.0.0 at once; one is stored, seven refused."""
    spellings = [("demo", "1.0.0"), ("Demo", "1.0.0"), ("demo", "01.0.0"), ("demo", "1.0"), ("DEMO", "1.0.0.0"),
                 ("demo", "v1.0"), ("demo", "1.00"), ("Demo", "1")]
    uploads = [upload(marked(name, version, f"n{n}"), filename=f"{name}-{version}-py3-none-any.whl")
               for n, (name, version) in enumerate(spellings)]
    responses = await asyncio.gather(*uploads)
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [400] * 7
    for response in responses:
        if response.status == 400:
            assert "File already exists" in response.reason
    [winner] = [f"{name}-{version}-py3-none-any.whl" for (name, version), r in zip(spellings, responses)
                if r.status == 200]
    assert await listed(client, "demo") == [winner]
    index = json.loads((settings.data_dir / "private" / "demo" / "project.json").read_bytes())
    stored = (settings.data_dir / "private" / "demo" / winner).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == index["files"][0]["sha256"]
    assert sorted(p.name for p in (settings.data_dir / "private" / "demo").glob("*.whl")) == [winner]


# --- H2: core metadata is UTF-8 text, validated as PyPI does ----------------------------------------

SCRIPT = "<script>alert(1)</script>"
CAFE = Dist(
    "Cafe.Pkg", "1.0", summary="Café crème — 東京", metadata_version="2.4",
    description="# Grüße\n\nZoë’s naïve café 🐍\n",
    headers=["Author: Jürgen Müller", "Author-email: Jürgen <j@example.invalid>", f"Maintainer: Ångström {SCRIPT}",
             "Keywords: café,naïve", "License-Expression: mit", "License-File: LICENSE",
             "Project-URL: Dokumentation für Nutzer, https://example.invalid/docs",
             "Provides-Extra: Fancy_UI", "Dynamic: Requires-Dist", "Classifier: Programming Language :: Python :: 3"],
)


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
async def test_h2_metadata_is_exact_in_json_api_on_disk_and_in_the_web_ui(
        client: TestClient, upload: Uploader, settings: Settings, kind: str) -> None:
    """H2: the issue's case (J\\ufffd\\ufffdrgen): every character survives, in wheel METADATA and
    sdist PKG-INFO; the .metadata file stays the archive's own bytes (E6)."""
    assert (await upload(CAFE, kind)).status == 200
    info = (await (await client.get("/pypi/cafe-pkg/json")).json())["info"]
    assert (info["author"], info["summary"]) == ("Jürgen Müller", "Café crème — 東京")
    assert info["author_email"] == "Jürgen <j@example.invalid>"
    assert info["maintainer"] == f"Ångström {SCRIPT}"
    assert info["description"] == "# Grüße\n\nZoë’s naïve café 🐍"
    assert info["keywords"] == "café, naïve"
    assert info["project_urls"] == {"Homepage": "https://example.invalid/home",
                                    "Dokumentation für Nutzer": "https://example.invalid/docs"}
    directory = settings.data_dir / "private" / "cafe-pkg"
    [release] = json.loads((directory / "project.json").read_bytes())["releases"]
    assert (release["author"], release["summary"]) == ("Jürgen Müller", "Café crème — 東京")
    filename = CAFE.wheel_filename if kind == "wheel" else CAFE.sdist_filename
    assert (directory / f"{filename}.metadata").read_bytes() == CAFE.metadata()
    page = await client.get("/-/projects/cafe-pkg/")
    html = await page.text()
    for text in ("Jürgen Müller", "Café crème — 東京", "Dokumentation für Nutzer", "Zoë’s naïve café 🐍", "café, naïve"):
        assert text in html
    assert "\ufffd" not in html
    assert "Ångström &lt;script&gt;alert(1)&lt;/script&gt;" in html and SCRIPT not in html


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
@pytest.mark.parametrize(("metadata_version", "header", "field"), [
    pytest.param("3.0", None, "Metadata-Version", id="unknown-major-version"),
    pytest.param("2.4", "Dynamic: Name", "Dynamic", id="dynamic-name"),
    pytest.param("2.4", "Dynamic: Version", "Dynamic", id="dynamic-version"),
    pytest.param("2.4", "License-Expression: MIT OR", "License-Expression", id="license-expression"),
    pytest.param("2.4", "License-Expression: Not-A-License", "License-Expression", id="license-unknown"),
    pytest.param("2.4", "License-File: ../LICENSE", "License-File", id="license-file"),
    pytest.param("2.4", "Requires-Dist: requests >>= 2", "Requires-Dist", id="requires-dist"),
    pytest.param("2.4", "Requires-Python: =>3.8", "Requires-Python", id="requires-python"),
    pytest.param("2.4", "Provides-Extra: -x", "Provides-Extra", id="provides-extra"),
    pytest.param("2.4", "Name: Acme.Widget", "Name", id="name-repeated"),
])
async def test_h2_invalid_metadata_is_400_naming_the_field(upload: Uploader, settings: Settings, kind: str,
                                                           metadata_version: str, header: str | None,
                                                           field: str) -> None:
    """H2/E3 (warehouse validates with packaging.metadata): 400 naming the field in the reason and
    the body; nothing stored."""
    dist = Dist("Acme.Widget", "1.0.0", metadata_version=metadata_version, headers=[header] if header else [])
    response = await _assert_rejected(upload, settings, 400, f"field '{field}'", dist, kind)
    assert f"field '{field}'" in response.reason


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
async def test_h2_metadata_that_is_not_utf8_is_400(upload: Uploader, settings: Settings, kind: str) -> None:
    raw = "Metadata-Version: 2.1\nName: Acme.Widget\nVersion: 1.0.0\nAuthor: Jürgen\n".encode("latin-1")
    source = "METADATA" if kind == "wheel" else "PKG-INFO"
    await _assert_rejected(upload, settings, 400, f"{source} is not valid UTF-8",
                           Dist("Acme.Widget", "1.0.0", raw_metadata=raw), kind)


async def test_h2_distributions_built_by_poetry_core_upload_exactly(
        client: TestClient, tmp_path: Path, settings: Settings) -> None:
    """H2: a real build backend's wheel and sdist (metadata 2.4, non-ASCII everywhere)."""
    wheel, sdist = await asyncio.to_thread(build_with_poetry, tmp_path)
    for path, kind in ((wheel, "wheel"), (sdist, "sdist")):
        form = upload_form(Dist("cafe-pkg", "1.0.0"), kind, content=path.read_bytes(), filename=path.name)
        response = await client.post("/pypi/", data=form, headers=basic("alice", PASSWORD))
        assert response.status == 200, await response.text()
    data = await (await client.get("/pypi/cafe-pkg/json")).json()
    info = data["info"]
    assert (info["summary"], info["author"]) == ("Café crème for Jürgen", "Jürgen Müller")
    assert info["description"] == "# Café\n\nGrüße, naïve façade — 🐍"
    assert (info["license_expression"], info["license_files"]) == ("MIT", ["LICENSE"])
    assert info["project_urls"] == {"Dokumentation für Nutzer": "https://example.invalid/docs"}
    assert sorted(f["filename"] for f in data["urls"]) == sorted([wheel.name, sdist.name])


# --- D: password checks in their own pool -------------------------------------------------------------

BURST = 32


async def test_a_burst_of_bad_logins_does_not_starve_file_and_page_io(
        aiohttp_client: Any, make_settings: Any, auth: AuthStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 D: scrypt checks get a pool of their own. Each check is held at a gate here (an
    arbitrarily slow scrypt), so a burst of 32 fills every thread that checks passwords; a
    download and a page read of a cold app must still complete while all 32 wait. With one
    shared pool they queue behind the checks and never finish (the 30 s bound only ends a failure).
    The failed-login limits are off here: with them, most of the burst never reaches scrypt
    (tests/test_login_limits.py)."""
    settings = make_settings(upload={"failed_logins_per_address": 0, "failed_logins_per_user": 0})
    first = await start_client(aiohttp_client, settings)
    assert (await first.post("/pypi/", data=upload_form(DIST), headers=basic("alice", PASSWORD))).status == 200
    client = await start_client(aiohttp_client, settings)  # cold: reads the index through its executor

    gate = threading.Event()
    real_check = AuthStore.authenticate

    def held_check(self: AuthStore, user: str, password: str) -> Identity:
        gate.wait(timeout=120)
        return real_check(self, user, password)

    submitted = 0
    all_submitted = asyncio.Event()
    real_authenticate = UploadService.authenticate

    async def counted(self: UploadService, authorization: str | None, address: str | None = None) -> Identity:
        nonlocal submitted
        submitted += 1
        if submitted == BURST:
            all_submitted.set()
        return await real_authenticate(self, authorization, address)

    monkeypatch.setattr(AuthStore, "authenticate", held_check)
    monkeypatch.setattr(UploadService, "authenticate", counted)
    bad = [asyncio.ensure_future(client.post("/pypi/", data=upload_form(DIST), headers=basic("alice", "wrong")))
           for _ in range(BURST)]
    try:
        await asyncio.wait_for(all_submitted.wait(), 30)
        download = await asyncio.wait_for(client.get(f"/pypi/files/acme-widget/{DIST.wheel_filename}"), 30)
        assert await download.read() == DIST.wheel()
        page = await asyncio.wait_for(client.get("/pypi/simple/acme-widget/", headers=JSON_PAGE), 30)
        assert [f["filename"] for f in (await page.json())["files"]] == [DIST.wheel_filename]
        assert not any(task.done() for task in bad), "every bad login is still held at the gate"
    finally:
        gate.set()
        responses = await asyncio.gather(*bad)
    assert [r.status for r in responses] == [401] * BURST
