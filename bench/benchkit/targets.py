"""The proxy's targets: each met, missed and by how much, or not measured and which scenario
would measure it. Issue 16's first, issue 14's shared mode, then those of earlier issues that they did not replace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchkit import scen_front, scen_shared
from benchkit.context import Results

TREE_LIMIT_MIB = 120  # issue 16: peak RSS of the whole tree (supervisor and workers)
STALE_CASES = {"refusing": "refusing", "hanging": "hanging", "cold_hanging": "hanging from the proxy's start"}
# The scenario (bench.py --only) that fills each table, by the table key's first word.
SCENARIOS = {"page": "pages", "conditional": "conditional", "file": "files", "cold": "cold", "herd": "herd",
             "install": "install", "stale": "stale", "scale": "scale", "policy": "policy", "front": "front",
             "shared": "shared"}


def scenario_of(table: str) -> str:
    return SCENARIOS.get(table.split("-")[0], table)


class Checklist:
    """Targets as they are checked: ``items`` for results.json, ``render`` for the report."""

    def __init__(self, results: Results, reference: str) -> None:
        self.results = results
        self.reference = reference
        self.items: list[dict[str, Any]] = []

    def get(self, table: str, system: str, metric: str) -> float | None:
        if system not in self.results.samples.get(table, {}):
            return None
        value = self.results.median(table, system).get(metric)
        return value if isinstance(value, (int, float)) else None

    def item(self, issue: str, target: str, measured: str | None, met: bool | None, short: str = "",
             table: str = "") -> None:
        """``short``: by how much a missed target is missed; ``table``: what measures it."""
        self.items.append({"issue": issue, "target": target, "measured": measured, "met": met,
                           "short": short if met is False else "", "scenario": scenario_of(table) if table else ""})

    def share(self, issue: str, table: str, metric: str, at_least: float, label: str, unit: str) -> None:
        """The proxy's ``metric`` at least ``at_least`` times the reference's, in the same run."""
        mine, base = self.get(table, "proxy", metric), self.get(table, self.reference, metric)
        target = f"{label} ≥ {at_least:.0%} of {self.reference}"
        if mine is None or base is None:
            return self.item(issue, target, None, None, table=table)
        self.item(issue, target, f"{mine / base:.0%} ({mine:.0f} vs {base:.0f} {unit})", mine >= at_least * base,
                  f"{(at_least - mine / base) * 100:.0f} points: {at_least * base:.0f} {unit} needed", table)

    def tail(self, issue: str, table: str, label: str, at_most: float = 4.0) -> None:
        p50, p99 = self.get(table, "proxy", "p50_ms"), self.get(table, "proxy", "p99_ms")
        target = f"{label} p99 < {at_most:.0f}× p50"
        if p50 is None or p99 is None:
            return self.item(issue, target, None, None, table=table)
        self.item(issue, target, f"p99 {p99:.2f} ms = {p99 / p50:.1f}× p50 {p50:.2f} ms", p99 < at_most * p50,
                  f"{p99 - at_most * p50:.2f} ms over {at_most:.0f}× p50", table)

    def at_most(self, issue: str, table: str, metric: str, limit: float, label: str, unit: str) -> None:
        value = self.get(table, "proxy", metric)
        target = f"{label} ≤ {limit:g} {unit}"
        if value is None:
            return self.item(issue, target, None, None, table=table)
        self.item(issue, target, f"{value:+.2f} {unit}", value <= limit, f"{value - limit:.2f} {unit}", table)

    def render(self) -> str:
        marks = {True: "[x]", False: "[ ]", None: "[?]"}
        out = []
        for issue, title in (("16", "Targets of issue 16 (proxy)"), ("14", "Targets of issue 14 (shared mode)"),
                             ("", "Earlier targets (proxy)")):
            lines = [f"### {title}", ""]
            for entry in (e for e in self.items if e["issue"] == issue):
                if entry["met"] is None:
                    scenario = f": run the `{entry['scenario']}` scenario" if entry["scenario"] else ""
                    verdict = f"not measured{scenario}"
                else:
                    verdict = "met" if entry["met"] else f"MISSED by {entry['short']}"
                lines.append(f"- {marks[entry['met']]} {entry['target']}: {entry['measured'] or '–'} ({verdict})")
            out.append("\n".join(lines) + "\n")
        return "\n".join(out)


def checklist(results: Results, reference: str) -> Checklist:
    """Issue 16's targets (medians of the runs, ratios to the reference in the same run), then the
    earlier ones."""
    check = Checklist(results, reference)
    issue16(check)
    scen_shared.targets(check.get, lambda target, measured, met: check.item("14", target, measured, met,
                                                                             "", "shared"))
    earlier(check)
    return check


def issue16(check: Checklist) -> None:
    check.share("16", "page-big-html", "rps", 0.90, "2,000-file page HTML req/s", "req/s")
    for fmt in ("html", "json"):
        check.tail("16", f"page-big-{fmt}", f"2,000-file page {fmt.upper()}")
    for fmt in ("html", "json"):
        check.share("16", f"page-small-{fmt}", "rps", 0.50, f"5-file page {fmt.upper()} req/s", "req/s")
    check.share("16", "conditional-304", "rps", 0.50, "304 on the big page req/s", "req/s")
    status = check.results.median("conditional-304", "proxy").get("status") \
        if "proxy" in check.results.samples.get("conditional-304", {}) else None
    check.item("16", "conditional GET answers 304", None if status is None else str(status),
               None if status is None else str(status) == "304", f"status {status}", "conditional-304")
    check.share("16", "file-1mb", "mib_s", 0.85, "cached 1 MB file MiB/s, served directly", "MiB/s")
    _front(check)
    check.share("16", "file-100mb", "mib_s", 0.95, "cached 100 MB file MiB/s", "MiB/s")
    check.at_most("16", "cold", "added_page_ms", 2.0, "cold page added latency (median)", "ms")
    check.at_most("16", "cold", "added_file_ms", 2.0, "cold file added latency (median)", "ms")
    _memory(check)


def _front(check: Checklist) -> None:
    """The 1 MB file with a front server sending the bytes: the ``front`` scenario's table whose
    key names the 1 MB file, its front-server row (not the proxy alone) against the reference."""
    target = f"cached 1 MB file MiB/s, front-server mode ≥ 95% of {check.reference}"
    table = next((t for t in check.results.samples if t.startswith("front") and "1mb" in t), None)
    rows = check.results.samples.get(table or "", {})
    base = check.get(table, check.reference, "mib_s") if table else None
    mine = check.get(table, scen_front.NAME, "mib_s") if table and scen_front.NAME in rows else None
    if table is None or base is None or mine is None:
        return check.item("16", target, None, None, table=table or "front-file-1mb")
    check.item("16", target, f"{mine / base:.0%} ({mine:.0f} vs {base:.0f} MiB/s)", mine >= 0.95 * base,
               f"{(0.95 - mine / base) * 100:.0f} points", table)


def _memory(check: Checklist) -> None:
    target = f"peak RSS of the whole tree (supervisor and workers) < {TREE_LIMIT_MIB} MiB in every scenario"
    peaks = {t: v for t in check.results.samples if (v := check.get(t, "proxy", "peak_rss_mb")) is not None}
    if not peaks:
        return check.item("16", target, None, None, table="pages")
    worst = max(peaks, key=lambda t: peaks[t])
    over = sorted(t for t, v in peaks.items() if v >= TREE_LIMIT_MIB)
    pss = check.get(worst, "proxy", "peak_pss_mb")
    check.item("16", target, f"max {peaks[worst]:.0f} MiB in `{worst}`"
               + (f" (PSS {pss:.0f} MiB)" if pss else "") + f"; {len(peaks) - len(over)}/{len(peaks)} scenarios under",
               not over, f"{peaks[worst] - TREE_LIMIT_MIB:.0f} MiB in `{worst}`; over in {', '.join(over)}")


def earlier(check: Checklist) -> None:
    check.share("", "page-big-json", "rps", 0.40, "2,000-file page JSON req/s", "req/s")
    value = check.get("herd", "proxy", "upstream_requests")
    check.item("", "one cold large file, many clients → 1 upstream request",
               None if value is None else f"{value:.0f}", None if value is None else value == 1,
               f"{(value or 0) - 1:.0f} extra requests", "herd")
    for tool in ("pip", "uv"):
        mine, base = check.get(f"install-{tool}", "proxy", "seconds"), check.get(f"install-{tool}", check.reference,
                                                                                  "seconds")
        check.item("", f"warm {tool} dry-run ≤ 1.2× {check.reference}",
                   None if mine is None or base is None else f"{mine / base:.2f}× ({mine:.2f} s vs {base:.2f} s)",
                   None if mine is None or base is None else mine <= 1.2 * base,
                   f"{(mine or 0) - 1.2 * (base or 0):.2f} s", f"install-{tool}")
    for size in ("big", "small"):
        for fmt in ("html", "json"):
            table = f"policy-page-{size}-{fmt}"
            on, off = check.get(table, "proxy-policy", "rps"), check.get(table, "proxy", "rps")
            check.item("", f"{size} page {fmt.upper()} with 10,000 advisories within 5% of policy off",
                       None if on is None or off is None else f"{on / off:.0%} ({on:.0f} vs {off:.0f} req/s)",
                       None if on is None or off is None else on >= 0.95 * off,
                       f"{(0.95 - (on or 0) / (off or 1)) * 100:.0f} points", table)
    _stale(check.get, check.item)
    first, cached = check.get("scale", "proxy", "first_html_ms"), check.get("scale", "proxy", "cached_html_ms")
    check.item("", "3,000-version page cold render < 50 ms", None if first is None else f"{first:.1f} ms",
               None if first is None else first < 50, f"{(first or 0) - 50:.1f} ms", "scale")
    check.item("", "3,000-version page served from the rendered cache after",
               None if cached is None or first is None else f"{cached:.1f} ms cached vs {first:.1f} ms first",
               None if cached is None or first is None else cached < first / 2, "not half the first", "scale")
    startup = check.get("scale", "proxy", "startup_s")
    check.item("", "10,000 private projects: start-up < 3 s", None if startup is None else f"{startup:.2f} s",
               None if startup is None else startup < 3, f"{(startup or 0) - 3:.2f} s", "scale")


def _stale(get: Callable[[str, str, str], Any], item: Callable[..., None]) -> None:
    """Issue 11: installs from stale pages with a failing upstream within 1.2x of a healthy one."""
    for tool in ("pip", "uv"):
        healthy = get(f"stale-{tool}", "proxy", "healthy_s")
        for case, label in STALE_CASES.items():
            seconds = get(f"stale-{tool}", "proxy", f"{case}_s")
            known = seconds is not None and healthy is not None
            item("", f"stale pages, upstream {label}: {tool} dry-run ≤ 1.2× healthy upstream",
                 f"{seconds / healthy:.2f}× ({seconds:.2f} s vs {healthy:.2f} s)" if known else None,
                 seconds <= 1.2 * healthy if known else None,
                 f"{seconds - 1.2 * healthy:.2f} s" if known else "", f"stale-{tool}")
