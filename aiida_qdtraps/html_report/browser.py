"""Open a report in headless Chromium, offline: its DOM after the scripts ran, the errors they recorded, a screenshot.

Used by the browser test of the reports and to make the README screenshot. WebGL runs on SwiftShader (CPU), so no
GPU is needed. The page is opened from a ``file://`` URL in a network namespace of its own (``unshare -n``) where
the system allows one, else with every host name unresolvable and a dead proxy; the page's Content-Security-Policy
refuses network requests in any case.
"""

from __future__ import annotations

import functools
import pathlib
import re
import shutil
import subprocess
import tempfile
from typing import NamedTuple

#: Debian's package is ``chromium``; other systems name the binary differently.
CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
BASE_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
              '--hide-scrollbars', '--no-first-run', '--disable-extensions', '--disable-background-networking',
              '--host-resolver-rules=MAP * ~NOTFOUND', '--proxy-server=127.0.0.1:9', '--enable-logging=stderr',
              '--v=0')


def find_chromium() -> str | None:
    """Path of a Chromium executable, or None."""
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def chromium_version(executable: str | None = None) -> str | None:
    """``156.0.8078.114`` from ``chromium --version``, or None."""
    executable = executable or find_chromium()
    if executable is None:
        return None
    try:
        output = subprocess.run([executable, '--version'], capture_output=True, text=True, timeout=30,
                                check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'(\d+\.\d+\.\d+\.\d+)', output)
    return match.group(1) if match else None


@functools.cache
def _network_namespace() -> bool:
    """Whether ``unshare -n`` works here (root, or user namespaces allowed)."""
    unshare = shutil.which('unshare')
    if unshare is None:
        return False
    try:
        return subprocess.run([unshare, '-n', 'true'], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class BrowserResult(NamedTuple):
    dom: str
    """The serialized DOM after the scripts ran."""
    errors: list[str]
    """What the page's error recorder (``#qdtraps-errors``) holds: script errors, console.error, blocked requests."""
    console: list[str]
    """Chromium's log lines of console messages (``CONSOLE``) and uncaught errors, from stderr."""
    screenshot: pathlib.Path | None
    offline: str
    """How the network was cut: ``network namespace`` or ``unresolvable hosts``."""


def open_page(path: str | pathlib.Path, screenshot: str | pathlib.Path | None = None, width: int = 1200,
              height: int = 1800, budget_ms: int = 5000, executable: str | None = None,
              timeout: float = 90) -> BrowserResult:
    """Load ``path`` in headless Chromium (``file://``, offline) and return its DOM, recorded errors and console.

    :param budget_ms: virtual time the page gets to run its scripts before the DOM and screenshot are taken.
    :raises FileNotFoundError: without Chromium.
    """
    executable = executable or find_chromium()
    if executable is None:
        raise FileNotFoundError('Chromium is not installed (Debian package `chromium`; `make setup` installs it)')
    url = pathlib.Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix='qdtraps-chromium-') as profile:
        args = [executable, *BASE_FLAGS, f'--user-data-dir={profile}', f'--window-size={width},{height}',
                f'--virtual-time-budget={budget_ms}', '--dump-dom']
        if screenshot is not None:
            args.append(f'--screenshot={pathlib.Path(screenshot).resolve()}')
        offline = 'unresolvable hosts'
        if _network_namespace():
            args, offline = ['unshare', '-n', *args], 'network namespace'
        result = subprocess.run([*args, url], capture_output=True, text=True, timeout=timeout, check=False)
    dom = result.stdout
    match = re.search(r'<pre id="qdtraps-errors"[^>]*>(.*?)</pre>', dom, re.S)
    errors = [line for line in (match.group(1).splitlines() if match else []) if line.strip()]
    console = [line for line in result.stderr.splitlines() if 'CONSOLE' in line or 'Uncaught' in line]
    if not dom.strip():
        raise RuntimeError(f'Chromium returned no DOM (exit status {result.returncode}): {result.stderr[-2000:]}')
    shot = pathlib.Path(screenshot) if screenshot is not None and pathlib.Path(screenshot).exists() else None
    return BrowserResult(dom, errors, console, shot, offline)
