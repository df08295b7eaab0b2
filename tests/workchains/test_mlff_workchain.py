"""MLFF work chain pieces without engines: CP2K label inputs, input checks, trust levels, select_candidates,
grow_dataset (also of labels from the cache), the report lines and the checkpoints of the steps.

``grow_dataset`` reads a real CP2K ENERGY_FORCE output of In4PF9 (``tests/data/deepmd/cp2k_energy_force.out``).
"""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from ase import Atoms

from aiida_qdtraps.analysis.mlff import HARTREE_EV, HARTREE_PER_BOHR_EV_PER_ANGSTROM
from aiida_qdtraps.workchains.mlff import (
    MlffActiveLearningWorkChain,
    best_member,
    calibrate_deviation,
    calibrate_trust_levels,
    collect_iterations,
    exploration_driver,
    exploration_kind,
    grow_dataset,
    grow_settings,
    is_converged,
    next_exploration_steps,
    relaxations,
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
    ('exploration', {'relax': {'rattle_stdev': 0.1}}, 'relax.rattle_stdev must list one rattle amplitude'),
    ('selection', {'balance': 'yes'}, "selection.balance must be true or false, got 'yes'"),
    ('exploration', {'relax': {'rattle_stdev': [0.1], 'temperature_K': 300}}, 'relax.temperature_K is not a setting'),
    ('exploration', {'relax': {'rattle_stdev': [2.0]}}, r'rattle_stdev must be in \[0, 1\] Å, got 2.0'),
    ('exploration', {'relax': {'rattle_stdev': [0.1], 'from_iteration': 0}}, 'from_iteration must be an integer >= 1'),
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
    ('selection', {'calibrate': 0.1}, r'selection.calibrate must be a dict .* got 0.1'),
    ('selection', {'calibrate': {'quantile': 0.9}}, 'selection.calibrate needs target_error'),
    ('selection', {'calibrate': {'target_error': -0.1}}, 'target_error must be a positive force error in eV/Å, '
                                                          'got -0.1'),
    ('selection', {'calibrate': {'target_error': 0.1, 'quantile': 1.5}}, r'quantile must be in \(0, 1\], got 1.5'),
    ('selection', {'calibrate': {'target_error': 0.1, 'min_points': 2.5}}, 'min_points must be an integer >= 1 '
                                                                           r'\(labelled frames\), got 2.5'),
    ('selection', {'calibrate': {'target_error': 0.1, 'min_points': 0}}, 'min_points must be an integer >= 1'),
    ('selection', {'calibrate': {'target_error': 0.1, 'hi_ratio': 1.0}}, 'hi_ratio .* must be > 1, got 1.0'),
    ('selection', {'calibrate': {'target_error': 0.1, 'target': 0.1}}, r"unknown selection.calibrate key\(s\) "
                                                                       r"\['target'\]"),
    ('selection', {'calibrate': {'target_error': 0.1}, 'adaptive_lo': {'numb_candi': 2}},
     'calibrate and selection.adaptive_lo both set the lower trust level'),
    ('exploration', {'temperature_K': [300]}, r"unknown exploration key\(s\) \['temperature_K'\]"),
    ('exploration', {'grow': {'factor': 1.0}}, 'grow.factor must be > 1, got 1.0'),
    ('exploration', {'grow': {'max_failed': 1.0}}, r'grow.max_failed .* must be in \[0, 1\), got 1.0'),
    ('exploration', {'grow': {'rate': 2}}, 'grow must be a dict with keys from'),
    ('exploration', {'md': {'steps': 500}, 'grow': {'max_steps': 100}}, r'grow.max_steps must be an integer >= '
                                                                         r'md.steps \(500\), got 100'),
    ('exploration', {'rotate_driver': 'yes'}, "rotate_driver must be true or false, got 'yes'"),
    ('exploration', {'continue_md': 1}, 'continue_md must be true or false, got 1'),
    ('exploration', {'md': {'driver': 1}}, 'exploration.md.driver is set by the work chain'),
    ('exploration', {'md': {'stop_devi_f': -1}}, 'stop_devi_f must be a force deviation > 0 eV/Å'),
])
def test_bad_settings_are_refused_with_the_value(fast_builder, section, changes, message):
    inputs = {key: fast_builder[key] for key in ('selection', 'convergence', 'exploration', 'initial', 'num_models',
                                                 'training')}
    inputs[section] = orm.Dict({**inputs[section].get_dict(), **changes})
    error = validate_settings(inputs, None)
    assert error is not None
    assert re.search(message, error), error


def test_relaxations_of_the_exploration():
    """One BFGS run per rattle amplitude, from ``from_iteration`` on; none without ``relax``."""
    assert relaxations({'temperatures_K': [300.0]}) == []
    exploration = {'relax': {'rattle_stdev': [0.05, 0.2], 'steps': 300, 'save_interval': 5, 'from_iteration': 2}}
    assert relaxations(exploration, 1) == []
    runs = relaxations(exploration, 2)
    assert [(r['mode'], r['rattle_stdev'], r['steps'], r['save_interval'], r['fmax']) for r in runs] == [
        ('relax', 0.05, 300, 5, 0.05), ('relax', 0.2, 300, 5, 0.05)]
    assert relaxations(exploration, 3) == runs


def test_exploration_length_grows_only_after_an_iteration_with_few_failed_frames():
    """DP-GEN's growing explorations, made adaptive: the length is multiplied by ``grow.factor`` (up to
    ``max_steps``) when no MD stopped early and at most ``max_failed`` of the frames failed."""
    grow = grow_settings({'md': {'steps': 500}, 'grow': {'max_failed': 0.1, 'max_steps': 3000}})
    assert grow == {'factor': 2.0, 'max_failed': 0.1, 'max_steps': 3000}
    assert grow_settings({'md': {'steps': 500}}) is None
    assert next_exploration_steps(500, grow, 0.05, 0) == (1000, 'failed fraction 0.05 <= grow.max_failed 0.1: '
                                                                'grown x2.0')
    assert next_exploration_steps(500, grow, 0.2, 0) == (500, 'failed fraction 0.20 > grow.max_failed 0.1: length '
                                                              'kept')
    assert next_exploration_steps(500, grow, 0.0, 1) == (500, '1 MD(s) stopped at stop_devi_f: length kept')
    assert next_exploration_steps(2000, grow, 0.0, 0)[0] == 3000
    assert next_exploration_steps(3000, grow, 0.0, 0) == (3000, 'at grow.max_steps 3000')
    assert next_exploration_steps(500, None, 0.0, 0) == (500, 'fixed length')


def test_each_member_drives_explorations_in_turn():
    exploration = {'temperatures_K': [300, 400, 500], 'rotate_driver': True}
    assert [exploration_driver(exploration, it, i, 4) for it in (1, 2) for i in range(3)] == [0, 1, 2, 3, 0, 1]
    assert exploration_driver({'temperatures_K': [300]}, 3, 0, 4) == 0


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


def test_select_candidates_balances_md_and_relaxation_frames():
    """``balance``: the cap is shared between the MD and the relaxation trajectories (the ``mode`` attribute of an
    MlffMdCalculation's trajectory), whatever their lengths."""
    reference = orm.StructureData(ase=Atoms('InPF', positions=np.zeros((3, 3)), cell=[12, 12, 12])).store()
    md = trajectory([0.1] * 20)
    relax = orm.TrajectoryData()
    relax.set_trajectory(symbols=['In', 'P', 'F'], positions=md.get_positions()[:4], pbc=(False, False, False))
    relax.set_array('max_devi_f', np.full(4, 0.1))
    relax.base.attributes.set('mode', 'relax')
    relax.store()
    settings = {'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 4, 'seed': 1}
    balanced = select_candidates(reference, orm.Dict({**settings, 'balance': True}), md_0=md, relax_0=relax)
    assert [row['trajectory'] for row in balanced['statistics']['selected']].count('relax_0') == 2
    assert exploration_kind(relax) == 'relax' and exploration_kind(md) == 'md'


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


def test_calibrate_trust_levels_pools_the_labelled_batches():
    """Two batches of 5 labelled frames (those of the kernel's prefix test, split): with min_points 10 the levels
    are calibrated on all 10, in iteration order; with min_points 11 the given levels stay, and the output says why.
    The calibration records are the inputs of the calcfunction."""
    devi = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10]
    true = [0.05] * 6 + [0.2, 0.05, 0.3, 0.4]
    batches = {f'calibration_iter_{n}': orm.Dict({'max_devi_f': devi[5 * (n - 1):5 * n],
                                                  'true_error': true[5 * (n - 1):5 * n]}).store() for n in (1, 2)}
    selection = {'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 5,
                 'calibrate': {'target_error': 0.1, 'quantile': 0.9, 'min_points': 10}}
    levels = calibrate_trust_levels(orm.Dict(selection), **batches)
    assert levels['source'] == 'calibrated' and levels['iterations'] == [1, 2] and levels['n_points'] == 10
    assert levels['trust_lo'] == pytest.approx(0.065) and levels['trust_hi'] == pytest.approx(0.195)
    assert {link.link_label: link.node.uuid for link in levels.creator.base.links.get_incoming(
        link_label_filter='calibration_iter_%').all()} == {key: node.uuid for key, node in batches.items()}
    selection['calibrate']['min_points'] = 11
    given = calibrate_trust_levels(orm.Dict(selection), **batches)
    assert (given['trust_lo'], given['trust_hi'], given['source']) == (0.05, 0.15, 'given')
    assert given['reason'] == '10 labelled frame(s) with a true error, fewer than min_points 11: the given levels'
    with pytest.raises(ValueError, match='selection has no calibrate settings'):
        calibrate_trust_levels(orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 5}), **batches)


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


def test_select_candidates_takes_the_trust_levels_node():
    """Levels 0.065 / 0.195 instead of the given 0.05 / 0.15: 0.06 is accurate and 0.18 a candidate."""
    reference = orm.StructureData(ase=Atoms('InPF', positions=np.zeros((3, 3)), cell=[12, 12, 12])).store()
    levels = orm.Dict({'trust_lo': 0.065, 'trust_hi': 0.195, 'source': 'calibrated'}).store()
    result = select_candidates(reference, orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 5}),
                               trust_levels=levels, md_0=trajectory([0.02, 0.06, 0.1, 0.18, 0.3]))
    stats = result['statistics'].get_dict()
    assert (stats['trust_lo'], stats['trust_hi'], stats['trust_source']) == (0.065, 0.195, 'calibrated')
    assert stats['accurate'] == pytest.approx(0.4) and stats['failed'] == pytest.approx(0.2)
    assert [row['frame'] for row in stats['selected']] == [2, 3]
    given = select_candidates(reference, orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 5}),
                              md_0=trajectory([0.02, 0.06, 0.1, 0.18, 0.3]))['statistics']
    assert (given['trust_source'], given['accurate'], given['failed']) == ('given', pytest.approx(0.2),
                                                                          pytest.approx(0.4))


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


def fake_training(process_nodes, computer, code, seed, force_rmse=None):
    """A finished DeepmdTrainCalculation node with a (fake) frozen model and metrics as outputs."""
    model = orm.SinglefileData(io.BytesIO(f'model {seed}'.encode()), filename='model.pth')
    model.base.attributes.set('type_map', ['F', 'In', 'P'])
    metrics = orm.Dict({'numb_steps': 100, 'warm_start': False,
                        **({'force_rmse': force_rmse} if force_rmse is not None else {})})
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


def test_best_member_is_the_lowest_validation_force_rmse():
    assert best_member({'model_1': 0.052, 'model_2': 0.0458, 'model_3': 0.04361, 'model_4': 0.04360}) == 'model_4'
    assert best_member({'model_2': 0.04, 'model_1': 0.04}) == 'model_1'  # a tie goes to the lower member
    assert best_member({'model_1': None, 'model_2': float('nan'), 'model_10': 0.2, 'model_3': 0.3}) == 'model_10'
    assert best_member({'model_1': None}) is None


def test_the_best_model_is_reported_and_returned(fast_builder, generate_workchain, aiida_localhost, process_nodes):
    """inspect_training names the member with the lowest validation force RMSE; results returns it as
    ``best_model``, the same node as in ``models``."""
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    process.ctx.iteration = 1
    for seed, rmse in ((1, 0.09), (2, 0.07)):
        process.ctx[f'train_{seed}'] = fake_training(process_nodes, aiida_localhost, fast_builder.dp_code, seed,
                                                     force_rmse=rmse)
    assert process.inspect_training() is None
    assert process.ctx.best_model == 'model_2'
    logs = [entry.message for entry in orm.Log.collection.get_logs_for(process.node)]
    assert any('validation force RMSE per model 0.09, 0.07 eV/Å; lowest: model_2' in message for message in logs)
    process.ctx.dataset = orm.FolderData().store()
    process.results()
    assert process.outputs['best_model'].uuid == process.outputs['models']['model_2'].uuid


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
    assert process.ctx.progress == {'labelled': 1, 'added': 0, 'refused': 1}  # for the iteration's summary line


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


def checkpoint(process):
    """Write the process's checkpoint as the engine does after every step and read it back; return its context."""
    import plumpy
    from aiida.engine.persistence import get_object_loader
    from aiida.orm.utils import serialize

    bundle = plumpy.persistence.Bundle(process, plumpy.persistence.LoadSaveContext(loader=get_object_loader()))
    return serialize.deserialize_unsafe(serialize.serialize(bundle))['CONTEXT']


def test_every_step_can_be_checkpointed_from_setup_on(fast_builder, generate_workchain):
    """A checkpoint holds nodes by uuid, so every node in the context must be stored when a step ends; else the
    engine skips the checkpoint (with a logged exception) and a daemon worker that dies resumes from an older one,
    which for the initial data means submitting the initial labels or CP2K MD again."""
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    context = checkpoint(process)
    assert context['type_map'].get_list() == ['F', 'In', 'P']
    assert context['grow_parameters'].uuid == process.ctx.grow_parameters.uuid
    process.put_in_box()
    process.make_initial_frames()
    context = checkpoint(process)
    assert sorted(context['to_label']) == ['frame_000', 'frame_001']
    assert context['structure'].uuid == process.ctx.structure.uuid


def fake_md(aiida_localhost, code, devi, output_parameters=None):
    """A finished MlffMdCalculation node whose ``trajectory`` output has the deviation ``devi`` (eV/Å), and
    ``output_parameters`` when given."""
    node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:qdtraps.mlff_md')
    node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    node.base.links.add_incoming(code, LinkType.INPUT_CALC, 'code')
    node.store()
    md = trajectory(devi)
    output = orm.TrajectoryData()
    output.set_trajectory(symbols=['In', 'P', 'F'], positions=md.get_positions(), pbc=(False, False, False))
    output.set_array('max_devi_f', md.get_array('max_devi_f'))
    output.base.links.add_incoming(node, LinkType.CREATE, 'trajectory')
    output.store()
    if output_parameters is not None:
        parameters = orm.Dict(output_parameters)
        parameters.base.links.add_incoming(node, LinkType.CREATE, 'output_parameters')
        parameters.store()
    node.set_exit_status(0)
    node.set_process_state('finished')
    node.seal()
    return node


@pytest.mark.parametrize(('min_points', 'levels', 'source', 'accurate'), [
    (10, (0.065, 0.195), 'calibrated', 0.4),
    (20, (0.05, 0.15), 'given', 0.2),
])
def test_iteration_2_selects_with_levels_calibrated_on_iteration_1(fast_builder, generate_workchain,
                                                                   aiida_localhost, min_points, levels, source,
                                                                   accurate):
    """With selection.calibrate the selection of iteration 2 uses calibrate_trust_levels' output, made from the
    calibration record of iteration 1's labels (10 frames): calibrated with min_points 10, the given levels with 20.
    The report names the levels, their origin and the calcfunction, and the iteration's progress line follows."""
    fast_builder.selection = orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 5, 'calibrate': {
        'target_error': 0.1, 'quantile': 0.9, 'min_points': min_points}})
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    assert process._trust_levels() == (None, 'as given (selection.calibrate starts in iteration 2: no labelled MD '
                                             'frames yet)')
    record = orm.Dict({'max_devi_f': [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10],
                       'true_error': [0.05] * 6 + [0.2, 0.05, 0.3, 0.4]}).store()
    process.ctx.iteration = 2
    process.ctx.statistics['calibration_iter_1'] = record
    process.ctx.validation = orm.Dict({'force_rmse': 0.312, 'energy_rmse_per_atom': 6.2e-3,
                                       'n_validation_frames': 3}).store()
    dataset = orm.FolderData()
    dataset.base.attributes.set('frame_sources', {'training/F9In4P1': ['a', 'b'], 'validation/F9In4P1': ['c']})
    process.ctx.dataset = dataset.store()
    process.ctx.md_0 = fake_md(aiida_localhost, fast_builder.dp_code, [0.02, 0.06, 0.1, 0.18, 0.3])
    assert process.inspect_exploration() is None
    stats = process.ctx.statistics['selection_iter_2']
    assert (stats['trust_lo'], stats['trust_hi']) == pytest.approx(levels)
    assert stats['trust_source'] == source and stats['accurate'] == pytest.approx(accurate)
    selection = stats.creator
    trust = selection.inputs.trust_levels
    assert trust.creator.process_label == 'calibrate_trust_levels'
    assert trust.creator.inputs.calibration_iter_1.uuid == record.uuid
    assert trust.creator.inputs.selection.uuid == process.inputs.selection.uuid
    process.report_iteration()
    context = checkpoint(process)
    assert context['statistics']['trust_levels_iter_2'].uuid == trust.uuid
    messages = [log.message.split(']: ', 1)[-1] for log in orm.Log.collection.get_logs_for(process.node)]
    line = next(m for m in messages if m.startswith('iteration 2: trust levels'))
    where = f'calibrate_trust_levels<{trust.creator.pk}>, 10 labelled frame(s) of iteration(s) 1'
    if source == 'calibrated':
        assert line == (f'iteration 2: trust levels 0.065 / 0.195 eV/Å, calibrated ({where}): 6 of 10 frames below '
                        'trust_lo 0.065 eV/Å (between 0.06 and 0.07 eV/Å); 100% of them within 0.1 eV/Å')
    else:
        assert line == (f'iteration 2: trust levels 0.05 / 0.15 eV/Å, as given ({where}): 10 labelled frame(s) with '
                        'a true error, fewer than min_points 20: the given levels')
    summary = next(m for m in messages if m.startswith('iteration 2 summary'))
    assert summary == (f'iteration 2 summary: accurate {accurate:.2f} of 5 MD frames at trust levels {levels[0]:.4g} '
                       f'/ {levels[1]:.4g} eV/Å ({source}); 2 selected, 0 filtered; not labelled (last iteration); '
                       'dataset 3 frames; force RMSE 0.312 eV/Å, energy RMSE 6.2 meV/atom (model 1, 3 held-out '
                       'frames); not converged')


def cached_copy(calc):
    """Store a CalcJobNode with ``calc``'s inputs and options the way the engine stores a new CalcJob with caching
    on: AiiDA finds a finished CalcJob of the same hash and copies it, outputs included."""
    from aiida.manage.caching import enable_caching

    copy = orm.CalcJobNode(computer=calc.computer, process_type=calc.process_type)
    for key in ('resources', 'max_wallclock_seconds', 'output_filename'):
        copy.set_option(key, calc.get_option(key))
    for link in calc.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all():
        copy.base.links.add_incoming(link.node, LinkType.INPUT_CALC, link.link_label)
    with enable_caching(identifier=calc.process_type):
        copy.store()
    assert copy.base.caching.is_created_from_cache
    return copy


def test_labels_from_the_cache_give_the_same_dataset(generate_cp2k_calc, data_dir):
    """A relaunch with caching on for CP2K gets its labels as copies of the first run's CalcJobs. grow_dataset then
    records the CalcJob that ran each label, so the dataset has the same attributes, files and hash as the first
    run's, and a DeePMD training on it is found in the cache too (its hash includes the dataset's)."""
    import uuid

    from aiida_qdtraps.workchains.mlff_functions import label_source

    output = (data_dir / 'deepmd' / 'cp2k_energy_force.out').read_text()
    parameters = {'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE', 'PROJECT_NAME': uuid.uuid4().hex}}  # no other node's hash
    first = generate_cp2k_calc({'aiida.out': output}, parameters=parameters,
                               outputs={'output_parameters': orm.Dict({'energy': ENERGY_HA, 'energy_units': 'a.u.'})})
    again = cached_copy(first)
    third = cached_copy(again)
    assert again.base.caching.get_cache_source() == first.uuid
    assert label_source(first) == label_source(again) == label_source(third) == first.uuid
    structure = orm.StructureData(ase=Atoms('In4PF9', positions=np.random.default_rng(0).normal(size=(14, 3)),
                                            cell=[13, 13, 13])).store()
    settings = orm.Dict({'type_map': ['F', 'In', 'P'], 'validation_every': 0})
    datasets = [grow_dataset(settings, structure_000=structure, output_parameters_000=calc.outputs.output_parameters,
                             retrieved_000=calc.outputs.retrieved)['dataset'] for calc in (first, again)]
    assert datasets[1].base.attributes.get('frame_sources') == {'training/F9In4P1': [first.uuid]}
    assert datasets[0].base.attributes.all == datasets[1].base.attributes.all
    assert datasets[0].base.caching.get_hash() == datasets[1].base.caching.get_hash()
    # the input links still lead to the copy that the relaunch used
    assert datasets[1].creator.inputs.retrieved_000.creator.uuid == again.uuid


@pytest.mark.parametrize(('stopped', 'failed_devi', 'next_steps', 'why'), [
    (False, 0.03, 400, 'failed fraction 0.00 <= grow.max_failed 0.2: grown x2.0'),
    (False, 0.3, 200, 'failed fraction 0.25 > grow.max_failed 0.2: length kept'),
    (True, 0.3, 200, '1 MD(s) stopped at stop_devi_f: length kept'),
])
def test_explorations_rotate_their_driver_and_grow(fast_builder, generate_workchain, aiida_localhost, monkeypatch,
                                                    stopped, failed_devi, next_steps, why):
    """With ``rotate_driver`` and ``grow`` each MD of an iteration is driven by the next member and runs the current
    length; inspect_exploration reports MDs stopped at ``stop_devi_f`` and sets the next length."""
    fast_builder.exploration = orm.Dict({'temperatures_K': [300.0, 400.0], 'rotate_driver': True,
                                         'md': {'steps': 200, 'save_interval': 10, 'stop_devi_f': 0.25},
                                         'grow': {'max_failed': 0.2, 'max_steps': 1000}})
    fast_builder.selection = orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 2})
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    assert process.ctx.explore_steps == 200
    process.ctx.iteration = 2
    process.ctx.models = {}
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append(inputs) or inputs)
    process.run_exploration()
    assert [(i['parameters']['steps'], i['parameters']['driver'], i['parameters']['temperature_K']) for i in
            submitted] == [(200, 0, 300.0), (200, 1, 400.0)]  # iteration 2 of 2 models, 2 MDs per iteration
    process.ctx.validation = orm.Dict({}).store()
    outputs = {'steps_run': 130, 'stopped_at_step': 130, 'stop_max_devi_f': 0.3} if stopped else {'steps_run': 200}
    process.ctx.md_0 = fake_md(aiida_localhost, fast_builder.dp_code, [0.02, 0.03, 0.04, failed_devi], outputs)
    process.ctx.md_1 = fake_md(aiida_localhost, fast_builder.dp_code, [0.01, 0.02, 0.03, failed_devi],
                               {'steps_run': 200})
    assert process.inspect_exploration() is None
    assert process.ctx.explore_steps == next_steps
    messages = [log.message.split(']: ', 1)[-1] for log in orm.Log.collection.get_logs_for(process.node)]
    assert 'iteration 2: MLFF MD at [300.0, 400.0] K, 200 steps, driven by model_1, model_2' in messages
    assert f'iteration 2: next exploration {next_steps} steps ({why})' in messages
    assert ('iteration 2: MD stopped at md.stop_devi_f: md_0 at step 130 (0.3 eV/Å)' in messages) == stopped


@pytest.mark.parametrize(('md', 'frame'), [({}, 1), ({'stop_devi_f': 0.3}, 3)])
def test_explorations_continue_where_the_ensemble_last_agreed(fast_builder, generate_workchain, aiida_localhost,
                                                              monkeypatch, md, frame):
    """With ``continue_md`` the MD of iteration n starts from the last frame of the same MD of iteration n - 1 before
    its deviation first exceeded ``md.stop_devi_f`` or, without one, trust_hi (``exploration_start``, a calcfunction
    of that trajectory); an MD without a predecessor starts from the QD."""
    fast_builder.exploration = orm.Dict({'temperatures_K': [300.0, 400.0], 'continue_md': True,
                                         'md': {'steps': 200, 'save_interval': 10, **md}})
    fast_builder.selection = orm.Dict({'trust_lo': 0.05, 'trust_hi': 0.15, 'max_candidates': 2})
    process = generate_workchain(MlffActiveLearningWorkChain, dict(fast_builder))
    process.setup()
    process.ctx.structure = process.inputs.structure
    process.ctx.iteration = 3
    process.ctx.models = {}
    previous = fake_md(aiida_localhost, fast_builder.dp_code, [0.02, 0.03, 0.2, 0.04])
    process.ctx.md_0 = previous
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append(inputs) or inputs)
    process.run_exploration()
    start = submitted[0]['structure']
    assert start.creator.process_label == 'exploration_start'
    assert start.creator.inputs.trajectory.uuid == previous.outputs.trajectory.uuid
    assert start.base.attributes.get('frame') == frame  # frame 2 is the first above trust_hi 0.15; none above 0.3
    assert np.allclose(start.get_ase().positions, previous.outputs.trajectory.get_positions()[frame])
    assert submitted[1]['structure'].uuid == process.inputs.structure.uuid
    messages = [log.message.split(']: ', 1)[-1] for log in orm.Log.collection.get_logs_for(process.node)]
    assert (f'iteration 3: explorations continue: md_0 from step {frame} of the previous '
            f'TrajectoryData<{previous.outputs.trajectory.pk}>') in messages


def previous_run(type_map=('F', 'In', 'P'), n_models=2, model_type_map=None):
    """A stored stand-in of an earlier run's ``dataset`` and ``models`` outputs."""
    dataset = orm.FolderData()
    dataset.base.attributes.set('type_map', list(type_map))
    dataset.base.attributes.set('frame_sources', {'training/F6In3P1': ['a', 'b'], 'validation/F6In3P1': ['a']})
    models = {}
    for n in range(1, n_models + 1):
        model = orm.SinglefileData(io.BytesIO(f'model {n}'.encode()), filename='model.pth')
        model.base.attributes.set('type_map', list(model_type_map or type_map))
        models[f'model_{n}'] = model.store()
    return dataset.store(), models


@pytest.mark.parametrize('change, message', [
    ({'dataset': False}, r'previous_models needs previous_dataset'),
    ({'attributes': False}, r'previous_dataset<\d+> is not the dataset output of an MlffActiveLearningWorkChain'),
    ({'type_map': ('In', 'P')}, r"the structure has element\(s\) \['F'\] that previous_dataset<\d+> \(type_map "
                                r"\['In', 'P'\]\) lacks"),
    ({'given_type_map': ['P', 'In', 'F']}, r"type_map \['P', 'In', 'F'\] differs from previous_dataset<\d+>'s "
                                           r"\['F', 'In', 'P'\]"),
    ({'n_models': 1}, r"previous_models must be \['model_1', 'model_2'\] \(num_models 2\), got \['model_1'\]"),
    ({'model_type_map': ('F', 'In')}, r"previous_models.model_1<\d+> was trained with type_map \['F', 'In'\], "
                                      r"previous_dataset<\d+> has \['F', 'In', 'P'\]"),
    ({'stripped': True}, r'previous_models.model_2<\d+> lost its weights when its archive was made '
                         r'\(qdtraps_stripped_files\)'),
])
def test_a_bad_continuation_is_refused_with_the_value(fast_builder, change, message):
    dataset, models = previous_run(change.get('type_map', ('F', 'In', 'P')), change.get('n_models', 2),
                                   change.get('model_type_map'))
    if change.get('attributes') is False:
        dataset = orm.FolderData().store()
    if change.get('stripped'):  # as `qdtraps archive` leaves a model whose weights it did not export
        models['model_2'].base.extras.set('qdtraps_stripped_files', [{'name': 'model.pth', 'size': 1, 'sha256': '0'}])
    inputs = {key: fast_builder[key] for key in ('selection', 'convergence', 'exploration', 'initial', 'num_models',
                                                 'training', 'structure')}
    inputs['previous_models'] = models
    if change.get('dataset', True):
        inputs['previous_dataset'] = dataset
    if 'given_type_map' in change:
        inputs['type_map'] = orm.List(change['given_type_map'])
    error = validate_settings(inputs, None)
    assert error is not None and re.search(message, error), error


def test_a_continuation_of_more_elements_is_valid(fast_builder):
    """The earlier run may know more elements than this QD has (In4PF9 after an In/P/F/Cl run)."""
    dataset, models = previous_run(('Cl', 'F', 'In', 'P'))
    inputs = {key: fast_builder[key] for key in ('selection', 'convergence', 'exploration', 'initial', 'num_models',
                                                 'training', 'structure')}
    assert validate_settings({**inputs, 'previous_dataset': dataset, 'previous_models': models}, None) is None
    assert validate_settings({**inputs, 'previous_dataset': dataset}, None) is None


def test_a_continued_run_trains_on_the_earlier_dataset_warm_from_its_models(fast_builder, generate_workchain,
                                                                           monkeypatch):
    """With previous_dataset / previous_models: the type map is the earlier run's, the first training gets its
    dataset (grown by this QD's initial data) and warm-starts member n from its model n."""
    dataset, models = previous_run(('Cl', 'F', 'In', 'P'))
    builder = dict(fast_builder)
    builder.update(previous_dataset=dataset, previous_models=models)
    process = generate_workchain(MlffActiveLearningWorkChain, builder)
    process.setup()
    assert process.ctx.type_map.get_list() == ['Cl', 'F', 'In', 'P']
    assert process.ctx.dataset.uuid == dataset.uuid
    logs = [entry.message for entry in orm.Log.collection.get_logs_for(process.node)]
    assert any(re.search(rf'continuing from dataset<{dataset.pk}> \(3 frames: 2 training/F6In3P1, 1 '
                         r'validation/F6In3P1\) and its models model_1, model_2; type map '
                         r"\['Cl', 'F', 'In', 'P'\]", message) for message in logs), logs
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append(inputs) or inputs)
    process.run_training()
    assert [inputs['init_model'].uuid for inputs in submitted] == [models[f'model_{s}'].uuid for s in (1, 2)]
    assert all(inputs['dataset'].uuid == dataset.uuid for inputs in submitted)
    assert all(inputs['type_map'].get_list() == ['Cl', 'F', 'In', 'P'] for inputs in submitted)
    assert all(inputs['parameters']['training']['numb_steps'] == 60 for inputs in submitted)  # the warm schedule
    logs = [entry.message for entry in orm.Log.collection.get_logs_for(process.node)]
    assert any('training 2 DeePMD models (60 steps each, warm start from previous_models)' in m for m in logs), logs


def test_the_first_training_is_warm_only_with_previous_models(fast_builder):
    training = fast_builder.training.get_dict()
    assert training_schedule(training, 1, previous_models=True)[1]
    assert training_schedule(training, 1, previous_models=True)[0]['training']['numb_steps'] == 60
    assert not training_schedule(training, 1)[1]
    # the previous models do not change later iterations: warm_start decides there
    assert training_schedule({**training, 'warm_start': False}, 2, previous_models=True)[1] is False
