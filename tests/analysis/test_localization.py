"""Pipek–Mezey localization through pyscf.lo on our arrays: same span, unitary, objective not decreased."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis.localization import (
    localize_pipek_mezey,
    pipek_mezey_objective,
)


def test_recovers_atomic_orbitals_from_a_random_rotation():
    rng = np.random.default_rng(0)
    ao_atom = np.repeat(np.arange(6), 2)
    local = np.zeros((12, 4))
    local[[0, 2, 4, 6], range(4)] = 1
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    mixed = local @ q
    u = localize_pipek_mezey(mixed, ao_atom, 6)
    np.testing.assert_allclose(u.T @ u, np.eye(4), atol=1e-10)
    localized = mixed @ u
    assert pipek_mezey_objective(localized, ao_atom) == pytest.approx(4.0, abs=1e-6)
    np.testing.assert_allclose(np.sort(np.abs(localized).max(0)), 1, atol=1e-5)


def test_same_span_and_objective_not_decreasing():
    rng = np.random.default_rng(3)
    ao_atom = np.repeat(np.arange(10), 3)
    x, _ = np.linalg.qr(rng.normal(size=(30, 5)))
    u = localize_pipek_mezey(x, ao_atom, 10)
    localized = x @ u
    np.testing.assert_allclose(localized @ localized.T, x @ x.T, atol=1e-10)  # same projector = same space
    assert pipek_mezey_objective(localized, ao_atom) >= pipek_mezey_objective(x, ao_atom) - 1e-12


def test_rejects_non_orthonormal_input():
    with pytest.raises(ValueError, match='not orthonormal'):
        localize_pipek_mezey(np.ones((4, 2)), np.arange(4), 4)
