"""View models of the home page (set-up snippets, cache figures) and the help page."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.ui.views import Site, human_bytes


@dataclass(frozen=True, slots=True)
class Snippet:
    tool: str
    where: str  # the file or context it goes in
    text: str


def snippets(site: Site) -> tuple[Snippet, ...]:
    """Set-up for each client, as the README documents them, with this server's URL."""
    index, upload = site.index_url, site.upload_url
    return (
        Snippet("pip", "pip.conf (~/.config/pip/pip.conf)", f"[global]\nindex-url = {index}\n"),
        Snippet("pip", "one shell", f"export PIP_INDEX_URL={index}\n"),
        Snippet("uv", "uv.toml (~/.config/uv/uv.toml)", f'[[index]]\nurl = "{index}"\ndefault = true\n'),
        Snippet("uv", "one shell", f"export UV_DEFAULT_INDEX={index}\n"),
        Snippet("poetry", "a project's primary source", f"poetry source add --priority=primary internal {index}\n"),
        Snippet("pdm", "pyproject.toml", f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{index}"\n'),
        Snippet("twine", "~/.pypirc, then twine upload -r internal dist/*",
                "[distutils]\nindex-servers = internal\n\n[internal]\n"
                f"repository = {upload}\nusername = __token__\npassword = pypi-proxy-TOKEN\n"),
        Snippet("twine", "directly", f'twine upload --repository-url {upload} -u __token__ -p "$TOKEN" dist/*\n'),
    )


@dataclass(frozen=True, slots=True)
class HomeView:
    site: Site
    private_projects: int
    cached_projects: int
    cache_size: str
    cache_limit: str | None
    upstream_url: str | None  # None: upstream is off
    snippets: tuple[Snippet, ...]


def home_view(site: Site, private_projects: int, cached_projects: int, cache_bytes: int,
              cache_limit: int | None, upstream_url: str | None) -> HomeView:
    return HomeView(site, private_projects, cached_projects, human_bytes(cache_bytes),
                    human_bytes(cache_limit) if cache_limit is not None else None, upstream_url, snippets(site))



@dataclass(frozen=True, slots=True)
class HelpView:
    """The help page: static text; the site only shapes its links."""

    site: Site


def help_view(site: Site) -> HelpView:
    return HelpView(site)
