"""``import_structure``: foreign QD files (extended xyz with a cell, CIF, plain xyz): roles, charge, multiplicity."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.build import bulk

from aiida_qdtraps import provenance
from aiida_qdtraps.builder.qd import build_qd, write_qd
from aiida_qdtraps.workchains import build


def _plain(atoms):
    return Atoms(atoms.get_chemical_symbols(), positions=atoms.positions)


def _import(path, **options):
    return build.import_structure(orm.SinglefileData(str(path)), orm.Dict(options))


def _structure_count():
    return orm.QueryBuilder().append(orm.StructureData).count()


def test_extended_xyz_with_a_cell(aiida_profile, tmp_path):
    atoms = _plain(build_qd('CdSe', model='Cd28Se17Cl22'))
    atoms.cell, atoms.pbc = [30.0, 30.0, 30.0], True
    atoms.translate(15.0 - atoms.positions.mean(axis=0))
    path = tmp_path / 'cd_rich.extxyz'
    atoms.write(path, format='extxyz')
    structure = _import(path, charge=0)
    assert np.allclose(structure.cell, np.diag([30.0] * 3)) and structure.pbc == (False, False, False)
    assert np.allclose(structure.get_ase().positions, atoms.positions)
    roles = provenance.roles(structure)
    assert roles.count('cation') == 28 and roles.count('anion') == 17 and roles.count('ligand') == 22
    assert structure.base.attributes.get(build.IMPORT_ATTRIBUTE) == {
        'charge': 0, 'charge_unit': 'e', 'multiplicity': 1, 'inferred_multiplicity': 1,
        'electrons': 28 * 48 + 17 * 34 + 22 * 17, 'ligands': {'halide': 22}}
    assert set(structure.base.attributes.get(build.GROUP_ATTRIBUTE)) == {'cation', 'anion', 'halide'}


def test_cif_of_an_acetate_capped_pbs_split_by_its_cell(aiida_profile, tmp_path):
    """A CIF wraps the cluster into its cell; centred on a corner it comes in eight pieces and is made whole."""
    atoms = _plain(build_qd('PbS', model='Pb19S6(OAc)26'))
    reference = atoms.get_all_distances()
    atoms.cell, atoms.pbc = [32.0, 32.0, 32.0], True
    atoms.translate(-atoms.positions.mean(axis=0))
    path = tmp_path / 'pbs.cif'
    atoms.write(path, format='cif')
    structure = _import(path)
    imported = structure.get_ase()
    assert np.allclose(imported.get_all_distances(), reference, atol=1e-3)
    assert np.allclose(imported.positions.mean(axis=0), 16.0, atol=1e-3)
    info = structure.base.attributes.get(build.IMPORT_ATTRIBUTE)
    assert info['charge'] == 19 * 2 - 6 * 2 - 26 == 0 and info['ligands'] == {'carboxylate': 26}


def test_plain_xyz_charged_se_rich_is_boxed(aiida_profile, tmp_path):
    """Cd17Se28H20: two H⁺ short of the neutral Cd17Se28H22, so −2 e; boxed with 4 Å of vacuum."""
    atoms = _plain(build_qd('CdSe', model='Cd17Se28H22'))
    protons = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == 'H')[:2]
    atoms = atoms[np.setdiff1d(np.arange(len(atoms)), protons)]
    path = tmp_path / 'se_rich.xyz'
    atoms.write(path, format='xyz')
    structure = _import(path, charge=-2, multiplicity=3, vacuum=4.0)
    extent = np.ptp(atoms.positions, axis=0).max()
    assert structure.cell[0][0] == np.ceil(extent + 8.0)
    info = structure.base.attributes.get(build.IMPORT_ATTRIBUTE)
    assert info['charge'] == -2 and info['multiplicity'] == 3 and info['inferred_multiplicity'] == 1
    assert info['ligands'] == {'proton': 20}


def test_builder_extended_xyz_keeps_its_roles(aiida_profile, tmp_path):
    """CsPbBr3 written by the builder: its Br are lattice anions by the file's qd_role column."""
    atoms = build_qd('CsPbBr3', 17.6, shape='cube', termination='PbBr2')
    path = tmp_path / 'cube.xyz'
    write_qd(atoms, str(path))
    structure = _import(path)
    assert provenance.roles(structure) == list(atoms.arrays['qd_role'])
    assert structure.base.attributes.get(build.IMPORT_ATTRIBUTE)['charge'] == 0


def test_a_periodic_crystal_is_refused_and_nothing_stored(aiida_profile, tmp_path):
    path = tmp_path / 'cdse.cif'
    bulk('CdSe', 'zincblende', a=6.05).repeat(2).write(path, format='cif')
    before = _structure_count()
    with pytest.raises(ValueError, match='not a cluster: the bonds form a periodic crystal'):
        _import(path)
    assert _structure_count() == before


def test_a_contradicting_charge_names_both_values(aiida_profile, tmp_path):
    path = tmp_path / 'cd_rich.xyz'
    _plain(build_qd('CdSe', model='Cd28Se17Cl22')).write(path, format='xyz')
    before = _structure_count()
    with pytest.raises(ValueError, match=r'the given charge \+1 e contradicts .* inferred .*, \+0 e'):
        _import(path, charge=1)
    with pytest.raises(ValueError, match=r'the given multiplicity 2 is impossible with 2296 electrons'):
        _import(path, multiplicity=2)
    assert _structure_count() == before


def test_unclassified_atoms_and_unknown_options_are_refused(aiida_profile, tmp_path):
    atoms = _plain(build_qd('CdSe', model='Cd28Se17Cl22'))
    atoms += Atoms('C', positions=[atoms.positions.max(axis=0) + 6.0])
    path = tmp_path / 'with_carbon.xyz'
    atoms.write(path, format='xyz')
    with pytest.raises(ValueError, match=rf'cannot classify .*{len(atoms) - 1} C \(C: a lone C'):
        _import(path)
    with pytest.raises(ValueError, match=r"unknown import option\(s\) \['spin'\]"):
        _import(path, spin=1)
