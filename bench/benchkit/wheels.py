"""Real, tiny wheels (METADATA, WHEEL, RECORD) written straight to disk, hashed as written."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PAYLOAD_CHUNK = 1 << 20


def dist_name(name: str) -> str:
    """The wheel filename form of a project name (PEP 427 escaping, lower case)."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass(frozen=True)
class WheelSpec:
    name: str
    version: str
    tag: str = "py3-none-any"
    requires_dist: tuple[str, ...] = ()
    requires_python: str = ">=3.8"
    payload_size: int = 0  # random, incompressible bytes stored in the archive

    @property
    def filename(self) -> str:
        return f"{dist_name(self.name)}-{self.version}-{self.tag}.whl"

    def metadata(self) -> bytes:
        lines = [
            "Metadata-Version: 2.1",
            f"Name: {self.name}",
            f"Version: {self.version}",
            "Summary: A benchmark package",
            f"Requires-Python: {self.requires_python}",
            *(f"Requires-Dist: {req}" for req in self.requires_dist),
        ]
        return ("\n".join(lines) + "\n\nBenchmark package.\n").encode()


@dataclass(frozen=True)
class BuiltFile:
    """One file as an index lists it: name, size, digests and its PEP 658 metadata digest."""

    project: str
    version: str
    filename: str
    size: int
    sha256: str
    md5: str
    blake2_256: str
    metadata_sha256: str
    requires_python: str
    extra: dict[str, str] = field(default_factory=dict)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(directory: Path, spec: WheelSpec) -> BuiltFile:
    """Write ``spec``'s wheel and its ``.metadata`` file into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    module = dist_name(spec.name)
    info = f"{module}-{spec.version}.dist-info"
    purelib = "true" if spec.tag.endswith("-none-any") else "false"
    metadata = spec.metadata()
    small = {
        f"{module}/__init__.py": f"VERSION = {spec.version!r}\n".encode(),
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: {purelib}\n"
                          f"Tag: {spec.tag}\n").encode(),
    }
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in small.items()]
    path = directory / spec.filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in small.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
        if spec.payload_size:
            record.append(_write_payload(archive, f"{module}/payload.bin", spec.payload_size))
        record.append(f"{info}/RECORD,,")
        entry = zipfile.ZipInfo(f"{info}/RECORD", date_time=(2024, 1, 1, 0, 0, 0))
        archive.writestr(entry, ("\n".join(record) + "\n").encode())
    (directory / f"{spec.filename}.metadata").write_bytes(metadata)
    return _describe(path, spec, hashlib.sha256(metadata).hexdigest())


def _write_payload(archive: zipfile.ZipFile, name: str, size: int) -> str:
    """Stream ``size`` random bytes into a stored (uncompressed) member; its RECORD line."""
    entry = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    entry.compress_type = zipfile.ZIP_STORED
    digest = hashlib.sha256()
    with archive.open(entry, "w", force_zip64=size > 0x7FFF0000) as member:
        left = size
        while left:
            chunk = os.urandom(min(left, PAYLOAD_CHUNK))
            digest.update(chunk)
            member.write(chunk)
            left -= len(chunk)
    encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"{name},sha256={encoded},{size}"


def _describe(path: Path, spec: WheelSpec, metadata_sha256: str) -> BuiltFile:
    sha256, md5, blake = hashlib.sha256(), hashlib.md5(), hashlib.blake2b(digest_size=32)
    with path.open("rb") as stream:
        while chunk := stream.read(PAYLOAD_CHUNK):
            for digest in (sha256, md5, blake):
                digest.update(chunk)
    return BuiltFile(spec.name, spec.version, spec.filename, path.stat().st_size, sha256.hexdigest(),
                     md5.hexdigest(), blake.hexdigest(), metadata_sha256, spec.requires_python)
