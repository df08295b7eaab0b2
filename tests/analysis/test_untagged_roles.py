"""Roles and domains of an untagged QD: the trap labels and the charge flow read the same element table.

A structure without the builder's ``qd_role``/``qd_domain`` tags (read from a file, or from an archive of another
code) falls back to roles from the elements. On an acetate-capped QD the carboxylate's C, O and H are ligand atoms
for the trap kernel *and* for the charge-flow domains.
"""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis import charge_flow as cf
from aiida_qdtraps.analysis import traps
from aiida_qdtraps.builder.qd import build_qd


@pytest.fixture(scope='module')
def acetate_qd():
    """A small acetate-capped CdSe QD from the builder; its own tags are the reference."""
    atoms = build_qd('CdSe', 10.0, ligand='OAc', center='cation', min_core_bonds=1)
    assert {'C', 'O', 'H'} <= set(atoms.get_chemical_symbols())
    return atoms


def test_trap_roles_of_an_untagged_acetate_qd_are_the_builders(acetate_qd):
    symbols = acetate_qd.get_chemical_symbols()
    assert list(traps.infer_roles(symbols)) == list(acetate_qd.arrays['qd_role'])


def test_charge_flow_domains_of_an_untagged_acetate_qd_are_the_builders(acetate_qd):
    symbols = acetate_qd.get_chemical_symbols()
    domains = np.array(cf.infer_domains(symbols))
    assert list(domains) == list(acetate_qd.arrays['qd_domain'])
    carboxylate = np.isin(symbols, ['C', 'O'])
    assert set(domains[carboxylate]) == {'ligand'}


def test_trap_ligands_are_the_charge_flow_ligands(acetate_qd):
    symbols = acetate_qd.get_chemical_symbols()
    ligand_by_role = np.array(traps.infer_roles(symbols)) == 'ligand'
    ligand_by_domain = np.array(cf.infer_domains(symbols)) == 'ligand'
    assert ligand_by_role.any() and np.array_equal(ligand_by_role, ligand_by_domain)
