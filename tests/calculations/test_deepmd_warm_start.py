"""A real warm start: DeepmdTrainCalculation with ``init_model`` (``dp --pt train --init-frz-model``) on real CP2K data.

The data are the 5 frames of the recorded CP2K NVT MD of In4PF9 (``tests/data/deepmd/cp2k_md``, protocol ``fast``):
4 for training, 1 held out. The schedules are those of the ``fast`` active-learning protocol (iteration 1 from
scratch, iteration 2 warm), so this is what the work chain runs from its second iteration on.
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_qdtraps.analysis.mlff import (
    HARTREE_EV,
    cp2k_label,
    labelled_system,
    read_cp2k_md_frames,
)
from aiida_qdtraps.calculations.deepmd import DeepmdTrainCalculation
from aiida_qdtraps.workchains.mlff import MlffActiveLearningWorkChain, training_schedule

TYPE_MAP = ['F', 'In', 'P']


@pytest.fixture
def md_dataset(data_dir, tmp_path):
    """deepmd/npy dataset of the recorded CP2K MD frames: the last one held out, the others for training."""
    folder = data_dir / 'deepmd' / 'cp2k_md'
    data = read_cp2k_md_frames(*((folder / name).read_text() for name in ('aiida-pos-1.xyz', 'aiida-frc-1.xyz',
                                                                            'aiida-1.ener')))
    systems = {}
    for index in range(len(data['steps'])):
        atoms = Atoms(data['symbols'], positions=data['positions'][index], cell=[13.0] * 3)
        energy, forces = cp2k_label(data['energies'][index] / HARTREE_EV, 'a.u.', data['forces'][index], len(atoms))
        subset = 'validation' if index == len(data['steps']) - 1 else 'training'
        frame = labelled_system(atoms, energy, forces, TYPE_MAP)
        if subset in systems:
            systems[subset].append(frame)
        else:
            systems[subset] = frame
    node = orm.FolderData()
    for subset, system in systems.items():
        system.to('deepmd/npy', str(tmp_path / subset / 'F9In4P1'))
        node.base.repository.put_object_from_tree(str(tmp_path / subset / 'F9In4P1'), f'{subset}/F9In4P1')
    return node.store()


def train(dp_python, dataset, parameters, init_model=None):
    inputs = {'code': dp_python, 'dataset': dataset, 'type_map': orm.List(TYPE_MAP), 'seed': orm.Int(1),
              'parameters': orm.Dict(parameters)}
    if init_model is not None:
        inputs['init_model'] = init_model
    results, node = run_get_node(DeepmdTrainCalculation, **inputs)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node


@pytest.mark.slow
def test_warm_start_begins_where_the_previous_model_ended(dp_python, md_dataset, cp2k_code, tiny_qd):
    """The warm-started model's first learning-curve row (force RMSE) is below that of a model trained from scratch."""
    training = MlffActiveLearningWorkChain.get_builder_from_protocol(
        cp2k_code, dp_python, dp_python, tiny_qd, protocol='fast').training.get_dict()
    scratch_parameters, warm = training_schedule(training, 1)
    assert not warm
    scratch, scratch_node = train(dp_python, md_dataset, scratch_parameters)
    warm_parameters, warm = training_schedule(training, 2)
    assert warm
    warm_start, warm_node = train(dp_python, md_dataset, warm_parameters, init_model=scratch['model'])

    curves = {label: {name: result['learning_curve'].get_array(name) for name in ('step', 'rmse_e_trn', 'rmse_f_trn')}
              for label, result in (('from scratch', scratch), ('warm start', warm_start))}
    for label, curve in curves.items():  # shown with `pytest -s`; docs/mlff.md quotes them
        print(f"{label}: steps {curve['step'].astype(int).tolist()}, force RMSE {curve['rmse_f_trn'].tolist()} eV/Å, "
              f"energy RMSE {curve['rmse_e_trn'].tolist()} eV/atom")
    # The warm start begins near where the first training ended, far below a fresh model's first row. (The energy
    # RMSE is not compared: the fresh model's energy bias is fitted to the data before step 1, and the fast
    # schedule's force-dominated loss then moves it away.)
    assert curves['warm start']['rmse_f_trn'][0] < 0.75 * curves['from scratch']['rmse_f_trn'][0]
    out = warm_start['output_parameters'].get_dict()
    assert out['warm_start'] is True and out['numb_steps'] == warm_parameters['training']['numb_steps']
    # provenance: the warm-started training's init_model is the frozen model of the first training
    assert warm_node.inputs.init_model.creator.uuid == scratch_node.uuid
    assert warm_start['model'].base.attributes.get('type_map') == TYPE_MAP
