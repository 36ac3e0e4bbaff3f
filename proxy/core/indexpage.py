"""The simple-index page model: one project's files as a simple-API page lists them, the single
model behind both its HTML and JSON renderings, whatever its source (private or upstream)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from proxy.core.timestamps import iso_z, parse_iso


@dataclass(frozen=True, slots=True)
class IndexFile:
    """One file as a simple-index page lists it, whatever its source (PEP 503/691/700)."""

    filename: str
    url: str
    hashes: dict[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    yanked_reason: str | None = None  # None: not yanked; "" yanked without a reason
    # PEP 658/714: None when no metadata file is offered, {} when offered without a hash.
    core_metadata: dict[str, str] | None = None
    size: int | None = None
    upload_time: datetime | None = None
    provenance: str | None = None  # PEP 740: URL of the file's provenance object

    @property
    def yanked(self) -> bool:
        return self.yanked_reason is not None

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["upload_time"] = iso_z(self.upload_time) if self.upload_time else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexFile:
        moment = data.get("upload_time")
        return cls(**{**data, "upload_time": parse_iso(moment) if moment else None})


@dataclass(frozen=True, slots=True)
class IndexPage:
    """One project's simple-index page: the single model behind both HTML and JSON.

    Beyond the files: PEP 708 ``tracks`` and ``alternate_locations`` (URLs of the same project on
    other indexes), PEP 792 ``status`` ("active", "archived", "quarantined", "deprecated") with
    its ``status_reason``, and ``last_serial`` (PyPI's ``_last-serial``), each as upstream said.
    """

    name: str
    files: tuple[IndexFile, ...]
    versions: tuple[str, ...]
    tracks: tuple[str, ...] = ()
    alternate_locations: tuple[str, ...] = ()
    status: str | None = None
    status_reason: str | None = None
    last_serial: int | None = None

    def file(self, filename: str) -> IndexFile | None:
        return next((f for f in self.files if f.filename == filename), None)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "files": [f.to_json() for f in self.files], "versions": list(self.versions),
                "tracks": list(self.tracks), "alternate_locations": list(self.alternate_locations),
                "status": self.status, "status_reason": self.status_reason, "last_serial": self.last_serial}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexPage:
        """Also reads records written before the PEP 708/792 fields existed (they default)."""
        return cls(
            name=data["name"],
            files=tuple(IndexFile.from_json(f) for f in data["files"]),
            versions=tuple(data["versions"]),
            tracks=tuple(data.get("tracks") or ()),
            alternate_locations=tuple(data.get("alternate_locations") or ()),
            status=data.get("status"),
            status_reason=data.get("status_reason"),
            last_serial=data.get("last_serial"),
        )
