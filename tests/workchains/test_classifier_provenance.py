"""Walks from a classifier sample back to the build recipe, for QDs from either build calcfunction: ``build_qd``
(what ``qdtraps build --store`` and the builder work chains use) and the older ``build_qd_structure``."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from aiida import orm
from aiida.engine import calcfunction, run_get_node

from aiida_qdtraps.workchains.build import build_qd, build_qd_structure
from aiida_qdtraps.workchains.classifier import library_summary, trace_sample
from aiida_qdtraps.workchains.mo_window import extract_mo_window
from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain

PBE0 = 'cp2k/pbe0_success'
#: The recipe of the recorded PBE0 run's In4PF9 (``TINY_QD_RECIPE`` of tests/conftest.py).
RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion', 'vacuum': 2.5,
          'min_core_bonds': 1}
BUILDERS = {'build_qd': build_qd, 'build_qd_structure': build_qd_structure}


@calcfunction
def recorded_geometry(structure: orm.StructureData, xyz: orm.SinglefileData) -> orm.StructureData:
    """The geometry the recorded PBE0 ran on (the built In4PF9 in another atom order): the step between the built
    structure and the SCF, as a relax or a re-boxing would be."""
    with xyz.as_path() as path:
        return orm.StructureData(ase=ase.io.read(path))


@calcfunction
def train_classifier(dataset: orm.ArrayData) -> dict:
    """Stands in for the real ``train_classifier`` (same process label and ``dataset`` input) to keep the test fast."""
    return {'model': orm.SinglefileData.from_string('{}', filename='model.json')}


@pytest.fixture(params=sorted(BUILDERS))
def labelled_library(request, aiida_profile_clean, data_dir, generate_cp2k_calc):
    """A Group with one finished ``TrapLabelingWorkChain`` whose SCF structure descends from a build calcfunction;
    returns the group label and the nodes of the chain."""
    built = BUILDERS[request.param](orm.Dict(RECIPE))
    scf_structure = recorded_geometry(built, orm.SinglefileData(data_dir / PBE0 / 'qd.xyz'))
    pbe0 = generate_cp2k_calc({'aiida-MOS-1_0.molden': data_dir / PBE0 / 'aiida-MOS-1_0.molden'},
                              input_structure=scf_structure)
    window = extract_mo_window(pbe0.outputs.retrieved, orm.Dict({'occupied': 30, 'virtual': 10}))['mo_window']
    results, labeling = run_get_node(TrapLabelingWorkChain, structure=scf_structure, mo_window=window,
                                     protocol=orm.Str('fast'), plots=orm.Bool(False))
    assert labeling.is_finished_ok, labeling.exit_message
    group = orm.Group(label=f'library-{request.param}').store()
    group.add_nodes(labeling)
    return group.label, {'built': built, 'scf_structure': scf_structure, 'pbe0': pbe0,
                         'atom_labels': results['atom_labels']}


def test_trace_sample_reaches_the_recipe(labelled_library):
    _, nodes = labelled_library
    dataset = orm.ArrayData()
    dataset.set_array('y', np.array([1, 0]))
    dataset.set_array('atom_index', np.array([0, 1]))
    dataset.set_array('source_uuid', np.array([nodes['atom_labels'].uuid] * 2))
    model = train_classifier(dataset)['model']
    trace = trace_sample(model)
    assert trace['row'] == 0 and trace['atom'] == 0
    for key in ('atom_labels', 'pbe0', 'scf_structure', 'built'):
        assert trace[key].uuid == nodes[key].uuid, key
    assert trace['recipe'].uuid == nodes['built'].creator.inputs.recipe.uuid
    assert trace['recipe']['material'] == 'InP'


def test_library_summary_names_the_built_structure(labelled_library):
    group, nodes = labelled_library
    [row] = library_summary(group)
    assert row['atom_labels'] == nodes['atom_labels'].uuid
    assert row['built_structure'] == nodes['built'].uuid
    assert row['pbe0_calculation'] == nodes['pbe0'].uuid
    assert row['material'] == 'InP' and row['vacancy'] is None and row['n_atoms'] == 14
