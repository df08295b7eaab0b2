"""The pipeline's answer to a window without a band-like conduction state: the PBE0 again from its own wavefunction
with more virtual MOs, at most twice; run step by step on a recorded PBE0 window, with the CP2K work chains mocked."""

from __future__ import annotations

import ase.io
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.mo_window import extract_mo_window
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain
from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain

PBE0 = 'cp2k/pbe0_success'


def labelling_of(data_dir, virtual: int):
    """(structure, TrapLabelingWorkChain node) of the recorded In4PF9 PBE0 with a window of ``virtual`` virtual MOs;
    its CBM is the 4th virtual MO (docs/traps.md), so 3 hold no band-like conduction state."""
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_file(str(data_dir / PBE0 / 'aiida-MOS-1_0.molden'),
                                                   'aiida-MOS-1_0.molden')
    retrieved.store()
    window = extract_mo_window(retrieved, orm.Dict({'occupied': 10, 'virtual': virtual}))['mo_window']
    structure = orm.StructureData(ase=ase.io.read(data_dir / PBE0 / 'qd.xyz')).store()
    _, node = run_get_node(TrapLabelingWorkChain, structure=structure, mo_window=window, plots=orm.Bool(False))
    return structure, window, node


@pytest.fixture
def fake_hybrid(process_nodes, aiida_localhost, tmp_path):
    """``fake_hybrid(structure, window, n_ao=200, homo_index=59)``: a finished HybridScfWorkChain node with the
    outputs the pipeline reads."""
    def make(structure, window, n_ao=200, homo_index=59) -> orm.WorkflowNode:
        return process_nodes.workflow(
            'qdtraps.hybrid_scf', structure=structure, mo_window=window,
            remote_folder=orm.RemoteData(computer=aiida_localhost, remote_path=str(tmp_path)),
            output_parameters=orm.Dict({'n_ao': n_ao, 'homo_index': homo_index, 'gap_ev': 2.3}))
    return make


@pytest.fixture
def pipeline(generate_workchain, recorded_cp2k_code, tiny_qd, monkeypatch):
    """The fast pipeline of In4PF9 (window 10 + 10, ADDED_MOS 12) stepped to its PBE0, submissions recorded."""
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast')
    process = generate_workchain(QdTrapsPipelineWorkChain, builder._inputs(prune=True))
    submitted = []
    monkeypatch.setattr(process, 'submit',
                        lambda cls, **inputs: submitted.append((cls, inputs)) or orm.WorkflowNode().store())
    return process, submitted


def test_no_conduction_edge_runs_the_pbe0_again_with_twice_the_virtual_mos(pipeline, data_dir, fake_hybrid):
    process, submitted = pipeline
    structure, window, failed = labelling_of(data_dir, virtual=3)
    assert failed.exit_status == TrapLabelingWorkChain.exit_codes.ERROR_NO_CONDUCTION_EDGE.status
    assert 'no band-like conduction state in the MO window of 13 MOs (10 occupied)' in failed.exit_message

    process.ctx.labeled, process.ctx.add_virtuals, process.ctx.virtual_attempts = False, False, 0
    process.ctx.scf_parameters = process.inputs.hybrid_scf.scf.cp2k.parameters
    process.ctx.mo_window = process.inputs.hybrid_scf.mo_window.get_dict()
    first = fake_hybrid(structure, window)
    process.ctx.hybrid_scf, process.ctx.labeling = first, failed

    assert process.inspect_labeling() is None and process.should_label() and process.should_add_virtuals()
    process.run_more_virtuals()
    cls, inputs = submitted[-1]
    assert cls is HybridScfWorkChain
    assert inputs['mo_window'].get_dict() == {'occupied': 10, 'virtual': 20}
    parameters = inputs['scf']['cp2k']['parameters']
    assert parameters['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == 22  # 2 × 10 + fast's margin of 2
    assert parameters.creator.process_label == 'update_cp2k_parameters'  # the change is in the provenance
    assert inputs['parent_calc_folder'].uuid == first.outputs.remote_folder.uuid  # its own wavefunction
    assert inputs['structure'].uuid == structure.uuid and 'box_vacuum' not in inputs
    assert inputs['metadata']['call_link_label'] == 'hybrid_scf_more_virtuals_1'
    assert not process.should_add_virtuals()

    process.ctx.hybrid_scf = fake_hybrid(structure, window)
    assert process.inspect_labeling() is None
    process.run_more_virtuals()
    assert submitted[-1][1]['mo_window']['virtual'] == 40
    assert submitted[-1][1]['scf']['cp2k']['parameters']['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == 42

    process.ctx.hybrid_scf = fake_hybrid(structure, window)
    exit_code = process.inspect_labeling()  # the cap: two more-virtual runs
    assert exit_code.status == QdTrapsPipelineWorkChain.exit_codes.ERROR_LABELING_FAILED.status
    assert 'after 2 PBE0 runs with more virtual MOs' in exit_code.message
    assert len(submitted) == 2


def test_a_window_holding_every_virtual_mo_or_another_failure_ends_the_pipeline(pipeline, data_dir, fake_hybrid):
    process, submitted = pipeline
    structure, window, failed = labelling_of(data_dir, virtual=3)
    process.ctx.labeled, process.ctx.add_virtuals, process.ctx.virtual_attempts = False, False, 0
    process.ctx.scf_parameters = process.inputs.hybrid_scf.scf.cp2k.parameters
    process.ctx.mo_window = {'occupied': 10, 'virtual': 10}
    process.ctx.hybrid_scf = fake_hybrid(structure, window, n_ao=70, homo_index=59)
    process.ctx.labeling = failed
    exit_code = process.inspect_labeling()
    assert exit_code.status == 403 and 'already holds all 10 virtual MOs of the basis' in exit_code.message

    _, _, other = labelling_of(data_dir, virtual=10)
    other_structure = orm.StructureData(ase=structure.get_ase()[:-1]).store()
    _, refused = run_get_node(TrapLabelingWorkChain, structure=other_structure, mo_window=other.inputs.mo_window,
                              plots=orm.Bool(False))
    assert refused.exit_status == TrapLabelingWorkChain.exit_codes.ERROR_LABELING_FAILED.status
    process.ctx.labeling = refused
    assert process.inspect_labeling().status == 403
    assert submitted == []


def test_labels_found_end_the_loop(pipeline, data_dir):
    process, _ = pipeline
    _, _, done = labelling_of(data_dir, virtual=10)
    assert done.is_finished_ok, done.exit_message
    process.ctx.labeled, process.ctx.add_virtuals, process.ctx.labeling = False, False, done
    assert process.inspect_labeling() is None
    assert not process.should_label() and not process.should_add_virtuals()
