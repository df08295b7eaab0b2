"""Shared fixtures: a temporary AiiDA profile (aiida.tools.pytest_fixtures) and the real CP2K code."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

pytest_plugins = ['aiida.tools.pytest_fixtures']

DATA = pathlib.Path(__file__).parent / 'data'

#: The tiny QD of the real end-to-end runs: In4PF9 (14 atoms), the same recipe as the demo.
TINY_QD_RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion',
                  'vacuum': 2.5, 'min_core_bonds': 1}

os.environ.setdefault('OMP_NUM_THREADS', '1')


@pytest.fixture
def data_dir() -> pathlib.Path:
    return DATA


@pytest.fixture
def cp2k_code(aiida_code_installed):
    """The Debian ``cp2k.psmp`` binary as an InstalledCode (serial, one OpenMP thread)."""
    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k')
    if executable is None:
        pytest.fail('cp2k is not installed; run `make setup`')
    return aiida_code_installed(label='cp2k', default_calc_job_plugin='cp2k', filepath_executable=executable,
                                prepend_text='export OMP_NUM_THREADS=1')


@pytest.fixture
def tiny_qd():
    """The 14-atom In4PF9 cluster as a stored StructureData built through the ``build_qd_structure`` calcfunction."""
    from aiida import orm

    from aiida_qdtraps.workchains.functions import build_qd_structure

    return build_qd_structure(orm.Dict(TINY_QD_RECIPE))
