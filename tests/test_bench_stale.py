"""bench/'s stale scenario (issue 11): the switchable relay in front of the upstream, and how its
results are reported. The scenario itself runs in test_bench's tiny benchmark."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from benchkit import report, targets
from benchkit.context import Results
from benchkit.relay import Relay


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def relay() -> Iterator[Relay]:
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=target.serve_forever, daemon=True)
    thread.start()
    relay = Relay(target.server_address[1])
    yield relay
    relay.close()
    target.shutdown()
    target.server_close()


def get(relay: Relay) -> bytes:
    with urllib.request.urlopen(f"{relay.url}/x", timeout=0.5) as answer:
        body: bytes = answer.read()
        return body


def test_the_relay_forwards_refuses_and_hangs_on_demand(relay: Relay) -> None:
    assert get(relay) == b"hello"
    relay.set_mode("refusing")
    with pytest.raises(urllib.error.URLError) as refused:
        get(relay)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    relay.set_mode("hanging")
    with pytest.raises((socket.timeout, TimeoutError)):  # accepted, never answered
        get(relay)
    relay.set_mode("healthy")
    assert get(relay) == b"hello"
    with pytest.raises(ValueError):
        relay.set_mode("sulking")


def test_stale_results_are_tabled_with_ratios_and_checked_against_the_target() -> None:
    results = Results()
    results.add("stale-pip", "proxy", {"healthy_s": 2.0, "refusing_s": 2.1, "refusing_ratio": 1.05,
                                       "hanging_s": 2.6, "hanging_ratio": 1.3, "cold_hanging_s": 2.0,
                                       "cold_hanging_ratio": 1.0, "refusing_stale": 30, "hanging_stale": 30})
    tables = report.render_tables(results, "nginx", ["nginx", "proxy"])
    assert "every page stale: upstream healthy, refusing, hanging (`stale-pip`)" in tables
    assert "| proxy | 2.00 | 2.10 | 1.05× | 2.60 | 1.30× | 2.00 | 1.00× | 30 | 30 |" in tables
    items = {i["target"]: i for i in targets.checklist(results, "nginx").items}
    refusing = items["stale pages, upstream refusing: pip dry-run ≤ 1.2× healthy upstream"]
    hanging = items["stale pages, upstream hanging: pip dry-run ≤ 1.2× healthy upstream"]
    assert (refusing["met"], refusing["measured"]) == (True, "1.05× (2.10 s vs 2.00 s)")
    assert (hanging["met"], hanging["measured"]) == (False, "1.30× (2.60 s vs 2.00 s)")
    assert items["stale pages, upstream refusing: uv dry-run ≤ 1.2× healthy upstream"]["met"] is None
