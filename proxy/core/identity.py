"""Who is making a request and which projects they may upload to: pure, no storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proxy.core.errors import Forbidden
from proxy.core.names import matches_any, normalize


def _patterns_allow(patterns: Sequence[str] | None, project: str) -> bool:
    """``None`` means every project; otherwise fnmatch against normalised names."""
    return patterns is None or matches_any(project, patterns)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is making a request, and which projects they may upload to."""

    user: str
    token_id: str | None
    user_projects: tuple[str, ...] | None
    token_projects: tuple[str, ...] | None

    def may_upload(self, project: str) -> bool:
        project = normalize(project)  # the patterns are normalised: "Acme_Tools" is "acme-tools"
        return _patterns_allow(self.user_projects, project) and _patterns_allow(self.token_projects, project)

    @property
    def who(self) -> str:
        return f"token {self.token_id} of {self.user!r}" if self.token_id else f"user {self.user!r}"

    def require_upload(self, project: str) -> None:
        if not self.may_upload(project):
            raise Forbidden(f"The {self.who} is not allowed to upload to project {project!r}.")

    def grants_explicitly(self, project: str) -> bool:
        """Whether the user's or the token's project list names ``project`` itself, not through
        a pattern: what making private a name that upstream serves requires."""
        project = normalize(project)
        return any(project in (patterns or ()) for patterns in (self.user_projects, self.token_projects))
