"""Read core metadata out of a wheel (``*.dist-info/METADATA``) or an sdist (``PKG-INFO``)."""

from __future__ import annotations

import gzip
import tarfile
import zipfile
import zlib
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

from packaging.version import InvalidVersion, Version

from proxy.errors import UploadRejected
from proxy.models import ReleaseInfo
from proxy.names import SDIST, WHEEL, normalize

MAX_METADATA_BYTES = 16 * 1024 * 1024


def extract_metadata(path: Path, packagetype: str) -> bytes:
    """The raw core-metadata file of a distribution; UploadRejected when it is not a valid one.

    PEP 658 requires serving the archive's own file byte for byte, so nothing is rebuilt.
    """
    if packagetype == WHEEL:
        return _wheel_metadata(path)
    if packagetype == SDIST:
        return _sdist_metadata(path)
    raise UploadRejected(f"Unknown type of file {packagetype!r}.")


def _wheel_metadata(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                info for info in archive.infolist()
                if info.filename.count("/") == 1
                and info.filename.endswith(".dist-info/METADATA")
            ]
            if len(candidates) != 1:
                raise UploadRejected("Invalid wheel: expected exactly one top-level *.dist-info/METADATA.")
            if candidates[0].file_size > MAX_METADATA_BYTES:
                raise UploadRejected("Invalid wheel: METADATA is too large.")
            return archive.read(candidates[0])
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise UploadRejected(f"Invalid wheel: not a valid zip archive ({exc}).") from None


def _sdist_metadata(path: Path) -> bytes:
    found: bytes | None = None
    try:
        # Read the whole stream, as warehouse does: PKG-INFO usually comes first, so stopping
        # there would accept (and serve) a truncated or corrupt sdist.
        with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r:") as archive:
            for member in archive:
                parts = member.name.split("/")
                if found is None and len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    if member.size > MAX_METADATA_BYTES:
                        raise UploadRejected("Invalid sdist: PKG-INFO is too large.")
                    extracted = archive.extractfile(member)
                    assert extracted is not None  # a regular file always has content
                    found = extracted.read()
            while stream.read(1024 * 1024):  # to the gzip trailer: its CRC and length are checked
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UploadRejected(f"Invalid sdist: not a valid .tar.gz archive ({exc}).") from None
    if found is None:
        raise UploadRejected("Invalid sdist: no top-level PKG-INFO found.")
    return found


def parse_metadata(raw: bytes) -> Message:
    return BytesParser(policy=compat32).parsebytes(raw)


def _text(message: Message, key: str) -> str | None:
    value = message.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text if text and text != "UNKNOWN" else None


def release_info(raw: bytes, version: str) -> ReleaseInfo:
    """The JSON API's ``info`` for one version, from the archive's own metadata."""
    message = parse_metadata(raw)
    description = _text(message, "Description") or ""
    body = message.get_payload()
    if isinstance(body, str) and body.strip():
        description = body.strip("\n")  # Metadata 2.1: the description is the body
    urls = []
    for entry in message.get_all("Project-URL") or ():
        label, _, url = str(entry).partition(",")
        urls.append((label.strip(), url.strip()))
    return ReleaseInfo(
        version=version,
        summary=_text(message, "Summary") or "",
        description=description,
        description_content_type=_text(message, "Description-Content-Type"),
        author=_text(message, "Author"),
        author_email=_text(message, "Author-email"),
        maintainer=_text(message, "Maintainer"),
        maintainer_email=_text(message, "Maintainer-email"),
        license=_text(message, "License"),
        license_expression=_text(message, "License-Expression"),
        keywords=_text(message, "Keywords"),
        home_page=_text(message, "Home-page"),
        download_url=_text(message, "Download-URL"),
        requires_python=_text(message, "Requires-Python"),
        classifiers=tuple(str(v) for v in message.get_all("Classifier") or ()),
        requires_dist=tuple(str(v) for v in message.get_all("Requires-Dist") or ()),
        provides_extra=tuple(str(v) for v in message.get_all("Provides-Extra") or ()),
        project_urls=tuple(urls),
        platform=tuple(str(v) for v in message.get_all("Platform") or ()),
    )


def check_metadata_identity(raw: bytes, project: str, version: str) -> None:
    """The archive must describe the project and version it is uploaded as (STANDARDS E6)."""
    message = parse_metadata(raw)
    name, meta_version = _text(message, "Name"), _text(message, "Version")
    if not name or normalize(name) != project:
        raise UploadRejected(f"Invalid distribution: its metadata names project {name!r}, not {project!r}.")
    try:
        same = meta_version is not None and Version(meta_version) == Version(version)
    except InvalidVersion:
        same = False
    if not same:
        raise UploadRejected(
            f"Invalid distribution: its metadata has version {meta_version!r}, not {version!r}."
        )
