"""The fields of one upload as the legacy upload API sends them."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.core.errors import UploadRejected
from proxy.storage.staging import StagedFile


@dataclass
class UploadForm:
    """The multipart fields of one upload; repeated fields keep every value."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    staged: StagedFile | None = None
    authorized: str | None = None  # the normalised name the uploader was found allowed to use

    def add(self, name: str, value: str) -> None:
        self.fields.setdefault(name, []).append(value)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def require(self, name: str) -> str:
        value = (self.get(name) or "").strip()
        if not value:
            raise UploadRejected(f"Missing required field {name!r}.")
        return value
