"""builder.roles is the one table of roles, domains and elements: the analysis kernels use its functions."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis import charge_flow, cross_engine, traps
from aiida_qdtraps.builder import roles
from aiida_qdtraps.builder.crystal import MATERIALS
from aiida_qdtraps.builder.passivation import _ACETATE_SYMBOLS, LIGANDS
from aiida_qdtraps.builder.qd import build_qd


def test_the_element_tables_are_disjoint_and_cover_the_builder():
    assert not roles.CATION_ELEMENTS & roles.ANION_ELEMENTS
    assert not roles.LIGAND_ELEMENTS & (roles.CATION_ELEMENTS | roles.ANION_ELEMENTS)
    for _, cation, anion, _ in MATERIALS.values():
        assert cation in roles.CATION_ELEMENTS and anion in roles.ANION_ELEMENTS
    placed = {binding for _, binding, _ in LIGANDS.values()} | set(_ACETATE_SYMBOLS)
    assert placed <= roles.LIGAND_ELEMENTS
    assert {'C', 'O', 'N'} <= roles.LIGAND_ELEMENTS


def test_analysis_uses_the_builders_tables():
    assert traps.infer_roles is roles.infer_roles and traps.LIGAND_ELEMENTS is roles.LIGAND_ELEMENTS
    assert charge_flow.infer_domains is roles.infer_domains and charge_flow.DOMAINS is roles.DOMAINS
    assert cross_engine.CATION_ELEMENTS is roles.CATION_ELEMENTS


def test_roles_and_domains_from_symbols_equal_those_from_atoms():
    atoms = build_qd('CdSe', 10.0, ligand='OAc', center='cation', min_core_bonds=1)
    symbols = atoms.get_chemical_symbols()
    assert np.array_equal(roles.infer_roles(symbols), roles.infer_roles(atoms))
    assert np.array_equal(roles.infer_roles(atoms), atoms.arrays['qd_role'])
    untagged = atoms.copy()
    del untagged.arrays['qd_role']
    assert np.array_equal(roles.infer_domains(symbols), roles.infer_domains(untagged))
    assert roles.infer_roles(['S', 'Cd', 'Se'], anions={'Se'}).tolist() == ['ligand', 'cation', 'anion']  # thiolate
    with pytest.raises(TypeError, match='needs the structure'):
        roles.infer_domains(symbols, core_elements={'Cd', 'Se'})
