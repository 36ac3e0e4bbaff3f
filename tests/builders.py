"""Build real wheels and sdists for tests: installable by pip and uv, no build backend needed."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import random
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass
class Dist:
    name: str
    version: str
    summary: str = "A test package"
    requires_python: str | None = None
    requires_dist: list[str] = field(default_factory=list)
    description: str = "Long description.\n"
    module_source: str = "VALUE = {version!r}\n"
    payload: int = 0  # bytes of incompressible data stored after the metadata (a "large" wheel)
    metadata_version: str = "2.1"
    headers: list[str] = field(default_factory=list)  # more core-metadata lines, e.g. "Author: Ada"
    raw_metadata: bytes | None = None  # the METADATA / PKG-INFO bytes exactly, instead of the above

    def metadata(self) -> bytes:
        if self.raw_metadata is not None:
            return self.raw_metadata
        lines = [
            f"Metadata-Version: {self.metadata_version}",
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Summary: {self.summary}",
            "Description-Content-Type: text/markdown",
            "Project-URL: Homepage, https://example.invalid/home",
        ]
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Requires-Dist: {req}" for req in self.requires_dist]
        lines += self.headers
        return ("\n".join(lines) + "\n\n" + self.description).encode()

    @property
    def wheel_filename(self) -> str:
        return f"{_dist_name(self.name)}-{self.version}-py3-none-any.whl"

    @property
    def sdist_filename(self) -> str:
        return f"{_dist_name(self.name)}-{self.version}.tar.gz"

    def wheel(self) -> bytes:
        module = _dist_name(self.name)
        dist_info = f"{module}-{self.version}.dist-info"
        files = {
            f"{module}/__init__.py": self.module_source.format(version=self.version).encode(),
            f"{dist_info}/METADATA": self.metadata(),
            f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        if self.payload:
            files[f"{module}/payload.bin"] = random.Random(self.name).randbytes(self.payload)
        record = []
        for path, data in files.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, data in files.items():
                archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data)
        return buffer.getvalue()

    def sdist(self) -> bytes:
        module = _dist_name(self.name)
        root = f"{module}-{self.version}"
        requires = "".join(f'    "{r}",\n' for r in self.requires_dist)
        files = {
            f"{root}/PKG-INFO": self.metadata(),
            f"{root}/pyproject.toml": (
                "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n"
                f"[project]\nname = \"{self.name}\"\nversion = \"{self.version}\"\n"
                f"dependencies = [\n{requires}]\n"
            ).encode(),
            f"{root}/{module}/__init__.py": self.module_source.format(version=self.version).encode(),
        }
        buffer = io.BytesIO()
        # Fixed times: the same Dist always builds the same bytes, so tests can compare them.
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
            with tarfile.open(fileobj=compressed, mode="w") as archive:
                for path, data in files.items():
                    info = tarfile.TarInfo(path)
                    info.size = len(data)
                    info.mtime = 1_700_000_000
                    archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def write(self, directory: Path, wheel: bool = True, sdist: bool = True) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        if wheel:
            paths.append(directory / self.wheel_filename)
            paths[-1].write_bytes(self.wheel())
        if sdist:
            paths.append(directory / self.sdist_filename)
            paths[-1].write_bytes(self.sdist())
        return paths


POETRY_PYPROJECT = """\
[build-system]
requires = ["poetry-core>=2.0"]
build-backend = "poetry.core.masonry.api"

[project]
name = "cafe-pkg"
version = "1.0.0"
description = "Café crème for Jürgen"
readme = "README.md"
authors = [{name = "Jürgen Müller", email = "jurgen@example.invalid"}]
keywords = ["café", "naïve"]
license = "MIT"
requires-python = ">=3.8"

[project.urls]
"Dokumentation für Nutzer" = "https://example.invalid/docs"

[tool.poetry]
packages = [{include = "cafe_pkg", from = "src"}]
"""


def build_with_poetry(directory: Path) -> tuple[Path, Path]:
    """A real wheel and sdist of ``cafe-pkg 1.0.0``, non-ASCII metadata, built by poetry-core
    (``python -m build --no-isolation``: offline, ~1.5 s). Blocking: from async tests, use a thread."""
    source = directory / "cafe-src"
    (source / "src" / "cafe_pkg").mkdir(parents=True)
    (source / "pyproject.toml").write_text(POETRY_PYPROJECT, encoding="utf-8")
    (source / "README.md").write_text("# Café\n\nGrüße, naïve façade — 🐍\n", encoding="utf-8")
    (source / "LICENSE").write_text("MIT License\n")
    (source / "src" / "cafe_pkg" / "__init__.py").write_text("VALUE = 'poetry-built'\n")
    out = directory / "cafe-dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=120)
    return out / "cafe_pkg-1.0.0-py3-none-any.whl", out / "cafe_pkg-1.0.0.tar.gz"
