"""The builder over a table of material × shape × size: exact charge, pruned core, physical distances, right bonds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from aiida_qdtraps.builder import passivation, qd, shapes
from aiida_qdtraps.builder.crystal import MATERIALS

#: material × shape × two sizes (Å) with the carve centre whose core the ligands can bring to charge 0
#: (a cation-rich core takes Cl, an anion-rich one H; some cores, e.g. GaP sphere 3.0 nm, have too few free sites).
_SIZES = {'tetrahedron': ((22, 'cation'), (26, 'anion')), 'truncated_tetrahedron': ((22, 'cation'), (26, 'cation'))}
_EXCEPTIONS = {('InAs', 'tetrahedron'): ((22, 'cation'), (30, 'anion')),
               ('CdSe', 'tetrahedron'): ((22, 'cation'), (30, 'anion')),
               ('InAs', 'truncated_tetrahedron'): ((22, 'cation'), (26, 'anion')),
               ('CdSe', 'truncated_tetrahedron'): ((22, 'cation'), (26, 'anion'))}
TABLE = [(m, s, float(d), c) for m in MATERIALS for s in shapes.SHAPES
         for d, c in _EXCEPTIONS.get((m, s), _SIZES.get(s, ((22, 'cation'), (26, 'anion' if s == 'cube' and m in (
             'InAs', 'CdSe', 'PbS', 'PbSe') else 'cation'))))]


def test_table_covers_every_material_and_shape():
    assert {(m, s) for m, s, _, _ in TABLE} == {(m, s) for m in MATERIALS for s in shapes.SHAPES}
    assert all(len({d for m, s, d, _ in TABLE if (m, s) == key}) == 2 for key in {(m, s) for m, s, _, _ in TABLE})


@pytest.mark.parametrize('material, shape, diameter, center', TABLE, ids=[f'{m}-{s}-{d:g}' for m, s, d, _ in TABLE])
def test_table_exact_charge_pruned_core_physical_distances(material, shape, diameter, center, check_qd):
    core = shapes.carve_core(material, diameter, shape, center=center)
    ligand = 'Cl' if passivation.net_charge(core) >= 0 else 'H'  # X-type for cation-rich, H for anion-rich cores
    atoms = qd.build_qd(material, diameter, ligand=ligand, shape=shape, center=center)
    roles = check_qd(atoms, material)
    assert (roles == 'ligand').sum() == abs(passivation.net_charge(core))
    assert set(atoms.arrays['qd_domain']) <= {'core', 'ligand'}
    # the core is the carved one, untouched, before the ligands
    assert atoms.get_chemical_symbols()[:len(core)] == core.get_chemical_symbols()


@pytest.mark.parametrize('ligand, charge', [('F', 0), ('Br', 2), ('I', -1), ('OAc', 0)])
def test_charge_targets_and_ligands(ligand, charge, check_qd):
    atoms = qd.build_qd('InP', 20.0, ligand=ligand, charge=charge, center='cation')
    check_qd(atoms, 'InP', charge)
    if ligand == 'OAc':
        report = qd.describe(atoms)
        n_acetate = atoms.get_chemical_symbols().count('C') // 2
        assert report.domains['ligand'] == f'C{2 * n_acetate}H{3 * n_acetate}O{2 * n_acetate}'
        assert n_acetate == 33 - charge


def test_shapes_have_their_facets():
    """A cube has only {100} facets: its cation-centred core is symmetric under x → -x and its extent is a cube."""
    cube = shapes.carve_core('PbS', 30.0, 'cube', 'cation')
    extent = cube.positions.max(0) - cube.positions.min(0)
    assert np.allclose(extent, extent[0])
    assert np.allclose(np.sort(cube.positions[:, 0]), np.sort(-cube.positions[:, 0]))
    sphere = shapes.carve_core('InP', 30.0, 'sphere', 'anion')
    assert np.linalg.norm(sphere.positions, axis=1).max() <= 15.0 + 1e-6
    tetra = shapes.carve_core('InP', 34.0, 'tetrahedron', 'cation')
    truncated = shapes.carve_core('InP', 34.0, 'truncated_tetrahedron', 'cation')
    assert len(truncated) > len(tetra)
    # the tetrahedron's facets are normal to the cation-bond directions: no atom beyond the inradius plane
    h = (tetra.positions @ np.array([1, 1, 1]) / np.sqrt(3)).max()
    assert h < 34.0 / 2 / 3 + 1e-6


def test_center_interstitial_has_no_atom_at_origin():
    core = shapes.carve_core('CdSe', 20.0, 'sphere', 'interstitial')
    assert np.linalg.norm(core.positions, axis=1).min() > 2.0


def test_arrangements_differ_but_stay_even():
    first = qd.build_qd('InP', 20.0, ligand='F', center='cation')
    other = qd.build_qd('InP', 20.0, ligand='F', center='cation', arrangement=3)
    assert first.get_chemical_formula() == other.get_chemical_formula()
    assert not np.allclose(first.positions, other.positions)
    for atoms in (first, other):
        owners = cKDTree(atoms.positions[atoms.arrays['qd_role'] == 'cation']).query(
            atoms.positions[atoms.arrays['qd_role'] == 'ligand'])[1]
        counts = np.bincount(owners)
        assert counts.max() <= 2  # 33 F over 48 surface In: never 3 on one In


@pytest.mark.parametrize('kwargs, error, message', [
    ({'material': 'InSb', 'diameter': 20}, ValueError, r"unknown material 'InSb'; known: \['CdS'"),
    ({'material': 'InP', 'diameter': 20, 'shape': 'dodecahedron'}, ValueError, "unsupported shape 'dodecahedron'"),
    ({'material': 'InP', 'diameter': 8, 'shape': 'tetrahedron', 'center': 'cation'}, ValueError,
     r'diameter 8 Å is too small .* use at least 2\d\.\d Å'),
    ({'material': 'InP', 'diameter': 20, 'center': 'cation', 'charge': 40}, ValueError,
     r'cannot reach charge 40 .* charges reachable with F: -27 to 33'),
    ({'material': 'InP', 'diameter': 20, 'center': 'cation', 'ligand': 'Cl', 'charge': 0.5}, TypeError,
     'charge must be an integer'),
    ({'material': 'InP', 'diameter': 20, 'ligand': 'SH'}, ValueError, r"unsupported ligand 'SH'; choose one of"),
    ({'material': 'InP', 'diameter': 20, 'lattice_constant': -1.0}, ValueError, 'lattice constant must be positive'),
    ({'material': 'InP', 'diameter': 20, 'center': 'cation', 'vacancy': 'dimer'}, ValueError,
     r"unknown vacancy kind 'dimer'; choose one of \['ligand', 'anion', 'cation', 'pair'\]"),
    ({'material': 'InP', 'diameter': 20, 'center': 'cation', 'shell': 'PbS'}, ValueError,
     r"shell 'PbS' \(rocksalt\) cannot grow epitaxially on a zincblende core"),
    ({'material': 'InP', 'diameter': 20, 'center': 'cation', 'shell': 'ZnSe', 'monolayers': 0}, ValueError,
     'monolayers must be an integer from 1 to 10'),
])
def test_bad_input_names_value_and_range(kwargs, error, message):
    with pytest.raises(error, match=message):
        qd.build_qd(**kwargs)


def test_recipe_keys_are_checked():
    with pytest.raises(ValueError, match=r"unknown recipe key\(s\) \['size'\]; allowed: \['material', 'diameter'"):
        qd.check_recipe({'material': 'InP', 'size': 2})
