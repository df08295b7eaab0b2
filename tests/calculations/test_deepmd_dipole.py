"""A DeePMD dipole model: its dataset from trajectories with dipoles, its training (``DeepmdTrainCalculation`` with
kind ``dipole``), its parser on a recorded ``dp test`` table, and the MLFF MD that stores its dipoles for the IR
spectrum."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io import read

from aiida_qdtraps.calculations.deepmd import DeepmdTrainCalculation, validate_kind
from aiida_qdtraps.calculations.mlff_md import MlffMdCalculation, check_inputs
from aiida_qdtraps.parsers.deepmd import DeepmdTrainParser
from aiida_qdtraps.workchains.mlff_functions import dipole_dataset

TYPE_MAP = ['F', 'In', 'P']
#: Formal charges (e) of In4PF9: In³⁺, P³⁻, F⁻; the QD is neutral, so Σ q r is origin-free.
FORMAL = {'In': 3.0, 'P': -3.0, 'F': -1.0}


def point_charge_trajectory(atoms, n_frames: int, stdev: float, seed: int) -> orm.TrajectoryData:
    """Rattled frames of ``atoms`` with the dipole of formal point charges, Σ q_i r_i (e·Å): a dipole that depends
    on the geometry as a real one does, and that a DeePMD dipole model can learn exactly."""
    rng = np.random.default_rng(seed)
    positions = atoms.positions[None] + rng.normal(0.0, stdev, (n_frames, len(atoms), 3))
    charges = np.array([FORMAL[s] for s in atoms.get_chemical_symbols()])
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(symbols=atoms.get_chemical_symbols(), positions=positions)
    trajectory.set_array('dipole', np.einsum('i,fij->fj', charges, positions))
    return trajectory


@pytest.fixture
def in4pf9(data_dir):
    return read(data_dir / 'deepmd' / 'in4pf9_relaxed_fast.xyz')


def test_dipole_dataset_writes_deepmd_npy_with_the_split_and_its_sources(in4pf9, tmp_path):
    trajectory = point_charge_trajectory(in4pf9, 10, 0.05, 0)
    dataset = dipole_dataset(orm.Dict({'type_map': TYPE_MAP, 'validation_every': 4}), md=trajectory)['dataset']
    frames = dataset.base.attributes.get('frames')
    assert frames == {'training/traj0_F9In4P1': {'trajectory': trajectory.uuid, 'frames': [1, 2, 3, 5, 6, 7, 9]},
                      'validation/traj0_F9In4P1': {'trajectory': trajectory.uuid, 'frames': [0, 4, 8]}}
    dataset.base.repository.copy_tree(tmp_path)
    system = tmp_path / 'validation' / 'traj0_F9In4P1'
    dipoles = np.load(system / 'set.000' / 'dipole.npy')
    assert np.allclose(dipoles, trajectory.get_array('dipole')[[0, 4, 8]])
    coords = np.load(system / 'set.000' / 'coord.npy').reshape(3, 14, 3)
    assert np.allclose(coords, trajectory.get_positions()[[0, 4, 8]])
    types = np.loadtxt(system / 'type.raw', dtype=int)
    assert [TYPE_MAP[t] for t in types] == in4pf9.get_chemical_symbols()
    assert (system / 'nopbc').exists()


def test_dipole_dataset_refuses_a_trajectory_without_dipoles(in4pf9):
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(symbols=in4pf9.get_chemical_symbols(), positions=in4pf9.positions[None])
    with pytest.raises(ValueError, match=r"trajectory 'md' .* has no `dipole` array"):
        dipole_dataset.run_get_node(orm.Dict({'type_map': TYPE_MAP}), md=trajectory)


def test_dipole_kind_sets_the_dipole_fitting_and_the_tensor_loss(dp_python, prepare_calcjob, in4pf9):
    dataset = dipole_dataset(orm.Dict({'type_map': TYPE_MAP, 'validation_every': 2}),
                             md=point_charge_trajectory(in4pf9, 4, 0.05, 0))['dataset']
    folder, calcinfo = prepare_calcjob(DeepmdTrainCalculation, {
        'code': dp_python, 'dataset': dataset, 'type_map': orm.List(TYPE_MAP), 'kind': orm.Str('dipole'),
        'parameters': orm.Dict({'training': {'numb_steps': 20}})})
    params = json.loads(pathlib.Path(folder.get_abs_path('input.json')).read_text())
    assert params['model']['fitting_net']['type'] == 'dipole'
    assert params['loss'] == {'type': 'tensor', 'pref': 1.0, 'pref_atomic': 0.0}
    assert params['training']['numb_steps'] == 20
    assert 'validation.out' in calcinfo.retrieve_list
    assert validate_kind(orm.Str('polarizability'), None) == "kind must be one of ['dipole', 'energy'], got " \
                                                            "'polarizability'"


def test_train_parser_reads_the_dipole_parity(data_dir, process_nodes, aiida_localhost, dp_python):
    """The recorded ``lcurve.out`` and ``dp test`` table of the real dipole training below."""
    recorded = data_dir / 'deepmd' / 'dipole'
    retrieved = orm.FolderData()
    for name in ('lcurve.out', 'validation.out'):
        retrieved.base.repository.put_object_from_file(str(recorded / name), name)
    retrieved.base.repository.put_object_from_file(str(recorded / 'lcurve.out'), 'model.pth')
    node = process_nodes.calcjob(aiida_localhost, 'aiida.calculations:qdtraps.deepmd.train', dp_python,
                                 {'kind': orm.Str('dipole')})
    node = process_nodes.finish(node, {'retrieved': retrieved}, exit_status=None)
    results, calcfunction = DeepmdTrainParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_status
    table = np.loadtxt(recorded / 'validation.out')
    out = results['output_parameters'].get_dict()
    assert out['dipole_rmse'] == pytest.approx(np.sqrt(np.mean((table[:, 3:] - table[:, :3]) ** 2)))
    assert out['n_validation_frames'] == len(table) and out['units']['dipole'] == 'e*angstrom'
    assert results['model'].base.attributes.get('kind') == 'dipole'
    assert 'rmse_global_dipole_trn' in results['learning_curve'].get_arraynames()


def test_an_energy_model_is_refused_as_dipole_model(in4pf9, data_dir):
    model = orm.SinglefileData(data_dir / 'deepmd' / 'model_in4pf9_fast.pth')
    model.base.attributes.set('kind', 'energy')
    inputs = {'structure': orm.StructureData(ase=in4pf9), 'models': {'m0': model}, 'dipole_model': model}
    with pytest.raises(ValueError, match=r"is a DeePMD 'energy' model, not a dipole model"):
        check_inputs(inputs)
    dipole = orm.SinglefileData(data_dir / 'deepmd' / 'model_in4pf9_fast.pth')
    dipole.base.attributes.set_many({'kind': 'dipole', 'type_map': ['In', 'P']})
    with pytest.raises(ValueError, match=r"trained with type_map \['In', 'P'\]: it knows no \['F'\]"):
        check_inputs({**inputs, 'dipole_model': dipole})


@pytest.mark.slow
def test_real_dipole_model_gives_the_mlff_md_its_dipoles_and_an_ir_spectrum(aiida_localhost, dp_python, in4pf9,
                                                                             data_dir):
    """Train a DeePMD dipole model on 120 rattled In4PF9 frames (every 5th held out), then run 100 NVE steps on the
    recorded energy model with it: every saved frame gets the dipole model's dipole of its geometry, and the IR
    calcfunction runs on the trajectory."""
    from aiida_qdtraps.workchains.dynamics import compute_ir

    trajectory = point_charge_trajectory(in4pf9, 120, 0.1, 1)
    dataset = dipole_dataset(orm.Dict({'type_map': TYPE_MAP, 'validation_every': 5}), md=trajectory)['dataset']
    options = {'resources': {'num_machines': 1}}
    results, node = run_get_node(DeepmdTrainCalculation, code=dp_python, dataset=dataset, kind=orm.Str('dipole'),
                                 type_map=orm.List(TYPE_MAP),
                                 parameters=orm.Dict({'training': {'numb_steps': 400, 'disp_freq': 50}}),
                                 metadata={'options': options})
    assert node.is_finished_ok, node.exit_status
    out = results['output_parameters'].get_dict()
    assert out['n_validation_frames'] == 24
    # the model explains most of the held-out dipoles' spread (measured: RMSE ~0.2 of the spread)
    assert out['dipole_rmse'] < 0.5 * out['dipole_std'], out
    dipole_model = results['model']

    md, node = run_get_node(MlffMdCalculation, code=dp_python, structure=orm.StructureData(ase=in4pf9),
                            models={'m0': orm.SinglefileData(data_dir / 'deepmd' / 'model_in4pf9_fast.pth')},
                            type_map=orm.List(TYPE_MAP), dipole_model=dipole_model,
                            parameters=orm.Dict({'thermostat': 'nve', 'steps': 100, 'save_interval': 2,
                                                 'timestep_fs': 1.0, 'temperature_K': 300.0}),
                            metadata={'options': options})
    assert node.is_finished_ok, node.exit_status
    frames = md['trajectory']
    dipoles = frames.get_array('dipole')
    assert dipoles.shape == (51, 3) and np.isfinite(dipoles).all()
    # the stored dipoles are the model's for the stored geometries (the recorded energy model is not a force field:
    # its MD leaves the rattled geometries the dipole model learned, so only the held-out frames judge the model)
    from deepmd.infer.deep_dipole import DeepDipole

    with dipole_model.as_path() as path:
        model = DeepDipole(str(path))
        types = [list(model.get_type_map()).index(s) for s in frames.symbols]
        expected = model.eval(frames.get_positions().reshape(51, -1), None, types, atomic=False)
    assert np.allclose(dipoles, np.asarray(expected).reshape(51, 3), atol=1e-6)

    spectrum, node = compute_ir.run_get_node(frames)
    assert node.is_finished_ok, node.exit_message
    intensity = spectrum['ir'].get_y()[0][1]
    assert np.isfinite(intensity).all() and intensity.max() > 0
