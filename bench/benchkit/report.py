"""Markdown tables per scenario (with ratios to the reference and to the proxy), and two summaries
across them: tail latency of every page scenario, and the proxy tree's memory per scenario.
The targets are checked in benchkit.targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchkit import scen_shared
from benchkit.context import Results
from benchkit.targets import TREE_LIMIT_MIB


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    columns: tuple[tuple[str, str, str], ...]  # (metric, header, format)
    ratio_of: str | None  # the metric the ratio columns compare


PAGE_COLUMNS = (("rps", "req/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
                ("p99_over_p50", "p99/p50", "{:.1f}"), ("status", "status", "{}"), ("type", "content type", "{}"),
                ("encoding", "coding", "{}"), ("bytes", "bytes", "{:.0f}"), ("errors", "errors", "{:.0f}"))
RSS = (("peak_rss_mb", "peak RSS MiB", "{:.0f}"), ("largest_process_mb", "largest process MiB", "{:.0f}"))
STALE_COLUMNS = (("healthy_s", "healthy s", "{:.2f}"), ("refusing_s", "refusing s", "{:.2f}"),
                 ("refusing_ratio", "× healthy", "{:.2f}×"), ("hanging_s", "hanging s", "{:.2f}"),
                 ("hanging_ratio", "× healthy", "{:.2f}×"), ("cold_hanging_s", "hanging from start s", "{:.2f}"),
                 ("cold_hanging_ratio", "× healthy", "{:.2f}×"), ("refusing_stale", "stale pages (refusing)", "{:.0f}"),
                 ("hanging_stale", "stale pages (hanging)", "{:.0f}"))

TABLES = (
    *(Table(f"policy-page-{size}-{fmt}", f"Cached page, {size} project, {fmt.upper()}: policy off and with "
            "10,000 advisories", (("rps", "req/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"),
                                  ("p99_ms", "p99 ms", "{:.2f}")) + RSS, "rps")
      for size in ("big", "small") for fmt in ("html", "json")),
    Table("page-big-html", "Cached page, big project, HTML", PAGE_COLUMNS + RSS, "rps"),
    Table("page-big-json", "Cached page, big project, JSON", PAGE_COLUMNS + RSS, "rps"),
    Table("page-small-html", "Cached page, small project, HTML", PAGE_COLUMNS + RSS, "rps"),
    Table("page-small-json", "Cached page, small project, JSON", PAGE_COLUMNS + RSS, "rps"),
    Table("page-big-html-gzip", "Cached page, big project, HTML, Accept-Encoding: gzip", PAGE_COLUMNS + RSS, "rps"),
    Table("page-big-json-gzip", "Cached page, big project, JSON, Accept-Encoding: gzip", PAGE_COLUMNS + RSS, "rps"),
    Table("page-small-html-gzip", "Cached page, small project, HTML, Accept-Encoding: gzip", PAGE_COLUMNS + RSS,
          "rps"),
    Table("page-small-json-gzip", "Cached page, small project, JSON, Accept-Encoding: gzip", PAGE_COLUMNS + RSS,
          "rps"),
    Table("conditional-304", "Conditional GET (If-None-Match) of the big page",
          (("rps", "req/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
           ("p99_over_p50", "p99/p50", "{:.1f}"), ("status", "status", "{}"), ("errors", "errors", "{:.0f}")) + RSS,
          "rps"),
    Table("file-1mb", "Cached small file", (("mib_s", "MiB/s", "{:.0f}"), ("rps", "req/s", "{:.0f}"),
                                            ("p99_ms", "p99 ms", "{:.1f}"), ("status", "status", "{}"),
                                            ("errors", "errors", "{:.0f}")) + RSS, "mib_s"),
    Table("file-100mb", "Cached large file", (("mib_s", "MiB/s", "{:.0f}"), ("rps", "req/s", "{:.1f}"),
                                              ("p99_ms", "p99 ms", "{:.0f}"), ("status", "status", "{}"),
                                              ("errors", "errors", "{:.0f}")) + RSS, "mib_s"),
    *(Table(f"front-file-{size}", f"Cached {size[:-2]} MB file: nginx, the proxy, nginx in front of the proxy "
            "(front_server = nginx)", (("mib_s", "MiB/s", "{:.0f}"), ("rps", "req/s", "{:.1f}"),
                                       ("p99_ms", "p99 ms", "{:.1f}"), ("status", "status", "{}"),
                                       ("errors", "errors", "{:.0f}")) + RSS, "mib_s") for size in ("1mb", "100mb")),
    Table("front-page-small-html", "5-file page HTML: nginx, the proxy, the proxy through nginx (front mode)",
          (("rps", "req/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
           ("status", "status", "{}"), ("errors", "errors", "{:.0f}")) + RSS, "rps"),
    Table("cold", "Cold page and file: added latency over the upstream directly (median ms)",
          (("page_ms", "page ms", "{:.2f}"), ("ref_page_ms", "upstream page ms", "{:.2f}"),
           ("added_page_ms", "added page ms", "{:+.2f}"), ("file_ms", "file ms", "{:.2f}"),
           ("ref_file_ms", "upstream file ms", "{:.2f}"), ("added_file_ms", "added file ms", "{:+.2f}"),
           ("status", "status", "{}")) + RSS, "page_ms"),
    Table("herd", "Many clients on one cold large file",
          (("upstream_requests", "upstream requests", "{:.0f}"), ("complete", "complete", "{}"),
           ("seconds", "seconds", "{:.1f}"), ("statuses", "statuses", "{}")) + RSS, "seconds"),
    Table("install-pip", "Warm pip install --dry-run of the chain", (("seconds", "seconds", "{:.2f}"),) + RSS,
          "seconds"),
    Table("install-uv", "Warm uv pip install --dry-run of the chain", (("seconds", "seconds", "{:.2f}"),) + RSS,
          "seconds"),
    *(Table(f"stale-{tool}", f"{tool} dry-run of the chain, every page stale: upstream healthy, refusing, hanging",
            STALE_COLUMNS, None) for tool in ("pip", "uv")),
    Table("scale", "Private projects at scale (proxy only)",
          (("startup_s", "start-up s", "{:.2f}"), ("root_entries", "projects listed", "{:.0f}"),
           ("first_html_ms", "first HTML ms", "{:.1f}"), ("cached_html_ms", "cached HTML ms", "{:.1f}"),
           ("first_json_ms", "first JSON ms", "{:.1f}"), ("cached_json_ms", "cached JSON ms", "{:.1f}"),
           ("html_kib", "HTML KiB", "{:.0f}"), ("rss_mb", "RSS MiB", "{:.0f}")) + RSS, None),
    *(Table(*shared) for shared in scen_shared.TABLES),
)


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "–"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _ratio(value: Any, base: Any) -> str:
    if not isinstance(value, (int, float)) or not isinstance(base, (int, float)) or not base:
        return "–"
    return f"{value / base:.2f}×"


def render_tables(results: Results, reference: str, order: list[str]) -> str:
    out = []
    for table in TABLES:
        if table.key not in results.samples and table.key not in results.errors:
            continue
        rows = {name: results.median(table.key, name) for name in order if name in results.samples.get(table.key, {})}
        headers = ["system", *(h for _, h, _ in table.columns)]
        if table.ratio_of:
            headers += [f"vs {reference}", "vs proxy"]
        lines = [f"### {table.title} (`{table.key}`)", "", "| " + " | ".join(headers) + " |",
                 "|" + "---|" * len(headers)]
        for name, row in rows.items():
            cells = [name, *(_cell(row.get(m), f) for m, _, f in table.columns)]
            if table.ratio_of:
                base = rows.get(reference, {}).get(table.ratio_of)
                cells += [_ratio(row.get(table.ratio_of), base),
                          _ratio(row.get(table.ratio_of), rows.get("proxy", {}).get(table.ratio_of))]
            lines.append("| " + " | ".join(cells) + " |")
        for name, message in results.errors.get(table.key, {}).items():
            lines.append(f"| {name} | failed: {message.splitlines()[0][:150]} |")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _tail_tables(results: Results) -> list[str]:
    """Every table with latency percentiles: the page scenarios, the 304, the policy pages."""
    return [t.key for t in TABLES if t.key in results.samples
            and any("p99_ms" in row and "p50_ms" in row for rows in results.samples[t.key].values() for row in rows)]


def render_tails(results: Results, reference: str, systems: list[str]) -> str:
    """p50, p99 and p99/p50 of every page scenario, one row per scenario, a column group per system."""
    keys = _tail_tables(results)
    names = [n for n in systems if any(n in results.samples.get(k, {}) for k in keys)]
    if not keys or not names:
        return ""
    headers = ["scenario", *(f"{n} {h}" for n in names for h in ("p50 ms", "p99 ms", "p99/p50"))]
    lines = ["### Tail latency of every page scenario (medians of the runs)", "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for key in keys:
        cells = [f"`{key}`"]
        for name in names:
            row = results.median(key, name) if name in results.samples.get(key, {}) else {}
            p50, p99 = row.get("p50_ms"), row.get("p99_ms")
            ratio = p99 / p50 if isinstance(p50, (int, float)) and isinstance(p99, (int, float)) and p50 else None
            cells += [_cell(p50, "{:.2f}"), _cell(p99, "{:.2f}"), _cell(ratio, "{:.1f}×")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_memory(results: Results, system: str = "proxy") -> str:
    """The ``system`` tree's peak memory in each scenario, against issue 16's limit: summed RSS
    (the target's measure), PSS (shared pages counted once), the root process (the supervisor
    with workers) and the largest process."""
    keys = [t.key for t in TABLES if system in results.samples.get(t.key, {})
            and isinstance(results.median(t.key, system).get("peak_rss_mb"), (int, float))]
    if not keys:
        return ""
    lines = [f"### Memory of the {system} tree per scenario (peaks, medians of the runs)", "",
             f"| scenario | RSS MiB, whole tree | < {TREE_LIMIT_MIB} MiB | PSS MiB, whole tree | root process MiB "
             "| largest process MiB |", "|---|---|---|---|---|---|"]
    for key in keys:
        row = results.median(key, system)
        peak = row.get("peak_rss_mb")
        flag = "–" if not isinstance(peak, (int, float)) else ("yes" if peak < TREE_LIMIT_MIB else
                                                              f"**no, +{peak - TREE_LIMIT_MIB:.0f}**")
        lines.append(f"| `{key}` | {_cell(peak, '{:.0f}')} | {flag} | {_cell(row.get('peak_pss_mb'), '{:.0f}')} | "
                     f"{_cell(row.get('root_rss_mb'), '{:.0f}')} | {_cell(row.get('largest_process_mb'), '{:.0f}')} |")
    return "\n".join(lines) + "\n"
