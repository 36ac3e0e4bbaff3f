"""The kinds of value the ``[policy]`` section holds (durations, PEP 508 requirement lists,
exemptions): parsers like ``proxy.configvalues``'s, raising ConfigError keyed by the setting."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from proxy.core.errors import ConfigError
from proxy.core.names import normalize
from proxy.core.policy import RULES, Exemption

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)?\s*$",
                       re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(key: str, value: Any) -> float:
    """Seconds: a number, or text such as "7 days", "12 hours", "30 min", "2w"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(key, f"expected a duration such as \"7 days\" or a number of seconds, got {value!r}")
    unit = (match.group(2) or "s").lower()
    return float(match.group(1)) * _UNITS["m" if unit.startswith("mi") or unit == "m" else unit[0]]


def requirements(key: str, value: Any) -> tuple[str, ...]:
    """PEP 508 requirement strings such as ["colourama", "requests<2.20"] (markers and URLs refused:
    a policy is about names and versions)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(key, f"expected a list of requirements such as [\"requests<2.20\"], got {value!r}")
    found = []
    for text in value:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise ConfigError(key, f"{text!r} is not a PEP 508 requirement: {exc}") from None
        if requirement.marker or requirement.url or requirement.extras:
            raise ConfigError(key, f"{text!r}: only a name and version specifiers may be given")
        found.append(str(requirement))
    return tuple(found)


def exemptions(key: str, value: Any) -> tuple[Exemption, ...]:
    """A list of tables: ``{project = "requests", until = 2027-01-31, reason = "...", rules = [...]}``
    (``project`` a name or pattern, ``until`` a TOML date or "YYYY-MM-DD", ``reason`` required,
    ``rules`` optional, all rules when absent)."""
    if not isinstance(value, list):
        raise ConfigError(key, f"expected a list of tables, got {value!r}")
    found = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if isinstance(item, Exemption):
            found.append(item)
            continue
        if not isinstance(item, dict) or not {"project", "until", "reason"} <= set(item):
            raise ConfigError(where, "expected a table with project, until and reason")
        if unknown := set(item) - {"project", "until", "reason", "rules"}:
            raise ConfigError(where, f"unknown keys {sorted(unknown)}")
        rules = item.get("rules") or []
        if not isinstance(rules, list) or not set(rules) <= set(RULES):
            raise ConfigError(where, f"rules must be a list of {', '.join(RULES)}")
        reason = item["reason"]
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(where, "reason must say why (a non-empty string)")
        found.append(Exemption(normalize(str(item["project"])), _date(where, item["until"]), reason.strip(),
                               tuple(rules)))
    return tuple(found)


def _date(key: str, value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(key, f"until must be a date such as 2027-01-31, got {value!r}") from None


def exemption_mapping(exemption: Exemption) -> dict[str, Any]:
    """An exemption as ``exemptions`` reads it back (settings handed to worker processes)."""
    return {"project": exemption.project, "until": exemption.until.isoformat(), "reason": exemption.reason,
            "rules": list(exemption.rules)}
