"""Fixtures of the analysis tests: the synthetic InP cluster (helpers in synthetic_qd.py)."""

from __future__ import annotations

import pytest
from synthetic_qd import zincblende_cluster


@pytest.fixture(scope='module')
def cluster():
    return zincblende_cluster()
