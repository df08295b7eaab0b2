"""``center='auto'`` (the default): every material × shape × size builds neutral, cation-rich for X-type ligands, with
the requested core diameter; the resolved carve is recorded and reproduces the QD; explicit recipes are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from qd_checks import check_size_and_spacing

from aiida_qdtraps.builder import autocore, passivation, qd, shapes
from aiida_qdtraps.builder.crystal import MATERIALS, nearest_neighbour_distance

SIZES = (10.0, 15.0, 20.0, 25.0, 30.0)
CASES = [(m, s, d) for m in MATERIALS for s in shapes.SHAPES for d in SIZES]


def _core(atoms):
    return atoms[atoms.arrays['qd_domain'] == 'core']


def _check_auto(atoms, material, diameter, check_qd, cation_rich=True):
    """Charge 0, >= 2 core bonds, no close pair, core diameter within one bond length, the right stoichiometry."""
    check_qd(atoms, material)
    core = check_size_and_spacing(atoms, material, diameter)
    size = qd.core_diameter(core)
    assert atoms.info['qd_build']['core_diameter'] == pytest.approx(size, abs=1e-3)
    n_ligands = (atoms.arrays['qd_role'] == 'ligand').sum()
    if cation_rich:  # X-type ligands on the cations: a cation-rich core that takes at least one ligand
        assert passivation.net_charge(core) > 0 and n_ligands >= 1
    else:  # H on the anions: an anion-rich core
        assert passivation.net_charge(core) < 0 and n_ligands >= 1
    return core


@pytest.mark.parametrize('material, shape, diameter', CASES, ids=[f'{m}-{s}-{d:g}' for m, s, d in CASES])
def test_defaults_build_every_material_shape_and_size(material, shape, diameter, check_qd):
    atoms = qd.build_qd(material, diameter, ligand='Cl', shape=shape)
    _check_auto(atoms, material, diameter, check_qd)


@pytest.mark.parametrize('material, shape, diameter', [
    (m, s, d) for m in ('InP', 'CdSe', 'ZnS', 'PbS') for s in ('sphere', 'cuboctahedron', 'octahedron', 'cube')
    for d in (15.0, 20.0)])
def test_hydrogen_gets_anion_rich_cores(material, shape, diameter, check_qd):
    atoms = qd.build_qd(material, diameter, ligand='H', shape=shape)
    _check_auto(atoms, material, diameter, check_qd, cation_rich=False)


@pytest.mark.parametrize('material, shape, diameter', [
    (m, s, d) for m in ('InP', 'GaP') for s in ('tetrahedron', 'cuboctahedron') for d in (17.0, 18.0, 20.0, 22.0, 25.0,
                                                                                          27.0)])
def test_seed_000_sizes_build_with_fluoride(material, shape, diameter, check_qd):
    """InP/GaP tetrahedra and cuboctahedra of 1.7-2.7 nm with F⁻ (Alexander et al.'s library) build by default."""
    atoms = qd.build_qd(material, diameter, ligand='F', shape=shape)
    core = _check_auto(atoms, material, diameter, check_qd)
    assert len(core) >= 50  # a QD, not a cage


def test_small_tetrahedra_are_qds_not_cages():
    """A 2.0 nm InP tetrahedron: In52P35 + 51 F, core diameter 2.03 nm (an explicit centre gives the In6P4 cage or
    refuses)."""
    atoms = qd.build_qd('InP', 20.0, ligand='F', shape='tetrahedron')
    assert atoms.get_chemical_formula() == 'F51In52P35'
    assert atoms.info['qd_build'] == {'center': 'anion', 'trim': 2, 'carve_diameter': 33.03,
                                      'core_diameter': pytest.approx(20.3308, abs=1e-3)}
    for diameter in np.arange(15.0, 30.1, 1.0):  # every size from 1.5 nm on builds
        atoms = qd.build_qd('InP', float(diameter), ligand='F', shape='tetrahedron')
        assert abs(qd.core_diameter(_core(atoms)) - diameter) <= nearest_neighbour_distance('InP') + 0.01


@pytest.mark.parametrize('material, shape, diameter, ligand', [
    ('InP', 'tetrahedron', 20.0, 'F'), ('InP', 'cuboctahedron', 27.0, 'Cl'), ('CdSe', 'sphere', 15.0, 'H'),
    ('PbS', 'octahedron', 15.0, 'Cl'), ('InAs', 'sphere', 16.0, 'OAc'), ('CdSe', 'sphere', 13.0, 'Cl'),
    ('CdSe', 'tetrahedron', 28.0, 'H'), ('ZnS', 'truncated_tetrahedron', 20.0, 'H'),
])
def test_recorded_carve_reproduces_the_qd(material, shape, diameter, ligand):
    """The resolved centre, trim and carve diameter (and the stoichiometry when recorded), given explicitly, build
    the same atoms."""
    auto = qd.build_qd(material, diameter, ligand=ligand, shape=shape)
    carve = auto.info['qd_build']
    assert ('stoichiometry' in carve) == (ligand == 'H' and 'tetrahedron' in shape)
    explicit = qd.build_qd(material, carve['carve_diameter'], ligand=ligand, shape=shape, center=carve['center'],
                           trim=carve['trim'], stoichiometry=carve.get('stoichiometry', 'default'))
    assert explicit.get_chemical_symbols() == auto.get_chemical_symbols()
    assert np.array_equal(explicit.positions, auto.positions)
    assert qd.describe(auto).build == auto.info['qd_build']


def test_swapped_and_charged_targets_with_auto(check_qd):
    swapped = qd.build_qd('CdSe', 15.0, ligand='Cl', stoichiometry='swapped')
    check_qd(swapped, 'CdSe')
    charged = qd.build_qd('InP', 20.0, ligand='F', charge=2)
    check_qd(charged, 'InP', charge=2)


def test_auto_is_deterministic_at_5_nm():
    """(Its speed is measured by benchmarks/build_speed.py, not asserted here.)"""
    first = qd.build_qd('InP', 50.0, ligand='Cl')
    second = qd.build_qd('InP', 50.0, ligand='Cl')
    assert np.array_equal(first.positions, second.positions)
    assert first.get_chemical_symbols() == second.get_chemical_symbols()
    assert len(first) > 2500


def test_explicit_centres_keep_their_structures():
    """An explicit centre keeps the circumscribed-diameter carve: the demo cluster is still In4P + 9 F."""
    demo = qd.build_qd('InP', 5.2, ligand='F', charge=0, center='anion', vacuum=3.5, min_core_bonds=1)
    assert demo.get_chemical_formula() == 'F9In4P'
    assert demo.info['qd_build'] == {'center': 'anion', 'trim': 1, 'carve_diameter': 5.2,
                                     'core_diameter': pytest.approx(2 * nearest_neighbour_distance('InP'), abs=1e-3)}
    cage = qd.build_qd('InP', 20.0, shape='tetrahedron', center='interstitial')
    assert cage.get_chemical_formula() == 'F6In6P4'


@pytest.mark.parametrize('kwargs, message', [
    ({'material': 'InP', 'diameter': 2.0, 'shape': 'tetrahedron'},
     r'diameter 2 Å is below the smallest InP tetrahedron core that F brings to charge 0 \(5\.9 Å core diameter\)'),
    # the cation-terminated tetrahedron (the other orientation than H's default): cation-rich above 2.5 nm
    ({'material': 'InAs', 'diameter': 30.0, 'shape': 'tetrahedron', 'ligand': 'H', 'stoichiometry': 'swapped'},
     r'no InAs tetrahedron core that H brings to charge 0 has a core diameter within one bond length \(2\.62 Å\) of '
     r'30 Å; nearest core diameters: 25\.0 Å; the nearest core, As116In119 \(30\.1 Å\), carries \+9 e and each H '
     r'adds \+1 e, so no number of H reaches 0'),
    ({'material': 'InP', 'diameter': 27.0, 'shape': 'cuboctahedron', 'ligand': 'Cl', 'min_core_bonds': 1, 'trim': 4},
     r'the nearest core, In164P104 \(25\.6 Å\), carries \+180 e: it needs 180 Cl but has 136 free cation sites'),
    ({'material': 'InP', 'diameter': 20.0, 'prefer': 'nearest'}, r"prefer must be one of \['size', 'coordination'\], "
                                                                  r"got 'nearest'"),
    ({'material': 'InP', 'diameter': 20.0, 'center': 'cation', 'prefer': 'coordination'},
     r"prefer 'coordination' applies to center 'auto' only, got center 'cation'"),
    ({'material': 'InP', 'diameter': 20.0, 'center': 'edge'}, r"center must be one of \['auto', 'anion'"),
    ({'material': 'InP', 'diameter': 20.0, 'trim': 7}, 'trim must be a number of core bonds from 1 to 4'),
    ({'material': 'InP', 'diameter': -3.0}, 'diameter must be positive'),
])
def test_auto_errors_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        qd.build_qd(**kwargs)


def test_scan_reports_candidates_per_centre_and_trim():
    choices = autocore.choose_cores('InP', 20.0, 'cuboctahedron')
    assert choices[0].center == 'anion' and choices[0].formula == 'In80P59'
    assert all(c.reaches(0, -1) for c in choices)
    distances = [round(abs(c.core_diameter - 20.0), 2) for c in choices]
    assert distances == sorted(distances)
