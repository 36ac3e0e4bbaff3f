"""bench/: the benchmark runs end to end at tiny scale against the upstream and the proxy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from benchkit.load import parse_wrk

from tests.frontnginx import nginx_binary

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8080/pypi/simple/bigproj/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.31ms  812.00us  15.20ms   90.12%
    Req/Sec    13.90k     1.20k   16.00k    70.00%
  Latency Distribution
     50%  2.10ms
     75%  2.50ms
     90%    3.01ms
     99%  850.00us
  138301 requests in 5.00s, 1.51GB read
  Non-2xx or 3xx responses: 3
Requests/sec:  27660.20
Transfer/sec:    309.50MB
"""


def test_parse_wrk_reads_rate_percentiles_and_transfer() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert (result.requests, result.seconds, result.rps) == (138301, 5.0, 27660.20)
    assert (result.p50_ms, result.p99_ms) == (2.10, 0.85)
    assert result.bytes_per_s == pytest.approx(309.5 * (1 << 20))
    assert result.errors == 3


def _run(tmp_path: Path, *options: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench.py"), "--scale", "tiny", "--runs", "1", "--no-peers",
         "--work", str(tmp_path / "work"), *options],
        check=False, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_tiny_benchmark_prints_the_tables(tmp_path: Path) -> None:
    # nginx and wrk when installed, else the built-in upstream and load client: never skipped.
    out = _run(tmp_path)
    assert "### Cached page, big project, HTML (`page-big-html`)" in out
    assert "| system | req/s | p50 ms |" in out
    assert "| proxy |" in out
    assert "### Targets (proxy)" in out
    assert (tmp_path / "work" / "results.json").exists()


def test_tiny_benchmark_runs_without_nginx_and_wrk(tmp_path: Path) -> None:
    out = _run(tmp_path, "--load", "python", "--upstream-server", "python", "--only", "pages",
               "--only", "conditional")
    assert "| static |" in out and "| proxy |" in out
    assert "load: python" in out


def test_tiny_policy_benchmark_compares_the_pages_with_and_without_a_policy(tmp_path: Path) -> None:
    """Issue 15's performance target is measured in bench/, never here: this only runs it."""
    out = _run(tmp_path, "--load", "python", "--upstream-server", "python", "--only", "policy")
    assert "| proxy-policy |" in out and "| proxy |" in out
    assert "big page HTML with 10,000 advisories within 5% of policy off:" in out


def test_tiny_front_benchmark_puts_nginx_in_front_of_the_proxy(tmp_path: Path) -> None:
    """Issue 16's front-server mode, measured in bench/ (never here): this only runs it."""
    nginx_binary()  # skips (fails in CI) without nginx
    out = _run(tmp_path, "--load", "python", "--only", "front")
    assert "| proxy-front |" in out and "| proxy |" in out
    assert "front-server mode: cached 1 MB file MiB/s ≥ 95%" in out
