"""The active-learning loop end to end with real engines: CP2K labels, DeePMD training, MLFF MD (protocol ``fast``)."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from aiida import orm
from aiida.cmdline.utils.common import get_workchain_report
from aiida.engine import run_get_node

from aiida_qdtraps.analysis.mlff import HARTREE_EV
from aiida_qdtraps.profile import DP_THREADS
from aiida_qdtraps.workchains.mlff import MlffActiveLearningWorkChain


@pytest.fixture
def dp_python(aiida_code_installed):
    """The venv Python (deepmd-kit + ase) that runs the training and MD scripts, one thread."""
    return aiida_code_installed(label='dp-python', default_calc_job_plugin='qdtraps.deepmd.train',
                                filepath_executable=sys.executable, prepend_text=DP_THREADS)


@pytest.mark.slow
def test_active_learning_two_iterations(cp2k_code, dp_python, tiny_qd):
    """2 iterations on In4PF9: 2 rattled + 1 selected CP2K labels, 2 models per iteration, parity plot, provenance."""
    builder = MlffActiveLearningWorkChain.get_builder_from_protocol(cp2k_code, dp_python, dp_python, tiny_qd,
                                                                    protocol='fast')
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message, get_workchain_report(node, 'REPORT'))

    rows = results['iterations']['iterations']
    assert [row['iteration'] for row in rows] == [1, 2]
    assert all(row['n_frames'] == 11 and row['n_selected'] == 1 and row['candidate'] == 1.0 for row in rows)
    assert all(np.isfinite(row['force_mae']) for row in rows)
    assert len(results['models']) == 2
    assert results['parity_plot'].get_content('rb')[:8] == b'\x89PNG\r\n\x1a\n'

    # 2 initial frames + 1 selected in iteration 1 (none after the last training); frame 0 held out for validation.
    dataset = results['dataset']
    sources = dataset.base.attributes.get('frame_sources')
    assert {name: len(uuids) for name, uuids in sources.items()} == {'training/F9In4P1': 2, 'validation/F9In4P1': 1}

    # Walk the frame selected by the MD back to the CP2K calculation that labelled it.
    uuid = sources['training/F9In4P1'][-1]
    calc, _ = (
        orm.QueryBuilder()
        .append(orm.CalcJobNode, filters={'uuid': uuid}, tag='calc', project='*')
        .append(orm.FolderData, with_incoming='calc', edge_filters={'label': 'retrieved'}, tag='retrieved')
        .append(orm.CalcFunctionNode, with_incoming='retrieved', filters={'attributes.function_name': 'grow_dataset'},
                tag='grow', project='*')
        .append(orm.FolderData, with_incoming='grow', filters={'uuid': dataset.uuid})
        .one()
    )
    assert calc.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY_FORCE'
    energies = np.load(io.BytesIO(dataset.base.repository.get_object_content(
        'training/F9In4P1/set.000/energy.npy', mode='rb')))
    assert energies[-1] == pytest.approx(calc.outputs.output_parameters['energy'] * HARTREE_EV, abs=1e-6)
    forces = np.load(io.BytesIO(dataset.base.repository.get_object_content(
        'training/F9In4P1/set.000/force.npy', mode='rb')))
    assert forces.shape == (2, 14 * 3) and np.abs(forces).max() < 50

    report = get_workchain_report(node, 'REPORT')
    assert 'iteration 2: 11 MD frames' in report and 'validation MAE' in report
