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


#: Facet energies whose cation-centred Wulff polyhedra are the library's larger III-V cores before its P removal.
LIBRARY_WULFF = {'111': 1.0, '-1-1-1': 1.4, '100': 1.12}


@pytest.mark.parametrize('material, diameter, formula', [
    ('InP', 22.5, 'Cl81In107P80'), ('InP', 30.4, 'Cl147In249P200'), ('InP', 38.4, 'Cl231In477P400'),
    ('InAs', 23.3, 'As80Cl81In107'), ('InAs', 31.3, 'As200Cl147In249'), ('InAs', 39.6, 'As400Cl231In477'),
    ('GaP', 20.9, 'Cl81Ga107P80'), ('GaP', 28.2, 'Cl147Ga249P200'), ('GaP', 35.6, 'Cl231Ga477P400')])
def test_library_iii_v_cores_are_wulff_carves(material, diameter, formula, check_qd):
    """In107X80, In249X200, In477X400 (and Ga): the cation-centred Wulff polyhedra of {111} 1, {-1-1-1} 1.4,
    {100} 1.12, neutral with Cl by default; the library's models are these cores less 7, 6 and 4 P."""
    atoms = qd.build_qd(material, diameter, ligand='Cl', shape='wulff', facets=LIBRARY_WULFF)
    assert atoms.get_chemical_formula() == formula
    assert atoms.info['qd_build']['center'] == 'cation'
    check_qd(atoms, material)


def _on_our_lattice(path: Path, material: str) -> tuple[np.ndarray, np.ndarray]:
    """Cation and anion positions of a library QD turned onto our lattice: the cation nearest the centroid at the
    origin, its four anion bonds along TETRAHEDRAL (best proper rotation over their orderings), scaled to our bond."""
    from itertools import permutations

    from ase.io import read
    from scipy.spatial import cKDTree

    from aiida_qdtraps.builder.crystal import TETRAHEDRAL, check_material, nearest_neighbour_distance

    atoms = read(str(path))  # plain xyz; ase's default (extxyz) reader accepts the trailing blank lines
    symbols = np.array(atoms.get_chemical_symbols())
    _, cation, anion, _ = check_material(material)
    cations, anions = atoms.positions[symbols == cation], atoms.positions[symbols == anion]
    core = np.vstack([cations, anions])
    centre = cations[np.argmin(np.linalg.norm(cations - core.mean(0), axis=1))]
    bonds, nearest = cKDTree(anions).query(cations)
    scale = nearest_neighbour_distance(material) / np.median(bonds)
    _, four = cKDTree(anions).query(centre, k=4)
    vectors = anions[four] - centre
    vectors /= np.linalg.norm(vectors, axis=1)[:, None]
    best = None
    for order in permutations(range(4)):
        u, _, vt = np.linalg.svd(vectors.T @ TETRAHEDRAL[list(order)])
        if np.linalg.det(vt.T @ u.T) < 0:
            continue
        rotation = vt.T @ u.T
        error = np.linalg.norm(vectors @ rotation.T - TETRAHEDRAL[list(order)])
        if best is None or error < best[0]:
            best = (error, rotation)
    rotation = best[1]
    return scale * (cations - centre) @ rotation.T, scale * (anions - centre) @ rotation.T


def test_library_in107p73_is_our_wulff_core_less_seven_p():
    """The library's InP 23ang start geometry (not an ideal lattice: In up to 1.7 Å, P up to 0.6 Å off our sites),
    turned onto our lattice: each of its 107 In is nearest one of the 107 In sites of our carve (and far from any
    other), its 73 P are 73 of our 80; the 7 missing P each have three core bonds on the outermost (-1-1-1) layers,
    like the 5 outermost P it keeps there, so no pruning rule tells them apart."""
    from scipy.spatial import cKDTree

    from aiida_qdtraps.builder import shapes
    from aiida_qdtraps.builder.crystal import TETRAHEDRAL, nearest_neighbour_distance

    bond = nearest_neighbour_distance('InP')
    ours = shapes.carve_core('InP', 25.79, shape='wulff', facets=LIBRARY_WULFF, center='cation')
    assert ours.get_chemical_formula() == 'In107P80'
    cation = ours.arrays['qd_role'] == 'cation'
    theirs_in, theirs_p = _on_our_lattice(LIBRARY / 'In107P73Cl102_HLE17_23ang_start.xyz', 'InP')
    d_in, j_in = cKDTree(ours.positions[cation]).query(theirs_in, k=2)  # nearest and second-nearest site
    assert len(set(j_in[:, 0])) == 107 and d_in[:, 0].max() < 0.75 * bond and d_in[:, 1].min() > 1.25 * bond
    d_p, j_p = cKDTree(ours.positions[~cation]).query(theirs_p, k=2)
    assert len(set(j_p[:, 0])) == 73 and d_p[:, 0].max() < 0.3 * bond and d_p[:, 1].min() > 1.25 * bond
    j_p = j_p[:, 0]
    missing = np.setdiff1d(np.arange(80), j_p)
    cn = shapes.bond_counts(ours.positions, 1.1 * bond)[~cation]
    p = ours.positions[~cation]
    outermost = np.zeros(80, bool)
    for direction in -TETRAHEDRAL:
        projection = p @ direction
        outermost |= projection > projection.max() - 0.01
    assert len(missing) == 7 and np.all(cn[missing] == 3) and np.all(outermost[missing])
    assert outermost.sum() == 12 and np.all(cn[outermost] == 3)
