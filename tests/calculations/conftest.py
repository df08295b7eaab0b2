"""Fixtures of the DeePMD calculation tests."""

from __future__ import annotations

import sys

import pytest

from aiida_qdtraps.profile import DP_THREADS


@pytest.fixture
def dp_python(aiida_code_installed):
    """This interpreter (which has deepmd-kit) as the ``dp-python`` code, with the project's thread settings."""
    return aiida_code_installed(label='dp-python', default_calc_job_plugin='qdtraps.deepmd.train',
                                filepath_executable=sys.executable, prepend_text=DP_THREADS)
