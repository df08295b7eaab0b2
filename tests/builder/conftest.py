"""Shared checks of built QDs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from aiida_qdtraps.builder import passivation
from aiida_qdtraps.builder.crystal import nearest_neighbour_distance
from aiida_qdtraps.builder.roles import ligand_units


def _check_qd(atoms, material, charge=0, min_bonds=2):
    """Assert the invariants every built QD must satisfy (returns the roles)."""
    roles = atoms.arrays['qd_role']
    symbols = np.array(atoms.get_chemical_symbols())
    assert passivation.net_charge(atoms) == charge
    # no inorganic atom with fewer than 2 inorganic bonds
    inorganic = np.where(roles != 'ligand')[0]
    bond = nearest_neighbour_distance(material)
    pairs = cKDTree(atoms.positions[inorganic]).query_pairs(1.1 * bond, output_type='ndarray')
    assert np.bincount(pairs.ravel(), minlength=len(inorganic)).min() >= min_bonds
    # no two atoms closer than a physical minimum: 0.9 Å at all, 1.8 Å unless bonded within one ligand molecule
    molecule = np.arange(len(atoms))
    for label, unit in enumerate(ligand_units(atoms)):
        molecule[unit] = len(atoms) + label
    close = cKDTree(atoms.positions).query_pairs(1.8, output_type='ndarray')
    heavy = (symbols[close[:, 0]] != 'H') & (symbols[close[:, 1]] != 'H')
    assert np.all(molecule[close[heavy, 0]] == molecule[close[heavy, 1]]), atoms[close.ravel()].get_chemical_formula()
    protons = np.where((symbols == 'H') & (molecule >= len(atoms)) & ~np.isin(molecule, molecule[symbols == 'C']))[0]
    assert np.all(np.bincount(close.ravel(), minlength=len(atoms))[protons] == 1)  # an H ligand binds one anion only
    if len(close):
        assert np.linalg.norm(atoms.positions[close[:, 0]] - atoms.positions[close[:, 1]], axis=1).min() > 0.9
    # every ligand is bound to the right species: halides/acetate O to a cation, H to an anion
    tree = cKDTree(atoms.positions[inorganic])
    for element, role in (('F', 'cation'), ('Cl', 'cation'), ('Br', 'cation'), ('I', 'cation'), ('H', 'anion')):
        ligands = np.where((symbols == element) & (roles == 'ligand'))[0]
        if len(ligands) and element != 'H' or (element == 'H' and 'C' not in symbols and len(ligands)):
            d, j = tree.query(atoms.positions[ligands])
            assert set(roles[inorganic[j]]) == {role}, element
            assert d.max() < 1.3 * bond
    return roles


@pytest.fixture
def check_qd():
    """``check_qd(atoms, material, charge=0)``: assert the invariants every built QD must satisfy."""
    return _check_qd

