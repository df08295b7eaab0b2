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


def _calcjob(computer, inputs: dict, process_type='aiida.calculations:cp2k'):
    calc = orm.CalcJobNode(computer=computer, process_type=process_type)
    calc.set_option('resources', {'num_machines': 1})
    for label, node in inputs.items():
        calc.base.links.add_incoming(node.store(), LinkType.INPUT_CALC, label)
    return calc.store()


def _output(node, creator, label):
    node.base.links.add_incoming(creator, LinkType.CREATE, label)
    return node.store()


@pytest.fixture
def mlff_dataset(aiida_profile_clean, aiida_localhost):
    """An MLFF dataset of three training frames: one of the initial CP2K MD, one an MLFF MD at 450 K visited and one a
    model relaxation visited, both picked by a ``select_candidates`` calcfunction; and a label of a structure that no
    selection picked."""
    atoms = build_qd(orm.Dict(RECIPE)).get_ase()
    md = _calcjob(aiida_localhost, {'parameters': orm.Dict({'GLOBAL': {'RUN_TYPE': 'MD'},
                                                            'MOTION': {'MD': {'TEMPERATURE': 300.0}}})})
    selector = orm.CalcFunctionNode()
    selector.set_process_label('select_candidates')
    for name, parameters in (('md_0', {'temperature_K': 450.0}), ('md_1', {'mode': 'relax', 'temperature_K': 300.0})):
        mlff_md = _calcjob(aiida_localhost, {'parameters': orm.Dict(parameters)}, 'aiida.calculations:qdtraps.mlff_md')
        trajectory = _output(orm.TrajectoryData([orm.StructureData(ase=atoms)]), mlff_md, 'trajectory')
        selector.base.links.add_incoming(trajectory, LinkType.INPUT_CALC, name)
    selector.store()
    _output(orm.Dict({'selected': [{'trajectory': 'md_1', 'frame': 4, 'max_devi_f': 0.21},
                                   {'trajectory': 'md_0', 'frame': 7, 'max_devi_f': 0.35}]}), selector, 'statistics')
    labels = []
    for n in range(2):
        candidate = _output(orm.StructureData(ase=atoms), selector, f'candidate_{n:03d}')
        labels.append(_calcjob(aiida_localhost, {'parameters': orm.Dict({'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}}),
                                                  'structure': candidate}))
    stray = _calcjob(aiida_localhost, {'parameters': orm.Dict({'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}}),
                                       'structure': orm.StructureData(ase=atoms)})
    dataset = orm.FolderData()
    dataset.base.attributes.set('frame_sources', {'training/F9In4P1': [md.uuid, labels[1].uuid, labels[0].uuid],
                                                  'validation/F9In4P1': [md.uuid]})
    return {'dataset': dataset.store(), 'md': md, 'labels': labels, 'stray': stray}


def test_why_each_mlff_frame_was_labelled(mlff_dataset):
    md, labels = mlff_dataset['md'], mlff_dataset['labels']
    assert provenance.dataset_frame_origins(mlff_dataset['dataset']) == [
        provenance.FrameOrigin('initial MD', 300.0, None, md.uuid),
        provenance.FrameOrigin('MLFF MD', 450.0, 0.35, labels[1].uuid),
        provenance.FrameOrigin('MLFF relax', None, 0.21, labels[0].uuid)]
    assert provenance.dataset_frame_origins(mlff_dataset['dataset'], 'validation') == [
        provenance.FrameOrigin('initial MD', 300.0, None, md.uuid)]
    with pytest.raises(ValueError, match=r"no 'test' frames \(parts: \['training', 'validation'\]\)"):
        provenance.dataset_frame_origins(mlff_dataset['dataset'], 'test')
    stray = mlff_dataset['stray']
    with pytest.raises(ValueError, match=rf'^CalcJob<{stray.pk}>: its structure was not picked by select_candidates '
                                         r'\(created by no process\)$'):
        provenance.frame_origin(stray)
