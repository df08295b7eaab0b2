"""Fixtures for the set-up tests: run the set-up code in subprocesses on a temporary AIIDA_PATH.

The set-up code points aiida at a configuration folder and loads a profile, which is global state. Running it in
subprocesses keeps the temporary test profile of this pytest process (``aiida.tools.pytest_fixtures``) untouched.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest


def _environment(aiida_path: pathlib.Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != 'AIIDA_PATH'}
    env['QDTRAPS_AIIDA_PATH'] = str(aiida_path)
    env['OMP_NUM_THREADS'] = '1'
    return env


@pytest.fixture(scope='session')
def run_qdtraps():
    """Return ``run(args, aiida_path) -> CompletedProcess`` that runs the ``qdtraps`` CLI in a subprocess."""

    def run(args: list[str], aiida_path: pathlib.Path, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, '-m', 'aiida_qdtraps.cli', *args],
            env=_environment(aiida_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope='session')
def run_python():
    """Return ``run(source, aiida_path) -> stdout`` that runs Python source in a subprocess and asserts it succeeds."""

    def run(source: str, aiida_path: pathlib.Path, env: dict[str, str] | None = None, argv: list[str] = (),
            timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, '-c', textwrap.dedent(source), *argv],
            env={**_environment(aiida_path), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}'
        return result.stdout

    return run
