"""MLFF work chain pieces without engines: CP2K label inputs, input checks, select_candidates and grow_dataset.

``grow_dataset`` reads a real CP2K ENERGY_FORCE output of In4PF9 (``tests/data/deepmd/cp2k_energy_force.out``).
"""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
from aiida import orm
from ase import Atoms

from aiida_qdtraps.analysis.mlff import HARTREE_EV, HARTREE_PER_BOHR_EV_PER_ANGSTROM
from aiida_qdtraps.workchains.mlff import (
    MlffActiveLearningWorkChain,
    calibrate_deviation,
    collect_iterations,
    grow_dataset,
    is_converged,
    select_candidates,
    training_schedule,
    validate_settings,
)

ENERGY_HA = -449.704066590349612  # the recorded output's total energy


@pytest.fixture
def dp_python(aiida_code_installed):
    return aiida_code_installed(label='dp-python', default_calc_job_plugin='qdtraps.deepmd.train',
                                filepath_executable=sys.executable)


@pytest.fixture
def fast_builder(cp2k_code, dp_python, tiny_qd):
    return MlffActiveLearningWorkChain.get_builder_from_protocol(cp2k_code, dp_python, dp_python, tiny_qd,
                                                                 protocol='fast')


def test_labels_are_energy_force_single_points_of_the_relax_protocol(fast_builder):
    parameters = fast_builder.label.cp2k.parameters.get_dict()
    assert parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY_FORCE'
    assert 'MOTION' not in parameters
    assert parameters['FORCE_EVAL']['PRINT']['FORCES'] == {'_': 'ON'}
    assert parameters['FORCE_EVAL']['DFT']['MGRID']['CUTOFF'] == 200  # relax.yaml `fast`
    assert parameters['FORCE_EVAL']['DFT']['SCF']['EPS_SCF'] == 1.0e-5
    assert parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'GAPW'
    assert {kind['_'] for kind in parameters['FORCE_EVAL']['SUBSYS']['KIND']} == {'F', 'In', 'P'}
    assert fast_builder.box_vacuum.value == 3.5
    assert fast_builder.num_models.value == 2


@pytest.mark.parametrize(('section', 'changes', 'message'), [
    ('selection', {'trust_lo': 0.3, 'trust_hi': 0.1}, 'trust_lo < trust_hi'),
    ('convergence', {'accurate_fraction': 1.5}, r'accurate_fraction must be in \(0, 1\]'),
    ('convergence', {'max_iter': 3}, 'unknown convergence key'),
    ('exploration', {'temperatures_K': []}, 'at least one temperature'),
    ('exploration', {'md': {'timestep_fs': 20.0}}, 'timestep_fs must be in'),
    ('initial', {'n_frames': 1}, 'initial.n_frames must be >= 2'),
    ('initial', {'method': 'aimd'}, "initial.method must be one of \\['cp2k_md', 'rattle'\\], got 'aimd'"),
    ('initial', {'method': 'cp2k_md'}, r"unknown initial key\(s\) \['n_frames', 'rattle_stdev'\]"),
    ('training', {'warm_start_steps': 1.5}, r'warm_start_steps .* must be in \(0, 1\], got 1.5'),
    ('training', {'warm_start': 'yes'}, "warm_start must be true or false, got 'yes'"),
    ('training', {'numb_step': 10}, r"unknown training key\(s\) \['numb_step'\]"),
    ('selection', {'min_distance_scale': 2.5}, r'min_distance_scale must be a number in \(0, 2\) or null'),
    ('selection', {'adaptive_lo': {'numb': 3}}, 'adaptive_lo must be a dict with keys from'),
    ('selection', {'adaptive_lo': {'numb_candi': 0}}, 'numb_candi must be a positive integer, got 0'),
    ('selection', {'trust': 0.1}, r"unknown selection key\(s\) \['trust'\]"),
    ('convergence', {'force_rmse_eV_A': 0.0}, 'force_rmse_eV_A must be positive, got 0.0'),
])
def test_bad_settings_are_refused_with_the_value(fast_builder, section, changes, message):
    inputs = {key: fast_builder[key] for key in ('selection', 'convergence', 'exploration', 'initial', 'num_models',
                                                 'training')}
    inputs[section] = orm.Dict({**inputs[section].get_dict(), **changes})
    error = validate_settings(inputs, None)
    assert error is not None
    assert re.search(message, error), error


def test_convergence_criteria():
    assert is_converged({'accurate': 0.96}, {}, {'accurate_fraction': 0.95})
    assert not is_converged({'accurate': 0.5}, {'energy_mae_per_atom': 2e-3}, {})
    assert is_converged({'accurate': 0.5}, {'energy_mae_per_atom': 5e-4}, {})
    assert not is_converged({'accurate': 0.5}, {'energy_mae_per_atom': 5e-4, 'force_mae': 0.2}, {'force_mae': 0.1})


def test_validation_rmse_route():
    """With force_rmse_eV_A / energy_rmse_meV_atom the held-out RMSEs (eV/Å, eV/atom as DeePMD reports them)
    decide instead of the MAEs."""
    validation = {'force_rmse': 0.08, 'energy_rmse_per_atom': 0.8e-3, 'energy_mae_per_atom': 5e-3}
    assert is_converged({'accurate': 0.5}, validation, {'force_rmse_eV_A': 0.10, 'energy_rmse_meV_atom': 1.0})
    assert not is_converged({'accurate': 0.5}, validation, {'force_rmse_eV_A': 0.05})
    assert not is_converged({'accurate': 0.5}, {**validation, 'energy_rmse_per_atom': 2e-3}, {'force_rmse_eV_A': 0.1})
    assert not is_converged({'accurate': 0.5}, {}, {'force_rmse_eV_A': 0.1})  # no validation yet
    assert not is_converged({'accurate': 0.5}, validation, {})  # the MAE route: 5 meV/atom is above 1


def trajectory(devi, n_atoms=3):
    node = orm.TrajectoryData()
    positions = np.array([[[0, 0, 0], [2.0 + 0.01 * i, 0, 0], [0, 2.0, 0]] for i in range(len(devi))], float)
    node.set_trajectory(symbols=['In', 'P', 'F'], positions=positions, pbc=(False, False, False))
    node.set_array('max_devi_f', np.asarray(devi, float))
    return node.store()


def test_select_candidates_over_trajectories():
    reference = orm.StructureData(ase=Atoms('InPF', positions=np.zeros((3, 3)), cell=[12, 12, 12])).store()
    result = select_candidates(reference, orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 2}),
                               md_0=trajectory([0.01, 0.1, 0.2, 0.12]), md_1=trajectory([0.02, 0.03, 0.07]))
    stats = result['statistics'].get_dict()
    assert stats['n_frames'] == 7 and stats['n_selected'] == 2
    assert stats['accurate'] == pytest.approx(3 / 7) and stats['failed'] == pytest.approx(1 / 7)
    assert stats['per_trajectory']['md_1'] == pytest.approx({'n_frames': 3, 'accurate': 2 / 3, 'candidate': 1 / 3,
                                                             'failed': 0.0})
    candidates = [result[k] for k in sorted(result) if k.startswith('candidate_')]
    assert len(candidates) == 2
    for node in candidates:
        atoms = node.get_ase()
        assert atoms.cell.array == pytest.approx(np.eye(3) * 12)
        assert atoms.get_positions().mean(axis=0) == pytest.approx([6, 6, 6])
        assert node.pbc == (False, False, False)


def test_select_candidates_filters_frames_before_labelling():
    """A candidate frame with P 0.8 Å from In (below 0.7 × (1.42 + 1.07) Å) is never labelled: it counts as
    failed, is named, and the next candidate takes its place."""
    reference = orm.StructureData(ase=Atoms('InPF', positions=np.zeros((3, 3)), cell=[12, 12, 12])).store()
    md = trajectory([0.10, 0.11, 0.12])
    positions = md.get_positions()
    positions[1, 1] = [0.8, 0.0, 0.0]
    squeezed = orm.TrajectoryData()
    squeezed.set_trajectory(symbols=['In', 'P', 'F'], positions=positions, pbc=(False, False, False))
    squeezed.set_array('max_devi_f', md.get_array('max_devi_f'))
    squeezed.store()
    result = select_candidates(reference, orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 3}),
                               md_0=squeezed)
    stats = result['statistics'].get_dict()
    assert stats['n_filtered'] == 1 and stats['n_selected'] == 2
    assert stats['failed'] == pytest.approx(1 / 3) and stats['candidate'] == pytest.approx(2 / 3)
    assert 'filtered 1 of 3 frames' in stats['filter'] and 'In–P 0.80 Å' in stats['filter']
    assert [row['frame'] for row in stats['selected']] == [0, 2]
    # switched off: all three are labelled
    off = select_candidates(reference, orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 3,
                                                 'min_distance_scale': None}), md_0=squeezed)
    assert off['statistics']['n_selected'] == 3 and off['statistics']['n_filtered'] == 0


def test_select_candidates_with_the_adaptive_lower_level():
    """dpgen2's adaptive level with numb_candi 2: the two largest deviations below trust_hi become candidates, so
    trust_lo is the smaller of them (0.09), whatever the given trust_lo."""
    reference = orm.StructureData(ase=Atoms('InPF', positions=np.zeros((3, 3)), cell=[12, 12, 12])).store()
    selection = {'trust_lo': 0.01, 'trust_hi': 0.15, 'max_candidates': 5,
                 'adaptive_lo': {'numb_candi': 2, 'rate_candi': 0.0}}
    result = select_candidates(reference, orm.Dict(selection), md_0=trajectory([0.02, 0.09, 0.03, 0.12, 0.2]))
    stats = result['statistics'].get_dict()
    assert stats['trust_lo'] == pytest.approx(0.09) and stats['adaptive_lo']
    assert sorted(row['frame'] for row in stats['selected']) == [1, 3]


def test_calibrate_deviation_against_the_dft_label(generate_cp2k_calc, data_dir):
    """The labelled frame's true error is the largest |F_model - F_DFT| over atoms: a model force off by 0.3 eV/Å
    on one component of one atom gives 0.3, set against the frame's deviation."""
    from aiida_qdtraps.analysis.mlff import read_cp2k_atomic_forces

    output = (data_dir / 'deepmd' / 'cp2k_energy_force.out').read_text()
    dft = read_cp2k_atomic_forces(output)
    calc = generate_cp2k_calc({'aiida.out': output}, parameters={'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}})
    model = np.repeat(dft[None], 3, axis=0)
    model[2, 5, 1] += 0.3
    md = orm.TrajectoryData()
    md.set_trajectory(symbols=['In'] * 4 + ['P'] + ['F'] * 9, positions=np.zeros((3, 14, 3)))
    md.set_array('forces', model)
    md.store()
    statistics = orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15,
                           'selected': [{'trajectory': 'md_0', 'frame': 2, 'max_devi_f': 0.1}]}).store()
    calibration = calibrate_deviation(statistics, trajectory_md_0=md, retrieved_000=calc.outputs.retrieved)
    assert calibration['true_error'] == pytest.approx([0.3])
    assert calibration['relation']['ratio_p50'] == pytest.approx(3.0)
    assert calibration['relation']['n_candidate'] == 1
    table = collect_iterations(orm.Dict({}), selection_iter_1=statistics, calibration_iter_1=calibration)
    assert table['iterations'][0]['labelled_error_over_deviation_p50'] == pytest.approx(3.0)
    # a label without a forces table is left out of the calibration, not an error
    broken = generate_cp2k_calc({'aiida.out': 'CP2K output without forces\n'},
                                parameters={'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}})
    empty = calibrate_deviation(statistics, trajectory_md_0=md, retrieved_000=broken.outputs.retrieved)
    assert empty['candidates'] == [] and empty['relation'] == {'n_frames': 0}


def test_grow_dataset_traces_frames_and_converts_units(generate_cp2k_calc, data_dir):
    output = (data_dir / 'deepmd' / 'cp2k_energy_force.out').read_text()
    frames = []
    for i in range(3):
        calc = generate_cp2k_calc({'aiida.out': output}, parameters={'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}})
        structure = orm.StructureData(ase=Atoms('In4PF9', positions=np.random.default_rng(i).normal(size=(14, 3)),
                                                cell=[13, 13, 13])).store()
        frames.append((structure, orm.Dict({'energy': ENERGY_HA, 'energy_units': 'a.u.'}).store(),
                       calc.outputs.retrieved))

    def labels(selection, offset=0):
        out = {}
        for n, (structure, parameters, retrieved) in enumerate(selection):
            out.update({f'structure_{offset + n:03d}': structure, f'output_parameters_{offset + n:03d}': parameters,
                        f'retrieved_{offset + n:03d}': retrieved})
        return out

    settings = orm.Dict({'type_map': ['F', 'In', 'P'], 'validation_every': 2})
    first = grow_dataset(settings, **labels(frames[:2]))['dataset']
    second = grow_dataset(settings, dataset=first, **labels(frames[2:]))['dataset']
    sources = second.base.attributes.get('frame_sources')
    creators = [f[2].creator.uuid for f in frames]
    assert sources == {'validation/F9In4P1': [creators[0], creators[2]], 'training/F9In4P1': [creators[1]]}

    def array(name):
        return np.load(io.BytesIO(second.base.repository.get_object_content(name, mode='rb')))

    assert array('validation/F9In4P1/set.000/energy.npy') == pytest.approx([ENERGY_HA * HARTREE_EV] * 2)
    forces = array('training/F9In4P1/set.000/force.npy').reshape(14, 3)
    # atom 1 (In) of the recorded output: -0.01858124 -0.01367049 -0.01668233 Ha/Bohr; dpdata keeps the atom order
    assert forces[0] == pytest.approx(np.array([-0.01858124, -0.01367049, -0.01668233])
                                      * HARTREE_PER_BOHR_EV_PER_ANGSTROM)
    assert second.base.repository.get_object_content('training/F9In4P1/type_map.raw').split() == ['F', 'In', 'P']


def test_grow_dataset_refuses_output_without_forces(generate_cp2k_calc):
    calc = generate_cp2k_calc({'aiida.out': 'ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]: -1.0\n'})
    structure = orm.StructureData(ase=Atoms('InPF', positions=np.eye(3), cell=[9, 9, 9])).store()
    with pytest.raises(ValueError, match='PRINT/FORCES'):
        grow_dataset(orm.Dict({'type_map': ['F', 'In', 'P'], 'validation_every': 0}), structure_000=structure,
                     output_parameters_000=orm.Dict({'energy': -1.0, 'energy_units': 'a.u.'}).store(),
                     retrieved_000=calc.outputs.retrieved)


def test_warm_start_schedule_of_the_fast_protocol(fast_builder):
    training = fast_builder.training.get_dict()
    first, warm = training_schedule(training, 1)
    assert not warm and first['training']['numb_steps'] == 100
    assert first['learning_rate']['start_lr'] == 1.0e-3
    second, warm = training_schedule(training, 2)
    assert warm and second['training']['numb_steps'] == 60  # warm_start_steps 0.6
    assert second['learning_rate']['start_lr'] == 1.0e-4 and second['loss']['start_pref_f'] == 100.0
    assert second['model'] == first['model']
    off, warm = training_schedule({**training, 'warm_start': False}, 2)
    assert not warm and off['training']['numb_steps'] == 100


def fake_training(process_nodes, computer, code, seed):
    """A finished DeepmdTrainCalculation node with a (fake) frozen model and metrics as outputs."""
    model = orm.SinglefileData(io.BytesIO(f'model {seed}'.encode()), filename='model.pth')
    model.base.attributes.set('type_map', ['F', 'In', 'P'])
    metrics = orm.Dict({'numb_steps': 100, 'warm_start': False})
    node = process_nodes.calcjob(computer, 'aiida.calculations:qdtraps.deepmd.train', code)
    return process_nodes.finish(node, {'model': model, 'output_parameters': metrics})


def test_iteration_2_trains_each_member_from_its_previous_model(fast_builder, generate_workchain, aiida_localhost,
                                                                monkeypatch, process_nodes):
    """Iteration 1 trains from scratch; in iteration 2 member n gets member n's model of iteration 1 as init_model."""
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    process.ctx.dataset = orm.FolderData().store()
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append(inputs) or inputs)
    process.run_training()
    assert process.ctx.iteration == 1 and len(submitted) == 2
    assert all('init_model' not in inputs for inputs in submitted)
    assert submitted[0]['parameters']['training']['numb_steps'] == 100

    previous = {seed: fake_training(process_nodes, aiida_localhost, fast_builder.dp_code, seed) for seed in (1, 2)}
    for seed, node in previous.items():
        process.ctx[f'train_{seed}'] = node
    assert process.inspect_training() is None
    submitted.clear()
    process.run_training()
    assert process.ctx.iteration == 2
    assert [inputs['init_model'].uuid for inputs in submitted] == [previous[s].outputs.model.uuid for s in (1, 2)]
    assert [inputs['seed'].value for inputs in submitted] == [1, 2]
    assert all(inputs['parameters']['training']['numb_steps'] == 60 for inputs in submitted)
    assert all(inputs['parameters']['learning_rate']['start_lr'] == 1.0e-4 for inputs in submitted)


def recorded_md_calc(generate_cp2k_calc, data_dir, run_type='MD', unit='hartree*bohr^-1'):
    """A finished Cp2kCalculation node holding the recorded CP2K NVT MD of In4PF9 (inputs: parameters, structure)."""
    from ase.io import read

    folder = data_dir / 'deepmd' / 'cp2k_md'
    start = read(folder / 'aiida-pos-1.xyz', index=0)
    start.set_cell([13.0] * 3)
    parameters = {'GLOBAL': {'RUN_TYPE': run_type}, 'MOTION': {'PRINT': {'FORCES': {'UNIT': unit}}}}
    files = {name: folder / name for name in ('aiida.out', 'aiida-pos-1.xyz', 'aiida-frc-1.xyz', 'aiida-1.ener')}
    return generate_cp2k_calc(files, parameters=parameters, input_structure=orm.StructureData(ase=start))


def test_grow_dataset_from_a_cp2k_md_traces_every_frame(generate_cp2k_calc, data_dir):
    """Every MD frame (stride 2 here) becomes a labelled frame whose source is the MD CalcJob."""
    calc = recorded_md_calc(generate_cp2k_calc, data_dir)
    settings = orm.Dict({'type_map': ['F', 'In', 'P'], 'validation_every': 2, 'md_stride': 2})
    dataset = grow_dataset(settings, md_retrieved_000=calc.outputs.retrieved)['dataset']
    sources = dataset.base.attributes.get('frame_sources')
    steps = dataset.base.attributes.get('frame_md_steps')
    n_steps = len(mlff_frames(data_dir)['steps'])
    kept = list(range(0, n_steps, 2))
    assert sorted(steps['validation/F9In4P1'] + steps['training/F9In4P1']) == kept
    assert steps['validation/F9In4P1'] == kept[0::2]  # frames 0, 2, 4 ... of the kept ones are held out
    assert set(sources['validation/F9In4P1'] + sources['training/F9In4P1']) == {calc.uuid}

    def array(name):
        return np.load(io.BytesIO(dataset.base.repository.get_object_content(name, mode='rb')))

    energies = array('validation/F9In4P1/set.000/energy.npy')
    assert energies[0] == pytest.approx(ENERGY_HA * HARTREE_EV, abs=1e-5)  # step 0 is the recorded label geometry
    forces = array('training/F9In4P1/set.000/force.npy').reshape(-1, 14, 3)
    assert forces[0] == pytest.approx(mlff_frames(data_dir)['forces'][kept[1]])
    assert np.abs(forces).max() < 50


def mlff_frames(data_dir):
    from aiida_qdtraps.analysis.mlff import read_cp2k_md_frames

    folder = data_dir / 'deepmd' / 'cp2k_md'
    return read_cp2k_md_frames(*((folder / name).read_text() for name in ('aiida-pos-1.xyz', 'aiida-frc-1.xyz')))


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'run_type': 'ENERGY_FORCE'}, "is not a CP2K MD \\(RUN_TYPE 'ENERGY_FORCE'\\)"),
    ({'unit': 'eV*angstrom^-1'}, "forces were written in 'eV\\*angstrom\\^-1'; expected hartree\\*bohr\\^-1"),
])
def test_grow_dataset_refuses_md_that_is_not_md_or_in_other_units(generate_cp2k_calc, data_dir, kwargs, message):
    calc = recorded_md_calc(generate_cp2k_calc, data_dir, **kwargs)
    with pytest.raises(ValueError, match=message):
        grow_dataset(orm.Dict({'type_map': ['F', 'In', 'P'], 'validation_every': 0}),
                     md_retrieved_000=calc.outputs.retrieved)


def test_initial_md_parameters_from_the_label_settings(fast_builder):
    from aiida_qdtraps.workchains.mlff import initial_md_parameters, initial_md_settings

    settings = initial_md_settings({'method': 'cp2k_md', 'steps': 4, 'temperature_K': 450.0})
    parameters = initial_md_parameters(fast_builder.label.cp2k.parameters.get_dict(), settings)
    assert parameters['GLOBAL']['RUN_TYPE'] == 'MD'
    md = parameters['MOTION']['MD']
    assert (md['ENSEMBLE'], md['STEPS'], md['TEMPERATURE'], md['TIMESTEP']) == ('NVT', 4, 450.0, 1.0)
    assert md['THERMOSTAT']['TYPE'] == 'CSVR'
    assert parameters['MOTION']['PRINT']['FORCES']['UNIT'] == 'hartree*bohr^-1'
    assert parameters['FORCE_EVAL']['DFT'] == fast_builder.label.cp2k.parameters['FORCE_EVAL']['DFT']
    with pytest.raises(ValueError, match='keep fewer than 2 frames'):
        initial_md_settings({'method': 'cp2k_md', 'steps': 1, 'stride': 2})
    with pytest.raises(ValueError, match=r"initial.temperature_K must be in \(0, 5000\] K, got -3"):
        initial_md_settings({'method': 'cp2k_md', 'temperature_K': -3})


def test_initial_md_step_submits_a_cp2k_md_that_retrieves_the_energies(fast_builder, generate_workchain,
                                                                       monkeypatch):
    fast_builder.initial = orm.Dict({'method': 'cp2k_md', 'steps': 3, 'seed': 4})
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    process.put_in_box()
    assert process.starts_from_md()
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append((cls, inputs)) or inputs)
    process.run_initial_md()
    (cls, inputs), = submitted
    assert cls.__name__ == 'QdCp2kBaseWorkChain'
    parameters = inputs['cp2k']['parameters'].get_dict()
    assert parameters['GLOBAL']['RUN_TYPE'] == 'MD' and parameters['GLOBAL']['SEED'] == 5
    assert parameters['MOTION']['MD']['STEPS'] == 3
    assert parameters['FORCE_EVAL']['DFT']['CHARGE'] == 0 and parameters['FORCE_EVAL']['DFT']['MULTIPLICITY'] == 1
    assert inputs['cp2k']['settings']['additional_retrieve_list'] == ['aiida-1.ener']
    assert inputs['cp2k']['structure'].uuid == process.ctx.structure.uuid
    assert inputs['cp2k']['structure'].get_ase().cell.lengths() == pytest.approx([13.0] * 3)


def test_labels_of_unphysical_md_frames_are_left_out(fast_builder, generate_workchain, generate_cp2k_calc):
    """A label with |F| = 154 eV/Å on one atom (an MD frame with overlapping atoms) is reported, not added."""
    output = """ ATOMIC FORCES in [a.u.]

 # Atom   Kind   Element          X              Y              Z
      1      1      In          3.00000000     0.00000000     0.00000000
      2      2      P          -3.00000000     0.00000000     0.00000000
 SUM OF ATOMIC FORCES           0.00000000     0.00000000     0.00000000     0.00000000
"""
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    dataset = orm.FolderData().store()
    process.ctx.dataset = dataset
    process.ctx.iteration = 1
    process.ctx.to_label = {'candidate_000': orm.StructureData(ase=Atoms('InP', positions=[[0, 0, 0], [0.5, 0, 0]],
                                                                         cell=[9, 9, 9])).store()}
    process.ctx['label_candidate_000'] = generate_cp2k_calc({'aiida.out': output},
                                                            parameters={'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}})
    assert process.inspect_labels() is None
    assert process.ctx.dataset.uuid == dataset.uuid and process.ctx.refused_labels == 1


@pytest.mark.parametrize('restart', [True, False])
def test_labels_can_start_from_the_wavefunction_of_the_initial_data(fast_builder, generate_workchain, aiida_localhost,
                                                                    monkeypatch, tmp_path, restart):
    fast_builder.label_wfn_restart = orm.Bool(restart)
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    process.ctx.iteration = 1
    process.ctx.wfn_parent = orm.RemoteData(computer=aiida_localhost, remote_path=str(tmp_path)).store()
    process.ctx.to_label = {'candidate_000': orm.StructureData(ase=Atoms('InP', positions=[[0, 0, 0], [2.5, 0, 0]],
                                                                         cell=[9, 9, 9])).store()}
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append(inputs) or inputs)
    process.run_labels()
    (inputs,) = submitted
    dft = inputs['cp2k']['parameters']['FORCE_EVAL']['DFT']
    if restart:
        assert inputs['cp2k']['parent_calc_folder'].uuid == process.ctx.wfn_parent.uuid
        assert dft['SCF']['SCF_GUESS'] == 'RESTART'
        assert dft['WFN_RESTART_FILE_NAME'] == './parent_calc/aiida-RESTART.wfn'
    else:
        assert 'parent_calc_folder' not in inputs['cp2k']
        assert dft['SCF']['SCF_GUESS'] == 'ATOMIC' and 'WFN_RESTART_FILE_NAME' not in dft
