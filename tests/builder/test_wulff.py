"""Wulff shapes from facet energies: which facets the polyhedron has (analytic thresholds), the known polyhedra as
special cases, exact charge with ``center='auto'``, determinism and refused input."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.builder import passivation, qd, shapes
from aiida_qdtraps.builder.crystal import TETRAHEDRAL


def _present_families(name):
    """The facet families with at least one face on the polyhedron ``name``, with their face counts."""
    normals, _ = shapes.SHAPE_FACETS[name]
    present = shapes.wulff_present(name)
    counts = {}
    for family, family_normals in shapes.WULFF_FAMILIES.items():
        match = np.isclose(normals @ family_normals.T, 1.0).any(axis=1) & present
        if match.any():
            counts[family] = int(match.sum())
    return counts


@pytest.mark.parametrize('facets, expected', [
    ({'100': 1.0}, {'100': 6}),                                         # cube
    ({'111': 1.0}, {'111': 4, '-1-1-1': 4}),                            # octahedron (both polar halves)
    ({'110': 1.0}, {'110': 12}),                                        # rhombic dodecahedron
    # a {111} facet appears below γ111/γ100 = √3 (it cuts the cube corner at distance √3 γ100)
    ({'100': 1.0, '111': 1.70}, {'100': 6, '111': 4, '-1-1-1': 4}),
    ({'100': 1.0, '111': 1.75}, {'100': 6}),
    # a {110} facet appears below γ110/γ100 = √2 (it cuts the cube edge at distance √2 γ100)
    ({'100': 1.0, '110': 1.40}, {'100': 6, '110': 12}),
    ({'100': 1.0, '110': 1.42}, {'100': 6}),
    ({'100': 1.0, '110': 1.0, '111': 1.0}, {'100': 6, '110': 12, '111': 4, '-1-1-1': 4}),
    # polar zincblende: the (111) tetrahedron truncated by (-1-1-1) below γ(-1-1-1)/γ(111) = 3
    ({'111': 1.0, '-1-1-1': 2.9}, {'111': 4, '-1-1-1': 4}),
    ({'111': 1.0, '-1-1-1': 3.1}, {'111': 4}),
])
def test_facet_normals_of_the_construct(facets, expected):
    name = shapes.wulff_shape(facets)
    assert _present_families(name) == expected
    normals, distances = shapes.SHAPE_FACETS[name]
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0)
    assert distances.min() == pytest.approx(1.0)


def test_signed_111_facets_follow_the_cation_bonds():
    name = shapes.wulff_shape({'111': 1.0, '-1-1-1': 2.0})
    normals, distances = shapes.SHAPE_FACETS[name]
    near = normals[distances == distances.min()]
    # the low-energy (111) facets are those along the cation -> anion bonds (cation-terminated)
    assert np.allclose(np.sort(near, axis=0), np.sort(TETRAHEDRAL, axis=0))


@pytest.mark.parametrize('facets, shape', [
    ({'111': 1.0, '-1-1-1': 5 / 3}, 'truncated_tetrahedron'),
    ({'100': 1.0}, 'cube'),
    ({'111': 1.0}, 'octahedron'),
    ({'100': 1.0, '111': 2 / np.sqrt(3)}, 'cuboctahedron'),
])
def test_known_polyhedra_are_special_wulff_shapes(facets, shape):
    wulff = shapes.carve_core('InAs', 25.0, shape='wulff', center='anion', facets=facets)
    plain = shapes.carve_core('InAs', 25.0, shape=shape, center='anion')
    assert wulff.get_chemical_symbols() == plain.get_chemical_symbols()
    assert np.allclose(wulff.positions, plain.positions)


@pytest.mark.parametrize('material, facets', [
    ('InP', None), ('CdSe', {'100': 1.0, '111': 0.9, '-1-1-1': 1.2}), ('PbS', None),
    ('GaP', {'100': 1.2, '110': 1.0, '111': 1.1}),
])
def test_wulff_qds_are_neutral_and_deterministic(material, facets, check_qd):
    atoms = qd.build_qd(material, 20.0, ligand='Cl', shape='wulff', facets=facets)
    check_qd(atoms, material)
    assert passivation.net_charge(atoms) == 0
    build = atoms.info['qd_build']
    assert abs(build['core_diameter'] - 20.0) <= 2.6 + 0.01
    kind = 'rocksalt' if material == 'PbS' else 'zincblende'
    expected = shapes.check_facets(shapes.DEFAULT_FACETS[kind] if facets is None else facets, kind)
    assert build['facets'] == expected
    again = qd.build_qd(material, 20.0, ligand='Cl', shape='wulff', facets=facets)
    assert again.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert np.array_equal(again.positions, atoms.positions)
    # the recorded carve rebuilds the same atoms with an explicit centre
    explicit = qd.build_qd(material, build['carve_diameter'], ligand='Cl', shape='wulff', facets=facets,
                           center=build['center'], trim=build['trim'])
    assert explicit.get_chemical_symbols() == atoms.get_chemical_symbols()


def test_default_rock_salt_energies_give_a_cube():
    # Fang et al. (PbSe): γ110/γ100 = 1.73 > √2 and γ111/γ100 = 1.78 > √3, so only {100} facets remain
    name = shapes.resolve_shape('wulff', None, 'PbS')
    assert _present_families(name) == {'100': 6}


def test_equal_energies_give_the_same_shape_name():
    assert shapes.wulff_shape({'100': 2, '111': 2.0}) == shapes.wulff_shape({'111': 2.0, '100': 2.0})


@pytest.mark.parametrize('kwargs, message', [
    ({'shape': 'wulff', 'facets': {'211': 1.0}}, "unknown facet family '211'"),
    ({'shape': 'wulff', 'facets': {'100': -1.0}}, 'facet 100 must be a positive number, got -1.0'),
    ({'shape': 'wulff', 'facets': {}}, 'facets must be a non-empty mapping'),
    ({'shape': 'sphere', 'facets': {'100': 1.0}}, "facets apply to shape 'wulff' only"),
])
def test_bad_facets_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        qd.build_qd('InP', 20.0, ligand='Cl', **kwargs)


def test_polar_facets_are_refused_on_rock_salt():
    with pytest.raises(ValueError, match='-1-1-1 is distinct from 111 on zincblende only'):
        qd.build_qd('PbS', 20.0, ligand='Cl', shape='wulff', facets={'111': 1.0, '-1-1-1': 2.0})


def test_the_build_calcfunction_stores_a_wulff_recipe(aiida_profile):
    from aiida import orm

    from aiida_qdtraps.workchains.build import build_qd

    facets = {'100': 1.0, '111': 0.9, '-1-1-1': 1.2}
    recipe = orm.Dict({'material': 'CdSe', 'diameter': 20.0, 'ligand': 'Cl', 'shape': 'wulff', 'facets': facets})
    structure = build_qd(recipe)
    assert structure.get_formula(mode='hill') == 'Cd68Cl32Se52'
    assert structure.base.attributes.get('qd_build')['facets'] == facets
    qb = orm.QueryBuilder().append(orm.Dict, filters={'attributes.facets.-1-1-1': 1.2}, tag='recipe')
    qb.append(orm.CalcFunctionNode, with_incoming='recipe', tag='build')
    qb.append(orm.StructureData, with_incoming='build')
    assert [node.uuid for node in qb.all(flat=True)] == [structure.uuid]
