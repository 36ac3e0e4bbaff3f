"""Real twine, pip and uv against a real server, and every README snippet run as written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from tests.builders import Dist
from tests.e2e.conftest import (
    PASSWORD,
    ROOT,
    Server,
    answer_prompts,
    installed_version,
    readme_snippet,
    start_proxy,
    stop_proxy,
    tool,
)

pytestmark = pytest.mark.e2e


def pip_install(server: Server, target: Path, *args: str, env: dict[str, str] | None = None) -> None:
    server.run([tool("python"), "-m", "pip", "install", "--target", str(target), *args], env=env)


def uv_install(server: Server, target: Path, *args: str) -> None:
    server.run([tool("uv"), "pip", "install", "--target", str(target), *args])


@pytest.fixture(scope="module")
def published(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """my-package 1.0.0: the wheel uploaded by password, the sdist by token, with the real twine."""
    dist = Dist("my-package", "1.0.0", requires_python=">=3.8")
    wheel, sdist = dist.write(tmp_path_factory.mktemp("dist"))
    server.run([tool("twine"), "upload", "--repository-url", server.upload_url, "-u", "alice", "-p", PASSWORD, str(wheel)])
    server.run([tool("twine"), "upload", "--repository-url", server.upload_url, "-u", "__token__", "-p", server.token, str(sdist)])
    return dist


def test_quickstart_serve_uses_embedded_defaults(server: Server) -> None:
    """`pypi-proxy serve` with no config keeps its data under ~/.local/share/pypi-proxy."""
    assert (server.home / ".local" / "share" / "pypi-proxy" / "auth.json").exists()


def test_quickstart_test_command_is_what_ci_runs() -> None:
    command = readme_snippet("quickstart-test").strip()
    assert command == "pip install '.[test]' && pytest"
    assert "pip install '.[test]'" in (ROOT / ".ci" / "run").read_text()


def test_pip_installs_the_wheel(server: Server, published: Dist, tmp_path: Path) -> None:
    pip_install(server, tmp_path, "--index-url", server.simple, "my-package==1.0.0")
    assert installed_version(tmp_path, "my_package") == "1.0.0"


def test_pip_builds_the_sdist(server: Server, published: Dist, tmp_path: Path) -> None:
    """The uploaded sdist is a real one: pip downloads and builds it."""
    pip_install(server, tmp_path, "--index-url", server.simple, "--no-binary", "my-package",
                "--no-build-isolation", "my-package==1.0.0")
    assert installed_version(tmp_path, "my_package") == "1.0.0"


def test_uv_installs(server: Server, published: Dist, tmp_path: Path) -> None:
    uv_install(server, tmp_path, "--index-url", server.simple, "my-package")
    assert installed_version(tmp_path, "my_package") == "1.0.0"


def test_require_hashes_refuses_a_wrong_hash(server: Server, published: Dist, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(f"my-package==1.0.0 --hash=sha256:{'0' * 64}\n")
    result = server.run([tool("python"), "-m", "pip", "install", "--target", str(tmp_path / "t"), "--index-url",
                         server.simple, "--require-hashes", "-r", "requirements.txt"], cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr.upper()


def test_twine_skip_existing(server: Server, published: Dist, tmp_path: Path) -> None:
    """E4: a changed file under a taken filename fails with "File already exists", and twine's own
    skip-existing rule accepts our answer. twine >= 6.2 refuses --skip-existing for any repository but
    PyPI and TestPyPI before uploading, so its decision function is driven with our real response."""
    import requests
    from twine.commands.upload import skip_upload
    from twine.package import PackageFile

    changed = Dist("my-package", "1.0.0", summary="changed").write(tmp_path, sdist=False)[0]
    base = [tool("twine"), "upload", "--repository-url", server.upload_url, "-u", "alice", "-p", PASSWORD]
    refused = server.run([*base, str(changed)], check=False)
    assert refused.returncode != 0
    assert "File already exists" in refused.stdout + refused.stderr

    package = PackageFile.from_filename(str(changed), comment=None)
    fields = {":action": "file_upload", "protocol_version": "1", "name": "my-package", "version": "1.0.0",
              "filetype": "bdist_wheel", "pyversion": "py3", "sha256_digest": hashlib.sha256(changed.read_bytes()).hexdigest()}
    with changed.open("rb") as content:
        response = requests.post(server.upload_url, data=fields, files={"content": (changed.name, content)},
                                 auth=("alice", PASSWORD), timeout=30)
    assert response.status_code == 400
    assert skip_upload(response, skip_existing=True, package=package)
    assert not skip_upload(response, skip_existing=False, package=package)


def test_users_snippet_prompts_for_the_password(server: Server) -> None:
    """README: `user add` prompts twice on a terminal, then `token create` prints a token."""
    lines = readme_snippet("users").strip().splitlines()
    add = lines[0].replace("alice", "dora").split()
    answer_prompts([tool(add[0]), *add[1:]], [PASSWORD, PASSWORD], server.env)
    create = lines[1].replace("alice", "dora").split()
    token = server.run([tool(create[0]), *create[1:]]).stdout.strip()
    assert token.startswith("pypi-proxy-")
    listing = server.run([tool("pypi-proxy"), "token", "list", "--user", "dora"]).stdout
    assert "my-package" in listing
    assert token not in listing


def test_pip_conf_snippet(server: Server, published: Dist, tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(readme_snippet("pip-conf").replace("http://127.0.0.1:8080", server.url))
    pip_install(server, tmp_path / "t", "my-package", env={"PIP_CONFIG_FILE": str(conf)})
    assert installed_version(tmp_path / "t", "my_package") == "1.0.0"


def test_pip_env_snippet(server: Server, published: Dist, tmp_path: Path) -> None:
    script = readme_snippet("pip-env").replace("pip install", f"python -m pip install --target {tmp_path / 't'}")
    server.shell(script, cwd=tmp_path)
    assert installed_version(tmp_path / "t", "my_package") == "1.0.0"


def test_uv_toml_snippet(server: Server, published: Dist, tmp_path: Path) -> None:
    config = tmp_path / "uv.toml"
    config.write_text(readme_snippet("uv-toml").replace("http://127.0.0.1:8080", server.url))
    uv_install(server, tmp_path / "t", "--config-file", str(config), "my-package")
    assert installed_version(tmp_path / "t", "my_package") == "1.0.0"


def test_uv_env_snippet(server: Server, published: Dist, tmp_path: Path) -> None:
    script = readme_snippet("uv-env").replace("uv pip install", f"uv pip install --target {tmp_path / 't'}")
    server.shell(script, cwd=tmp_path)
    assert installed_version(tmp_path / "t", "my_package") == "1.0.0"


def test_twine_snippet(server: Server, tmp_path: Path) -> None:
    Dist("twine-snippet", "0.1").write(tmp_path / "dist")
    server.shell(readme_snippet("twine"), cwd=tmp_path, env={"TOKEN": server.token})
    assert _files(server, "twine-snippet") == {"twine_snippet-0.1-py3-none-any.whl", "twine_snippet-0.1.tar.gz"}


def test_pypirc_snippet(server: Server, tmp_path: Path) -> None:
    Dist("pypirc-snippet", "0.1").write(tmp_path / "dist", sdist=False)
    (tmp_path / ".pypirc").write_text(
        readme_snippet("pypirc").replace("http://127.0.0.1:8080", server.url).replace("pypi-proxy-TOKEN", server.token))
    server.run([tool("twine"), "upload", "--config-file", str(tmp_path / ".pypirc"), "-r", "internal", "dist/*"],
               cwd=tmp_path, check=False)
    server.shell(f"twine upload --config-file {tmp_path / '.pypirc'} -r internal dist/*", cwd=tmp_path)
    assert _files(server, "pypirc-snippet") == {"pypirc_snippet-0.1-py3-none-any.whl"}


def test_uv_publish_snippet(server: Server, tmp_path: Path) -> None:
    Dist("uv-snippet", "0.1").write(tmp_path / "dist")
    server.shell(readme_snippet("uv-publish"), cwd=tmp_path, env={"TOKEN": server.token})
    assert _files(server, "uv-snippet") == {"uv_snippet-0.1-py3-none-any.whl", "uv_snippet-0.1.tar.gz"}


def _project(directory: Path, name: str, version: str, dependencies: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\nrequires-python = ">=3.8"\n'
        f"dependencies = [{deps}]\n"
    )
    return directory


def test_poetry_source_snippet(server: Server, published: Dist, tmp_path: Path) -> None:
    """README: poetry resolves my-package from this server as its primary source."""
    project = _project(tmp_path / "app", "consumer", "0.1.0", ["my-package"])
    server.shell(readme_snippet("poetry-source"), cwd=project)
    server.run([tool("poetry"), "lock", "--no-interaction"], cwd=project)
    lock = tomllib.loads((project / "poetry.lock").read_text())
    [package] = [p for p in lock["package"] if p["name"] == "my-package"]
    assert package["version"] == "1.0.0"
    hashes = {f["hash"] for f in package["files"]}
    assert f"sha256:{hashlib.sha256(published.wheel()).hexdigest()}" in hashes


def test_pdm_source_snippet(server: Server, published: Dist, tmp_path: Path) -> None:
    """README: pdm locks my-package from this server, which replaces PyPI."""
    project = _project(tmp_path / "app", "consumer", "0.1.0", ["my-package"])
    snippet = readme_snippet("pdm-source").replace("http://127.0.0.1:8080", server.url)
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n" + snippet)
    server.run([tool("pdm"), "lock"], cwd=project, env={"PDM_IGNORE_SAVED_PYTHON": "1", "PDM_CHECK_UPDATE": "false"})
    lock = tomllib.loads((project / "pdm.lock").read_text())
    [package] = [p for p in lock["package"] if p["name"] == "my-package"]
    assert package["version"] == "1.0.0"


def _publish_project(server: Server, tmp_path: Path, name: str) -> Path:
    dist = Dist(name, "0.1")
    project = _project(tmp_path / name, name, "0.1", [])
    dist.write(project / "dist")
    return project


def _expected_files(name: str) -> set[str]:
    dist = Dist(name, "0.1")
    return {dist.wheel_filename, dist.sdist_filename}


def test_poetry_publish_snippet(server: Server, tmp_path: Path) -> None:
    project = _publish_project(server, tmp_path, "poetry-published")
    server.shell(readme_snippet("poetry-publish"), cwd=project, env={"TOKEN": server.token})
    assert _files(server, "poetry-published") == _expected_files("poetry-published")


def test_pdm_publish_snippet(server: Server, tmp_path: Path) -> None:
    """--no-build: building would fetch pdm's build backend from the internet."""
    project = _publish_project(server, tmp_path, "pdm-published")
    script = readme_snippet("pdm-publish").replace("pdm publish", "pdm publish --no-build")
    server.shell(script, cwd=project, env={"TOKEN": server.token, "PDM_CHECK_UPDATE": "false"})
    assert _files(server, "pdm-published") == _expected_files("pdm-published")


def test_hatch_publish_snippet(server: Server, tmp_path: Path) -> None:
    project = _publish_project(server, tmp_path, "hatch-published")
    server.shell(readme_snippet("hatch-publish"), cwd=project, env={"TOKEN": server.token})
    assert _files(server, "hatch-published") == _expected_files("hatch-published")


def test_keyring_snippet(server: Server, tmp_path: Path) -> None:
    """README: the token stored with the real keyring CLI is found by the real twine."""
    Dist("keyring-published", "0.1").write(tmp_path / "dist")
    env = {"PYTHON_KEYRING_BACKEND": "tests.e2e.filekeyring.FileKeyring", "PYTHONPATH": str(ROOT),
           "HOME": str(tmp_path)}
    set_line, upload_line = readme_snippet("keyring").strip().splitlines()
    server.run(["bash", "-c", set_line.split("#")[0].replace("http://127.0.0.1:8080", server.url)],
               cwd=tmp_path, env=env, stdin=server.token + "\n")
    server.shell(upload_line, cwd=tmp_path, env=env)
    assert _files(server, "keyring-published") == _expected_files("keyring-published")


def _files(server: Server, project: str) -> set[str]:
    request = urllib.request.Request(f"{server.simple}{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request) as response:
        return {f["filename"] for f in json.load(response)["files"]}


# Six spellings of demo 1.0.0's wheel, each with bytes of its own (issue 11 A1).
SPELLINGS = ["demo-1.0.0", "Demo-1.0.0", "demo-01.0.0", "demo-1.0", "DEMO-1.0.0.0", "demo-v1.0.0"]


def test_h1_pip_and_uv_install_the_one_stored_wheel(tmp_path: Path) -> None:
    """H1: real twine processes upload six spellings of demo 1.0.0 at once to two server processes
    (concurrent across processes: the check is under the project's flock). Exactly one is stored,
    the others get "File already exists", and pip and uv install that one's bytes for demo==1.0.0."""
    home = tmp_path / "home"
    home.mkdir()
    server = start_proxy(home, "--workers", "2", "--no-upstream")
    try:
        server.run([tool("pypi-proxy"), "user", "add", "alice", "--password-stdin", "--data-dir", str(home / "data")],
                   stdin=PASSWORD + "\n")
        paths = []
        for n, spelling in enumerate(SPELLINGS):
            name, version = spelling.split("-", 1)
            path = tmp_path / "dist" / str(n) / f"{spelling}-py3-none-any.whl"
            path.parent.mkdir(parents=True)
            path.write_bytes(Dist(name, version, module_source=f"VALUE = {spelling!r}\n").wheel())
            paths.append(path)
        twines = [subprocess.Popen([tool("twine"), "upload", "--disable-progress-bar", "--repository-url",
                                    server.upload_url, "-u", "alice", "-p", PASSWORD, str(path)],
                                   env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                  for path in paths]
        outputs = [twine.communicate(timeout=180)[0] for twine in twines]
        stored = [path.name for path, twine in zip(paths, twines) if twine.returncode == 0]
        assert len(stored) == 1, outputs
        refused = [out for twine, out in zip(twines, outputs) if twine.returncode != 0]
        assert len(refused) == len(SPELLINGS) - 1 and all("File already exists" in out for out in refused), refused
        assert _files(server, "demo") == set(stored)
        winner = stored[0].removesuffix("-py3-none-any.whl")
        pip_install(server, tmp_path / "pip", "--index-url", server.simple, "demo==1.0.0")
        uv_install(server, tmp_path / "uv", "--index-url", server.simple, "demo==1.0.0")
        assert installed_version(tmp_path / "pip", "demo") == winner
        assert installed_version(tmp_path / "uv", "demo") == winner
    finally:
        stop_proxy(server.process)
