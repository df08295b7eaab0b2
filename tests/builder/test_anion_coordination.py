"""Four-coordinate anions on InP/GaP tetrahedra and cuboctahedra of Alexander et al.'s library sizes (1.7-2.7 nm,
F⁻ and Cl⁻): what each core rule gives, and why no core has every P four-coordinate while every cation keeps two
core bonds.

Rules: the defaults (nearest core diameter), ``prefer='coordination'`` (fewest P with fewer than four core bonds
within one bond length of the size) and ``prefer='coordination', min_core_bonds=1`` (cations may keep one core
bond; every P four-coordinate where the ligands can reach the charge).
"""

from __future__ import annotations

import numpy as np
import pytest
from qd_checks import check_size_and_spacing
from scipy.spatial import cKDTree

from aiida_qdtraps.builder import passivation, qd, shapes
from aiida_qdtraps.builder.crystal import TETRAHEDRAL, nearest_neighbour_distance

RULES = {'size': {}, 'coordination': {'prefer': 'coordination'},
         'coordination-1': {'prefer': 'coordination', 'min_core_bonds': 1}}

#: (material, shape, diameter Å) → per rule (core formula, P with < 4 core bonds, cations with 1 core bond)
EXPECTED = {
    ('InP', 'tetrahedron', 17.0): (('In31P20', 4, 0), ('In31P20', 4, 0), ('In20P10', 0, 4)),
    ('InP', 'tetrahedron', 20.0): (('In52P35', 4, 0), ('In52P35', 4, 0), ('In35P20', 0, 4)),
    ('InP', 'tetrahedron', 23.0): (('In80P56', 4, 0), ('In80P56', 4, 0), ('In56P35', 0, 4)),
    ('InP', 'tetrahedron', 27.0): (('In80P56', 4, 0), ('In80P56', 4, 0), ('In56P35', 0, 4)),
    ('InP', 'cuboctahedron', 17.0): (('In68P55', 24, 0), ('In68P50', 12, 0), ('In68P50', 12, 0)),
    ('InP', 'cuboctahedron', 20.0): (('In80P59', 16, 0), ('In68P50', 12, 0), ('In68P50', 12, 0)),
    ('InP', 'cuboctahedron', 23.0): (('In135P104', 24, 0), ('In135P104', 24, 0), ('In116P92', 24, 0)),
    ('InP', 'cuboctahedron', 27.0): (('In204P164', 36, 0), ('In204P159', 24, 0), ('In176P140', 24, 0)),
    ('GaP', 'tetrahedron', 17.0): (('Ga52P35', 4, 0), ('Ga52P35', 4, 0), ('Ga35P20', 0, 4)),
    ('GaP', 'tetrahedron', 20.0): (('Ga52P35', 4, 0), ('Ga52P35', 4, 0), ('Ga35P20', 0, 4)),
    ('GaP', 'tetrahedron', 23.0): (('Ga80P56', 4, 0), ('Ga80P56', 4, 0), ('Ga56P35', 0, 4)),
    ('GaP', 'tetrahedron', 27.0): (('Ga116P84', 4, 0), ('Ga116P84', 4, 0), ('Ga84P56', 0, 4)),
    ('GaP', 'cuboctahedron', 17.0): (('Ga68P50', 12, 0), ('Ga68P50', 12, 0), ('Ga68P50', 12, 0)),
    ('GaP', 'cuboctahedron', 20.0): (('Ga116P92', 24, 0), ('Ga80P59', 16, 0), ('Ga116P92', 24, 0)),
    ('GaP', 'cuboctahedron', 23.0): (('Ga128P104', 36, 0), ('Ga176P140', 24, 0), ('Ga176P140', 24, 0)),
    ('GaP', 'cuboctahedron', 27.0): (('Ga216P171', 36, 0), ('Ga204P159', 24, 0), ('Ga260P216', 40, 0)),
}
CASES = [(m, s, d, ligand, rule) for (m, s, d) in EXPECTED for ligand in ('F', 'Cl') for rule in RULES]


def core_bonds(atoms, material):
    """The core and the number of core bonds of each core atom (1.1 × the lattice bond length)."""
    core = atoms[atoms.arrays['qd_domain'] == 'core']
    return core, shapes.bond_counts(core.positions, 1.1 * nearest_neighbour_distance(material))


@pytest.mark.parametrize('material, shape, diameter, ligand, rule', CASES,
                         ids=[f'{m}-{s}-{d:g}-{x}-{r}' for m, s, d, x, r in CASES])
def test_alexander_sizes_per_rule(material, shape, diameter, ligand, rule, check_qd):
    """Exact charge, the tabulated core and P coordination, ligands on cations only, no close pair, the size within
    one bond length, the same atoms when rebuilt."""
    options = RULES[rule]
    atoms = qd.build_qd(material, diameter, ligand=ligand, shape=shape, **options)
    formula, p_low, single = EXPECTED[material, shape, diameter][list(RULES).index(rule)]
    check_qd(atoms, material, min_bonds=options.get('min_core_bonds', 2))  # also: every F/Cl on a cation
    assert passivation.net_charge(atoms) == 0
    core, cn = core_bonds(atoms, material)
    anion = core.arrays['qd_role'] == 'anion'
    assert core.get_chemical_formula() == formula
    assert int((anion & (cn < 4)).sum()) == p_low
    assert int((~anion & (cn == 1)).sum()) == single
    assert cn[~anion].min() >= options.get('min_core_bonds', 2)
    check_size_and_spacing(atoms, material, diameter)
    again = qd.build_qd(material, diameter, ligand=ligand, shape=shape, **options)
    assert again.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert np.array_equal(again.positions, atoms.positions)


@pytest.mark.parametrize('material, shape, diameter', list(EXPECTED))
def test_fluoride_and_chloride_take_the_same_sites(material, shape, diameter):
    """F⁻ and Cl⁻ (both −1 e on the cations) give the same core and ligand count, with each rule."""
    for options in RULES.values():
        f = qd.build_qd(material, diameter, ligand='F', shape=shape, **options)
        cl = qd.build_qd(material, diameter, ligand='Cl', shape=shape, **options)
        assert f.info['qd_build'] == cl.info['qd_build']
        assert f.get_chemical_formula().replace('F', 'X') == cl.get_chemical_formula().replace('Cl', 'X')


@pytest.mark.parametrize('material, shape, diameter', list(EXPECTED))
def test_prefer_coordination_never_adds_three_coordinate_p(material, shape, diameter):
    default, coordination, _ = EXPECTED[material, shape, diameter]
    assert coordination[1] <= default[1]


@pytest.mark.parametrize('material', ['InP', 'CdSe'])  # a lattice property: the same for every zincblende
@pytest.mark.parametrize('shape', ['sphere', 'tetrahedron', 'cuboctahedron', 'octahedron', 'cube'])
@pytest.mark.parametrize('center', shapes.CENTERS)
def test_no_core_has_four_coordinate_anions_and_two_bonded_cations(material, shape, center):
    """Every anion with four core bonds and every cation with two: pruning empties every carve (the outermost anion
    along an anion-terminated <111> direction always bonds to a cation with a single core bond)."""
    for diameter in (20.0, 40.0):
        with pytest.raises(ValueError, match='nothing is left after pruning'):
            shapes.carve_core(material, diameter, shape=shape, center=center, min_core_bonds=2, trim=4)


@pytest.mark.parametrize('material, shape, center, diameter', [
    ('InP', 'tetrahedron', 'cation', 27.95), ('InP', 'tetrahedron', 'anion', 33.03),
    ('GaP', 'tetrahedron', 'interstitial', 35.4), ('InP', 'cuboctahedron', 'cation', 25.0),
    ('InP', 'sphere', 'anion', 24.0), ('GaP', 'cuboctahedron', 'interstitial2', 27.0)])
def test_four_coordinate_anions_need_single_bonded_cations(material, shape, center, diameter):
    """With every P four-coordinate (min_core_bonds=1, trim=4) the outermost P along each anion-terminated <111>
    direction bonds outwards to a cation with one core bond (the proof in aiida_qdtraps.builder.autocore)."""
    core = shapes.carve_core(material, diameter, shape=shape, center=center, min_core_bonds=1, trim=4)
    bond = nearest_neighbour_distance(material)
    cn = shapes.bond_counts(core.positions, 1.1 * bond)
    anion = core.arrays['qd_role'] == 'anion'
    assert np.all(cn[anion] == 4)
    tree = cKDTree(core.positions)
    for direction in -TETRAHEDRAL:
        projection = core.positions @ direction
        outermost = np.flatnonzero(anion & (projection > projection[anion].max() - 0.01))
        for p in outermost:
            cap = tree.query_ball_point(core.positions[p] + bond * direction, 0.1 * bond)
            assert len(cap) == 1 and cn[cap[0]] == 1 and not anion[cap[0]]


def test_four_coordinate_tetrahedron_is_capped_at_its_vertices():
    """InP tetrahedron 2.0 nm with every P four-coordinate: In35P20 + 45 Cl, the four vertex In with one core bond
    (and three dangling bonds); of the 60 In dangling bonds, 45 carry a Cl (neutrality: 3 × (35 − 20))."""
    atoms = qd.build_qd('InP', 20.0, ligand='Cl', shape='tetrahedron', prefer='coordination', min_core_bonds=1)
    assert atoms.get_chemical_formula() == 'Cl45In35P20'
    core, cn = core_bonds(atoms, 'InP')
    owners, _ = passivation.missing_bonds(core, 'cation')
    assert len(owners) == 60
    assert np.bincount(cn[core.arrays['qd_role'] == 'cation']).tolist() == [0, 4, 18, 12, 1]
