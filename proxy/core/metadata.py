"""Core metadata (the METADATA / PKG-INFO file of a distribution) as text: parsed with
``packaging.metadata``, validated as PyPI does, and turned into the JSON API's ``info``. Pure: the
file is read out of its archive by ``proxy.storage.distributions``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from packaging.metadata import _EMAIL_TO_RAW_MAPPING, InvalidMetadata, Metadata, RawMetadata, parse_email
from packaging.version import Version

from proxy.core.errors import UploadRejected
from proxy.core.models import ReleaseInfo
from proxy.core.names import WHEEL, normalize

_METADATA_VERSION = re.compile(r"(\d+)\.(\d+)")
_SUPPORTED_MAJOR_VERSIONS = (1, 2)


def parse_metadata(raw: bytes) -> Message:
    """The metadata as an email message, leniently (for reading other people's wheels: warm)."""
    return BytesParser(policy=compat32).parsebytes(raw)


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """Core metadata decoded as UTF-8 and validated: packaging's raw fields, text as written."""

    fields: RawMetadata

    @property
    def name(self) -> str:
        return self.fields["name"]

    @property
    def version(self) -> str:
        return self.fields["version"]


def read_core_metadata(raw: bytes, packagetype: str) -> CoreMetadata:
    """Decode and validate an archive's core metadata as PyPI does; UploadRejected naming the field.

    The core metadata spec makes the file UTF-8, so invalid UTF-8 is refused rather than guessed
    at. Fields are parsed with ``packaging.metadata`` (as warehouse does) and each one packaging
    validates is checked: Name, Version, Summary, Description-Content-Type, Dynamic (never Name
    or Version, PEP 643), Requires-Dist, Requires-Python, Provides-Extra, License-Expression and
    License-File (PEP 639). Metadata-Version must be 1.x or 2.x: the spec says a reader must
    fail on a newer major version and only warn on a newer minor one (so 2.0, written by old
    bdist_wheel, is accepted). A known field repeated or malformed is refused; unknown ones are
    ignored.
    """
    source = "METADATA" if packagetype == WHEEL else "PKG-INFO"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UploadRejected(
            f"Invalid core metadata: {source} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}). The core metadata specification requires UTF-8."
        ) from None
    fields, unparsed = parse_email(text)
    # packaging sets aside known fields it could not read: repeated single ones (two Names), a
    # Description both as header and body, Project-URL labels given twice. Unknown ones are ignored.
    for key in sorted(unparsed):
        if key in _EMAIL_TO_RAW_MAPPING:  # private, but stable: warehouse relies on it too
            raise UploadRejected(f"Invalid core metadata field {_header(key)!r} in {source}: "
                                 "repeated, or not in the form the specification gives.")
    _check_metadata_version(fields.get("metadata_version"), source)
    metadata = Metadata.from_raw(fields, validate=False)
    for attribute in sorted((set(fields) | {"name", "version"}) - {"metadata_version"}):
        try:
            getattr(metadata, attribute)  # packaging validates a field when it is first read
        except InvalidMetadata as exc:
            raise UploadRejected(f"Invalid core metadata field {_header(exc.field)!r} in {source}: {exc}") from None
    return CoreMetadata(fields)


def _check_metadata_version(value: str | None, source: str) -> None:
    if not value:
        raise UploadRejected(f"Invalid core metadata: {source} has no 'Metadata-Version' field.")
    match = _METADATA_VERSION.fullmatch(value.strip())
    if match is None or int(match.group(1)) not in _SUPPORTED_MAJOR_VERSIONS:
        raise UploadRejected(
            f"Invalid core metadata field 'Metadata-Version' in {source}: {value!r} is not supported; "
            "this server reads core metadata 1.x and 2.x."
        )


_SPELLINGS = {"home-page": "Home-page", "download-url": "Download-URL", "project-url": "Project-URL",
              "author-email": "Author-email", "maintainer-email": "Maintainer-email"}


def _header(key: str) -> str:
    """``license-expression`` -> ``License-Expression``, as the core metadata spec spells fields."""
    return _SPELLINGS.get(key) or "-".join(part.capitalize() for part in key.split("-"))


def _text(fields: RawMetadata, key: str) -> str | None:
    value = fields.get(key)
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if text and text != "UNKNOWN" else None  # old setuptools wrote UNKNOWN for absent


def _description(fields: RawMetadata) -> str:
    """The long description: the body (metadata 2.1+) or the old header, blank lines trimmed."""
    text = (fields.get("description") or "").strip("\n")
    return "" if text.strip() == "UNKNOWN" else text


def release_info(core: CoreMetadata, version: str) -> ReleaseInfo:
    """The JSON API's ``info`` for one version, from the archive's own metadata, text exact.

    Keywords, Provides-Extra, Dynamic and License-Expression take the form PyPI's JSON API gives
    them (joined with ", ", normalised names, title case, canonical expression).
    """
    fields = core.fields
    metadata = Metadata.from_raw(fields, validate=False)  # already validated: these cannot fail
    keywords = [word for word in fields.get("keywords") or () if word]
    return ReleaseInfo(
        version=version,
        summary=_text(fields, "summary") or "",
        description=_description(fields),
        description_content_type=_text(fields, "description_content_type"),
        author=_text(fields, "author"),
        author_email=_text(fields, "author_email"),
        maintainer=_text(fields, "maintainer"),
        maintainer_email=_text(fields, "maintainer_email"),
        license=_text(fields, "license"),
        license_expression=str(metadata.license_expression) if metadata.license_expression else None,
        keywords=", ".join(keywords) or None,
        home_page=_text(fields, "home_page"),
        download_url=_text(fields, "download_url"),
        requires_python=_text(fields, "requires_python"),
        classifiers=tuple(fields.get("classifiers") or ()),
        requires_dist=tuple(fields.get("requires_dist") or ()),
        provides_extra=tuple(metadata.provides_extra or ()),
        project_urls=tuple((fields.get("project_urls") or {}).items()),
        platform=tuple(fields.get("platforms") or ()),
        dynamic=tuple(field.title() for field in metadata.dynamic or ()),
        license_files=tuple(fields.get("license_files") or ()),
    )


def lenient_release_info(raw: bytes, version: str) -> ReleaseInfo:
    """``info`` from someone else's metadata file (an upstream wheel's), never refusing it: bytes
    that are not UTF-8 are replaced, and fields packaging cannot validate are left out."""
    fields, _ = parse_email(raw.decode("utf-8", errors="replace"))
    metadata = Metadata.from_raw(fields, validate=False)
    for attribute in ("license_expression", "provides_extra", "dynamic"):  # what release_info reads
        try:
            getattr(metadata, attribute)
        except InvalidMetadata:
            fields.pop(attribute, None)  # type: ignore[misc]
            metadata = Metadata.from_raw(fields, validate=False)
    return release_info(CoreMetadata(fields), version)


def check_metadata_identity(core: CoreMetadata, project: str, version: str) -> None:
    """The archive must describe the project and version it is uploaded as (STANDARDS E6)."""
    name, meta_version = core.name, core.version
    if normalize(name) != project:
        raise UploadRejected(f"Invalid distribution: its metadata names project {name!r}, not {project!r}.")
    if Version(meta_version) != Version(version):  # both validated as PEP 440 already
        raise UploadRejected(
            f"Invalid distribution: its metadata has version {meta_version!r}, not {version!r}."
        )
