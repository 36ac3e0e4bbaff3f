"""The ``pypi-proxy audit`` command: what a running proxy's policy would block or warn about in
requirements and lock files, before anyone installs them."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from proxy.core.names import normalize
from proxy.oserrors import explain_os_error
from proxy.warm.explain import (
    Answer,
    ExplainError,
    Explanation,
    NotServed,
    Unreachable,
    explain_all,
    masked,
    resolve_server,
)
from proxy.warm.explaincli import add_server_option, advisory_data_text, exit_status, fail
from proxy.warm.lockfiles import read_lock
from proxy.warm.requirements import Entry, read_requirements


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` subcommand; its ``handler`` default is :func:`run`."""
    audit = commands.add_parser(
        "audit", help="what a running proxy's policy would block in requirements or lock files",
        description="Ask a running proxy (GET /-/explain/PROJECT/VERSION) about every pinned release "
                    "(NAME==VERSION lines, every package of a lock file) and list what its policy blocks or "
                    "warns about. Exit status: 0 nothing blocked, 1 anything blocked (or would be, in a dry "
                    "run) or not served at all, 2 for bad input, a failed answer or no answer.")
    audit.add_argument("-r", "--requirement", dest="requirement_files", action="append", type=Path, default=[],
                       metavar="FILE", help="a requirements file (repeatable; -r/-c inside are followed)")
    audit.add_argument("--lock", dest="locks", action="append", type=Path, default=[], metavar="FILE",
                       help="a pylock.toml, pylock.<name>.toml or uv.lock (repeatable)")
    add_server_option(audit)
    audit.add_argument("--concurrency", type=_positive, default=8, metavar="N",
                       help="requests in flight at once (default: 8)")
    audit.add_argument("--json", action="store_true", help="print the whole report as one JSON object")
    audit.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


@dataclass(slots=True)
class Pins:
    """What the files name: exact releases (with where each came from), and what is not audited."""

    releases: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    not_pinned: list[tuple[str, str]] = field(default_factory=list)  # (where, requirement)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (where, text, reason)

    def add(self, project: str, version: str, where: str) -> None:
        self.releases.setdefault((normalize(project), version), []).append(where)


def pinned_version(requirement: Requirement) -> str | None:
    """The version of ``name==V`` (or ``===V``); None for anything that admits several versions."""
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "===") and not specifiers[0].version.endswith(".*"):
        return specifiers[0].version
    return None


def collect(requirement_files: Sequence[Path], locks: Sequence[Path]) -> Pins:
    """Read the files (blocking: before the event loop starts). Raises ``OSError`` for a file that
    cannot be read, ``ValueError`` (``LockFileError``) for a lock file that is not one."""
    pins = Pins()
    found = read_requirements(list(requirement_files))
    entries: list[Entry] = [*found.requirements, *found.constraints]
    for entry in entries:
        version = pinned_version(entry.requirement)
        if version is None:
            pins.not_pinned.append((entry.where, str(entry.requirement)))
        else:
            pins.add(entry.requirement.name, version, entry.where)
    pins.skipped.extend((s.where, s.text, s.reason) for s in found.skipped)
    for path in locks:
        lock = read_lock(path)
        for package in lock.packages:
            pins.add(package.name, package.version, str(path))
        pins.skipped.extend((str(path), s.name, s.reason) for s in lock.skipped)
    return pins


@dataclass(frozen=True, slots=True)
class Row:
    project: str
    version: str
    sources: tuple[str, ...]  # "requirements.txt:3", "uv.lock", "dependency of app 1.0"
    answer: Answer

    @property
    def verdict(self) -> str:
        """``served``, ``warn``, ``blocked``, ``would block (dry run)``, ``not served`` or ``error``."""
        answer = self.answer
        if isinstance(answer, ExplainError):
            return "error"
        if isinstance(answer, NotServed):
            return answer.verdict
        if answer.action == "block":
            return "blocked"
        return "would block (dry run)" if answer.would == "block" else {"warn": "warn"}.get(answer.would, "served")

    @property
    def rules(self) -> list[str]:
        if not isinstance(self.answer, Explanation):
            return []
        return [reason.rule + (" (exempt)" if reason.exempted else "") for reason in self.answer.reasons]

    @property
    def advisories(self) -> list[str]:
        if not isinstance(self.answer, Explanation):
            return []
        ids = (advisory.id for reason in self.answer.reasons if not reason.exempted for advisory in reason.advisories)
        return list(dict.fromkeys(ids))


def rows_of(pins: Pins, answers: Sequence[Answer]) -> list[Row]:
    """One row per pinned release, then one per pinned dependency of a private release not pinned itself."""
    rows = [Row(project, version, tuple(sources), answer)
            for ((project, version), sources), answer in zip(pins.releases.items(), answers)]
    seen = set(pins.releases)
    pending = list(rows)
    while pending:
        row = pending.pop(0)
        if not isinstance(row.answer, Explanation):
            continue
        for dependency in row.answer.dependencies:
            key = (normalize(dependency.project), dependency.version)
            if key not in seen:
                seen.add(key)
                extra = Row(key[0], dependency.version, (f"dependency of {row.project} {row.version}",), dependency)
                rows.append(extra)
                pending.append(extra)
    return rows


def run(args: argparse.Namespace) -> int:
    """Run ``audit``; see :func:`register` for the exit statuses."""
    if not (args.requirement_files or args.locks):
        return fail("audit: nothing to audit: give -r FILE or --lock FILE")
    try:
        server = resolve_server(args.server, os.environ)
        pins = collect(args.requirement_files, args.locks)
    except OSError as exc:
        reason, hint = explain_os_error(exc)
        return fail(f"audit: {reason}; {hint}")
    except ValueError as exc:
        return fail(f"audit: {exc}")
    try:
        answers = asyncio.run(explain_all(server, list(pins.releases), args.concurrency))
    except Unreachable as exc:
        return fail(f"audit: {exc}")
    rows = rows_of(pins, answers)
    status = exit_status([row.answer for row in rows])
    if args.json:
        print(json.dumps(report(server, pins, rows, status), indent=2, sort_keys=True))
    else:
        print("\n".join(text_report(pins, rows)))
    return status


def counts(rows: Sequence[Row]) -> dict[str, int]:
    verdicts = [row.verdict for row in rows]
    blocked = sum(v in ("blocked", "would block (dry run)", "not served") for v in verdicts)
    return {"releases": len(rows), "served": verdicts.count("served"), "warned": verdicts.count("warn"),
            "blocked": blocked, "not_served": verdicts.count("not served"), "errors": verdicts.count("error")}


def summary_line(pins: Pins, rows: Sequence[Row]) -> str:
    """``audit: 5 releases: 2 served, 1 with a warning, 2 blocked (1 not served), 0 errors; 1 not pinned``."""
    n = counts(rows)
    not_served = f" ({n['not_served']} not served)" if n["not_served"] else ""
    return (f"audit: {n['releases']} releases: {n['served']} served, {n['warned']} with a warning, "
            f"{n['blocked']} blocked{not_served}, {n['errors']} errors; {len(pins.not_pinned)} not pinned, "
            f"{len(pins.skipped)} skipped (not audited)")


def text_report(pins: Pins, rows: Sequence[Row]) -> list[str]:
    """The table of what is not plainly served, what was not audited and why, the advisory data, the summary."""
    flagged = [row for row in rows if row.verdict != "served"]
    lines = table([("PROJECT", "VERSION", "VERDICT", "RULES", "ADVISORIES")] + [
        (row.project, row.version, row.verdict, ", ".join(row.rules) or _detail(row.answer),
         ", ".join(row.advisories)) for row in flagged]) if flagged else ["nothing would be blocked or warned about"]
    lines.extend(f"{where}: {requirement}: not pinned: not audited" for where, requirement in pins.not_pinned)
    lines.extend(f"{where}: {text}: not audited: {reason}" for where, text, reason in pins.skipped)
    data = next((row.answer.advisory_data for row in rows
                 if isinstance(row.answer, Explanation) and row.answer.advisory_data), None)
    if data:
        lines.append(f"advisory data: {advisory_data_text(data)}")
    lines.append(summary_line(pins, rows))
    return lines


def _detail(answer: Answer) -> str:
    if isinstance(answer, NotServed):
        return answer.message
    return str(answer) if isinstance(answer, ExplainError) else ""


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns left-aligned to their widest cell, two spaces apart; trailing blanks trimmed."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def report(server: str, pins: Pins, rows: Sequence[Row], status: int) -> dict[str, Any]:
    """The ``--json`` document: every release (served ones too) with the server's explanation."""
    def release(row: Row) -> dict[str, Any]:
        answer = row.answer
        return {"project": row.project, "version": row.version, "from": list(row.sources),
                "verdict": row.verdict, "blocks": not isinstance(answer, ExplainError) and answer.blocks,
                "rules": row.rules, "advisories": row.advisories,
                "explanation": answer.document if isinstance(answer, Explanation) else None,
                "message": _detail(answer) or None}

    return {"server": masked(server), "releases": [release(row) for row in rows],
            "not_pinned": [{"where": w, "requirement": r} for w, r in pins.not_pinned],
            "skipped": [{"where": w, "text": t, "reason": r} for w, t, r in pins.skipped],
            "summary": counts(rows) | {"not_pinned": len(pins.not_pinned), "skipped": len(pins.skipped)},
            "exit_status": status}
