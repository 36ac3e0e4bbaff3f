"""Real pip and uv against a policy (issue 15): an unpinned install resolves to the newest release
the policy allows; a pinned blocked release is not found; a blocked file fetched by its URL (what
lock files do) fails with the rule in the error; a warned file installs."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import Dist
from tests.e2e.conftest import Server, UpstreamThread, installed_version, start_proxy, stop_proxy, tool
from tests.fakeosv import zip_of
from tests.fakeupstream import FakeUpstream
from tests.waiting import until_sync

pytestmark = pytest.mark.e2e


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Server]:
    """demo 1.0 (denied), 2.0 (advised against: warned), 3.0 (in its cooldown: blocked)."""
    fake = FakeUpstream()
    for version in ("1.0", "2.0", "3.0"):
        fake.add(Dist("demo", version))
    for filename in ("demo-3.0-py3-none-any.whl", "demo-3.0.tar.gz"):
        fake.upload_times[filename] = "2099-01-01T00:00:00Z"  # a release of the future: never out of cooldown
    fake.project_keys["demo"] = {"project-status": {"status": "archived", "reason": "no longer maintained"}}
    upstream = UpstreamThread(fake)
    upstream.start()
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text(f'[upstream]\nurl = "{fake.url}"\n\n[policy]\ndeny = ["demo<2"]\ncooldown = "7 days"\n'
                      'archived = "warn"\n')
    server = start_proxy(home, "--config", str(config))
    yield server
    stop_proxy(server.process)
    upstream.stop()
    upstream.close()


def pip(proxy: Server, target: Path, *requirement: str) -> tuple[int, str]:
    result = proxy.run([tool("python"), "-m", "pip", "install", "--no-cache-dir", "--target", str(target),
                        "--index-url", proxy.simple, *requirement], check=False)
    return result.returncode, result.stdout + result.stderr


def uv(proxy: Server, target: Path, *requirement: str) -> tuple[int, str]:
    result = proxy.run([tool("uv"), "pip", "install", "--no-cache", "--target", str(target),
                        "--index-url", proxy.simple, *requirement], check=False)
    return result.returncode, result.stdout + result.stderr


INSTALLERS = {"pip": pip, "uv": uv}


@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unpinned_install_gets_the_newest_release_the_policy_allows(proxy: Server, tmp_path: Path,
                                                                       installer: str) -> None:
    code, output = INSTALLERS[installer](proxy, tmp_path / "t", "demo")
    assert code == 0, output
    assert installed_version(tmp_path / "t", "demo") == "2.0"


@pytest.mark.parametrize("installer", INSTALLERS)
@pytest.mark.parametrize("version", ["1.0", "3.0"])
def test_a_pinned_blocked_release_is_not_found(proxy: Server, tmp_path: Path, installer: str, version: str) -> None:
    code, output = INSTALLERS[installer](proxy, tmp_path / "t", f"demo=={version}")
    assert code != 0 and not (tmp_path / "t" / "demo").exists()
    expected = "(from versions: 2.0)" if installer == "pip" else f"there is no version of demo=={version}"
    assert expected in output, output  # only the allowed release is offered


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_blocked_file_by_url_fails_naming_the_rule(proxy: Server, tmp_path: Path, installer: str) -> None:
    url = f"{proxy.url}/pypi/files/demo/demo-1.0-py3-none-any.whl"
    code, output = INSTALLERS[installer](proxy, tmp_path / "t", f"demo @ {url}")
    assert code != 0 and "403" in output
    if installer == "pip":  # pip shows the reason phrase, which carries the rule
        assert "deny" in output and "demo<2" in output


def test_policy_explain_and_audit_against_the_real_endpoint(proxy: Server, tmp_path: Path) -> None:
    explain = proxy.run([tool("pypi-proxy"), "policy", "explain", "demo==1.0", "--server", proxy.url], check=False)
    assert explain.returncode == 1 and "blocked" in explain.stdout and "deny" in explain.stdout, explain.stdout
    warned = proxy.run([tool("pypi-proxy"), "policy", "explain", "demo==2.0", "--server", proxy.url], check=False)
    assert warned.returncode == 0 and "archived" in warned.stdout, warned.stdout
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("demo==2.0\n")
    assert proxy.run([tool("pypi-proxy"), "audit", "-r", str(requirements), "--server", proxy.url]).returncode == 0
    requirements.write_text("demo==2.0\ndemo==3.0  # in its cooldown\nflask>=2\n")
    audit = proxy.run([tool("pypi-proxy"), "audit", "-r", str(requirements), "--server", proxy.url], check=False)
    assert audit.returncode == 1 and "cooldown" in audit.stdout and "not pinned" in audit.stdout, audit.stdout


# Every rule, one proxy each: what pip and uv install unpinned, and that a pinned blocked release fails.
def _osv(id: str, name: str, events: list[dict[str, str]], severity: str = "CRITICAL") -> dict:
    return {"id": id, "database_specific": {"severity": severity},
            "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": events}]}]}


RULE_CASES = {
    # rule: (policy lines, newest allowed, a blocked release)
    "vulnerabilities": ('vulnerabilities = "block"\nmin_severity = "high"\n', "2.0", "3.0"),
    "malicious": ('malicious = "block"\n', "2.0", "3.0"),
    "cooldown": ('cooldown = "7 days"\n', "2.0", "3.0"),
    "deny": ('deny = ["demo>2"]\n', "2.0", "3.0"),
    "allow_only": ('allow_only = ["demo<3"]\n', "2.0", "3.0"),
    "quarantined": ('quarantined = "block"\n', None, "3.0"),
}


@pytest.fixture
def rule_proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    rule = request.param
    fake = FakeUpstream()
    for version in ("1.0", "2.0", "3.0"):
        fake.add(Dist("demo", version))
    if rule == "cooldown":
        for filename in ("demo-3.0-py3-none-any.whl", "demo-3.0.tar.gz"):
            fake.upload_times[filename] = "2099-01-01T00:00:00Z"
    if rule == "quarantined":
        fake.project_keys["demo"] = {"project-status": {"status": "quarantined", "reason": "malware report"}}
    records = [_osv("GHSA-demo-3", "demo", [{"introduced": "2.5"}]),  # critical: 3.0
               _osv("MAL-2099-1", "demo", [{"introduced": "2.5"}], "LOW") if rule == "malicious" else
               _osv("PYSEC-low-1", "demo", [{"introduced": "0"}], "LOW")]  # low: under the floor
    if rule == "malicious":
        records = records[1:]
    upstream = UpstreamThread(fake)
    upstream.start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "osv.zip").write_bytes(zip_of(records))
    config = home / "config.toml"
    config.write_text(f'[upstream]\nurl = "{fake.url}"\n\n[policy]\n{RULE_CASES[rule][0]}'
                      f'advisories = "{home / "osv.zip"}"\n')
    server = start_proxy(home, "--config", str(config))
    until_sync(lambda: (json.load(urllib.request.urlopen(f"{server.url}/-/health")).get("advisories") or
                        {"fetched_at": True}).get("fetched_at") is not None, "the advisory data to load")
    yield server
    stop_proxy(server.process)
    upstream.stop()
    upstream.close()


@pytest.mark.parametrize("rule_proxy", list(RULE_CASES), indirect=True)
@pytest.mark.parametrize("installer", INSTALLERS)
def test_every_rule_end_to_end(rule_proxy: Server, tmp_path: Path, installer: str,
                               request: pytest.FixtureRequest) -> None:
    rule = request.node.callspec.params["rule_proxy"]
    _, allowed, blocked = RULE_CASES[rule]
    code, output = INSTALLERS[installer](rule_proxy, tmp_path / "t", "demo")
    if allowed is None:  # nothing of the project is served
        assert code != 0, output
    else:
        assert code == 0, output
        assert installed_version(tmp_path / "t", "demo") == allowed
    code, output = INSTALLERS[installer](rule_proxy, tmp_path / "p", f"demo=={blocked}")
    assert code != 0 and not (tmp_path / "p" / "demo").exists(), output
