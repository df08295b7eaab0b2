"""H⁺ on the anions (anion-rich cores) with ``center='auto'``: every size from 1.0 to 3.0 nm in 0.1 nm steps builds
neutral for CdSe, ZnSe and CdS spheres, cuboctahedra, tetrahedra and truncated tetrahedra; tetrahedra are carved
with anion-terminated (111) facets (the sublattice-swapped carve), so only their four vertex cations lack core
bonds."""

from __future__ import annotations

import numpy as np
import pytest
from qd_checks import check_size_and_spacing

from aiida_qdtraps.builder import autocore, passivation, qd, shapes
from aiida_qdtraps.builder.crystal import nearest_neighbour_distance

SIZES = tuple(float(d) for d in range(10, 31))  # Å: 1.0-3.0 nm in 0.1 nm steps
CASES = [(m, s, d) for m in ('CdSe', 'ZnSe', 'CdS') for s in ('tetrahedron', 'sphere', 'cuboctahedron',
                                                               'truncated_tetrahedron') for d in SIZES]


@pytest.mark.parametrize('material, shape, diameter', CASES, ids=[f'{m}-{s}-{d:g}' for m, s, d in CASES])
def test_hydrogen_builds_every_size(material, shape, diameter, check_qd):
    """Charge 0, anion-rich, every H on an anion (check_qd), >= 2 core bonds, no close pair, the size within one
    bond length; tetrahedra have exactly four cations with fewer than four core bonds (the vertices)."""
    atoms = qd.build_qd(material, diameter, ligand='H', shape=shape)
    check_qd(atoms, material)
    assert passivation.net_charge(atoms) == 0
    core = check_size_and_spacing(atoms, material, diameter)
    assert passivation.net_charge(core) < 0 and (atoms.arrays['qd_role'] == 'ligand').sum() >= 1
    bond = nearest_neighbour_distance(material)
    facing = 'tetrahedron' in shape
    assert atoms.info['qd_build'].get('stoichiometry') == ('swapped' if facing else None)
    if shape == 'tetrahedron':
        cn = shapes.bond_counts(core.positions, 1.1 * bond)
        assert int(((core.arrays['qd_role'] == 'cation') & (cn < 4)).sum()) == 4


@pytest.mark.parametrize('material, shape, diameter', [('CdSe', 'tetrahedron', 28.0), ('ZnSe', 'tetrahedron', 30.0),
                                                       ('CdS', 'truncated_tetrahedron', 27.0)])
def test_hydrogen_tetrahedra_are_deterministic_and_rebuild(material, shape, diameter):
    first = qd.build_qd(material, diameter, ligand='H', shape=shape)
    second = qd.build_qd(material, diameter, ligand='H', shape=shape)
    assert first.get_chemical_symbols() == second.get_chemical_symbols()
    assert np.array_equal(first.positions, second.positions)
    carve = first.info['qd_build']
    explicit = qd.build_qd(material, carve['carve_diameter'], ligand='H', shape=shape, center=carve['center'],
                           trim=carve['trim'], stoichiometry=carve['stoichiometry'])
    assert np.array_equal(explicit.positions, first.positions)


def test_swapped_gives_the_other_orientation():
    """``stoichiometry='swapped'`` with H gives the cation-terminated tetrahedron (as built before the ligand-facing
    rule); X-type ligands keep the cation-terminated orientation without a recorded stoichiometry."""
    other = qd.build_qd('CdSe', 20.0, ligand='H', shape='tetrahedron', stoichiometry='swapped')
    assert other.info['qd_build']['stoichiometry'] == 'default'
    assert other.get_chemical_formula() == 'H4Cd50Se52'
    chloride = qd.build_qd('CdSe', 20.0, ligand='Cl', shape='tetrahedron')
    assert 'stoichiometry' not in chloride.info['qd_build']
    assert not autocore.ligand_facing_swap('CdSe', 'tetrahedron', 'cation')
    assert not autocore.ligand_facing_swap('CdSe', 'sphere', 'anion')
    assert not autocore.ligand_facing_swap('PbS', 'tetrahedron', 'anion')
    assert autocore.ligand_facing_swap('ZnS', 'truncated_tetrahedron', 'anion')


def test_explicit_centres_keep_the_cation_terminated_tetrahedron():
    """An explicit centre carves as before (no orientation rule): the cation-centred 3.0 nm (circumscribed)
    tetrahedron is the cation-rich Cd31Se20, which H cannot neutralise; swapped it is Se-rich."""
    with pytest.raises(ValueError, match='cannot reach charge 0 on Cd31Se20 with H'):
        qd.build_qd('CdSe', 30.0, ligand='H', shape='tetrahedron', center='cation')
    swapped = qd.build_qd('CdSe', 30.0, ligand='H', shape='tetrahedron', center='cation', stoichiometry='swapped')
    assert swapped.get_chemical_formula() == 'H22Cd20Se31'
    assert 'stoichiometry' not in swapped.info['qd_build']
