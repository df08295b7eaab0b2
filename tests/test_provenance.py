"""aiida_qdtraps.provenance on small stored graphs: build → vacancy → box → relax CalcJob, and an MO window."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common import LinkType

from aiida_qdtraps import provenance
from aiida_qdtraps.workchains.build import build_qd, center_in_box, make_vacancy

RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion', 'vacuum': 2.5,
          'min_core_bonds': 1}


@pytest.fixture
def lineage(aiida_profile_clean, aiida_localhost):
    """built ← build_qd(recipe); vacant ← make_vacancy(built); boxed ← center_in_box(vacant); relaxed ← CalcJob."""
    built = build_qd(orm.Dict(RECIPE))
    vacant = make_vacancy(built, orm.Dict({'kind': 'ligand', 'site': 0}))
    boxed = center_in_box(vacant, orm.Float(3.0))
    relax = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:cp2k')
    relax.set_option('resources', {'num_machines': 1})
    relax.base.links.add_incoming(boxed, LinkType.INPUT_CALC, 'structure')
    relax.store()
    relaxed = orm.StructureData(ase=boxed.get_ase())
    relaxed.base.links.add_incoming(relax, LinkType.CREATE, 'output_structure')
    relaxed.store()
    return {'built': built, 'vacant': vacant, 'boxed': boxed, 'relax': relax, 'relaxed': relaxed}


def test_ancestors_nearest_first_and_same_atoms_only(lineage):
    chain = [lineage[key].uuid for key in ('relaxed', 'boxed', 'vacant', 'built')]
    assert [s.uuid for s in provenance.ancestor_structures(lineage['relaxed'])] == chain
    assert [s.uuid for s in provenance.ancestor_structures(lineage['relaxed'], same_atoms=True)] == chain[:3]
    assert [s.uuid for s in provenance.parent_structures(lineage['relaxed'])] == [lineage['boxed'].uuid]
    assert provenance.parent_structures(lineage['built']) == []


def test_build_of_reaches_the_recipe_through_vacancy_box_and_relax(lineage):
    for key in ('built', 'vacant', 'boxed', 'relaxed'):
        build = provenance.build_of(lineage[key])
        assert build.calcfunction.process_label in provenance.BUILD_FUNCTIONS
        assert build.structure.uuid == lineage['built'].uuid
        assert build.recipe.get_dict() == RECIPE
    assert provenance.build_of(orm.StructureData(ase=lineage['built'].get_ase()).store()) is None


def test_geometry_origin_and_tags(lineage):
    assert provenance.geometry_origin(lineage['relaxed']).uuid == lineage['relax'].uuid
    assert provenance.geometry_origin(lineage['boxed']).process_label == 'build_qd'  # one-structure steps walked
    vacant_roles = lineage['vacant'].base.attributes.get(provenance.ROLE_ATTRIBUTE)
    assert lineage['relaxed'].base.attributes.get(provenance.ROLE_ATTRIBUTE, None) is None
    assert provenance.roles(lineage['relaxed']) == vacant_roles
    assert provenance.domains(lineage['relaxed']) == lineage['vacant'].base.attributes.get('qd_domains')
    assert provenance.tags(lineage['relaxed'], 'no_such_tags') is None


def test_scf_calcjob_and_labeling_refuse_other_nodes(aiida_profile_clean):
    window = orm.ArrayData().store()
    assert provenance.scf_calcjob(window) is None
    with pytest.raises(ValueError, match=r'ArrayData<\d+> is not a trap labeling'):
        provenance.labeling(window)
