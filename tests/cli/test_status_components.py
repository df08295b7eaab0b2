"""``qdtraps status``: every component set-up installs, with its version and whether its check passed."""

from __future__ import annotations

import re

import pytest

from aiida_qdtraps.cli import cmd_profile

NAMES = ('CP2K', 'Quantum ESPRESSO (pw.x)', 'baderkit', 'DeePMD-kit', 'PySCF', 'UPF family qdtraps-gth-pbe-upf',
         'Chromium (report browser test)', 'docs tooling (Sphinx)')
STATES = ('works', 'broken', 'not installed', 'missing')


def test_status_lists_every_component(tmp_path, run_qdtraps):
    aiida_path = tmp_path / '.aiida'
    assert run_qdtraps(['setup'], aiida_path).returncode == 0
    result = run_qdtraps(['status'], aiida_path)
    lines = result.stdout.split('components:\n')[1].splitlines()
    assert [line[2:33].rstrip() for line in lines] == list(NAMES), result.stdout
    required_ok = True
    for line in lines:
        version, state = line[33:53].strip(), line[54:67].strip()
        assert state in STATES, line
        if state == 'works':
            assert re.match(r'(aiida-pseudo )?\d+\.\d+', version), line
        required_ok = required_ok and (state == 'works' or 'Sphinx' in line)
    family = next(line for line in lines if 'UPF family' in line)
    assert 'works' in family and re.search(r'\d+ UPF files \(.*In.*P', family)  # `qdtraps setup` installed it
    assert (result.returncode == 0) == required_ok, result.stdout


def test_pyscf_check_runs_a_real_calculation():
    component = cmd_profile._python_component('PySCF', 'pyscf', cmd_profile.PYSCF_CHECK)
    assert component.state == 'works' and component.detail == 'H2/STO-3G RHF -1.11676 Ha'


def test_broken_and_absent_components(monkeypatch):
    monkeypatch.setattr(cmd_profile, '_package_version', lambda name: None if name == 'sphinx' else '1.0')
    docs = cmd_profile._docs_component()
    assert docs.state == 'not installed' and not docs.required
    broken = cmd_profile._python_component('X', 'x', 'import sys; print("import failed"); sys.exit(1)')
    assert broken.state == 'broken' and broken.detail == 'import failed' and broken.required
    assert cmd_profile._executable_component('CP2K', None, None).state == 'not installed'
    assert cmd_profile._executable_component('CP2K', '/bin/true', None).state == 'broken'


def test_missing_chromium_is_named(monkeypatch):
    from aiida_qdtraps.html_report import browser

    monkeypatch.setattr(browser, 'find_chromium', lambda: None)
    component = cmd_profile._chromium_component()
    assert component.state == 'not installed' and 'make setup' in component.detail


@pytest.mark.parametrize('page_ok', [True, False])
def test_chromium_that_cannot_load_a_page_is_broken(monkeypatch, tmp_path, page_ok):
    """A stand-in `chromium` script: a version, and a page load that works or not."""
    fake = tmp_path / 'chromium'
    dom = '<p id="ok">ok</p>' if page_ok else ''
    fake.write_text(f'#!/bin/sh\ncase "$1" in --version) echo "Chromium 1.2.3.4";; *) echo \'{dom}\';; esac\n')
    fake.chmod(0o755)
    from aiida_qdtraps.html_report import browser

    monkeypatch.setattr(browser, 'find_chromium', lambda: str(fake))
    component = cmd_profile._chromium_component()
    assert component.version == '1.2.3.4' and component.state == ('works' if page_ok else 'broken')
