"""Checks of built QDs that tests call as plain functions (``from qd_checks import ...``)."""

from __future__ import annotations

import numpy as np
from ase.data import covalent_radii
from scipy.spatial import cKDTree

from aiida_qdtraps.builder import qd
from aiida_qdtraps.builder.crystal import nearest_neighbour_distance


def check_size_and_spacing(atoms, material: str, diameter: float):
    """Assert that the core diameter is within one bond length of ``diameter`` and that no two atoms are closer than
    0.7 × the sum of their covalent radii; returns the core."""
    core = atoms[atoms.arrays['qd_domain'] == 'core']
    size = qd.core_diameter(core)
    assert abs(size - diameter) <= nearest_neighbour_distance(material) + 0.01, (size, diameter)
    radii = covalent_radii[atoms.numbers]
    pairs = cKDTree(atoms.positions).query_pairs(2 * radii.max(), output_type='ndarray')
    d = np.linalg.norm(atoms.positions[pairs[:, 0]] - atoms.positions[pairs[:, 1]], axis=1)
    assert np.all(d >= 0.7 * (radii[pairs[:, 0]] + radii[pairs[:, 1]]))
    return core
