"""Front-server mode (``[server] front_server``): a front server sends the bytes of complete
local files, this server still decides which file, if any, a request gets.

The handler does everything it does without a front server (names, shadowing, the policy's 403,
the cache fill, the pin while deciding), then answers with the file's headers (Content-Type,
Cache-Control, X-Proxy-*, ETag) and no body, but ``X-Accel-Redirect: <prefix><path inside the
data directory>`` for nginx, which serves it from an ``internal`` location aliased to the data
directory (``pypi-proxy front-config nginx``), or ``X-Sendfile: <absolute path>`` for Apache's
mod_xsendfile and lighttpd. The front server then answers Range, HEAD and its own validators.
Files still downloading are streamed by this server, as are pages.

nginx decodes an X-Accel-Redirect URI once and then parses it again, so a path with ``%`` or
``?`` in it cannot be named exactly: such a path (and one outside the data directory) is sent by
this server instead, as is every path of a ``sendfile`` data directory with unusual characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from proxy.config import Settings
from proxy.core import conditional

# What a path may hold to be named to the front server as it is (no encoding needed anywhere).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~+!@,=/-]+")


@dataclass(frozen=True, slots=True)
class FrontServer:
    """Where the front server finds files: ``kind`` "nginx" or "sendfile"; ``data_dir`` as the
    settings give it (the repository's paths are built on it), ``root`` the same, absolute."""

    kind: str
    prefix: str
    data_dir: Path
    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> FrontServer | None:
        """The front server the settings name, or None ("none")."""
        server = settings.server
        if server.front_server == "none":
            return None
        return cls(server.front_server, server.front_internal_prefix, settings.data_dir,
                   settings.data_dir.absolute())

    def handover(self, path: Path) -> tuple[str, str] | None:
        """The header that hands ``path`` to the front server, or None when this server must
        send it (module docstring)."""
        try:
            relative = path.relative_to(self.data_dir).as_posix()
        except ValueError:
            return None
        if self.kind == "nginx":
            located = self.prefix + relative
            header = "X-Accel-Redirect"
        else:
            located = (self.root / relative).as_posix()
            header = "X-Sendfile"
        if not _PLAIN_PATH.fullmatch(located) or "/../" in located or "/./" in located:
            return None
        return header, located

    def answer(self, request: web.Request, handover: tuple[str, str], headers: dict[str, str],
               version: str | None) -> web.Response:
        """The headers for the front server and no body; a 304 when If-None-Match names this
        server's ETag (the front server judges its own validators and Range)."""
        if version is not None:
            etag = conditional.strong_etag(version)
            if conditional.tags_match(request.headers.get("If-None-Match"), etag, weak=True):
                return web.Response(status=304, headers={**headers, "ETag": etag})
            headers = {**headers, "ETag": etag}
        return web.Response(headers={**headers, handover[0]: handover[1]})
