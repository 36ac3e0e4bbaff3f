"""The ``pypi-proxy warm`` command: prefill a running proxy's cache from requirements or lock files."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from proxy.oserrors import explain_os_error
from proxy.warm.client import FileOutcome
from proxy.warm.engine import DEFAULT_SERVER, Summary, WarmInputs, WarmOptions, megabytes, run_warm
from proxy.warm.lockfiles import LockedPackage, read_lock
from proxy.warm.requirements import Skipped, parse_text, read_requirements
from proxy.warm.targets import make_targets

SERVER_ENV = "PYPI_PROXY_URL"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``warm`` subcommand; its ``handler`` default is :func:`run`."""
    warm = commands.add_parser(
        "warm", help="prefill a running proxy's cache from requirements or lock files",
        description="Choose the files that requirements (and their dependencies) or lock files need "
                    "and make the proxy fetch each one into its cache (HEAD requests: no bytes come here).")
    warm.add_argument("requirements", nargs="*", metavar="REQUIREMENT", help="a requirement, e.g. 'requests>=2'")
    warm.add_argument("-r", "--requirement", dest="requirement_files", action="append", type=Path, default=[],
                      metavar="FILE", help="a requirements file (repeatable; -r/-c inside are followed)")
    warm.add_argument("--lock", dest="locks", action="append", type=Path, default=[], metavar="FILE",
                      help="a pylock.toml, pylock.<name>.toml or uv.lock: warm exactly its files (repeatable)")
    warm.add_argument("--server", default=None, metavar="URL",
                      help=f"the proxy (default: ${SERVER_ENV}, else {DEFAULT_SERVER})")
    warm.add_argument("--python-version", dest="python_versions", action="append", default=[], metavar="X.Y",
                      help="a target Python version (repeatable; default: this interpreter's)")
    warm.add_argument("--platform", dest="platforms", action="append", default=[], metavar="TAG",
                      help="a target platform tag, e.g. manylinux_2_17_x86_64, macosx_11_0_arm64, win_amd64 "
                           "(repeatable; default: this machine's)")
    warm.add_argument("--all-files", action="store_true",
                      help="every file of each chosen version, not just the best fit per target")
    warm.add_argument("--pre", action="store_true", help="allow pre-releases")
    warm.add_argument("--concurrency", type=_positive, default=8, metavar="N",
                      help="requests in flight at once (default: 8)")
    warm.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    warm.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``warm``: 0 when every file is cached, 1 when anything failed, 2 for bad input."""
    if not (args.requirements or args.requirement_files or args.locks):
        return _usage("nothing to warm: give requirements, -r FILE or --lock FILE")
    server = args.server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    if not server.startswith(("http://", "https://")):
        return _usage(f"--server {server!r}: expected an http:// or https:// URL")
    try:
        targets = make_targets(args.python_versions, args.platforms)
        inputs, notices = load_inputs(args.requirements, args.requirement_files, args.locks)
    except OSError as exc:  # a file missing, a directory, no permission
        reason, hint = explain_os_error(exc)
        return _usage(f"{reason}; {hint}")
    except ValueError as exc:  # bad TOML, bad versions or platforms
        return _usage(str(exc))
    progress = progress_for(sys.stdout, sys.stderr, args.quiet)
    for notice in notices:
        progress.notice(notice)
    options = WarmOptions(tuple(targets), server, args.all_files, args.pre, args.concurrency)
    summary = asyncio.run(run_warm(inputs, options, progress))
    progress.finish()
    print(summary.line())
    return summary.exit_status


def _usage(message: str) -> int:
    print(f"pypi-proxy warm: {message}", file=sys.stderr)
    return 2


def load_inputs(specs: Sequence[str], requirement_files: Sequence[Path],
                locks: Sequence[Path]) -> tuple[WarmInputs, list[str]]:
    """Read every input (before the event loop starts: files are read blocking) and the notices."""
    arguments = parse_text("\n".join(specs), "<arguments>")
    files = read_requirements(list(requirement_files))
    skipped: list[Skipped] = [*arguments.skipped, *files.skipped]
    notices = [f"{s.where}: {s.text!r} skipped: {s.reason}" for s in skipped]
    locked: list[LockedPackage] = []
    for path in locks:
        lock = read_lock(path)
        locked.extend(lock.packages)
        notices.extend(f"{path}: {s.name} skipped: {s.reason}" for s in lock.skipped)
    requirements = tuple(e.requirement for e in (*arguments.entries, *files.requirements))
    inputs = WarmInputs(requirements, tuple(e.requirement for e in files.constraints), tuple(locked))
    return inputs, notices


class LineProgress:
    """One line per file, for logs and pipes; notes and failures on the error stream."""

    def __init__(self, out: TextIO, err: TextIO, quiet: bool = False) -> None:
        self.out, self.err, self.quiet = out, err, quiet

    def notice(self, text: str) -> None:
        if not self.quiet:
            print(f"warm: note: {text}", file=self.err)

    def problem(self, text: str) -> None:
        print(f"warm: FAILED {text}", file=self.err)

    def file_done(self, outcome: FileOutcome, summary: Summary) -> None:
        if outcome.status == "failed":
            print(f"FAILED {outcome.filename} ({outcome.detail})", file=self.out)
        elif not self.quiet:
            size = f" ({megabytes(outcome.size)} MB)" if outcome.status == "fetched" else ""
            print(f"{outcome.status} {outcome.filename}{size}", file=self.out)

    def finish(self) -> None:
        self.out.flush()


class TtyProgress(LineProgress):
    """On a terminal: one status line rewritten in place; failures and notes above it."""

    _drawn = False

    def _clear(self) -> None:
        if self._drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._drawn = False

    def notice(self, text: str) -> None:
        self._clear()
        super().notice(text)

    def problem(self, text: str) -> None:
        self._clear()
        super().problem(text)

    def file_done(self, outcome: FileOutcome, summary: Summary) -> None:
        self._clear()
        if outcome.status == "failed":
            print(f"FAILED {outcome.filename} ({outcome.detail})", file=self.out)
        if not self.quiet:
            self.out.write(f"warm: {summary.done}/{summary.files} files, {summary.fetched} fetched "
                           f"({megabytes(summary.downloaded)} MB), {summary.cached} cached, {summary.failed} failed")
            self.out.flush()
            self._drawn = True

    def finish(self) -> None:
        self._clear()


def progress_for(out: TextIO, err: TextIO, quiet: bool) -> LineProgress:
    """A rewriting status line on a terminal, plain lines otherwise."""
    return TtyProgress(out, err, quiet) if out.isatty() else LineProgress(out, err, quiet)
