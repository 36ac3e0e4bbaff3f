"""``pypi-proxy policy explain`` and ``pypi-proxy audit`` (issue 15, item 3) against a real HTTP server on
loopback that answers ``GET /-/explain/<project>/<version>`` (tests/fakeexplain.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.warm.explaincli import parse_releases
from tests.clitools import assert_fails_with, run_cli
from tests.fakeexplain import ADVISORY_DATA, FakeExplain, Finding, advisory, explanation, running
from tests.fakeupstream import free_port

CVE = advisory("GHSA-x84v-xcm2-53pg", ["CVE-2018-18074", "PYSEC-2018-28"], "high", 7.5,
               "Requests sends Authorization header to HTTP after redirect")
MAL = advisory("MAL-2024-1234", [], "critical", None, "Malicious code in colourama")
VULN = Finding("vulnerabilities", "block",
               "known vulnerabilities (severity high or above): GHSA-x84v-xcm2-53pg (high 7.5)", (CVE,))
EXEMPTION = ("requests", "2027-01-31", "patched in our fork")
# One finding per rule, as the server words them (proxy/core/policy.py).
FINDINGS = {
    "vulnerabilities": VULN,
    "malicious": Finding("malicious", "block", "known malicious: MAL-2024-1234 (critical)", (MAL,)),
    "cooldown": Finding("cooldown", "block", "uploaded 2.0 hours ago, younger than the cooldown of 7.0 days; "
                                             "served from 2025-06-08T08:00:00Z"),
    "deny": Finding("deny", "block", "denied by 'requests<2.20'"),
    "allow_only": Finding("allow_only", "block", "not on the allow-only list"),
    "quarantined": Finding("quarantined", "block", "the project is quarantined upstream (PEP 792)"),
    "archived": Finding("archived", "warn", "the project is archived upstream (PEP 792)"),
    "deprecated": Finding("deprecated", "warn", "the project is deprecated upstream (PEP 792)"),
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeExplain]:
    async with running(FakeExplain()) as server:
        yield server


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``pypi-proxy ARGV`` through the real entry point, off the loop (the fake serves on it)."""
    status = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# Naming releases --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "releases"), [
    (["requests==2.19.0"], [("requests", "2.19.0")]),
    (["requests 2.19.0"], [("requests", "2.19.0")]),
    (["requests", "2.19.0", "Flask_Login==0.6.3"], [("requests", "2.19.0"), ("flask-login", "0.6.3")]),
    (["requests == 2.19.0"], [("requests", "2.19.0")]),
    (["requests[socks]==2.19.0"], [("requests", "2.19.0")]),
    (["legacy===1.0-custom"], [("legacy", "1.0-custom")]),
])
def test_a_release_is_name_and_exact_version(argv: list[str], releases: list[tuple[str, str]]) -> None:
    assert parse_releases(argv) == releases


@pytest.mark.parametrize("argv", [["requests"], ["requests>=2"], ["requests==2.*"], ["requests==1,==2"],
                                  ["requests", "latest"], ["requests @ https://x/r.whl"], ["==1.0"]])
def test_anything_but_one_exact_release_is_refused(argv: list[str]) -> None:
    with pytest.raises(ValueError, match="expected|Expected"):
        parse_releases(argv)


# policy explain ---------------------------------------------------------------------------------------


async def test_a_blocked_release_shows_every_reason_advisory_and_exemption(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str]) -> None:
    exempted = Finding("cooldown", "block", "uploaded 2.0 hours ago, younger than the cooldown of 7.0 days",
                       exempt=EXEMPTION)
    fake.add(explanation("requests", "2.19.0", VULN, exempted))
    status, out, err = await cli(capsys, "policy", "explain", "requests==2.19.0", "--server", fake.url)
    assert (status, err) == (1, "")
    assert out.splitlines() == [
        "requests 2.19.0 (upstream): blocked",
        "  vulnerabilities (block): known vulnerabilities (severity high or above): GHSA-x84v-xcm2-53pg (high 7.5)",
        "    GHSA-x84v-xcm2-53pg (CVE-2018-18074, PYSEC-2018-28) high 7.5 "
        "https://osv.dev/vulnerability/GHSA-x84v-xcm2-53pg",
        "      Requests sends Authorization header to HTTP after redirect",
        "  cooldown (block): uploaded 2.0 hours ago, younger than the cooldown of 7.0 days",
        "    exempted until 2027-01-31 by 'requests': patched in our fork",
        "  release: uploaded 2018-06-14T13:41:09Z",
        f"  advisory data: {ADVISORY_DATA['source']}, 41234 records, fetched 2025-06-01T10:00:00Z (2.0 hours old)",
    ]
    assert fake.accepts == ["application/json"]


@pytest.mark.parametrize("rule", list(FINDINGS))
@pytest.mark.parametrize("dry_run", [False, True])
async def test_each_rule_gives_its_verdict_and_exit_status(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str], rule: str, dry_run: bool) -> None:
    """Issue 15 item 2: every rule; a dry run serves what it would block, says so, and still exits 1."""
    finding = FINDINGS[rule]
    status_of_project = rule if rule in ("quarantined", "archived", "deprecated") else None
    fake.add(explanation("demo", "1.0", finding, dry_run=dry_run, status=status_of_project))
    status, out, _ = await cli(capsys, "policy", "explain", "demo", "1.0", "--server", fake.url)
    blocks = finding.action == "block"
    verdict = ("served (dry run: would block)" if dry_run else "blocked") if blocks else "served with a warning"
    assert out.splitlines()[:2] == [f"demo 1.0 (upstream): {verdict}",
                                    f"  {rule} ({finding.action}): {finding.message}"]
    assert status == (1 if blocks else 0)
    for item in finding.advisories:
        assert f"    {item['id']}" in out and item["url"] in out
    if status_of_project:
        assert f"  release: uploaded 2018-06-14T13:41:09Z, project status {rule}" in out


async def test_an_exempted_finding_serves_the_release(fake: FakeExplain, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add(explanation("requests", "2.19.0", replace(VULN, exempt=EXEMPTION)))
    status, out, _ = await cli(capsys, "policy", "explain", "requests==2.19.0", "--server", fake.url)
    assert status == 0 and out.startswith("requests 2.19.0 (upstream): served\n")
    assert "    exempted until 2027-01-31 by 'requests': patched in our fork\n" in out


async def test_several_releases_json_and_not_served(fake: FakeExplain, capsys: pytest.CaptureFixture[str]) -> None:
    served, blocked = explanation("idna", "3.7"), explanation("requests", "2.19.0", VULN)
    fake.add(served)
    fake.add(blocked)
    status, out, err = await cli(capsys, "policy", "explain", "idna==3.7", "requests==2.19.0", "--json",
                                 "--server", fake.url)
    assert status == 1 and err == ""
    assert [json.loads(line) for line in out.splitlines()] == [served, blocked]
    status, out, err = await cli(capsys, "policy", "explain", "idna==3.7", "nope==1.0", "--server", fake.url)
    assert status == 1
    assert out.splitlines()[0] == "idna 3.7 (upstream): served"
    assert out.splitlines()[-1] == "nope 1.0: not served: no release 1.0 of nope on this index"
    status, out, err = await cli(capsys, "policy", "explain", "nope==1.0", "--json", "--server", fake.url)
    assert (status, out, err) == (1, "", "nope 1.0: not served: no release 1.0 of nope on this index\n")


async def test_a_private_release_reports_its_pinned_dependencies(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str]) -> None:
    dependency = explanation("requests", "2.19.0", VULN)
    fake.add(explanation("my-app", "1.0", source="private", uploaded=None, dependencies=(dependency,)))
    status, out, _ = await cli(capsys, "policy", "explain", "my-app==1.0", "--server", fake.url)
    lines = out.splitlines()
    assert lines[0] == "my-app 1.0 (private): served"
    assert "  dependency requests 2.19.0 (upstream): blocked" in lines
    assert "    vulnerabilities (block): " + VULN.message in lines
    assert status == 0  # the release itself is served; audit counts its dependencies


@pytest.mark.parametrize(("status", "line"), [
    (500, "pypi-proxy policy explain: demo 1.0: HTTP 500: something broke"),
    (401, "pypi-proxy policy explain: demo 1.0: HTTP 401: credentials needed"),
])
async def test_a_failed_answer_is_one_line_and_exit_2(fake: FakeExplain, capsys: pytest.CaptureFixture[str],
                                                       status: int, line: str) -> None:
    fake.add(explanation("demo", "1.0"))
    if status == 401:
        fake.credentials = "alice:secret"
    else:
        fake.failures[("demo", "1.0")] = status
    assert await cli(capsys, "policy", "explain", "demo==1.0", "--server", fake.url) == (2, "", line + "\n")


async def test_credentials_in_the_server_url_are_sent_and_never_shown(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fake.credentials = "alice:s3cret"
    fake.add(explanation("demo", "1.0"))
    server = fake.url.replace("http://", "http://alice:s3cret@")
    assert (await cli(capsys, "policy", "explain", "demo==1.0", "--server", server))[0] == 0
    (tmp_path / "requirements.txt").write_text("demo==1.0\n")
    status, out, _ = await cli(capsys, "audit", "-r", str(tmp_path / "requirements.txt"), "--server", server, "--json")
    assert status == 0 and "s3cret" not in out
    assert json.loads(out)["server"] == server.replace("s3cret", "***")
    assert fake.requests == {("demo", "1.0"): 2}


async def test_an_answer_that_is_not_an_explanation_is_an_error(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add({"project": "demo", "version": "1.0", "action": "allow", "would": "serve"})
    status, out, err = await cli(capsys, "policy", "explain", "demo==1.0", "--server", fake.url)
    assert (status, out) == (2, "")
    assert err == ("pypi-proxy policy explain: demo 1.0: not an explanation: "
                   "action: 'allow' is not serve, warn or block\n")


def test_a_server_that_is_down_is_one_line_and_exit_2(tmp_path: Path) -> None:
    port = free_port()
    for argv, command in ((["policy", "explain", "requests==2.19.0"], "policy explain"),
                          (["audit", "-r", "requirements.txt"], "audit")):
        (tmp_path / "requirements.txt").write_text("requests==2.19.0\n")
        result = run_cli(tmp_path, *argv, env={"PYPI_PROXY_URL": f"http://127.0.0.1:{port}"})
        assert_fails_with(result, 2, f"pypi-proxy {command}: cannot reach http://127.0.0.1:{port}: Connection refused")
        assert result.stdout == ""


@pytest.mark.parametrize(("argv", "line"), [
    (["policy", "explain", "requests>=2"],
     "pypi-proxy policy explain: 'requests>=2': expected a release, NAME==VERSION or NAME VERSION"),
    (["policy", "explain", "requests==1", "--server", "ftp://x"],
     "pypi-proxy policy explain: --server 'ftp://x': expected an http:// or https:// URL"),
    (["audit"], "pypi-proxy audit: nothing to audit: give -r FILE or --lock FILE"),
    (["audit", "--lock", "poetry.lock"],
     "pypi-proxy audit: poetry.lock: not a lock file name (pylock.toml, pylock.<name>.toml or uv.lock)"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, argv: list[str], line: str) -> None:
    (tmp_path / "poetry.lock").write_text("")
    assert_fails_with(run_cli(tmp_path, *argv), 2, line)


# audit ------------------------------------------------------------------------------------------------

def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)


async def test_audit_of_nested_requirements_lists_blocked_warned_and_unpinned(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path, {
        "requirements.txt": "-r sub/base.txt\nrequests==2.19.0  # pinned\nflask>=2\nurllib3\n-e ./local\n"
                            "colourama==0.4.6 ; python_version >= '3'\nIDNA==3.7\n",
        "sub/base.txt": "idna==3.7\n-c constraints.txt\n",
        "sub/constraints.txt": "certifi==2024.2.2\n",
    })
    fake.add(explanation("idna", "3.7"))
    fake.add(explanation("requests", "2.19.0", VULN))
    fake.add(explanation("certifi", "2024.2.2", FINDINGS["archived"], status="archived"))
    status, out, err = await cli(capsys, "audit", "-r", str(tmp_path / "requirements.txt"), "--server", fake.url)
    assert (status, err) == (1, "")
    requirements, base = tmp_path / "requirements.txt", tmp_path / "sub" / "base.txt"
    lines = out.splitlines()
    assert [cells(line) for line in lines[:4]] == [
        ["PROJECT", "VERSION", "VERDICT", "RULES", "ADVISORIES"],
        ["requests", "2.19.0", "blocked", "vulnerabilities", "GHSA-x84v-xcm2-53pg"],
        ["colourama", "0.4.6", "not served", "no release 0.4.6 of colourama on this index"],
        ["certifi", "2024.2.2", "warn", "archived"],
    ]
    assert {line.index(cells(line)[2]) for line in lines[:4]} == {lines[0].index("VERDICT")}, "aligned columns"
    assert lines[4:] == [
        f"{requirements}:3: flask>=2: not pinned: not audited",
        f"{requirements}:4: urllib3: not pinned: not audited",
        f"{requirements}:5: -e ./local: not audited: editable requirement: nothing to fetch from an index",
        f"advisory data: {ADVISORY_DATA['source']}, 41234 records, fetched 2025-06-01T10:00:00Z (2.0 hours old)",
        "audit: 4 releases: 1 served, 1 with a warning, 2 blocked (1 not served), 0 errors; 2 not pinned, "
        "1 skipped (not audited)",
    ]
    # each release asked once (idna twice in the files), the constraint's pin too
    assert fake.requests == {("idna", "3.7"): 1, ("requests", "2.19.0"): 1, ("colourama", "0.4.6"): 1,
                             ("certifi", "2024.2.2"): 1}
    status, out, _ = await cli(capsys, "audit", "-r", str(requirements), "--server", fake.url, "--json")
    document = json.loads(out)
    assert status == document["exit_status"] == 1
    assert {(r["project"], r["version"]): r["from"] for r in document["releases"]} == {
        ("idna", "3.7"): [f"{base}:1", f"{requirements}:7"], ("requests", "2.19.0"): [f"{requirements}:2"],
        ("colourama", "0.4.6"): [f"{requirements}:6"],
        ("certifi", "2024.2.2"): [f"{base.parent / 'constraints.txt'}:1"],
    }


WHEEL = "requests-2.19.0-py2.py3-none-any.whl"


def _pylock() -> str:
    return f"""
lock-version = "1.0"
created-by = "tests"

[[packages]]
name = "requests"
version = "2.19.0"
wheels = [{{ url = "https://files.example/{WHEEL}", hashes = {{ sha256 = "{'a' * 64}" }} }}]

[[packages]]
name = "idna"
version = "3.7"
sdist = {{ url = "https://files.example/idna-3.7.tar.gz", hashes = {{ sha256 = "{'b' * 64}" }} }}

[[packages]]
name = "mine"
directory = {{ path = "." }}
"""


def _uv_lock() -> str:
    registry = 'source = { registry = "https://pypi.org/simple" }'
    return f"""
version = 1
requires-python = ">=3.10"

[[package]]
name = "requests"
version = "2.19.0"
{registry}
dependencies = [{{ name = "idna" }}]
wheels = [{{ url = "https://files.example/{WHEEL}", hash = "sha256:{'a' * 64}", size = 10 }}]

[[package]]
name = "idna"
version = "3.7"
{registry}
sdist = {{ url = "https://files.example/idna-3.7.tar.gz", hash = "sha256:{'b' * 64}", size = 10 }}

[[package]]
name = "mine"
version = "0.1.0"
source = {{ editable = "." }}
"""


@pytest.mark.parametrize(("filename", "text", "skip"), [
    ("pylock.toml", _pylock(), "mine: not audited: directory source: not from an index"),
    ("uv.lock", _uv_lock(), "mine: not audited: editable source: not from an index"),
])
@pytest.mark.parametrize("dry_run", [False, True])
async def test_audit_of_a_lock_file_explains_every_locked_package(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        filename: str, text: str, skip: str, dry_run: bool) -> None:
    write(tmp_path, {filename: text})
    fake.add(explanation("requests", "2.19.0", VULN, dry_run=dry_run))
    fake.add(explanation("idna", "3.7", dry_run=dry_run))
    status, out, _ = await cli(capsys, "audit", "--lock", str(tmp_path / filename), "--server", fake.url)
    verdict = "would block (dry run)" if dry_run else "blocked"
    assert status == 1, "a dry run still fails the audit: the release would be blocked"
    assert cells(out.splitlines()[1]) == ["requests", "2.19.0", verdict, "vulnerabilities", "GHSA-x84v-xcm2-53pg"]
    assert f"{tmp_path / filename}: {skip}" in out.splitlines()
    assert out.splitlines()[-1] == ("audit: 2 releases: 1 served, 0 with a warning, 1 blocked, 0 errors; "
                                    "0 not pinned, 1 skipped (not audited)")
    assert fake.requests == {("requests", "2.19.0"): 1, ("idna", "3.7"): 1}


async def test_audit_with_nothing_to_report_exits_0(fake: FakeExplain, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "idna==3.7\nrequests==2.32.3\n"})
    fake.add(explanation("idna", "3.7"))
    fake.add(explanation("requests", "2.32.3", replace(VULN, exempt=EXEMPTION)))  # lifted by an exemption
    status, out, _ = await cli(capsys, "audit", "-r", str(tmp_path / "requirements.txt"), "--server", fake.url)
    assert status == 0
    assert out.splitlines()[0] == "nothing would be blocked or warned about"
    assert out.splitlines()[-1] == ("audit: 2 releases: 2 served, 0 with a warning, 0 blocked, 0 errors; "
                                    "0 not pinned, 0 skipped (not audited)")


async def test_audit_reports_the_pinned_dependencies_of_a_private_release(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dependency = explanation("requests", "2.19.0", VULN)
    fake.add(explanation("my-app", "1.0", source="private", uploaded=None, dependencies=(dependency,)))
    write(tmp_path, {"requirements.txt": "my-app==1.0\n"})
    status, out, _ = await cli(capsys, "audit", "-r", str(tmp_path / "requirements.txt"), "--server", fake.url,
                               "--json")
    releases = json.loads(out)["releases"]
    assert [(r["project"], r["verdict"], r["from"]) for r in releases] == [
        ("my-app", "served", [f"{tmp_path / 'requirements.txt'}:1"]),
        ("requests", "blocked", ["dependency of my-app 1.0"]),
    ]
    assert status == 1 and fake.requests == {("my-app", "1.0"): 1}


async def test_audit_json_has_every_release_and_a_failed_answer_exits_2(
        fake: FakeExplain, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "idna==3.7\nrequests==2.19.0\nbroken==1.0\nnope==2.0\nflask\n"})
    served, blocked = explanation("idna", "3.7"), explanation("requests", "2.19.0", VULN, dry_run=True)
    fake.add(served)
    fake.add(blocked)
    fake.failures[("broken", "1.0")] = 503
    status, out, err = await cli(capsys, "audit", "-r", str(tmp_path / "requirements.txt"), "--server", fake.url,
                                 "--json")
    document = json.loads(out)
    where = f"{tmp_path / 'requirements.txt'}"
    assert (status, err) == (2, "")
    assert document == {
        "server": fake.url,
        "releases": [
            {"project": "idna", "version": "3.7", "from": [f"{where}:1"], "verdict": "served", "blocks": False,
             "rules": [], "advisories": [], "explanation": served, "message": None},
            {"project": "requests", "version": "2.19.0", "from": [f"{where}:2"], "verdict": "would block (dry run)",
             "blocks": True, "rules": ["vulnerabilities"], "advisories": ["GHSA-x84v-xcm2-53pg"],
             "explanation": blocked, "message": None},
            {"project": "broken", "version": "1.0", "from": [f"{where}:3"], "verdict": "error", "blocks": False,
             "rules": [], "advisories": [], "explanation": None,
             "message": "broken 1.0: HTTP 503: something broke"},
            {"project": "nope", "version": "2.0", "from": [f"{where}:4"], "verdict": "not served", "blocks": True,
             "rules": [], "advisories": [], "explanation": None,
             "message": "no release 2.0 of nope on this index"},
        ],
        "not_pinned": [{"where": f"{where}:5", "requirement": "flask"}],
        "skipped": [],
        "summary": {"releases": 4, "served": 1, "warned": 0, "blocked": 2, "not_served": 1, "errors": 1,
                    "not_pinned": 1, "skipped": 0},
        "exit_status": 2,
    }
    status, out, _ = await cli(capsys, "audit", "-r", where, "--server", fake.url)
    assert status == 2 and ["broken", "1.0", "error", "broken 1.0: HTTP 503: something broke"] in [
        cells(line) for line in out.splitlines()]


async def test_audit_keeps_to_its_concurrency(fake: FakeExplain, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    names = [f"p{i}" for i in range(12)]
    for name in names:
        fake.add(explanation(name, "1.0"))
    write(tmp_path, {"requirements.txt": "".join(f"{name}==1.0\n" for name in names)})
    fake.gate = 3  # nobody is answered until three requests are in flight: a client must reach its bound
    status, _, _ = await cli(capsys, "audit", "-r", str(tmp_path / "requirements.txt"), "--server", fake.url,
                             "--concurrency", "3")
    assert status == 0 and fake.most_in_flight == 3 and sum(fake.requests.values()) == 12
