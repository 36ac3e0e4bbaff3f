"""Parse pip requirements files: requirement lines, nested -r/-c, options, hashes and markers."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

# pip's rule: "#" starts a comment at the start of a line or after whitespace (so "url#egg=x" stays).
_COMMENT = re.compile(r"(^|\s+)#.*$")
_INCLUDES = {"-r": "requirement", "--requirement": "requirement",
             "-c": "constraint", "--constraint": "constraint"}
_EDITABLE = ("-e", "--editable")
# Options that take a value, so "-i URL" is one option, not an option and a requirement.
_VALUED = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host",
           "--no-binary", "--only-binary", "--use-feature", "--config-settings", "--global-option",
           "--install-option", "--hash"}
_DIRECT_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line (or option) that is not warmed, where it was and why."""

    where: str  # "path:line"
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Entry:
    """A requirement line: the PEP 508 requirement and its ``--hash`` values (``sha256:...``)."""

    requirement: Requirement
    where: str
    hashes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Include:
    """A nested ``-r`` (kind "requirement") or ``-c`` (kind "constraint") line, path as written."""

    kind: str
    path: str
    where: str


@dataclass(frozen=True, slots=True)
class ParsedText:
    """One file's requirements and includes in file order (includes not followed), and skips."""

    items: tuple[Entry | Include, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(item for item in self.items if isinstance(item, Entry))

    @property
    def includes(self) -> tuple[Include, ...]:
        return tuple(item for item in self.items if isinstance(item, Include))


@dataclass(frozen=True, slots=True)
class RequirementSet:
    """Everything the files (and their includes) ask for."""

    requirements: tuple[Entry, ...] = ()
    constraints: tuple[Entry, ...] = ()
    skipped: tuple[Skipped, ...] = ()


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Comments removed, then ``\\`` continuations joined; numbered by first line, blanks dropped."""
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined = "".join([*pending, line]).strip()
        pending = []
        if joined:
            result.append((start, joined))
    if pending and (joined := "".join(pending).strip()):
        result.append((start, joined))  # a file ending in a backslash: pip keeps the line
    return result


def parse_text(text: str, source: str = "<requirements>") -> ParsedText:
    """Parse the text of one requirements file (pure: includes are returned, not read)."""
    items: list[Entry | Include] = []
    skipped: list[Skipped] = []
    for number, line in logical_lines(text):
        where = f"{source}:{number}"
        if line.startswith("-"):
            _option_line(line, where, items, skipped)
        else:
            _requirement_line(line, where, items, skipped)
    return ParsedText(tuple(items), tuple(skipped))


def _split(line: str, where: str, skipped: list[Skipped]) -> list[str] | None:
    try:
        return shlex.split(line)
    except ValueError as exc:
        skipped.append(Skipped(where, line, f"cannot split the line: {exc}"))
        return None


def _option_line(line: str, where: str, includes: list[Entry | Include], skipped: list[Skipped]) -> None:
    tokens = _split(line, where, skipped)
    if not tokens:
        return
    option, _, value = tokens[0].partition("=")
    if tokens[0][:2] in ("-r", "-c", "-e", "-i", "-f") and len(tokens[0]) > 2:
        option, value = tokens[0][:2], tokens[0][2:]  # "-rbase.txt": a short option with its value
    if not value and len(tokens) > 1:
        value = tokens[1]
    if option in _INCLUDES:
        if not value:
            skipped.append(Skipped(where, line, f"{option} needs a file"))
        elif "://" in value:
            skipped.append(Skipped(where, line, "remote requirements files are not followed"))
        else:
            includes.append(Include(_INCLUDES[option], value, where))
    elif option in _EDITABLE:
        skipped.append(Skipped(where, line, "editable requirement: nothing to fetch from an index"))
    else:
        skipped.append(Skipped(where, line, f"option {option} ignored"))


def _requirement_line(line: str, where: str, entries: list[Entry | Include], skipped: list[Skipped]) -> None:
    spec, options = _split_options(line)
    hashes: list[str] = []
    tokens = _split(options, where, skipped) if options else []
    if tokens is None:
        return
    index = 0
    while index < len(tokens):
        option, has_value, value = tokens[index].partition("=")
        if option in _VALUED and not has_value and index + 1 < len(tokens):
            index += 1
            value = tokens[index]
        if option == "--hash":
            hashes.append(value)
        else:
            skipped.append(Skipped(where, tokens[index], f"per-requirement option {option} ignored"))
        index += 1
    if _looks_like_location(spec):
        skipped.append(Skipped(where, spec, "URL or path requirement: not from an index"))
        return
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        skipped.append(Skipped(where, spec, f"invalid requirement: {exc}"))
        return
    if requirement.url:
        skipped.append(Skipped(where, spec, "direct reference (name @ url): not from an index"))
        return
    entries.append(Entry(requirement, where, tuple(hashes)))


def _split_options(line: str) -> tuple[str, str]:
    """pip's split: the requirement runs up to the first whitespace-separated token starting with -."""
    match = re.search(r"\s-", line)
    if match is None:
        return line, ""
    return line[: match.start()].strip(), line[match.start():].strip()


def _looks_like_location(spec: str) -> bool:
    """A URL, a path or an archive filename (pip installs those directly), not ``name @ url``."""
    head = spec.split(";", 1)[0].strip()
    if _DIRECT_REFERENCE.match(head):
        return False  # PEP 508 "name [extras] @ url": Requirement parses it, with .url set
    return "://" in head or "/" in head or "\\" in head or head.startswith((".", "~")) or (
        head.lower().endswith(_ARCHIVES)
    )


def read_requirements(paths: list[Path], reader: Callable[[Path], str] | None = None) -> RequirementSet:
    """Read requirements files and follow their -r/-c includes (relative to the including file).

    Requirements keep file order, an include's where it appears. A file included by a
    constraints file contributes constraints, whatever its own option. Each file is read once
    (as requirements, and once as constraints), so include cycles end.
    """
    found = _Found(reader or _read_text)
    for path in paths:
        found.follow(path, as_constraint=False)
    return RequirementSet(tuple(found.requirements), tuple(found.constraints), tuple(found.skipped))


@dataclass(slots=True)
class _Found:
    read: Callable[[Path], str]
    requirements: list[Entry] = field(default_factory=list)
    constraints: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seen: set[tuple[Path, bool]] = field(default_factory=set)

    def follow(self, path: Path, as_constraint: bool) -> None:
        key = (path.resolve(), as_constraint)
        if key in self.seen:
            return
        self.seen.add(key)
        parsed = parse_text(self.read(path), str(path))
        self.skipped.extend(parsed.skipped)
        for item in parsed.items:
            if isinstance(item, Include):
                nested = path.parent / Path(item.path).expanduser()
                self.follow(nested, as_constraint or item.kind == "constraint")
            else:
                (self.constraints if as_constraint else self.requirements).append(item)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")
