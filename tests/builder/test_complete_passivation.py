"""Complete passivation (``passivation='complete'``): a halide on every cation dangling bond, bridging where the
charge leaves too few halides for one per bond — Alexander et al.'s "perfectly passivated" Cl⁻ cuboctahedra, with no
atom below four bonds."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import vdw_radii
from qd_checks import check_size_and_spacing
from scipy.spatial import cKDTree

from aiida_qdtraps.builder import complete, passivation, qd, shapes
from aiida_qdtraps.builder.autocore import CoreChoice
from aiida_qdtraps.builder.crystal import nearest_neighbour_distance
from aiida_qdtraps.builder.roles import bonded_pairs

#: (material, core diameter Å) → (core formula, number of halides bound to one, two and three cations)
EXPECTED = {
    ('InP', 17.0): ('In68P31', (86, 13, 12)),
    ('InP', 20.0): ('In92P55', (78, 29, 4)),
    ('InP', 23.0): ('In104P59', (94, 37, 4)),
    ('InP', 27.0): ('In164P104', (124, 52, 4)),
    ('GaP', 17.0): ('Ga62P32', (60, 30, 0)),
    ('GaP', 20.0): ('Ga116P68', (110, 20, 14)),
    ('GaP', 23.0): ('Ga147P92', (120, 35, 10)),
    ('GaP', 27.0): ('Ga216P147', (150, 45, 12)),
}
CASES = [(m, d, x) for (m, d) in EXPECTED for x in ('F', 'Cl')]


def coordination(atoms):
    """Bonds per atom (< 1.25 × the sum of covalent radii, as :func:`~aiida_qdtraps.builder.qd.describe`)."""
    return np.bincount(bonded_pairs(atoms, 1.25).ravel(), minlength=len(atoms))


@pytest.mark.parametrize('material, diameter, ligand', CASES, ids=[f'{m}-{d:g}-{x}' for m, d, x in CASES])
def test_cuboctahedra_have_no_atom_below_four_bonds(material, diameter, ligand, check_qd):
    """Neutral, every P with four core bonds, every cation with exactly four bonds (core + halides), the halides
    terminal, μ2 or μ3 as tabulated, clear of each other, the size within one bond length, rebuilt identically."""
    atoms = qd.build_qd(material, diameter, ligand=ligand, shape='cuboctahedron', passivation='complete')
    formula, per_mode = EXPECTED[material, diameter]
    check_qd(atoms, material, min_bonds=1)
    assert passivation.net_charge(atoms) == 0
    core = atoms[atoms.arrays['qd_domain'] == 'core']
    assert core.get_chemical_formula() == formula
    assert atoms.info['qd_build']['trim'] == 4
    core_cn = shapes.bond_counts(core.positions, 1.1 * nearest_neighbour_distance(material))
    assert np.all(core_cn[core.arrays['qd_role'] == 'anion'] == 4)
    cn = coordination(atoms)
    roles = atoms.arrays['qd_role']
    assert np.all(cn[roles != 'ligand'] == 4)
    assert tuple(np.bincount(cn[roles == 'ligand'], minlength=4)[1:]) == per_mode
    assert len(np.flatnonzero(roles == 'ligand')) == sum(per_mode)
    halides = atoms.positions[roles == 'ligand']
    closest = cKDTree(halides).query(halides, k=2)[0][:, 1].min()
    radius = vdw_radii[atoms.numbers[roles == 'ligand'][0]]
    assert closest >= complete.MIN_CONTACT * complete.CONTACT_SCALE * 2 * radius
    check_size_and_spacing(atoms, material, diameter)
    again = qd.build_qd(material, diameter, ligand=ligand, shape='cuboctahedron', passivation='complete')
    assert np.array_equal(again.positions, atoms.positions)


def test_alexander_perfectly_passivated_sizes():
    """The 2.7 nm cuboctahedra: In164P104Cl180 (core 2.56 nm) and Ga216P147Cl207 (core 2.71 nm)."""
    inp = qd.build_qd('InP', 27.0, ligand='Cl', shape='cuboctahedron', passivation='complete')
    gap = qd.build_qd('GaP', 27.0, ligand='Cl', shape='cuboctahedron', passivation='complete')
    assert inp.get_chemical_formula() == 'Cl180In164P104'
    assert gap.get_chemical_formula() == 'Cl207Ga216P147'
    assert inp.info['qd_build']['core_diameter'] == pytest.approx(25.58, abs=0.01)
    assert gap.info['qd_build']['core_diameter'] == pytest.approx(27.12, abs=0.01)


def test_every_dangling_bond_is_covered_once():
    """The plan: each dangling bond in exactly one halide, as many halides as the charge needs, bridges only over
    a shared site."""
    core = shapes.carve_core('InP', 30.08, shape='cuboctahedron', center='interstitial', min_core_bonds=1, trim=4,
                             trim_species='anion')
    groups, owners, directions, targets = complete.plan_complete(core, 'Cl', charge=0)
    covered = np.concatenate(groups)
    assert sorted(covered.tolist()) == list(range(len(owners)))
    assert len(groups) == passivation.net_charge(core) == 180
    for group in groups:
        assert len(set(owners[group].tolist())) == len(group)  # one bond per cation
        assert np.ptp(targets[group], axis=0).max() < 0.3  # all at one empty site


def test_another_arrangement_is_also_complete():
    one = qd.build_qd('InP', 27.0, ligand='Cl', shape='cuboctahedron', passivation='complete')
    two = qd.build_qd('InP', 27.0, ligand='Cl', shape='cuboctahedron', passivation='complete', arrangement=1)
    assert one.get_chemical_formula() == two.get_chemical_formula()
    assert not np.allclose(one.positions, two.positions)
    cn = coordination(two)
    assert np.all(cn[two.arrays['qd_role'] != 'ligand'] == 4)


def test_a_charge_takes_more_or_fewer_bridges():
    """+1 e: one halide fewer, so one more bridge; every bond still covered."""
    neutral = qd.build_qd('InP', 27.0, ligand='Cl', shape='cuboctahedron', passivation='complete')
    cation = qd.build_qd('InP', 27.0, ligand='Cl', shape='cuboctahedron', passivation='complete', charge=1)
    assert passivation.net_charge(cation) == 1
    n_cl = lambda atoms: atoms.get_chemical_symbols().count('Cl')  # noqa: E731
    assert n_cl(cation) == n_cl(neutral) - 1
    cn = coordination(cation)
    assert np.all(cn[cation.arrays['qd_role'] != 'ligand'] == 4)


@pytest.mark.parametrize('options, message', [
    ({'material': 'InP', 'ligand': 'H'}, "places halides ['F', 'Cl', 'Br', 'I'], got ligand 'H'"),
    ({'material': 'InP', 'ligand': 'OAc'}, "got ligand 'OAc'"),
    ({'material': 'PbS', 'ligand': 'Cl'}, "needs a zincblende core, got 'PbS' (rocksalt)"),
    ({'material': 'InP', 'ligand': 'Cl', 'shell': 'ZnSe'}, "takes no ['shell']"),
    ({'material': 'InP', 'ligand': 'Cl', 'vacancy': 'ligand'}, "takes no ['vacancy']"),
    ({'material': 'InP', 'ligand': 'Cl', 'shape': 'tetrahedron', 'diameter': 20.0},
     'it needs 45 Cl but covering its 60 cation dangling bonds takes 60 to 60'),
    ({'material': 'InP', 'ligand': 'Cl', 'passivation': 'full'}, "passivation must be one of ['sites', 'complete']"),
])
def test_refused_with_the_value_named(options, message):
    recipe = {'diameter': 27.0, 'shape': 'cuboctahedron', 'passivation': 'complete', **options}
    with pytest.raises(ValueError) as info:
        qd.build_qd(**recipe)
    assert message in str(info.value)


def test_plan_names_the_reachable_charges():
    core = shapes.carve_core('InP', 30.08, shape='cuboctahedron', center='interstitial', min_core_bonds=1, trim=4,
                             trim_species='anion')
    with pytest.raises(ValueError, match=r'needs 241 Cl, but covering all 240 cation dangling bonds takes 136 '
                                         r'\(one per empty site, bridging\) to 240 \(one per bond\); charges '
                                         r'reachable: -60 to 44'):
        complete.plan_complete(core, 'Cl', charge=-61)


def test_core_choice_reaches_with_complete_passivation():
    choice = CoreChoice(center='interstitial', trim=4, carve_diameter=30.08, core_diameter=25.58,
                        formula='In164P104', n_atoms=268, core_charge=180, free_sites=136, bare=0, free_bonds=240)
    assert not choice.reaches(0, -1)  # one per site: 136 < 180
    assert choice.reaches(0, -1, passivation='complete')
    assert not choice.reaches(100, -1, passivation='complete')  # 80 halides leave bonds bare
    assert not choice.reaches(-61, -1, passivation='complete')  # 241 halides for 240 bonds

