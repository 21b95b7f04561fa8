"""Static and headless-Chromium checks that every image of a report page loads.

Chromium must never reach the network: only a file:// URL is opened, proxies, background
networking, component updates and DNS are switched off by flags, and where the machine allows
it the browser runs in an empty network namespace (``unshare --net``), which has no interface
but a down loopback. The socket guard of tests/conftest.py only covers Python processes.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INSTALL_HINT = (
    "headless Chromium is needed to render the report page: run `make check-chromium` "
    "(as root or with sudo it installs the Debian package), or `sudo apt-get install -y chromium`; "
    "set CORPUSFORGE_CHROMIUM to use another binary"
)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--no-first-run",
    "--no-default-browser-check",
    # Every host name resolves to nothing: a page that named a remote image could not fetch it.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


class _Images(HTMLParser):
    """``<img>`` attributes and the ``<body>`` attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "body":
            self.body = dict(attrs)


def parse_images(page: str) -> tuple[list[dict[str, str | None]], dict[str, str | None]]:
    """(attributes of every ``<img>``, attributes of ``<body>``) of an HTML page."""
    parser = _Images()
    parser.feed(page)
    return parser.images, parser.body


def broken_images_on_disk(index: Path) -> list[str]:
    """``src`` of every ``<img>`` of ``index`` that is not a PNG that decodes (file or data URI)."""
    images, _ = parse_images(index.read_text(encoding="utf-8"))
    broken = []
    for attrs in images:
        src = attrs.get("src") or ""
        if src.startswith("data:image/png;base64,"):
            data = base64.b64decode(src.split(",", 1)[1])
        else:
            path = (index.parent / src).resolve()
            # A figure outside the report folder would not travel with it.
            if "://" in src or index.parent.resolve() not in path.parents or not path.is_file():
                broken.append(src)
                continue
            data = path.read_bytes()
        if not is_png(data):
            broken.append(src)
    return broken


def is_png(data: bytes) -> bool:
    """True when ``data`` is a complete PNG that PIL decodes."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.format == "PNG" and image.width > 0 and image.height > 0
    except (OSError, ValueError, SyntaxError):
        return False


@functools.cache
def chromium() -> str:
    """The Chromium binary; the test fails (never skips) with how to install it when it is missing."""
    binary = os.environ.get("CORPUSFORGE_CHROMIUM") or shutil.which("chromium")
    if not binary:
        pytest.fail(INSTALL_HINT)
    return binary


@functools.cache
def _isolation() -> tuple[str, ...]:
    """``unshare --net`` (or, unprivileged, with a user namespace) when this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "--net"), (unshare, "--map-root-user", "--net")):
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return prefix
    return ()


@dataclass(frozen=True)
class BrowserResult:
    checked: int  # images the page's script looked at
    broken: list[str]  # src of the images that did not load
    isolated: bool  # ran in an empty network namespace


def load_in_chromium(index: Path, timeout: float = 120) -> BrowserResult:
    """Open ``index`` in headless Chromium and read back which images the page marked as broken."""
    url = index.resolve().as_uri()
    assert url.startswith("file://"), url
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            *_isolation(),
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            dom, errors = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this call started: chromium and its children
            process.communicate()
            pytest.fail(f"chromium did not finish rendering {url} in {timeout} s")
    if process.returncode != 0:
        pytest.fail(f"chromium failed on {url} (exit {process.returncode}):\n{errors[-3000:]}")
    images, body = parse_images(dom)
    if body.get("data-images-checked") is None:
        pytest.fail(f"the page's image check did not run in chromium; stderr:\n{errors[-3000:]}")
    states = [(attrs.get("src") or "", attrs.get("data-loaded")) for attrs in images]
    assert all(state in ("yes", "no") for _, state in states), states
    broken = [src for src, state in states if state == "no"]
    assert int(body["data-images-broken"] or -1) == len(broken)
    return BrowserResult(int(body["data-images-checked"] or 0), broken, bool(_isolation()))
