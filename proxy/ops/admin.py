"""The administrative commands of ``pypi-proxy`` (user, token, yank, unyank, remove, release-name,
cache, check): each works on the data directory with its parsed arguments, prints what it did
and returns the exit status; ProxyError (and its kinds) for a failed operation."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from proxy.config import Settings
from proxy.configvalues import parse_size
from proxy.core.errors import NeedsTerminal, ProxyError
from proxy.core.models import PrivateProject, version_key
from proxy.core.names import normalize
from proxy.ops import maintenance
from proxy.storage.auth import AuthError
from proxy.storage.backends import opened, shared_mode
from proxy.storage.stores import Authenticator, PrivateStore

Command = Callable[[argparse.Namespace, Settings], int]


def _mib(size: int) -> str:
    return f"{size / 1024**2:,.1f} MiB"


def cache(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "stats":
        figures = maintenance.stats(settings.data_dir)
        limit = settings.cache.files_max_size
        print(f"private:      {figures.private_projects} projects, {figures.private_files} files, "
              f"{_mib(figures.private_bytes)}")
        print(f"cached files: {figures.cached_projects} projects, {figures.cached_files} files, "
              f"{_mib(figures.cached_bytes)} of {_mib(limit) if limit else 'no limit'}")
        print(f"page cache:   {_mib(figures.page_cache_bytes)} of {_mib(settings.cache.page_cache_size)}")
        return 0
    limit = parse_size(args.max_size) if args.max_size else settings.cache.files_max_size
    result = maintenance.prune(settings.data_dir, limit)
    for project, filename in result.removed:
        print(f"removed {project}/{filename}")
    print(f"pruned {len(result.removed)} files, {_mib(result.freed)} freed, {_mib(result.remaining_bytes)} cached")
    return 0


def check(args: argparse.Namespace, settings: Settings) -> int:
    if shared_mode(settings.storage):
        from proxy.ops import sharedcheck  # SQLAlchemy and obstore: only for the shared mode

        found = sharedcheck.check_shared(settings, deep=args.deep, repair=args.repair)
        return sharedcheck.print_report(found, str(settings.storage.objects.url), args.deep)
    report = maintenance.check(settings.data_dir, repair=args.repair)
    for problem in report.problems:
        print(f"PROBLEM {problem.path}: {problem.message}" + (f" ({problem.repaired})" if problem.repaired else ""))
    for path in report.unverifiable:
        print(f"note    {path}: no cached listing has its hash; not verified")
    print(f"checked {report.private_files} private and {report.cached_files} cached files: "
          f"{len(report.problems)} problems")
    return 1 if report.problems else 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        if not line:
            raise AuthError("--password-stdin: standard input is empty; pipe the password in, on one line.")
        return line.rstrip("\r\n")
    _require_terminal("the password", "pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise AuthError("Passwords do not match.")
    return first


def _require_terminal(question: str, alternative: str) -> None:
    """getpass and input() need a terminal: without one they read a pipe or fail at its end."""
    if sys.stdin is None or not sys.stdin.isatty():
        raise NeedsTerminal(question, alternative)


def _confirm(question: str) -> bool:
    _require_terminal("confirmation", "pass --yes to go ahead without asking")
    try:
        answer = input(question)
    except EOFError:  # Ctrl-D: no answer is not a yes
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


def user(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as stores:
        return _user(args, stores.auth)


def _user(args: argparse.Namespace, store: Authenticator) -> int:
    if args.action == "add":
        store.add_user(args.name, _read_password(args.password_stdin), args.projects)
        print(f"user {args.name!r} created")
    elif args.action == "list":
        for user in store.users():
            scope = ", ".join(user["projects"]) if user["projects"] else "all projects"
            print(f"{user['name']}\t{scope}\tcreated {user['created']}")
    else:
        tokens = store.remove_user(args.name)
        print(f"user {args.name!r} removed, with {tokens} token(s)")
    return 0


def token(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as stores:
        return _token(args, stores.auth)


def _token(args: argparse.Namespace, store: Authenticator) -> int:
    if args.action == "create":
        token_id, token = store.create_token(args.user, args.projects, args.description)
        print(f"token {token_id} created for {args.user!r}; it is shown only this once:", file=sys.stderr)
        print(token)
    elif args.action == "list":
        for record in store.tokens(args.user):
            scope = ", ".join(record["projects"]) if record["projects"] else "all projects of the user"
            print(f"{record['id']}\t{record['user']}\t{scope}\tcreated {record['created']}\t{record['description']}")
    else:
        store.revoke_token(args.token_id)
        print(f"token {args.token_id} revoked")
    return 0


def _select(project: PrivateProject, version: str, filename: str | None) -> set[str]:
    key = version_key(version)
    chosen = {f.filename for f in project.files
              if version_key(f.version) == key and (filename is None or f.filename == filename)}
    if not chosen:
        what = f"file {filename!r}" if filename else f"version {version!r}"
        raise ProxyError(f"No {what} in private project {project.name!r}.")
    return chosen


def yank(args: argparse.Namespace, settings: Settings) -> int:
    reason = args.reason if args.command == "yank" else None
    chosen: set[str] = set()

    def change(project: PrivateProject) -> PrivateProject:
        chosen.update(_select(project, args.version, args.filename))
        return project.with_yank(chosen, reason)

    with opened(settings) as stores:
        stores.private.update(normalize(args.project), change)
    print(f"{args.command}ed {len(chosen)} file(s): {', '.join(sorted(chosen))}")
    return 0


def remove(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as stores:
        return _remove(args, stores.private)


def _remove(args: argparse.Namespace, storage: PrivateStore) -> int:
    name = normalize(args.project)
    project = storage.load(name)
    if project is None:
        raise ProxyError(f"No private project {name!r}.")
    chosen = _select(project, args.version, args.filename)
    if not args.yes and not _confirm(f"Delete {', '.join(sorted(chosen))} for good? [y/N] "):
        print("nothing removed")
        return 1
    storage.remove_files(name, chosen)
    print(f"removed {len(chosen)} file(s); the name {name!r} stays private")
    return 0


def release_name(args: argparse.Namespace, settings: Settings) -> int:
    """L10: the one way a name stops being private; refused while files remain, unless --force."""
    with opened(settings) as stores:
        return _release_name(args, stores.private)


def _release_name(args: argparse.Namespace, storage: PrivateStore) -> int:
    name = normalize(args.project)
    project = storage.load(name)
    if project is None:
        raise ProxyError(f"No private project {name!r}.")
    files = sorted(f.filename for f in project.files)
    if files and not args.force:
        raise ProxyError(f"Private project {name!r} still has {len(files)} file(s): remove them first, or pass "
                         "--force to delete them with the name.")
    if files and not args.yes and not _confirm(
            f"Delete {', '.join(files)} for good and serve upstream's {name!r} instead? [y/N] "):
        print("nothing changed")
        return 1
    storage.release(name, with_files=bool(files))
    print(f"released {name!r}: {len(files)} file(s) deleted; upstream's project of that name is served again")
    return 0


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from proxy.ops import migration  # SQLAlchemy and obstore: only for the shared mode

    return migration.migrate(args, settings)


# By the command line's first word.
COMMANDS: dict[str, Command] = {"user": user, "token": token, "yank": yank, "unyank": yank, "remove": remove,
                                "release-name": release_name, "cache": cache, "check": check,
                                "migrate": migrate}
