"""The report of the recorded In4PF9 labelling in headless Chromium, offline from a ``file://`` URL: no console
errors, a 3D view that is not blank, the trap rows present. The screenshot is kept in tests/artifacts/ (not in git).

Chromium is a Debian package that ``make setup`` installs; without it the test fails (or skips where
``QDTRAPS_NO_ENGINES=1`` says the machine has no engines on purpose).
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from aiida_qdtraps.html_report import write_report
from aiida_qdtraps.html_report.browser import find_chromium, open_page
from aiida_qdtraps.html_report.page import report_page

ARTIFACTS = pathlib.Path(__file__).parent.parent / 'artifacts'


@pytest.fixture
def chromium():
    executable = find_chromium()
    if executable is None:
        if os.environ.get('QDTRAPS_NO_ENGINES') == '1':
            pytest.skip('Chromium is not installed (QDTRAPS_NO_ENGINES=1)')
        pytest.fail('Chromium is not installed; run `make setup` (Debian package chromium)')
    return executable


def viewer_pixels(dom: str, screenshot: pathlib.Path) -> np.ndarray:
    """Grey levels of the 3D view's rectangle (``data-rect`` the page's script wrote) in the screenshot."""
    left, top, width, height = map(int, re.search(r'data-rect="([\d,]+)"', dom).group(1).split(','))
    image = Image.open(screenshot).convert('L')
    return np.asarray(image.crop((left + 2, top + 2, left + width - 2, top + height - 2)), dtype=float)


def test_report_renders_offline(chromium, labelled_qd, tmp_path):
    path = write_report(labelled_qd['workchain'], tmp_path / 'report.html')
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / 'report_in4pf9.png'
    screenshot.unlink(missing_ok=True)
    result = open_page(path, screenshot, executable=chromium)
    print(f'report: {path} ({path.stat().st_size:,} B); screenshot: {screenshot} (offline: {result.offline})')
    assert result.errors == [] and not [line for line in result.console if 'Uncaught' in line], result
    assert 'data-status="rendered"' in result.dom and 'data-atoms="14"' in result.dom
    n_traps = len(labelled_qd['label_traps'].outputs.traps)
    assert result.dom.count('class="trap-row"') == n_traps > 0
    pixels = viewer_pixels(result.dom, result.screenshot)
    assert pixels.var() > 200, pixels.var()  # a blank (white) canvas has variance 0
    assert (pixels < 200).mean() > 0.02  # atoms drawn: more than 2 % of the view is not near-white


def test_errors_and_network_requests_are_caught(chromium, tmp_path):
    """The checks can fail: a page with a script error, a console.error, a remote image and a blank 3D view."""
    page = report_page({'title': 'broken', 'formula': 'X', 'structure': {'symbols': [], 'positions': []},
                        'traps': []})
    page = page.replace('</body>', '<img src="https://example.org/x.png"><script>console.error("boom");'
                                   'undefinedFunction();</script></body>')
    path = tmp_path / 'broken.html'
    path.write_text(page)
    result = open_page(path, tmp_path / 'broken.png', executable=chromium)
    joined = '\n'.join(result.errors)
    assert 'console.error: boom' in joined
    assert 'undefinedFunction' in joined
    assert 'blocked: https://example.org/x.png' in joined
    assert any('Uncaught ReferenceError' in line for line in result.console)  # Chromium's own log agrees
    assert 'data-atoms="0"' in result.dom
    assert viewer_pixels(result.dom, result.screenshot).var() < 1
