"""DeepmdTrainCalculation / MlffMdCalculation inputs and their parsers on outputs recorded from a real run.

The engines themselves run in ``tests/workchains/test_mlff_real.py``; ``tests/data/deepmd`` holds the ``lcurve.out``,
``dp test`` detail files and ``md.npz`` of one of those runs (In4PF9, protocol ``fast``).
"""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest
from aiida import orm
from ase import Atoms

from aiida_qdtraps.analysis.mlff import labelled_system
from aiida_qdtraps.calculations.deepmd import (
    DeepmdTrainCalculation,
    validate_dataset,
    validate_init_model,
    validate_inputs,
    validate_parameters,
)
from aiida_qdtraps.calculations.mlff_md import MlffMdCalculation, md_parameters
from aiida_qdtraps.calculations.mlff_md import check_inputs as check_md_inputs
from aiida_qdtraps.calculations.mlff_md_script import DEVIATION_BATCH
from aiida_qdtraps.parsers.deepmd import DeepmdTrainParser, MlffMdParser

TYPE_MAP = ['F', 'In', 'P']


@pytest.fixture
def dataset(tmp_path):
    """A deepmd/npy dataset FolderData: 2 training frames and 1 validation frame of an InPF triatomic (eV, eV/Å)."""
    atoms = Atoms('InPF', positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.0, 0]], cell=[10, 10, 10])
    node = orm.FolderData()
    for subset, count in (('training', 2), ('validation', 1)):
        system = labelled_system(atoms, -100.0, np.zeros((3, 3)), TYPE_MAP)
        for _ in range(count - 1):
            system.append(labelled_system(atoms, -100.5, np.ones((3, 3)) * 0.1, TYPE_MAP))
        system.to('deepmd/npy', str(tmp_path / subset / 'F1In1P1'))
        node.base.repository.put_object_from_tree(str(tmp_path / subset / 'F1In1P1'), f'{subset}/F1In1P1')
    return node.store()


def test_train_input_sets_systems_seeds_and_type_map(dp_python, dataset, prepare_calcjob):
    folder, calcinfo = prepare_calcjob(DeepmdTrainCalculation, {
        'code': dp_python, 'dataset': dataset, 'type_map': orm.List(TYPE_MAP), 'seed': orm.Int(3),
        'parameters': orm.Dict({'training': {'numb_steps': 50}, 'model': {'descriptor': {'rcut': 5.0}}})})
    params = json.loads(pathlib.Path(folder.get_abs_path('input.json')).read_text())
    assert params['training']['training_data']['systems'] == ['dataset/training/F1In1P1']
    assert params['training']['numb_steps'] == 50 and params['training']['seed'] == 3
    assert params['model']['descriptor']['rcut'] == 5.0 and params['model']['descriptor']['type'] == 'se_e2_a'
    assert params['model']['descriptor']['seed'] == params['model']['fitting_net']['seed'] == 3
    assert params['model']['type_map'] == TYPE_MAP
    assert calcinfo.codes_info[0].cmdline_params == ['deepmd_train_script.py', 'dataset/validation', '-']
    assert sorted(c[2] for c in calcinfo.local_copy_list) == ['dataset/training', 'dataset/validation']
    assert 'model.pth' in calcinfo.retrieve_list


def test_train_input_with_init_model_warm_starts_from_the_frozen_model(dp_python, dataset, prepare_calcjob):
    model = orm.SinglefileData(io.BytesIO(b'frozen model bytes'), filename='model.pth').store()
    folder, calcinfo = prepare_calcjob(DeepmdTrainCalculation, {
        'code': dp_python, 'dataset': dataset, 'type_map': orm.List(TYPE_MAP), 'init_model': model})
    assert (model.uuid, 'model.pth', 'init.pth') in calcinfo.local_copy_list
    assert calcinfo.codes_info[0].cmdline_params == ['deepmd_train_script.py', 'dataset/validation', 'init.pth']
    script = pathlib.Path(folder.get_abs_path('deepmd_train_script.py')).read_text()
    assert "['--init-frz-model', init_model]" in script and "warm.append('--use-pretrain-script')" in script
    _, calcinfo = prepare_calcjob(DeepmdTrainCalculation, {'code': dp_python, 'dataset': dataset,
                                                   'type_map': orm.List(TYPE_MAP)})
    assert calcinfo.codes_info[0].cmdline_params[-1] == '-'
    # with explicit `sel` (se_atten_v2 of DP/ZBL models) the warm start keeps the input's own model section: DeePMD-kit
    # 3.2.0 cannot re-read an se_atten_v2 pretrain script
    _, calcinfo = prepare_calcjob(DeepmdTrainCalculation, {
        'code': dp_python, 'dataset': dataset, 'type_map': orm.List(TYPE_MAP), 'init_model': model,
        'parameters': orm.Dict({'model': {'descriptor': {'type': 'se_atten_v2', 'sel': 8, 'attn_layer': 0}}})})
    assert calcinfo.codes_info[0].cmdline_params == ['deepmd_train_script.py', 'dataset/validation', 'init.pth',
                                                     'own-model-section']
    assert "if warm and pretrain == 'pretrain':" in script


def test_zbl_model_gets_its_pair_table_and_switching_radii(dp_python, dataset, prepare_calcjob):
    """``model.zbl`` makes a DP/ZBL model: the job folder gets the ZBL table of the type map up to rcut and the input
    names it (``use_srtab``) with the switching radii."""
    from aiida_qdtraps.analysis.zbl import zbl_table

    model = {'descriptor': {'type': 'se_atten_v2', 'sel': 8, 'rcut': 5.0, 'attn_layer': 0},
             'zbl': {'sw_rmin': 0.6, 'sw_rmax': 1.0}}
    folder, _ = prepare_calcjob(DeepmdTrainCalculation, {
        'code': dp_python, 'dataset': dataset, 'type_map': orm.List(TYPE_MAP),
        'parameters': orm.Dict({'model': model})})
    params = json.loads(pathlib.Path(folder.get_abs_path('input.json')).read_text())
    assert 'zbl' not in params['model']
    assert (params['model']['use_srtab'], params['model']['sw_rmin'], params['model']['sw_rmax']) == \
        ('zbl_table.txt', 0.6, 1.0)
    table = np.loadtxt(folder.get_abs_path('zbl_table.txt'))
    assert np.allclose(table, zbl_table(TYPE_MAP, r_max=5.0), rtol=1e-9)


@pytest.mark.parametrize(('zbl', 'message'), [
    ({'sw_rmin': 1.0}, "model.zbl must be {'sw_rmin': Å, 'sw_rmax': Å}, got {'sw_rmin': 1.0}"),
    ({'sw_rmin': 1.0, 'sw_rmax': 0.5}, 'needs 0 < sw_rmin < sw_rmax < rcut (6.0 Å), got sw_rmin=1.0, sw_rmax=0.5'),
    ({'sw_rmin': 0.5, 'sw_rmax': 7.0}, 'got sw_rmin=0.5, sw_rmax=7.0'),
])
def test_bad_zbl_settings_are_refused_by_name(zbl, message):
    model = {'descriptor': {'type': 'se_atten_v2'}, 'zbl': zbl}
    assert message in validate_parameters(orm.Dict({'model': model}), None)
    # the default se_e2_a cannot carry ZBL in DeePMD-kit 3.2.0
    assert "got descriptor type 'se_e2_a'" in validate_parameters(
        orm.Dict({'model': {'zbl': {'sw_rmin': 0.5, 'sw_rmax': 1.0}}}), None)


def test_init_model_must_be_a_frozen_model_of_the_same_type_map():
    checkpoint = orm.SinglefileData(io.BytesIO(b'x'), filename='model.ckpt.pt')
    assert "got file 'model.ckpt.pt'" in validate_init_model(checkpoint, None)
    model = orm.SinglefileData(io.BytesIO(b'x'), filename='model.pth')
    model.base.attributes.set('type_map', ['In', 'P'])
    error = validate_inputs({'init_model': model, 'type_map': orm.List(TYPE_MAP)}, None)
    assert "type_map ['In', 'P'], but type_map is ['F', 'In', 'P']" in error
    model.base.attributes.set('type_map', TYPE_MAP)
    assert validate_inputs({'init_model': model, 'type_map': orm.List(TYPE_MAP)}, None) is None


def test_train_refuses_dataset_without_training_systems_and_bad_parameters(dataset):
    assert 'no deepmd/npy system' in validate_dataset(orm.FolderData(), None)
    assert validate_dataset(dataset, None) is None
    assert 'unknown top-level DeePMD input' in validate_parameters(orm.Dict({'modle': {}}), None)
    assert 'numb_steps must be a positive integer' in validate_parameters(orm.Dict({'training': {'numb_steps': 0}}),
                                                                          None)


@pytest.mark.parametrize(('changes', 'message'), [
    ({'temperature_K': -5}, r'temperature_K must be in \(0, 5000\] K'),
    ({'timestep_fs': 10}, r'timestep_fs must be in \(0, 5\] fs'),
    ({'steps': 10, 'save_interval': 20}, 'save_interval <= steps'),
    ({'thermostat': 'nose'}, "thermostat 'nose' is not one of"),
    ({'frozen_indices': [99]}, r'must lie in \[0, 2\]'),
    ({'temprature_K': 300}, 'unknown MD parameter'),
    ({'mode': 'minimise'}, "mode 'minimise' is not one of"),
    ({'mode': 'relax', 'rattle_stdev': -0.1}, r'rattle_stdev must be in \[0, 1\] Å'),
    ({'mode': 'relax', 'fmax': 0}, 'fmax and maxstep must be > 0'),
    ({'driver': -1}, r'driver must be the index \(integer >= 0\)'),
    ({'driver': 'median'}, r"or 'mean' \(the committee mean of all models\), got 'median'"),
    ({'stop_devi_f': 0}, r'stop_devi_f must be a force deviation > 0 eV/Å or None, got 0'),
    ({'mode': 'relax', 'stop_devi_f': 1.0}, r'a relaxation \(mode relax\) does not take it'),
    ({'compress': 'yes'}, "compress must be true or false, got 'yes'"),
])
def test_md_parameters_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        md_parameters(changes, n_atoms=3)


def test_md_input_writes_script_structure_and_models(dp_python, prepare_calcjob):
    structure = orm.StructureData(ase=Atoms('InPF', positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.0, 0]], cell=[9, 9, 9]))
    models = {f'model_{i}': orm.SinglefileData(io.BytesIO(b'not a model'), filename='model.pth') for i in (1, 2)}
    folder, calcinfo = prepare_calcjob(MlffMdCalculation, {
        'code': dp_python, 'structure': structure, 'models': models, 'type_map': orm.List(TYPE_MAP),
        'parameters': orm.Dict({'temperature_K': 450.0, 'steps': 20, 'save_interval': 5, 'frozen_indices': [0]})})
    params = json.loads(pathlib.Path(folder.get_abs_path('input.json')).read_text())
    assert params['temperature_K'] == 450.0 and params['frozen_indices'] == [0] and params['thermostat'] == 'langevin'
    assert params['models'] == ['model_0.pth', 'model_1.pth']
    assert 'LangevinBAOAB' in pathlib.Path(folder.get_abs_path('mlff_md_script.py')).read_text()
    assert [c[2] for c in calcinfo.local_copy_list] == ['model_0.pth', 'model_1.pth']
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params == ['mlff_md_script.py', 'input.json']
    assert (codeinfo.stdout_name, codeinfo.join_files) == ('md.log', True)
    assert calcinfo.retrieve_list == ['md.npz', 'md.json', 'md.log', 'input.json', 'checkpoint_*.npz']
    assert calcinfo.remote_copy_list == []
    # checkpoints every 1000 steps by default; no wall time without max_wallclock_seconds
    assert params['checkpoint_interval'] == 1000 and params['walltime_s'] is None
    options = MlffMdCalculation.spec().inputs['metadata']['options']
    assert options['parser_name'].default == 'qdtraps.mlff_md' and options['withmpi'].default is False


@pytest.fixture
def finished_calc(process_nodes, aiida_localhost, dp_python):
    """``finished_calc(process_type, files, inputs=None)``: a CalcJobNode on ``dp_python`` with recorded retrieved
    files (name -> path), as the engine leaves it before parsing."""
    def make(process_type: str, files: dict, inputs: dict | None = None) -> orm.CalcJobNode:
        retrieved = orm.FolderData()
        for name, path in files.items():
            retrieved.base.repository.put_object_from_file(str(path), name)
        node = process_nodes.calcjob(aiida_localhost, process_type, dp_python, inputs)
        return process_nodes.finish(node, {'retrieved': retrieved}, exit_status=None)
    return make


def test_train_parser_on_recorded_run(data_dir, finished_calc):
    files = {name: data_dir / 'deepmd' / name for name in ('lcurve.out', 'validation.e_peratom.out',
                                                           'validation.f.out')}
    files['model.pth'] = data_dir / 'deepmd' / 'lcurve.out'  # any bytes: the parser only stores the file
    node = finished_calc('aiida.calculations:qdtraps.deepmd.train', files)
    results, calcfunction = DeepmdTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_status
    curve = results['learning_curve']
    assert curve.get_array('step')[-1] == 100 and 'rmse_f_trn' in curve.get_arraynames()
    out = results['output_parameters'].get_dict()
    parity = results['validation_parity']
    forces_dft, forces_ml = parity.get_array('forces_dft'), parity.get_array('forces_mlff')
    assert forces_dft.shape == forces_ml.shape == (14, 3)
    assert out['force_mae'] == pytest.approx(np.abs(forces_ml - forces_dft).mean())
    assert out['n_validation_frames'] == 1 and out['numb_steps'] == 100
    assert out['initial_rmse_f_trn'] == curve.get_array('rmse_f_trn')[0] and out['warm_start'] is False


def test_train_parser_refuses_a_partly_loaded_init_model(data_dir, tmp_path, finished_calc):
    """dp only warns when --init-frz-model matches part of the model; the parser turns that into an exit code."""
    (tmp_path / 'train.log').write_text('[2026] DEEPMD WARNING Checkpoint loaded non-strictly. Missing keys: '
                                        "['atomic_model.fitting_net.bias_atom_e']\n")
    files = {'lcurve.out': data_dir / 'deepmd' / 'lcurve.out', 'model.pth': data_dir / 'deepmd' / 'lcurve.out',
             'train.log': tmp_path / 'train.log'}
    init = orm.SinglefileData(io.BytesIO(b'x'), filename='model.pth')
    node = finished_calc('aiida.calculations:qdtraps.deepmd.train', files,
                         {'init_model': init})
    _, calcfunction = DeepmdTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_INIT_MODEL_NOT_LOADED.status
    node = finished_calc('aiida.calculations:qdtraps.deepmd.train', files)
    results, calcfunction = DeepmdTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok  # without init_model the warning cannot come from a warm start
    assert results['output_parameters']['warm_start'] is False


def test_train_parser_refuses_diverged_and_missing_outputs(data_dir, tmp_path, finished_calc):
    lcurve = (data_dir / 'deepmd' / 'lcurve.out').read_text().splitlines()
    lcurve[-1] = ' '.join(['nan' if i else field for i, field in enumerate(lcurve[-1].split())])
    (tmp_path / 'lcurve.out').write_text('\n'.join(lcurve))
    files = {'lcurve.out': tmp_path / 'lcurve.out', 'model.pth': tmp_path / 'lcurve.out'}
    node = finished_calc('aiida.calculations:qdtraps.deepmd.train', files)
    _, calcfunction = DeepmdTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_TRAINING_DIVERGED.status
    node = finished_calc('aiida.calculations:qdtraps.deepmd.train',
                         {'lcurve.out': data_dir / 'deepmd' / 'lcurve.out'})
    _, calcfunction = DeepmdTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_MISSING_OUTPUT.status


def md_structure(data_dir):
    data = np.load(data_dir / 'deepmd' / 'md.npz')
    symbols = (data_dir / 'deepmd' / 'md_symbols.txt').read_text().split()
    return orm.StructureData(ase=Atoms(symbols, positions=data['positions'][0], cell=data['cell']))


def test_md_parser_on_recorded_run(data_dir, finished_calc):
    files = {'md.npz': data_dir / 'deepmd' / 'md.npz', 'md.json': data_dir / 'deepmd' / 'md.json'}
    node = finished_calc('aiida.calculations:qdtraps.mlff_md', files,
                         {'structure': md_structure(data_dir)})
    results, calcfunction = MlffMdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_status
    trajectory = results['trajectory']
    assert trajectory.numsteps == 11
    devi = trajectory.get_array('max_devi_f')
    assert devi.shape == (11,) and np.all(devi >= trajectory.get_array('avg_devi_f'))
    assert trajectory.get_array('forces').shape == (11, 14, 3)
    assert results['output_parameters']['n_frames'] == 11


def test_md_parser_refuses_exploded_trajectory(data_dir, tmp_path, finished_calc):
    data = dict(np.load(data_dir / 'deepmd' / 'md.npz'))
    data['positions'][-1, 0] += 1000.0
    np.savez(tmp_path / 'md.npz', **data)
    files = {'md.npz': tmp_path / 'md.npz', 'md.json': data_dir / 'deepmd' / 'md.json'}
    node = finished_calc('aiida.calculations:qdtraps.mlff_md', files,
                         {'structure': md_structure(data_dir)})
    _, calcfunction = MlffMdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == MlffMdCalculation.exit_codes.ERROR_MD_DIVERGED.status


def test_md_parser_gives_the_trajectory_layout_of_the_recorded_run(data_dir, finished_calc):
    """The recorded run predates velocities: it still gets times, energies, temperatures and the layout attributes."""
    files = {'md.npz': data_dir / 'deepmd' / 'md.npz', 'md.json': data_dir / 'deepmd' / 'md.json'}
    node = finished_calc('aiida.calculations:qdtraps.mlff_md', files,
                         {'structure': md_structure(data_dir)})
    results, _ = MlffMdParser.parse_from_node(node, store_provenance=False)
    trajectory = results['trajectory']
    steps = trajectory.get_stepids()
    assert np.allclose(trajectory.get_array('times'), steps * 1.0)
    assert trajectory.base.attributes.get('engine') == 'mlff'
    assert trajectory.base.attributes.get('timestep_fs') == float(steps[1] - steps[0])
    assert np.array_equal(trajectory.get_array('potential_energy'), trajectory.get_array('energies'))
    assert 'velocities' not in trajectory.get_arraynames()


def test_real_model_relaxation_saves_its_path_with_the_deviation(aiida_localhost, dp_python, data_dir):
    """``mode: relax``: a BFGS relaxation of In4PF9 rattled by 0.05 Å on the reference model, its path saved as frames
    with both models' deviation; the model energy falls and the last frame is the relaxed one."""
    from aiida.engine import run_get_node
    from ase.io import read

    atoms = read(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz')
    models = {'m0': orm.SinglefileData(data_dir / 'mlff' / 'in4pf9' / 'model.pth'),
              'm1': orm.SinglefileData(data_dir / 'deepmd' / 'model_in4pf9_fast.pth')}
    parameters = {'mode': 'relax', 'rattle_stdev': 0.05, 'steps': 40, 'save_interval': 10, 'fmax': 0.05, 'seed': 3}
    inputs = {'code': dp_python, 'structure': orm.StructureData(ase=atoms), 'models': models,
              'type_map': orm.List(['F', 'In', 'P']), 'parameters': orm.Dict(parameters),
              'metadata': {'options': {'resources': {'num_machines': 1}}}}
    results, node = run_get_node(MlffMdCalculation, **inputs)
    assert node.is_finished_ok, node.exit_status
    trajectory, info = results['trajectory'], results['output_parameters']
    assert info['mode'] == 'relax' and trajectory.base.attributes.get('mode') == 'relax'
    steps = trajectory.get_stepids()
    n_steps = info['bfgs_steps']
    assert 1 <= n_steps <= 40
    assert list(steps[:-1]) == list(range(0, n_steps, 10)) and steps[-1] == n_steps  # every 10th step and the last
    rattled = trajectory.get_positions()[0]
    assert 0.02 < np.sqrt(np.mean(np.sum((rattled - atoms.positions) ** 2, axis=1))) < 0.15  # a 0.05 Å rattle
    energies = trajectory.get_array('energies')
    assert energies[-1] < energies[0]
    largest = np.linalg.norm(trajectory.get_array('forces')[-1], axis=1).max()
    assert info['final_fmax_eV_A'] == pytest.approx(largest)
    assert info['converged'] == (largest < 0.05)
    assert np.all(trajectory.get_array('max_devi_f') > 0)  # two different models
    assert np.allclose(trajectory.get_array('velocities'), 0) and np.allclose(trajectory.get_array('temperature'), 0)


def test_real_md_driven_by_the_second_model_stops_where_the_ensemble_disagrees(aiida_localhost, dp_python, data_dir):
    """``driver: 1`` drives the MD with the second model (its energy is the trajectory's); ``stop_devi_f`` ends the MD
    at the first saved frame whose force deviation exceeds it, and says where."""
    from aiida.engine import run_get_node
    from ase.io import read
    from deepmd.infer import DeepPot

    atoms = read(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz')
    files = {'m0': data_dir / 'mlff' / 'in4pf9' / 'model.pth', 'm1': data_dir / 'deepmd' / 'model_in4pf9_fast.pth'}
    parameters = {'steps': 400, 'save_interval': 5, 'temperature_K': 600.0, 'seed': 1, 'driver': 1,
                  'stop_devi_f': 1.0}
    inputs = {'code': dp_python, 'structure': orm.StructureData(ase=atoms),
              'models': {k: orm.SinglefileData(v) for k, v in files.items()},
              'type_map': orm.List(['F', 'In', 'P']), 'parameters': orm.Dict(parameters),
              'metadata': {'options': {'resources': {'num_machines': 1}}}}
    results, node = run_get_node(MlffMdCalculation, **inputs)
    assert node.is_finished_ok, node.exit_status
    trajectory, info = results['trajectory'], results['output_parameters']
    deviation = trajectory.get_array('max_devi_f')
    assert deviation[-1] > 1.0 and np.all(deviation[:-1] <= 1.0)  # stopped at the first frame above 1 eV/Å
    # the deviation is evaluated in batches of DEVIATION_BATCH frames: the MD ran at most that far past the stop
    stop = info['stopped_at_step']
    assert stop == trajectory.get_stepids()[-1] <= info['steps_run'] <= min(400, stop + 5 * (DEVIATION_BATCH - 1))
    assert info['stop_max_devi_f'] == pytest.approx(deviation[-1])
    types = [['F', 'In', 'P'].index(s) for s in atoms.get_chemical_symbols()]
    first = trajectory.get_positions()[0].reshape(1, -1)
    driver_energy = float(np.ravel(DeepPot(str(files['m1'])).eval(first, None, types)[0])[0])
    other_energy = float(np.ravel(DeepPot(str(files['m0'])).eval(first, None, types)[0])[0])
    assert trajectory.get_array('energies')[0] == pytest.approx(driver_energy, abs=1e-6)
    assert abs(driver_energy - other_energy) > 1e-3


def test_driver_must_name_a_given_model():
    structure = orm.StructureData(ase=Atoms('InPF', positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.0, 0]], cell=[9, 9, 9]))
    models = {f'model_{i}': orm.SinglefileData(io.BytesIO(b'not a model'), filename='model.pth') for i in (1, 2)}
    with pytest.raises(ValueError, match='driver 2 names no model: 2 model'):
        check_md_inputs({'structure': structure, 'models': models, 'parameters': orm.Dict({'driver': 2})})


def test_real_nve_md_continued_in_two_pieces_is_the_unbroken_md(aiida_localhost, dp_python, data_dir):
    """60 velocity-Verlet steps of In4PF9 on the recorded DeePMD model in the trajectory layout, in one job, and as
    chains of jobs (``MlffMdChainWorkChain``): 30 + 30 steps where the second job continues the first
    (``parent_trajectory``), and a job that stops at its wall time, continued by the next; the joined trajectory is
    the unbroken one, frame by frame."""
    from aiida.cmdline.utils.common import get_workchain_report
    from aiida.engine import run_get_node
    from aiida.orm import Log
    from ase.data import atomic_masses, atomic_numbers
    from ase.io import read
    from ase.units import kB

    from aiida_qdtraps.parsers.cp2k_md_files import kinetic_energy_ev
    from aiida_qdtraps.workchains.dynamics import join_trajectories
    from aiida_qdtraps.workchains.mlff_md_chain import MlffMdChainWorkChain

    atoms = read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz')
    common = {'code': dp_python, 'structure': orm.StructureData(ase=atoms),
              'models': {'m0': orm.SinglefileData(data_dir / 'deepmd' / 'model_in4pf9_fast.pth')},
              'type_map': orm.List(['F', 'In', 'P']), 'metadata': {'options': {'resources': {'num_machines': 1}}}}

    def md(steps, **extra):
        parameters = {'thermostat': 'nve', 'steps': steps, 'save_interval': 5, 'temperature_K': 300.0, 'seed': 3}
        results, node = run_get_node(MlffMdCalculation, **common, parameters=orm.Dict(parameters), **extra)
        assert node.is_finished_ok, node.exit_status
        return results

    whole_results = md(60)
    whole = whole_results['trajectory']
    # the trajectory layout: velocities, kinetic energy and temperature agree with each other; the total energy is
    # conserved; the drift is stored and reported (`verdi process report`)
    velocities = whole.get_array('velocities')
    assert velocities.shape == (13, 14, 3)
    masses = atomic_masses[[atomic_numbers[s] for s in whole.symbols]]
    kinetic = whole.get_array('kinetic_energy')
    assert np.allclose(kinetic_energy_ev(masses, velocities), kinetic, rtol=1e-6)
    assert np.allclose(2 * kinetic / (3 * 14 * kB), whole.get_array('temperature'), rtol=1e-6)
    conserved = whole.get_array('conserved_energy')  # velocity Verlet at 1 fs: moves far less than the kinetic energy
    assert np.ptp(conserved) < 0.1 * np.ptp(kinetic)
    slope = np.polyfit(whole.get_array('times'), conserved, 1)[0] * 1e6 / 14  # meV/atom/ps
    drift = whole_results['output_parameters']['nve_drift_mev_per_atom_ps']
    assert drift == pytest.approx(slope)
    assert any(f'NVE: drift of the conserved energy {drift:+.3f} meV/atom/ps' in log.message
               for log in Log.collection.get_logs_for(whole.creator))
    positions = whole.get_positions()  # positions advance by v dt between saved frames (5 steps) to first order
    assert np.abs(positions[2] - positions[1] - 5.0 * 0.5 * (velocities[1] + velocities[2])).max() < 0.02
    assert whole.base.attributes.get('timestep_fs') == 5.0
    # the same 60 steps as a chain of two jobs of 30 (MlffMdChainWorkChain, steps_per_job): the second continues the
    # first (parent_trajectory) and the chain joins them (join_trajectories)
    chain_results, chain = run_get_node(MlffMdChainWorkChain, md={**common, 'parameters': orm.Dict(
        {'thermostat': 'nve', 'steps': 60, 'save_interval': 5, 'temperature_K': 300.0, 'seed': 3})},
        steps_per_job=orm.Int(30))
    assert chain.is_finished_ok, chain.exit_status
    jobs = [link.node for link in sorted(chain.base.links.get_outgoing(link_label_filter='job_%').all(),
                                         key=lambda link: link.link_label)]
    assert [job.inputs.parameters['steps'] for job in jobs] == [30, 30] and all(j.is_finished_ok for j in jobs)
    first, second = jobs[0].outputs.trajectory, jobs[1].outputs
    assert jobs[1].inputs.parent_trajectory.uuid == first.uuid
    assert second['output_parameters']['start_step'] == 30 and second['output_parameters']['steps_run'] == 30
    assert second['trajectory'].get_stepids().tolist() == [35, 40, 45, 50, 55, 60]  # the start frame is not repeated
    joined = chain_results['trajectory']
    assert joined.creator.process_label == 'join_trajectories'
    assert joined.creator.inputs.piece_2.uuid == second['trajectory'].uuid
    assert joined.get_stepids().tolist() == whole.get_stepids().tolist()
    for name in ('positions', 'velocities', 'times', 'potential_energy', 'kinetic_energy', 'forces'):
        assert np.allclose(joined.get_array(name), whole.get_array(name), rtol=0, atol=1e-8), name
    assert joined.base.attributes.get('timestep_fs') == 5.0 and joined.base.attributes.get('engine') == 'mlff'
    summary = chain_results['output_parameters']
    assert (summary['steps'], summary['n_jobs'], summary['incomplete_jobs']) == (60, 2, [])

    # jobs that reach their wall time (here: walltime_s 1 ms, so each job stops at its first saved frame past its
    # start, exit ERROR_MD_INCOMPLETE with the frames it has) are continued from their last frame until the MD is done
    walltime_results, walltime_chain = run_get_node(MlffMdChainWorkChain, md={**common, 'parameters': orm.Dict(
        {'thermostat': 'nve', 'steps': 60, 'save_interval': 30, 'temperature_K': 300.0, 'seed': 3,
         'walltime_s': 0.001})})
    assert walltime_chain.is_finished_ok, walltime_chain.exit_status
    summary = walltime_results['output_parameters']
    assert summary['n_jobs'] == 2 and [row['step'] for row in summary['incomplete_jobs']] == [30]
    incomplete = orm.load_node(summary['jobs'][0])
    assert incomplete.exit_status == MlffMdCalculation.exit_codes.ERROR_MD_INCOMPLETE.status
    assert 'stopped at its wall time' in incomplete.exit_message
    assert incomplete.outputs.output_parameters['stopped_at_walltime'] is True
    steps = walltime_results['trajectory'].get_stepids()
    assert steps.tolist() == [0, 30, 60]
    for name in ('positions', 'velocities'):  # NVE: the chain is the unbroken MD
        assert np.allclose(walltime_results['trajectory'].get_array(name), whole.get_array(name)[steps // 5],
                           rtol=0, atol=1e-8), name
    report = get_workchain_report(walltime_chain, 'REPORT')
    assert 'job 1 ended early at step 30 (30 of 60 steps): the next job continues from there' in report
    assert '60 steps in 2 job(s) (1 ended early), 3 frames joined' in report

    # a piece that does not follow the one before is refused, nothing stored
    _, refused = join_trajectories.run_get_node(piece_1=second['trajectory'], piece_2=first)
    assert refused.exit_status == 300 and 'does not continue it' in refused.exit_message
    # continuing with another time step is refused before anything runs
    with pytest.raises(ValueError, match='continue it with the same timestep_fs, not 2.0'):
        check_md_inputs({**common, 'parent_trajectory': first,
                         'parameters': orm.Dict({'thermostat': 'nve', 'timestep_fs': 2.0})})


def _trajectory(velocities=True, timestep=1.0) -> orm.TrajectoryData:
    """Two frames of an InP pair, 10 steps apart."""
    node = orm.TrajectoryData()
    positions = np.zeros((2, 2, 3))
    positions[:, 1, 0] = 2.5
    node.set_trajectory(symbols=['In', 'P'], positions=positions, stepids=np.array([0, 10]),
                        velocities=np.zeros_like(positions) if velocities else None)
    node.base.attributes.set('md_timestep_fs', timestep)
    return node


@pytest.mark.parametrize(('parent', 'changes', 'message'), [
    (lambda: _trajectory(velocities=False), {}, 'has no velocities: an MD is continued from positions and velocities'),
    (lambda: _trajectory(), {'mode': 'relax'}, r'a relaxation \(mode relax\) does not continue an MD'),
    (lambda: _trajectory(timestep=0.5), {}, 'ran with 0.5 fs steps; continue it with the same timestep_fs, not 1.0'),
])
def test_a_parent_trajectory_that_cannot_be_continued_is_refused(parent, changes, message):
    structure = orm.StructureData(ase=Atoms('InP', positions=[[0, 0, 0], [2.5, 0, 0]], cell=[9, 9, 9]))
    models = {'model_1': orm.SinglefileData(io.BytesIO(b'not a model'), filename='model.pth')}
    with pytest.raises(ValueError, match=message):
        check_md_inputs({'structure': structure, 'models': models, 'parent_trajectory': parent(),
                         'parameters': orm.Dict(changes)})


def test_a_parent_trajectory_of_other_atoms_is_refused():
    other = orm.StructureData(ase=Atoms('PIn', positions=[[0, 0, 0], [2.5, 0, 0]], cell=[9, 9, 9]))
    models = {'model_1': orm.SinglefileData(io.BytesIO(b'not a model'), filename='model.pth')}
    with pytest.raises(ValueError, match='has the atoms InP, the structure PIn: a continuation keeps the atoms'):
        check_md_inputs({'structure': other, 'models': models, 'parent_trajectory': _trajectory()})


def test_a_killed_md_leaves_checkpoints_that_are_its_trajectory(dp_python, data_dir, prepare_calcjob, finished_calc,
                                                                 tmp_path):
    """The MD script of a job, run for real and killed (SIGKILL) after its third checkpoint chunk: no md.npz, and the
    parser makes the trajectory of the frames the chunks hold (exit ERROR_MD_INCOMPLETE), ready to be continued."""
    import os
    import shutil
    import subprocess
    import sys
    import time

    from ase.io import read

    model = data_dir / 'deepmd' / 'model_in4pf9_fast.pth'
    parameters = orm.Dict({'thermostat': 'nve', 'steps': 100000, 'save_interval': 10, 'checkpoint_interval': 50,
                           'temperature_K': 300.0, 'seed': 3})
    structure = orm.StructureData(ase=read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz'))
    inputs = {'code': dp_python, 'structure': structure,
              'models': {'m0': orm.SinglefileData(model)}, 'type_map': orm.List(['F', 'In', 'P']),
              'parameters': parameters}
    folder, _ = prepare_calcjob(MlffMdCalculation, inputs)
    work = tmp_path / 'job'
    shutil.copytree(folder.abspath, work)
    shutil.copy(model, work / 'model_0.pth')
    with (work / 'md.log').open('w') as log:
        process = subprocess.Popen([sys.executable, 'mlff_md_script.py', 'input.json'], cwd=work, stdout=log,
                                   stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS='1'))
        deadline = time.monotonic() + 300
        while not (work / 'checkpoint_00003.npz').exists():
            assert process.poll() is None, (work / 'md.log').read_text()[-2000:]
            assert time.monotonic() < deadline, 'no third checkpoint chunk in 300 s'
            time.sleep(0.05)
        process.kill()
        process.wait()
    assert not (work / 'md.npz').exists() and not (work / 'md.json').exists()
    chunks = sorted(name for name in os.listdir(work) if name.startswith('checkpoint_0'))
    node = finished_calc('aiida.calculations:qdtraps.mlff_md', {name: work / name for name in [*chunks, 'md.log']},
                         {'structure': inputs['structure'], 'parameters': parameters})
    results, calcfunction = MlffMdParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == MlffMdCalculation.exit_codes.ERROR_MD_INCOMPLETE.status
    assert f'{len(chunks)} checkpoint chunk(s)' in calcfunction.exit_message
    trajectory = results['trajectory']
    assert trajectory.get_stepids().tolist() == list(range(0, 50 * len(chunks) + 1, 10))
    assert 'velocities' in trajectory.get_arraynames() and trajectory.base.attributes.get('engine') == 'mlff'
    summary = results['output_parameters']
    assert summary['from_checkpoint'] is True and summary['checkpoint_chunks'] == len(chunks)
    assert summary['steps_run'] == 50 * len(chunks) and summary['steps_requested'] == 100000
    check_md_inputs({**inputs, 'parent_trajectory': trajectory})  # it can be continued
