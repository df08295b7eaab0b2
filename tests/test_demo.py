"""The trap demo's inputs without engines: the packaged library QD, its Cl⁻ vacancy and the atoms that lost the Cl."""

from __future__ import annotations

from importlib.resources import files

import pytest
from ase.io import read

from aiida_qdtraps.builder import foreign, vacancies
from aiida_qdtraps.demo import DEMO_QD, removed_atom_neighbours


def test_the_demo_qd_and_its_ligand_vacancy():
    atoms = read(str(files('aiida_qdtraps') / 'demo_data' / DEMO_QD))
    intact, found = foreign.label_qd(atoms)
    assert intact.get_chemical_formula() == 'Cd16Cl6Se13' and found.charge == 0
    vacancy = vacancies.make_vacancy(intact, kind='ligand', site=0)
    assert vacancy.info['qd_vacancy']['removed'] == 'Cl' and vacancy.info['qd_vacancy']['charge'] == 1
    removed, bonded = removed_atom_neighbours(intact, vacancy)
    assert intact[removed].symbol == 'Cl'
    assert len(bonded) == 2 and {vacancy[j].symbol for j in bonded} == {'Cd'}  # a bridging Cl between two Cd


def test_removed_atom_neighbours_needs_exactly_one_removed_atom():
    atoms = read(str(files('aiida_qdtraps') / 'demo_data' / DEMO_QD))
    with pytest.raises(ValueError, match='expected one removed atom, found 0'):
        removed_atom_neighbours(atoms, atoms)
    with pytest.raises(ValueError, match='expected one removed atom, found 2'):
        removed_atom_neighbours(atoms, atoms[2:])
