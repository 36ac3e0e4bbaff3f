"""Issue 11, A5: the README's hash-checking workflow, its answers for uploading files that are
already here, and its token handling on a headless host, each run as written against a real
server with the real clients."""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.builders import Dist
from tests.e2e.conftest import Server, installed_version, readme_snippet, tool

pytestmark = pytest.mark.e2e
JSON_V1 = "application/vnd.pypi.simple.v1+json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_hashes(server: Server, project: str) -> dict[str, str]:
    """Filename to sha256, as the server lists them (PEP 691)."""
    request = urllib.request.Request(f"{server.simple}{project}/", headers={"Accept": JSON_V1})
    with urllib.request.urlopen(request, timeout=30) as response:
        return {f["filename"]: f["hashes"]["sha256"] for f in json.load(response)["files"]}


def publish(server: Server, paths: Sequence[Path]) -> None:
    server.run([tool("twine"), "upload", "--repository-url", server.upload_url, "-u", "__token__",
                "-p", server.token, *map(str, paths)])


def project_dir(directory: Path, dist: Dist) -> Path:
    """A project as poetry and pdm publish it: its pyproject.toml, and dist/ to fill."""
    directory.mkdir(parents=True)
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "{dist.name}"\nversion = "{dist.version}"\nrequires-python = ">=3.8"\n'
        f"dependencies = []\n")
    return directory


# Hash-checking mode ------------------------------------------------------------------------------

APP = Dist("my-app", "1.0", requires_dist=["my-lib>=1"])
LIB = Dist("my-lib", "1.2")


@pytest.fixture(scope="module")
def app_and_lib(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """my-app 1.0, which depends on my-lib, both published; every file's sha256."""
    paths = [*APP.write(tmp_path_factory.mktemp("app")), *LIB.write(tmp_path_factory.mktemp("lib"))]
    publish(server, paths)
    return {path.name: sha256(path) for path in paths}


def test_hashes_are_compiled_for_the_whole_tree_and_installed_by_pip_and_uv(
        server: Server, app_and_lib: dict[str, str], tmp_path: Path) -> None:
    """README: `uv pip compile --generate-hashes`, then `--require-hashes` with pip and with uv, for
    a package with a dependency (the snippet this replaced failed as written for any such)."""
    server.shell(readme_snippet("hashes-compile"), cwd=tmp_path)
    pinned = (tmp_path / "requirements.txt").read_text()
    assert "my-app==1.0" in pinned and "my-lib==1.2" in pinned
    assert {line.split("sha256:")[1].strip(" \\") for line in pinned.splitlines() if "--hash=sha256:" in line} \
        == set(app_and_lib.values())

    pip_line, uv_line = readme_snippet("hashes-install").strip().splitlines()
    assert pip_line.startswith("pip install ") and uv_line.startswith("uv pip install ")
    # Into target directories, not the test environment; otherwise as written.
    server.shell(pip_line.replace("pip install", f"{sys.executable} -m pip install --target {tmp_path / 'pip'}", 1)
                 + "\n" + uv_line.replace("uv pip install", f"uv pip install --target {tmp_path / 'uv'}", 1),
                 cwd=tmp_path)
    for target in ("pip", "uv"):
        assert installed_version(tmp_path / target, "my_app") == "1.0"
        assert installed_version(tmp_path / target, "my_lib") == "1.2"


def test_a_file_hash_is_where_the_readme_says(server: Server, app_and_lib: dict[str, str]) -> None:
    with urllib.request.urlopen(f"{server.url}/-/projects/my-app/", timeout=30) as response:
        page = response.read().decode()
    with urllib.request.urlopen(f"{server.url}/pypi/my-app/1.0/json", timeout=30) as response:
        api = {f["filename"]: f["digests"]["sha256"] for f in json.load(response)["urls"]}
    with urllib.request.urlopen(f"{server.simple}my-app/", timeout=30) as response:
        simple = response.read().decode()
    for filename in (APP.wheel_filename, APP.sdist_filename):
        digest = app_and_lib[filename]
        assert f"sha256 {digest}" in page  # the web interface, as shown
        assert api[filename] == digest
        assert f"{filename}#sha256={digest}" in simple


# Uploading files that are already here -----------------------------------------------------------


def skip_existing_line(tool_name: str) -> str:
    [line] = [line for line in readme_snippet("skip-existing").splitlines() if line.startswith(f"{tool_name} ")]
    return line


@pytest.fixture
def half_published(server: Server, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, Dist]:
    """A release whose wheel is on the server and whose sdist is not yet: a publish that broke
    off half way. dist/ holds both; its wheel has the stored bytes, or (``changed``) other ones
    under the same filename, as a rebuild makes."""
    name, changed = request.param
    dist = Dist(name, "0.1")
    stored = dist.write(tmp_path / "stored", sdist=False)
    publish(server, stored)
    project = project_dir(tmp_path / name, dist)
    source = Dist(name, "0.1", summary="rebuilt") if changed else dist
    source.write(project / "dist")
    return project, dist


@pytest.mark.parametrize("half_published", [("skip-uv", False)], indirect=True)
def test_uv_publish_check_url_skips_what_is_stored(server: Server, half_published: tuple[Path, Dist]) -> None:
    """STANDARDS E4: files already stored, with the same bytes, are skipped; the rest uploaded."""
    project, dist = half_published
    wheel_hash = stored_hashes(server, dist.name)[dist.wheel_filename]
    done = server.shell(skip_existing_line("uv"), cwd=project, env={"TOKEN": server.token})
    assert f"File {dist.wheel_filename} already exists, skipping" in done.stdout + done.stderr
    assert stored_hashes(server, dist.name) == {dist.wheel_filename: wheel_hash,
                                                dist.sdist_filename: sha256(project / "dist" / dist.sdist_filename)}


@pytest.mark.parametrize("half_published", [("skip-uv-changed", True)], indirect=True)
def test_uv_publish_check_url_refuses_other_bytes(server: Server, half_published: tuple[Path, Dist]) -> None:
    """STANDARDS E4: what the README says uv does with a rebuilt file: an error naming both hashes."""
    project, dist = half_published
    before = stored_hashes(server, dist.name)
    done = server.shell(skip_existing_line("uv"), cwd=project, env={"TOKEN": server.token}, check=False)
    assert done.returncode != 0
    local = sha256(project / "dist" / dist.wheel_filename)
    assert (f"Local file and index file do not match for `{dist.wheel_filename}`. Local: sha256={local}, "
            f"Remote: sha256={before[dist.wheel_filename]}") in done.stderr
    assert stored_hashes(server, dist.name) == before


@pytest.mark.parametrize(("half_published", "tool_name", "skipped"), [
    pytest.param(("skip-poetry", True), "poetry", "File exists. Skipping", id="poetry"),
    pytest.param(("skip-pdm", True), "pdm", "because it appears to already exist", id="pdm"),
], indirect=["half_published"])
def test_poetry_and_pdm_skip_existing_skip_a_file_already_here(
        server: Server, half_published: tuple[Path, Dist], tool_name: str, skipped: str) -> None:
    """STANDARDS E4: a file refused as "File already exists" is skipped, even a rebuilt one (other
    bytes), and the stored one stays; the missing sdist is uploaded."""
    project, dist = half_published
    wheel_hash = stored_hashes(server, dist.name)[dist.wheel_filename]
    script = skip_existing_line(tool_name)
    if tool_name == "poetry":  # the repository `internal`, configured as the README's poetry snippet does
        script = readme_snippet("poetry-publish").splitlines()[0] + "\n" + script
    else:  # building would fetch pdm's build backend from the internet; the files are built
        script = script.replace("pdm publish", "pdm publish --no-build")
    done = server.shell(script, cwd=project, env={"TOKEN": server.token, "PDM_CHECK_UPDATE": "false"})
    assert skipped in done.stdout + done.stderr
    assert stored_hashes(server, dist.name) == {dist.wheel_filename: wheel_hash,
                                                dist.sdist_filename: sha256(project / "dist" / dist.sdist_filename)}


@pytest.mark.parametrize("half_published", [("skip-twine", False)], indirect=True)
def test_twine_refuses_skip_existing_as_the_readme_says(server: Server, half_published: tuple[Path, Dist]) -> None:
    """twine >= 6.2 refuses --skip-existing for any repository but PyPI's, before uploading: the
    rule STANDARDS E4 describes survives only in twine's skip_upload (tests/e2e/test_clients.py)."""
    from packaging.version import Version
    from twine import __version__ as twine_version

    assert Version(twine_version) >= Version("6.2")
    project, dist = half_published
    before = stored_hashes(server, dist.name)
    done = server.run([tool("twine"), "upload", "--skip-existing", "--repository-url", server.upload_url,
                       "-u", "__token__", "-p", server.token, "dist/*"], cwd=project, check=False)
    assert done.returncode != 0
    assert "UnsupportedConfiguration" in done.stdout + done.stderr
    assert stored_hashes(server, dist.name) == before


# Tokens on a headless host -----------------------------------------------------------------------


def headless_env(home: Path) -> dict[str, str]:
    """No desktop: no session bus for a secret service. (Run with UNSET: the tests' own
    environment chooses keyring's null backend.)"""
    return {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(home / ".config"), "DBUS_SESSION_BUS_ADDRESS": ""}


UNSET = ["env", "-u", "PYTHON_KEYRING_BACKEND"]


def test_token_from_the_environment(server: Server, tmp_path: Path) -> None:
    dist = Dist("token-env", "0.1")
    dist.write(tmp_path / "dist")
    server.shell(readme_snippet("token-env"), cwd=tmp_path, env={"TOKEN": server.token})
    assert set(stored_hashes(server, "token-env")) == {dist.wheel_filename, dist.sdist_filename}


def test_keyring_without_a_backend_fails_on_a_headless_host(server: Server, tmp_path: Path) -> None:
    """What the README says happens there before keyrings.alt is installed (the test extras
    install it, so its import is blocked here)."""
    script = ("import sys; sys.modules['keyrings.alt'] = None\n"
              "import keyring; keyring.set_password('http://127.0.0.1:8080/pypi', '__token__', 'secret')")
    done = server.run([*UNSET, tool("python"), "-c", script], env=headless_env(tmp_path), check=False)
    assert done.returncode != 0
    assert "keyring.errors.NoKeyringError" in done.stderr


def test_keyring_on_a_headless_host(server: Server, tmp_path: Path) -> None:
    """keyrings.alt's plain-text file, as the README says (base64, mode 600): keyring's CLI
    stores the token, twine finds it."""
    install, *rest = readme_snippet("keyring-headless").strip().splitlines()
    assert install == "pip install keyrings.alt"
    import keyrings.alt.file  # noqa: F401  - the test extras install it, as that line does

    dist = Dist("keyring-headless", "0.1")
    dist.write(tmp_path / "dist")
    server.shell("\n".join(["unset PYTHON_KEYRING_BACKEND", *rest]), cwd=tmp_path, env=headless_env(tmp_path),
                 stdin=server.token + "\n")
    assert set(stored_hashes(server, "keyring-headless")) == {dist.wheel_filename, dist.sdist_filename}
    stored = tmp_path / ".local" / "share" / "python_keyring" / "keyring_pass.cfg"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert server.token not in stored.read_text()  # encoded, though not encrypted
