"""Markdown tables per scenario (with ratios to the reference and to the proxy) and the checklist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchkit.context import Results


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
STALE_CASES = {"refusing": "refusing", "hanging": "hanging", "cold_hanging": "hanging from the proxy's start"}

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
          (("rps", "req/s", "{:.0f}"), ("p99_ms", "p99 ms", "{:.2f}"), ("status", "status", "{}"),
           ("errors", "errors", "{:.0f}")) + RSS, "rps"),
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


def checklist(results: Results, reference: str) -> list[dict[str, Any]]:
    """The issue's targets for the proxy, each met, missed, or not measured in this run."""
    def get(table: str, system: str, metric: str) -> Any:
        value = results.median(table, system).get(metric) if system in results.samples.get(table, {}) else None
        return value if isinstance(value, (int, float)) else None

    items: list[dict[str, Any]] = []

    def item(target: str, measured: str | None, met: bool | None) -> None:
        items.append({"target": target, "measured": measured, "met": met})

    def share(table: str, metric: str, at_least: float, label: str, system: str = "proxy") -> None:
        mine, base = get(table, system, metric), get(table, reference, metric)
        if mine is None or base is None:
            return item(f"{label} ≥ {at_least:.0%} of {reference}", None, None)
        item(f"{label} ≥ {at_least:.0%} of {reference}", f"{mine / base:.0%} ({mine:.0f} vs {base:.0f})",
             mine >= at_least * base)

    for fmt in ("html", "json"):
        share(f"page-big-{fmt}", "rps", 0.40, f"2,000-file page {fmt.upper()} req/s")
        p50, p99 = get(f"page-big-{fmt}", "proxy", "p50_ms"), get(f"page-big-{fmt}", "proxy", "p99_ms")
        item(f"2,000-file page {fmt.upper()} p99 < 4× p50",
             None if p50 is None or p99 is None else f"p99 {p99:.2f} ms = {p99 / p50:.1f}× p50 {p50:.2f} ms",
             None if p50 is None or p99 is None else p99 < 4 * p50)
    for fmt in ("html", "json"):
        share(f"page-small-{fmt}", "rps", 0.25, f"5-file page {fmt.upper()} req/s")
    share("conditional-304", "rps", 0.60, "304 req/s")
    status = results.median("conditional-304", "proxy").get("status") if "conditional-304" in results.samples else None
    if status is not None:
        item("conditional GET answers 304", str(status), str(status) == "304")
    share("file-1mb", "mib_s", 0.80, "cached 1 MB file MiB/s")
    share("file-100mb", "mib_s", 0.80, "cached 100 MB file MiB/s")
    for size in ("1mb", "100mb"):  # issue 16: nginx in front sends what the proxy decides
        share(f"front-file-{size}", "mib_s", 0.95, f"front-server mode: cached {size[:-2]} MB file MiB/s",
              system="proxy-front")
    for metric, label in (("added_page_ms", "cold page"), ("added_file_ms", "cold file")):
        value = get("cold", "proxy", metric)
        item(f"{label} added latency ≤ 2 ms (median)", None if value is None else f"{value:+.2f} ms",
             None if value is None else value <= 2.0)
    value = get("herd", "proxy", "upstream_requests")
    item("one cold large file, many clients → 1 upstream request",
         None if value is None else f"{value:.0f}", None if value is None else value == 1)
    peaks = {t: get(t, "proxy", "peak_rss_mb") for t in results.samples}
    peaks = {t: v for t, v in peaks.items() if v is not None}
    largest = {t: get(t, "proxy", "largest_process_mb") or 0.0 for t in peaks}
    if peaks:
        worst = max(peaks, key=lambda t: peaks[t])
        biggest = max(largest, key=lambda t: largest[t])
        item("proxy peak RSS < 120 MB in every scenario",
             f"max {peaks[worst]:.0f} MiB, all processes ({worst}); largest one process "
             f"{largest[biggest]:.0f} MiB ({biggest})", peaks[worst] * (1 << 20) < 120e6)
    else:
        item("proxy peak RSS < 120 MB in every scenario", None, None)
    for tool in ("pip", "uv"):
        mine, base = get(f"install-{tool}", "proxy", "seconds"), get(f"install-{tool}", reference, "seconds")
        item(f"warm {tool} dry-run ≤ 1.2× {reference}",
             None if mine is None or base is None else f"{mine / base:.2f}× ({mine:.2f} s vs {base:.2f} s)",
             None if mine is None or base is None else mine <= 1.2 * base)
    for size in ("big", "small"):
        for fmt in ("html", "json"):
            table = f"policy-page-{size}-{fmt}"
            on, off = get(table, "proxy-policy", "rps"), get(table, "proxy", "rps")
            item(f"{size} page {fmt.upper()} with 10,000 advisories within 5% of policy off",
                 None if on is None or off is None else f"{on / off:.0%} ({on:.0f} vs {off:.0f} req/s)",
                 None if on is None or off is None else on >= 0.95 * off)
    _stale_items(get, item)
    first, cached = get("scale", "proxy", "first_html_ms"), get("scale", "proxy", "cached_html_ms")
    item("3,000-version page cold render < 50 ms", None if first is None else f"{first:.1f} ms",
         None if first is None else first < 50)
    item("3,000-version page served from the rendered cache after",
         None if cached is None or first is None else f"{cached:.1f} ms cached vs {first:.1f} ms first",
         None if cached is None or first is None else cached < first / 2)
    startup = get("scale", "proxy", "startup_s")
    item("10,000 private projects: start-up < 3 s", None if startup is None else f"{startup:.2f} s",
         None if startup is None else startup < 3)
    return items


def _stale_items(get: Callable[[str, str, str], Any], item: Callable[[str, str | None, bool | None], None]) -> None:
    """Issue 11: installs from stale pages with a failing upstream within 1.2x of a healthy one."""
    for tool in ("pip", "uv"):
        healthy = get(f"stale-{tool}", "proxy", "healthy_s")
        for case, label in STALE_CASES.items():
            seconds = get(f"stale-{tool}", "proxy", f"{case}_s")
            known = seconds is not None and healthy is not None
            item(f"stale pages, upstream {label}: {tool} dry-run ≤ 1.2× healthy upstream",
                 f"{seconds / healthy:.2f}× ({seconds:.2f} s vs {healthy:.2f} s)" if known else None,
                 seconds <= 1.2 * healthy if known else None)


def render_checklist(items: list[dict[str, Any]]) -> str:
    marks = {True: "[x]", False: "[ ]", None: "[?]"}
    lines = ["### Targets (proxy)", ""]
    for entry in items:
        measured = entry["measured"] or "not measured"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[entry["met"]]
        lines.append(f"- {marks[entry['met']]} {entry['target']}: {measured} ({verdict})")
    return "\n".join(lines) + "\n"
