"""The description renderer's own process: ``python -m proxy.ui.readmechild MEMORY_BYTES CPU_SECONDS``.

docutils holds the GIL for the whole of a render and cannot be interrupted, so the server runs
each render here, where its parent can kill it at a deadline and the kernel bounds its memory.
Protocol: the child limits itself (RLIMIT_AS, RLIMIT_CPU), imports the renderers, writes
``ready\\n``; then reads one JSON object ``{"text": str, "content_type": str | null}`` from stdin
to EOF and writes the sanitised HTML (UTF-8) to stdout. Exit status 0: rendered; ``OUT_OF_MEMORY``:
the render needed more memory than allowed; anything else: the renderer itself failed.
"""

from __future__ import annotations

import json
import os
import resource
import sys

OUT_OF_MEMORY = 3
READY = b"ready\n"


def main(argv: list[str]) -> int:
    _limit(resource.RLIMIT_AS, int(argv[1]))
    # A backstop only (the parent kills at its deadline): a child whose parent died still stops.
    _limit(resource.RLIMIT_CPU, int(argv[2]))
    from proxy.ui.readme import render_description

    # docutils and readme_renderer import and set up most of themselves on a first render: do
    # that before "ready", so the budget measures the description's own work.
    render_description("Warm-up\n=======\n\n*x* ``y``\n\n.. code:: python\n\n   z = 1\n", "text/x-rst")
    render_description("# Warm-up\n\n*x* `y`\n\n```python\nz = 1\n```\n", "text/markdown")
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    try:
        request = json.loads(sys.stdin.buffer.read())
        html = render_description(request["text"], request["content_type"])
        sys.stdout.buffer.write(str(html).encode("utf-8"))
    except MemoryError:
        return OUT_OF_MEMORY
    return 0


def _limit(kind: int, value: int) -> None:
    """Lower a resource limit to ``value`` (never above the hard limit already set, e.g. by
    systemd's LimitAS=). Where the kernel or a seccomp filter refuses (glibc calls prlimit64,
    which systemd's @system-service allows, but a bare setrlimit is in @resources, which our
    unit denies), say so on stderr, which the server logs, and go on: the time budget holds."""
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(kind, (value, value))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"resource limit {kind} not applied: {exc}\n")


if __name__ == "__main__":
    status = main(sys.argv)
    sys.stdout.flush()
    os._exit(status)  # no interpreter teardown (tens of ms with docutils loaded): the parent waits for it
