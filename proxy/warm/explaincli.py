"""The ``pypi-proxy policy explain`` command: whether a running proxy serves a release, and every reason."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from proxy.core.names import is_valid_project_name, normalize
from proxy.warm.engine import DEFAULT_SERVER
from proxy.warm.explain import (
    SERVER_ENV,
    Answer,
    ExplainError,
    Explanation,
    NotServed,
    Reason,
    Unreachable,
    explain_all,
    resolve_server,
)

_SPACED_PIN = re.compile(r"\s*(===?)\s*")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy explain``; its ``handler`` default is :func:`run`."""
    policy = commands.add_parser("policy", help="ask a running proxy about its supply-chain policy")
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    explain = actions.add_parser(
        "explain", help="whether releases are served, warned about or blocked, and why",
        description="Ask a running proxy (GET /-/explain/PROJECT/VERSION) whether it serves each release and "
                    "every reason: the rule, its advisories and exemptions. Exit status: 0 served, 1 blocked "
                    "(or would be, in a dry run) or not served at all, 2 for bad input or no answer.")
    explain.add_argument("releases", nargs="+", metavar="REQ",
                         help="a release: 'requests==2.19.0' or 'requests 2.19.0'")
    add_server_option(explain)
    explain.add_argument("--json", action="store_true",
                         help="print the server's JSON, one object a line (a release not served: on stderr)")
    explain.set_defaults(handler=run)


def add_server_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=None, metavar="URL",
                        help=f"the proxy, credentials in it if it needs them (default: ${SERVER_ENV}, "
                             f"else {DEFAULT_SERVER})")


def parse_releases(arguments: Sequence[str]) -> list[tuple[str, str]]:
    """``NAME==VERSION`` or ``NAME VERSION`` (in one argument or two) as ``(normalised name, version)``.

    Raises ``ValueError`` naming the argument that is not one exact release.
    """
    tokens = _SPACED_PIN.sub(r"\1", " ".join(arguments)).split()
    releases: list[tuple[str, str]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if "==" in token:
            releases.append(_pinned(token))
        elif index + 1 < len(tokens) and _is_version(tokens[index + 1]) and is_valid_project_name(token):
            index += 1
            releases.append((normalize(token), tokens[index]))
        else:
            raise ValueError(f"{token!r}: expected a release, NAME==VERSION or NAME VERSION")
        index += 1
    return releases


def _pinned(text: str) -> tuple[str, str]:
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    specifiers = list(requirement.specifier)
    if requirement.url or len(specifiers) != 1 or specifiers[0].operator not in ("==", "===") \
            or specifiers[0].version.endswith(".*"):
        raise ValueError(f"{text!r}: expected one exact version, NAME==VERSION")
    return normalize(requirement.name), specifiers[0].version


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    """Run ``policy explain``: 0 when every release is served, 1 when any is (or would be) blocked or
    not served, 2 for bad input, a failed answer or a server that does not answer."""
    try:
        releases = parse_releases(args.releases)
        server = resolve_server(args.server, os.environ)
    except ValueError as exc:
        return fail(f"policy explain: {exc}")
    try:
        answers = asyncio.run(explain_all(server, releases))
    except Unreachable as exc:
        return fail(f"policy explain: {exc}")
    for answer in answers:
        if isinstance(answer, ExplainError):
            print(f"pypi-proxy policy explain: {answer}", file=sys.stderr)
        elif args.json and isinstance(answer, NotServed):
            print(f"{answer.project} {answer.version}: {answer.verdict}: {answer.message}", file=sys.stderr)
        elif args.json and isinstance(answer, Explanation):
            print(json.dumps(answer.document, sort_keys=True))
        else:
            print("\n".join(explanation_lines(answer)))
    return exit_status(answers)


def exit_status(answers: Sequence[Answer]) -> int:
    """2 when any answer failed, else 1 when any release is blocked (or would be) or not served, else 0."""
    if any(isinstance(answer, ExplainError) for answer in answers):
        return 2
    return 1 if any(not isinstance(answer, ExplainError) and answer.blocks for answer in answers) else 0


def fail(message: str) -> int:
    print(f"pypi-proxy {message}", file=sys.stderr)
    return 2


def explanation_lines(answer: Explanation | NotServed, indent: str = "", label: str = "") -> list[str]:
    """A release's verdict, then each reason with its advisories and exemption, what is known of the
    release and of the advisory data, then its pinned dependencies' (private releases), indented."""
    if isinstance(answer, NotServed):
        return [f"{indent}{label}{answer.project} {answer.version}: {answer.verdict}: {answer.message}"]
    lines = [f"{indent}{label}{answer.project} {answer.version} ({answer.source}): {answer.verdict}"]
    for reason in answer.reasons:
        lines.extend(reason_lines(reason, indent + "  "))
    release = answer.release
    known = [f"uploaded {release['uploaded']}" if release.get("uploaded") else "",
             f"first seen here {release['first_seen']}" if release.get("first_seen") else "",
             f"project status {release['status']}" if release.get("status") else ""]
    if any(known):
        lines.append(f"{indent}  release: {', '.join(k for k in known if k)}")
    if answer.advisory_data and not label:  # once, not again for each dependency
        lines.append(f"{indent}  advisory data: {advisory_data_text(answer.advisory_data)}")
    for dependency in answer.dependencies:
        lines.extend(explanation_lines(dependency, indent + "  ", "dependency "))
    return lines


def reason_lines(reason: Reason, indent: str) -> list[str]:
    """``rule (action): message``; an exemption lifts it; one line per advisory, its summary below."""
    lines = [f"{indent}{reason.rule} ({reason.action}): {reason.message}"]
    if reason.exempted is not None:
        exemption = reason.exempted
        until = f" until {exemption.until}" if exemption.until else ""
        because = f": {exemption.reason}" if exemption.reason else ""
        lines.append(f"{indent}  exempted{until} by {exemption.project!r}{because}")
    for advisory in reason.advisories:
        aliases = f" ({', '.join(advisory.aliases)})" if advisory.aliases else ""
        score = f" {advisory.score:g}" if advisory.score is not None else ""
        severity = f" {advisory.severity}{score}" if advisory.severity else score
        url = f" {advisory.url}" if advisory.url else ""
        lines.append(f"{indent}  {advisory.id}{aliases}{severity}{url}")
        if advisory.summary:
            lines.append(f"{indent}    {advisory.summary}")
    return lines


def advisory_data_text(data: dict[str, object]) -> str:
    """``source, N records, fetched AT (AGE old)`` and the last refresh error if any."""
    parts = [str(data.get("source") or "unknown source")]
    if isinstance(data.get("records"), int):
        parts.append(f"{data['records']} records")
    if data.get("fetched_at"):
        age = data.get("age_s")
        parts.append(f"fetched {data['fetched_at']}" + (f" ({span(age)} old)" if isinstance(age, (int, float)) else ""))
    else:
        parts.append("never fetched")
    text = ", ".join(parts)
    return text + (f"; last refresh failed: {data['last_error']}" if data.get("last_error") else "")


def span(seconds: float) -> str:
    """A duration in words: ``12 s``, ``5.0 minutes``, ``3.2 hours``, ``4.0 days``."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
