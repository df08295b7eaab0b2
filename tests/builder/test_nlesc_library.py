"""The builder against the nlesc-nano QD model library (MIT; tests/data/library/README-nlesc-nano.md): default recipes
that give the library's compositions exactly, and three of its DFT-optimised xyz files read and classified.

Compositions by hand: Cl count = Σ cation charges − Σ anion charges (Cd16Se13: 2·16 − 2·13 = 6; In31As20:
3·31 − 3·20 = 33; Pb19S6: 2·19 − 2·6 = 26; Pb79S44: 158 − 88 = 70; Cd176Se147: 352 − 294 = 58).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiida_qdtraps.builder import foreign, passivation, qd, roles

LIBRARY = Path(__file__).resolve().parents[1] / 'data' / 'library'

#: (material, core diameter Å, keyword arguments, the library's formula as ase writes it)
REPRODUCED = [
    ('CdSe', 10.0, {}, 'Cd16Cl6Se13'),
    ('CdSe', 18.0, {}, 'Cd68Cl26Se55'),
    ('CdSe', 26.3, {}, 'Cd176Cl58Se147'),
    ('CdS', 9.7, {}, 'Cd16Cl6S13'),
    ('CdS', 17.0, {}, 'Cd68Cl26S55'),
    ('CdS', 25.0, {}, 'Cd176Cl58S147'),
    ('ZnSe', 9.0, {}, 'Cl6Se13Zn16'),
    ('ZnSe', 16.8, {}, 'Cl26Se55Zn68'),
    ('ZnSe', 24.5, {}, 'Cl58Se147Zn176'),
    ('ZnS', 9.0, {}, 'Cl6S13Zn16'),
    ('ZnS', 16.0, {}, 'Cl26S55Zn68'),
    ('ZnS', 23.4, {}, 'Cl58S147Zn176'),
    ('CdSe', 10.0, {'shape': 'cuboctahedron'}, 'Cd16Cl6Se13'),
    ('InP', 15.0, {'shape': 'tetrahedron'}, 'Cl33In31P20'),
    ('InAs', 16.0, {'shape': 'tetrahedron'}, 'As20Cl33In31'),
    ('GaP', 14.0, {'shape': 'tetrahedron'}, 'Cl33Ga31P20'),
    ('PbS', 19.0, {}, 'Cl70Pb79S44'),
    ('PbSe', 19.0, {}, 'Cl70Pb79Se44'),
    ('PbS', 19.0, {'shape': 'octahedron'}, 'Cl70Pb79S44'),
    ('PbS', 11.9, {'shape': 'octahedron', 'min_core_bonds': 1}, 'Cl26Pb19S6'),
    ('PbSe', 12.2, {'shape': 'octahedron', 'min_core_bonds': 1}, 'Cl26Pb19Se6'),
]


@pytest.mark.parametrize('material, diameter, kwargs, formula', REPRODUCED)
def test_default_recipes_give_the_library_compositions(material, diameter, kwargs, formula, check_qd):
    atoms = qd.build_qd(material, diameter, ligand='Cl', **kwargs)
    assert atoms.get_chemical_formula() == formula
    assert passivation.net_charge(atoms) == 0
    check_qd(atoms, material, min_bonds=kwargs.get('min_core_bonds', 2))


def test_ii_vi_library_cores_are_anion_centred_spheres():
    # Cd16Se13: the central Se, its 4 Cd, the 12 next Se and 12 outer Cd (shells of the anion-centred lattice)
    atoms = qd.build_qd('CdSe', 10.0, ligand='Cl')
    assert atoms.info['qd_build']['center'] == 'anion'
    core = atoms[atoms.arrays['qd_role'] != 'ligand']
    centre = core.positions[np.argmin(np.linalg.norm(core.positions - core.positions.mean(0), axis=1))]
    squared = np.rint(np.sum((core.positions - centre) ** 2, axis=1) / (6.077 / 4) ** 2).astype(int)
    assert dict(zip(*np.unique(squared, return_counts=True))) == {0: 1, 3: 4, 8: 12, 11: 12}
    assert sorted(core[squared == 0].get_chemical_symbols() + core[squared == 8].get_chemical_symbols()) == ['Se'] * 13


#: file, expected core roles (cations, anions), Cl count, the default recipe giving the same composition
LIBRARY_FILES = [
    ('Cd16Se13Cl6_HLE17_12ang_opt.xyz', 16, 13, 6, ('CdSe', 10.0, {})),
    ('In31As20Cl33_HLE17_18ang_OPT.xyz', 31, 20, 33, ('InAs', 16.0, {'shape': 'tetrahedron'})),
    ('Pb19S6Cl26_PBE_9ang_OPT.xyz', 19, 6, 26, ('PbS', 11.9, {'shape': 'octahedron', 'min_core_bonds': 1})),
]


@pytest.mark.parametrize('name, n_cations, n_anions, n_cl, recipe', LIBRARY_FILES)
def test_library_files_are_read_and_classified(name, n_cations, n_anions, n_cl, recipe):
    atoms = roles.read_structure(str(LIBRARY / name))
    role = atoms.arrays['qd_role']
    assert (role == 'cation').sum() == n_cations and (role == 'anion').sum() == n_anions
    assert (role == 'ligand').sum() == n_cl
    assert set(np.array(atoms.get_chemical_symbols())[role == 'ligand']) == {'Cl'}
    assert set(atoms.arrays['qd_domain']) == {'core', 'ligand'}
    cluster, found = foreign.label_qd(atoms)
    assert found.charge == 0
    assert found.multiplicity == 1
    assert found.ligand_counts() == {'halide': n_cl}
    assert np.array_equal(cluster.arrays['qd_role'], role)
    material, diameter, kwargs = recipe
    ours = qd.build_qd(material, diameter, ligand='Cl', **kwargs)
    assert ours.get_chemical_formula() == atoms.get_chemical_formula()


@pytest.mark.parametrize('name, recipe', [(LIBRARY_FILES[0][0], LIBRARY_FILES[0][4]),
                                          (LIBRARY_FILES[1][0], LIBRARY_FILES[1][4])])
def test_zincblende_library_anions_keep_the_builder_coordination(name, recipe):
    # the optimised library QDs keep the carved anion coordination: Cd16Se13 12 three- and 1 four-coordinate Se,
    # In31As20 4 three- (the tetrahedron's vertices) and 16 four-coordinate As (1.25 × covalent radii)
    library = qd.describe(roles.read_structure(str(LIBRARY / name)))
    material, diameter, kwargs = recipe
    ours = qd.describe(qd.build_qd(material, diameter, ligand='Cl', **kwargs))
    anion = {'CdSe': 'Se', 'InAs': 'As'}[material]
    assert library.coordination[anion] == ours.coordination[anion]
