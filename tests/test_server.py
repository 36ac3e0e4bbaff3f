"""proxy.ops.server: the cap on open connections fits the open-file limit (issue 12, M3), checked
in a fresh interpreter under each limit, as `ulimit` sets it for the server."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from typing import Any

import pytest

SCRIPT = """
import json, resource
from proxy.log import configure_logging
from proxy.ops.server import connection_cap
configure_logging("info", "json")
print(json.dumps({"cap": connection_cap(%d), "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}))
"""


def cap_under(soft: int, hard: int, wanted: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What connection_cap(wanted) returns under that limit, the soft limit after it, its log."""
    command = shlex.join([sys.executable, "-c", SCRIPT % wanted])
    result = subprocess.run(["bash", "-c", f"ulimit -Sn {soft} && ulimit -Hn {hard} && exec {command}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), [json.loads(line) for line in result.stderr.splitlines()]


@pytest.mark.parametrize("soft, hard, wanted, cap, soft_after", [
    pytest.param(256, 4096, 1000, 1000, 2384, id="soft-limit-raised-to-what-the-cap-needs"),  # and 256 open files
    pytest.param(256, 1024, 1000, 448, 1024, id="raised-to-the-hard-limit-and-the-cap-lowered"),
    pytest.param(256, 256, 1000, 64, 256, id="the-repro's-ulimit-n-256"),
    pytest.param(64, 64, 1000, 1, 64, id="below-the-reserve-one-connection"),
    pytest.param(256, 256, 0, None, 256, id="no-cap-asked"),
])
def test_the_connection_cap_fits_the_open_file_limit(
        soft: int, hard: int, wanted: int, cap: int | None, soft_after: int) -> None:
    result, log = cap_under(soft, hard, wanted)
    assert result == {"cap": cap, "soft": soft_after}
    lowered = [line for line in log if line["event"] == "max_connections_lowered"]
    if cap is None or cap == wanted:
        assert lowered == []
    else:
        [line] = lowered
        assert (line["wanted"], line["max_connections"], line["open_file_limit"]) == (wanted, cap, soft_after)
        assert "LimitNOFILE" in line["hint"]
