"""Builder calcfunctions: StructureData with roles/domains, queryable recipes, tags found through provenance."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common import LinkType
from aiida.engine import calcfunction

from aiida_qdtraps.builder.qd import build_qd as build_qd_atoms
from aiida_qdtraps.workchains import build
from aiida_qdtraps.workchains.build import build_qd_structure, center_in_box

RECIPE = {'material': 'InAs', 'diameter': 16.0, 'ligand': 'Cl', 'center': 'cation', 'shape': 'sphere',
          'seed': 2, 'vacuum': 4.0}


@pytest.fixture
def inas_qd(aiida_profile):
    return build.build_qd(orm.Dict(dict(RECIPE, ligand='H', seed=12345)))


def test_build_qd_stores_roles_domains_and_a_queryable_recipe(inas_qd):
    structure = inas_qd
    assert structure.is_stored and {kind.name for kind in structure.kinds} == {'In', 'As', 'H'}
    roles, domains = build.get_roles(structure), build.get_domains(structure)
    assert len(roles) == len(domains) == len(structure.sites)
    symbols = [site.kind_name for site in structure.sites]
    assert {s for s, r in zip(symbols, roles) if r == 'ligand'} == {'H'}
    assert set(domains) == {'core', 'ligand'}
    qb = orm.QueryBuilder()
    qb.append(orm.Dict, filters={'attributes.material': 'InAs', 'attributes.diameter': {'>': 15.0},
                                 'attributes.seed': 12345}, tag='recipe')
    qb.append(orm.CalcFunctionNode, with_incoming='recipe', filters={'attributes.function_name': 'build_qd'},
              tag='f')
    qb.append(orm.StructureData, with_incoming='f', project='uuid')
    assert structure.uuid in qb.all(flat=True)
    assert all(orm.load_node(uuid).creator.inputs.recipe['seed'] == 12345 for uuid in qb.all(flat=True))


def test_vacancy_shell_and_reconstruction_chain_provenance(aiida_profile):
    core = build.build_qd(orm.Dict(RECIPE | {'ligand': 'H'}))
    vacant = build.make_vacancy(core, orm.Dict({'kind': 'ligand', 'site': 0, 'neutralize': False}))
    assert len(vacant.sites) == len(core.sites) - 1
    assert vacant.base.attributes.get('qd_vacancy')['removed'] == 'H'
    grown = build.grow_shell(core, orm.Dict({'core_material': 'InAs', 'shell_material': 'CdSe', 'monolayers': 2,
                                             'interlayer': 'alloyed', 'ligand': 'Cl', 'seed': 1}))
    domains = build.get_domains(grown)
    assert set(domains) >= {'core', 'interlayer', 'shell'}
    assert domains.count('core') == build.get_domains(core).count('core')
    # provenance: grown ← grow_shell ← core ← build_qd ← recipe
    assert grown.creator.inputs.structure.uuid == core.uuid
    assert core.creator.inputs.recipe['material'] == 'InAs'
    rebuilt = build.reconstruct_surface(core, orm.Dict({'fraction': 0.5, 'facet': None, 'charge': 0}))
    assert build.get_roles(rebuilt).count('anion') < build.get_roles(core).count('anion')
    assert rebuilt.get_formula().count('Cl') or 'Cl' in rebuilt.get_kind_names()


def test_tags_follow_boxing_and_a_relaxation_through_provenance(inas_qd, aiida_localhost):
    boxed = center_in_box(inas_qd, orm.Float(6.0))
    assert boxed.base.attributes.get('qd_domains') == build.get_domains(inas_qd)  # copied by center_in_box
    # a CP2K-like relaxation: output_structure ← CalcJob ← input structure (no tags on the output)
    calc = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:cp2k')
    calc.set_option('resources', {'num_machines': 1})
    calc.base.links.add_incoming(boxed, LinkType.INPUT_CALC, 'structure')
    calc.store()
    relaxed = orm.StructureData(ase=boxed.get_ase())
    relaxed.set_extra('moved', True)
    relaxed.base.links.add_incoming(calc, LinkType.CREATE, 'output_structure')
    relaxed.store()
    assert relaxed.base.attributes.get('qd_roles', None) is None
    assert build.get_roles(relaxed) == build.get_roles(inas_qd)
    assert build.get_domains(relaxed) == build.get_domains(inas_qd)
    lonely = orm.StructureData(ase=boxed.get_ase()).store()
    assert build.get_roles(lonely) is None
    assert list(build.to_atoms(lonely).arrays['qd_role']) == build.get_roles(inas_qd)  # inferred from elements


@calcfunction
def reverse_atoms(structure: orm.StructureData) -> orm.StructureData:
    """The same atoms in reverse order (no tags)."""
    return orm.StructureData(ase=structure.get_ase()[::-1])


def test_tags_of_an_ancestor_in_another_atom_order_are_not_inherited(inas_qd):
    """Per-site tags only pass to a descendant with the same element on every site: a reordered copy of the QD has
    as many sites but would get every role at the wrong atom."""
    reordered = reverse_atoms(inas_qd)
    assert len(reordered.sites) == len(inas_qd.sites)
    assert build.get_roles(reordered) is None and build.get_domains(reordered) is None
    assert list(build.to_atoms(reordered).arrays['qd_role']) == build.get_roles(inas_qd)[::-1]  # inferred


def test_build_qd_structure_keeps_the_tiny_demo_cluster(aiida_profile):
    tiny = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion', 'vacuum': 2.5,
            'min_core_bonds': 1}  # TINY_QD_RECIPE of tests/conftest.py: the CP2K tests' and the demo's cluster
    structure = build_qd_structure(orm.Dict(tiny))
    reference = build_qd_atoms(**tiny)
    assert structure.get_formula() == 'F9In4P' and len(structure.sites) == 14
    assert np.allclose(structure.get_ase().positions, reference.positions)
    assert build.get_roles(structure) == ['cation', 'anion'] + ['cation'] * 3 + ['ligand'] * 9


def test_import_structure_infers_roles(aiida_profile, tmp_path):
    atoms = build_qd_atoms('CdSe', 13.25, ligand='H', center='cation', min_core_bonds=1)
    path = tmp_path / 'cluster.xyz'
    atoms.write(path, format='xyz')
    structure = build.import_structure(orm.SinglefileData(str(path)), orm.Dict({}))
    assert build.get_roles(structure) == list(atoms.arrays['qd_role'])
    assert len(structure.sites) == len(atoms) and structure.cell[0][0] > 0


def test_bad_recipe_fails_the_calcfunction_with_the_message(aiida_profile):
    with pytest.raises(ValueError, match=r"unknown recipe key\(s\) \['size'\]"):
        build.build_qd(orm.Dict({'material': 'InP', 'size': 2.0}))


@pytest.mark.parametrize('recipe, formula', [
    ({'material': 'CdSe', 'model': 'Cd28Se17Cl22', 'arrangement': 1}, 'Cd28Cl22Se17'),
    ({'material': 'CsPbBr3', 'diameter': 17.6, 'shape': 'cube', 'termination': 'PbBr2'}, 'Br62Cs8Pb27'),
])
def test_build_qd_records_models_and_nanocubes(aiida_profile, recipe, formula):
    structure = build.build_qd(orm.Dict(recipe))
    assert structure.get_formula() == formula
    assert structure.creator.inputs.recipe.get_dict() == recipe
    assert len(build.get_roles(structure)) == len(structure.sites)
    built = structure.base.attributes.get('qd_build')
    assert built.get('model') == recipe.get('model') and built['core_diameter'] > 0
