"""The ``qdtraps`` command line: ``setup``, ``status`` and ``demo``."""

from __future__ import annotations

import re
import shutil
import sys
import types

import pytest
from click.testing import CliRunner

from aiida_qdtraps import profile as project_profile
from aiida_qdtraps.cli import cli


@pytest.fixture(scope='module')
def set_up(tmp_path_factory, run_qdtraps):
    """``qdtraps setup`` run twice on a temporary AIIDA_PATH: (aiida_path, first result, second result)."""
    aiida_path = tmp_path_factory.mktemp('cli') / '.aiida'
    first = run_qdtraps(['setup'], aiida_path)
    second = run_qdtraps(['setup'], aiida_path)
    return aiida_path, first, second


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ['--help'])
    assert result.exit_code == 0, result.output
    for command in ('setup', 'status', 'demo'):
        assert re.search(rf'^\s+{command}\b', result.output, re.MULTILINE), result.output


def test_setup_creates_then_skips(set_up):
    aiida_path, first, second = set_up
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    for name in ('profile qdtraps', 'computer localhost', *(f'code {label}' for label in project_profile.CODES)):
        assert re.search(rf'^{re.escape(name)}\s+created\b', first.stdout, re.MULTILINE), first.stdout
        assert re.search(rf'^{re.escape(name)}\s+exists\b', second.stdout, re.MULTILINE), second.stdout
    assert 'created' not in second.stdout
    assert str(aiida_path) in first.stdout
    assert (aiida_path / 'config.json').is_file()


def test_status_names_codes_and_versions(set_up, run_qdtraps):
    aiida_path, _, _ = set_up
    result = run_qdtraps(['status'], aiida_path)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert f'AIIDA_PATH:  {aiida_path}' in output
    assert re.search(r'^profile:\s+qdtraps$', output, re.MULTILINE), output
    assert 'core.sqlite_dos' in output
    assert 'core.zeromq' in output
    lines = {label: line for label in project_profile.CODES for line in output.splitlines() if label in line}
    assert set(lines) == set(project_profile.CODES), output
    for line in lines.values():
        assert ' found ' in line, line
    if shutil.which('cp2k.psmp'):
        assert re.search(r'version \d{4}\.\d+', lines['cp2k@localhost']), lines['cp2k@localhost']
    if shutil.which('pw.x'):
        assert re.search(r'version \d+\.\d+', lines['pw@localhost']), lines['pw@localhost']
    assert re.search(r'version \d+\.\d+', lines['baderkit@localhost']), lines['baderkit@localhost']


def test_status_without_profile_says_so(tmp_path, run_qdtraps):
    result = run_qdtraps(['status'], tmp_path / '.aiida')
    assert result.returncode == 1
    assert 'MISSING' in result.stdout
    assert 'qdtraps setup' in result.stdout


@pytest.fixture
def fake_demo(monkeypatch):
    """Replace the aiida-touching parts of ``qdtraps demo`` so it can run in this process; record ``run_demo`` calls."""
    calls = []
    module = types.ModuleType('aiida_qdtraps.demo')
    module.run_demo = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, 'aiida_qdtraps.demo', module)
    monkeypatch.setattr(project_profile, 'activate', lambda: None)
    monkeypatch.setattr(project_profile, 'profile_exists', lambda: True)
    monkeypatch.setattr(project_profile, 'load_project_profile', lambda: None)
    return calls


def test_demo_loads_the_profile_and_runs_the_demo(fake_demo):
    result = CliRunner().invoke(cli, ['demo'])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ['demo', '--protocol', 'moderate'])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ['demo', '--pipeline'])
    assert result.exit_code == 0, result.output
    assert fake_demo == [{'protocol': 'fast', 'pipeline': False}, {'protocol': 'moderate', 'pipeline': False},
                         {'protocol': 'fast', 'pipeline': True}]


def test_demo_without_profile_asks_for_setup(fake_demo, monkeypatch):
    monkeypatch.setattr(project_profile, 'profile_exists', lambda: False)
    result = CliRunner().invoke(cli, ['demo'])
    assert result.exit_code == 1
    assert 'qdtraps setup' in result.output
    assert fake_demo == []
