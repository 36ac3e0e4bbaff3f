"""Descriptions, the pure part and the renderer process: keys, the plain fallback, readmechild's protocol."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from markupsafe import Markup

from proxy.ui import readme
from proxy.ui.readmechild import OUT_OF_MEMORY, READY

RENDERER = "readme_renderer 1, docutils 1"


def test_key_names_the_text_its_type_and_the_renderer() -> None:
    """One key per rendering: any change to what shapes the HTML is another key."""
    base = readme.description_key("Some *text*", "text/markdown", RENDERER)
    assert base == readme.description_key("Some *text*", "text/markdown", RENDERER)
    others = {
        readme.description_key("Some *text*.", "text/markdown", RENDERER),
        readme.description_key("Some *text*", "text/x-rst", RENDERER),
        readme.description_key("Some *text*", None, RENDERER),
        readme.description_key("Some *text*", "text/markdown", "readme_renderer 2, docutils 1"),
    }
    assert base not in others and len(others) == 4
    # the parts are delimited: moving bytes from one to the other is another key
    assert readme.description_key("b\0c", "a", RENDERER) != readme.description_key("c", "a\0b", RENDERER)
    assert len(base) == 64 and int(base, 16) >= 0


def test_renderer_identity_names_the_packages_that_shape_the_html() -> None:
    identity = readme.renderer_identity()
    for package in ("readme_renderer", "docutils", "nh3"):
        assert f"{package} " in identity and f"{package} -" not in identity


@pytest.mark.parametrize(("shown", "expected"), [
    (readme.Shown(Markup("<p>ok</p>")), "<p>ok</p>"),
    (readme.Shown(None, readme.TOO_LARGE), '<pre class="plain-description">a &lt;b&gt; &amp; c</pre>'),
    (readme.Shown(None, readme.TOO_SLOW), '<pre class="plain-description">a &lt;b&gt; &amp; c</pre>'),
])
def test_shown_markup_is_the_rendering_or_the_text_escaped(shown: readme.Shown, expected: str) -> None:
    assert shown.markup("a <b> & c") == expected


def child(text: str, content_type: str | None, memory: int = 1024**3,
          hard_limit: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run readmechild as the server does; ``hard_limit``: an RLIMIT_AS set before it starts."""
    command = [sys.executable, "-m", "proxy.ui.readmechild", str(memory), "60"]
    if hard_limit is not None:  # set in a Python that then execs the child: no preexec_fn
        command = [sys.executable, "-c", "import os, resource, sys; "
                   f"resource.setrlimit(resource.RLIMIT_AS, ({hard_limit}, {hard_limit})); "
                   "os.execv(sys.executable, sys.argv[1:])", *command]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    ready = process.stdout.readline()
    out, err = process.communicate(json.dumps({"text": text, "content_type": content_type}).encode(), timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, ready + out, err)


@pytest.mark.parametrize(("text", "content_type", "expected", "absent"), [
    ("Title\n=====\n\nSome **strong** <script>x()</script>", "text/x-rst", "<strong>strong</strong>", "<script"),
    ("*hi* <script>x()</script> <img src=x onerror=alert(1)>", "text/markdown", "<em>hi</em>", "onerror"),
    ("[a](javascript:alert(1))", "text/markdown; variant=CommonMark", "<a", "javascript:"),
    ("bad\n\n.. raw:: html\n\n   <script>x()</script>", "text/x-rst", "&lt;script&gt;", "<script"),
])
def test_renderer_process_speaks_its_protocol_and_sanitises(text: str, content_type: str, expected: str,
                                                            absent: str) -> None:
    """readmechild: "ready" once set up, then the HTML PyPI would show (nh3-sanitised), exit 0."""
    result = child(text, content_type)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(READY)
    html = result.stdout[len(READY):].decode()
    assert html == readme.render_description(text, content_type)
    assert expected in html and absent not in html


def test_renderer_process_reports_running_out_of_memory() -> None:
    """Its address space is limited by the kernel (RLIMIT_AS); a text needing more is exit 3."""
    result = child("x" * 96 * 1024**2, "text/plain", memory=160 * 1024**2)
    assert result.stdout == READY and result.returncode == OUT_OF_MEMORY, result.stderr


def test_renderer_process_keeps_a_lower_hard_limit() -> None:
    """A hard limit set around the server (systemd's LimitAS=) is kept, not an error: the child
    asks for 1 GiB, gets the 512 MiB it may have, and renders."""
    result = child("*hi*", "text/markdown", memory=1024**3, hard_limit=512 * 1024**2)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == READY + readme.render_description("*hi*", "text/markdown").encode()
