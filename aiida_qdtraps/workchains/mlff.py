"""``MlffActiveLearningWorkChain`` (``qdtraps.active_learning``): DP-GEN's loop as restartable AiiDA processes.

Sowa et al. (Methods; docs/references.md) train DeePMD force fields iteratively: train → MD with the force field →
label new geometries with DFT → retrain, until the errors are small. Here::

    initial frames (rattled QD) → CP2K ENERGY_FORCE labels → grow_dataset
    repeat: train an ensemble (DeepmdTrainCalculation × num_models, different seeds)
            → explore (MlffMdCalculation per temperature, all models give the deviation)
            → select_candidates (trust levels on max force deviation)
            → stop if accurate fraction ≥ threshold, validation energy MAE (and force MAE, if set) below thresholds,
              or max_iterations reached; else label the candidates with CP2K → grow_dataset

Every frame of the dataset keeps the uuid of the CP2K CalcJob that labelled it (attribute ``frame_sources`` of the
dataset FolderData, aligned with the frames of each deepmd/npy system), and that CalcJob's ``retrieved`` folder is an
input of the ``grow_dataset`` call that added it. The CP2K labels reuse the relax protocol (``relax.yaml``) of the
same name with ``RUN_TYPE ENERGY_FORCE`` and ``FORCE_EVAL/PRINT/FORCES`` through ``QdCp2kBaseWorkChain``.
"""

from __future__ import annotations

import copy
import io
import pathlib
import tempfile

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_
from aiida_quantumespresso.workflows.protocols.utils import (
    ProtocolMixin,
    recursive_merge,
)

from ..analysis import mlff
from ..calculations.deepmd import TRAINING_DIR, VALIDATION_DIR, DeepmdTrainCalculation
from ..calculations.mlff_md import MlffMdCalculation, md_parameters
from ..protocols import PROTOCOL_DIR
from .common import cp2k_protocol_inputs, define_qd_inputs, electronic_state_changes, set_scf_monitor
from .cp2k_base import WFN_RESTART, QdCp2kBaseWorkChain
from .functions import center_in_box, update_cp2k_parameters
from .relax import QdRelaxWorkChain

#: CP2K changes turning the relax protocol into a single-point energy + forces label.
LABEL_CHANGES = {'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}, 'FORCE_EVAL': {'PRINT': {'FORCES': {'_': 'ON'}}}}
SELECTION_KEYS = {'trust_lo', 'trust_hi', 'max_candidates', 'stride'}
TRAINING_KEYS = {'numb_steps', 'parameters', 'warm_start', 'warm_start_steps', 'warm_start_parameters'}
CONVERGENCE_KEYS = {'accurate_fraction', 'energy_mae_per_atom', 'force_mae', 'max_iterations'}


def label_parameters(relax_parameters: dict) -> dict:
    """CP2K parameters of an ENERGY_FORCE label from those of a relaxation (``MOTION`` dropped, forces printed)."""
    params = recursive_merge(copy.deepcopy(relax_parameters), LABEL_CHANGES)
    params.pop('MOTION', None)
    return params


#: Settings of the short CP2K NVT MD that can replace the rattled initial frames (``initial.method: cp2k_md``).
INITIAL_MD_DEFAULTS = {'steps': 5, 'timestep_fs': 1.0, 'temperature_K': 300.0, 'thermostat_tau_fs': 50.0, 'seed': 0,
                       'stride': 1}
INITIAL_KEYS = {'rattle': {'method', 'n_frames', 'rattle_stdev', 'seed'},
                'cp2k_md': {'method', *INITIAL_MD_DEFAULTS}}
#: Files of a CP2K MD run that hold the frames (aiida-cp2k retrieves the first two by default; the .ener file is added).
MD_FILES = ('aiida-pos-1.xyz', 'aiida-frc-1.xyz', 'aiida-1.ener')


def initial_md_settings(initial: dict) -> dict:
    """The ``cp2k_md`` settings of ``initial`` with defaults, checked; raises ValueError naming a bad value."""
    unknown = set(initial) - INITIAL_KEYS['cp2k_md']
    if unknown:
        raise ValueError(f'unknown initial key(s) {sorted(unknown)} for method cp2k_md; '
                         f"allowed {sorted(INITIAL_KEYS['cp2k_md'])}")
    settings = {**INITIAL_MD_DEFAULTS, **{k: v for k, v in initial.items() if k != 'method'}}
    if not isinstance(settings['steps'], int) or not 1 <= settings['steps'] <= 100000:
        raise ValueError(f"initial.steps must be an integer in [1, 100000], got {settings['steps']!r}")
    if not 0 < float(settings['timestep_fs']) <= 5:
        raise ValueError(f"initial.timestep_fs must be in (0, 5] fs, got {settings['timestep_fs']}")
    if not 0 < float(settings['temperature_K']) <= 5000:
        raise ValueError(f"initial.temperature_K must be in (0, 5000] K, got {settings['temperature_K']}")
    if not float(settings['thermostat_tau_fs']) > 0:
        raise ValueError(f"initial.thermostat_tau_fs must be > 0 fs, got {settings['thermostat_tau_fs']}")
    if not isinstance(settings['stride'], int) or settings['stride'] < 1:
        raise ValueError(f"initial.stride must be an integer >= 1, got {settings['stride']!r}")
    if (settings['steps'] + 1 + settings['stride'] - 1) // settings['stride'] < 2:
        raise ValueError(f"initial: steps={settings['steps']} and stride={settings['stride']} keep fewer than 2 frames "
                         '(training + validation)')
    return settings


def initial_md_parameters(relax_parameters: dict, settings: dict) -> dict:
    """CP2K parameters of a short NVT MD (CSVR thermostat) with the DFT settings of a relaxation.

    Every step writes positions (Å, ``aiida-pos-1.xyz``) and forces (Hartree/Bohr, ``aiida-frc-1.xyz``, and the
    forces table of ``aiida.out``); the potential energy (Hartree) is in both files' comment lines and in
    ``aiida-1.ener``.
    """
    params = label_parameters(relax_parameters)  # keeps FORCE_EVAL/PRINT/FORCES: dpdata's cp2k/aimd_output reads them
    params['GLOBAL'] = {**params['GLOBAL'], 'RUN_TYPE': 'MD', 'SEED': int(settings['seed']) + 1}
    params['MOTION'] = {
        'MD': {'ENSEMBLE': 'NVT', 'STEPS': int(settings['steps']), 'TIMESTEP': float(settings['timestep_fs']),
               'TEMPERATURE': float(settings['temperature_K']), 'ANGVEL_ZERO': True,
               'THERMOSTAT': {'TYPE': 'CSVR', 'REGION': 'GLOBAL',
                              'CSVR': {'TIMECON': float(settings['thermostat_tau_fs'])}}},
        'PRINT': {'TRAJECTORY': {'FORMAT': 'XYZ', 'EACH': {'MD': 1}},
                  'FORCES': {'FORMAT': 'XYZ', 'UNIT': 'hartree*bohr^-1', 'EACH': {'MD': 1}},
                  'RESTART': {'BACKUP_COPIES': 0, 'EACH': {'MD': 1}}},
    }
    return params


# -- calcfunctions ----------------------------------------------------------------------------------------------------
@calcfunction
def rattle_structure(structure: orm.StructureData, parameters: orm.Dict) -> dict:
    """Initial frames: ``structure`` (frame 0) and rattled copies (Gaussian, ``rattle_stdev`` Å per coordinate).

    :param parameters: ``{'n_frames': int, 'rattle_stdev': Å, 'seed': int}``.
    :returns: ``frame_000``, ``frame_001``, ... StructureData.
    """
    settings = parameters.get_dict()
    atoms = structure.get_ase()
    frames = mlff.rattled_positions(atoms.get_positions(), float(settings['rattle_stdev']), int(settings['n_frames']),
                                    int(settings.get('seed', 0)))
    outputs = {}
    for i, positions in enumerate(frames):
        frame = atoms.copy()
        frame.set_positions(positions)
        outputs[f'frame_{i:03d}'] = orm.StructureData(ase=frame)
    return outputs


@calcfunction
def select_candidates(reference: orm.StructureData, parameters: orm.Dict, **trajectories) -> dict:
    """Pick MD frames to label from the ensemble's maximum force deviation (``max_devi_f`` arrays, eV/Å).

    :param reference: structure whose cell the picked frames are re-centred in (the CP2K box).
    :param parameters: ``trust_lo``, ``trust_hi`` (eV/Å), ``max_candidates`` (over all trajectories), ``stride``,
        optional ``seed``.
    :param trajectories: TrajectoryData from ``MlffMdCalculation`` with a ``max_devi_f`` array.
    :returns: ``statistics`` Dict (frame counts and accurate/candidate/failed fractions per trajectory and overall)
        and ``candidate_000``, ... StructureData.
    """
    settings = parameters.get_dict()
    unknown = set(settings) - SELECTION_KEYS - {'seed'}
    if unknown:
        raise ValueError(f'unknown selection parameter(s) {sorted(unknown)}; allowed: {sorted(SELECTION_KEYS)}')
    names = sorted(trajectories)
    devi = np.concatenate([trajectories[name].get_array('max_devi_f') for name in names])
    owner = np.concatenate([[i] * trajectories[name].numsteps for i, name in enumerate(names)])
    local = np.concatenate([np.arange(trajectories[name].numsteps) for name in names])
    selection = mlff.select_by_deviation(devi, float(settings['trust_lo']), float(settings['trust_hi']),
                                         int(settings['max_candidates']), int(settings.get('stride', 1)),
                                         int(settings.get('seed', 0)))
    statistics = {'n_frames': selection.n_frames, 'n_selected': len(selection.selected),
                  **selection.fractions(), 'max_devi_f_max': float(devi.max()), 'max_devi_f_mean': float(devi.mean()),
                  'per_trajectory': {}, 'units': 'eV/Å'}
    for i, name in enumerate(names):
        mask = owner == i
        part = mlff.select_by_deviation(devi[mask], float(settings['trust_lo']), float(settings['trust_hi']), 0)
        statistics['per_trajectory'][name] = {'n_frames': part.n_frames, **part.fractions()}
    outputs = {'statistics': orm.Dict(statistics)}
    cell = reference.get_ase().cell.array
    for n, index in enumerate(selection.selected):
        atoms = trajectories[names[owner[index]]].get_step_structure(int(local[index])).get_ase()
        structure = orm.StructureData(ase=mlff.recenter_in_cell(atoms, cell))
        structure.pbc = (False, False, False)
        outputs[f'candidate_{n:03d}'] = structure
    return outputs


def _load_systems(dataset: orm.FolderData | None, workdir: pathlib.Path) -> dict:
    import dpdata

    systems = {}
    if dataset is None:
        return systems
    dataset.base.repository.copy_tree(workdir / 'old')
    for subset in (TRAINING_DIR, VALIDATION_DIR):
        root = workdir / 'old' / subset
        for path in sorted(root.glob('*/type.raw')) if root.exists() else []:
            systems[f'{subset}/{path.parent.name}'] = dpdata.LabeledSystem(str(path.parent), fmt='deepmd/npy')
    return systems


def _md_frames(retrieved: orm.FolderData, stride: int) -> list[tuple]:
    """Every ``stride``-th frame (from step 0) of a CP2K MD CalcJob's retrieved trajectory files, checked.

    The CalcJob must be ``RUN_TYPE MD`` with forces printed in Hartree/Bohr; the atoms must be those of its input
    structure, in its order; each frame passes :func:`mlff.cp2k_label`'s force checks. The cell is the input cell.
    """
    calc = retrieved.creator
    parameters = calc.inputs.parameters.get_dict()
    if parameters.get('GLOBAL', {}).get('RUN_TYPE', '').upper() != 'MD':
        raise ValueError(f"{calc.process_label}<{calc.pk}> is not a CP2K MD (RUN_TYPE "
                         f"{parameters.get('GLOBAL', {}).get('RUN_TYPE')!r})")
    unit = parameters.get('MOTION', {}).get('PRINT', {}).get('FORCES', {}).get('UNIT', 'hartree*bohr^-1')
    if unit.lower().replace(' ', '') != 'hartree*bohr^-1':
        raise ValueError(f'CP2K MD forces were written in {unit!r}; expected hartree*bohr^-1')
    names = retrieved.base.repository.list_object_names()
    missing = [name for name in MD_FILES[:2] if name not in names]
    if missing:
        raise ValueError(f'{calc.process_label}<{calc.pk}> retrieved no {missing}: was MOTION/PRINT/TRAJECTORY and '
                         'FORCES set?')
    content = retrieved.base.repository.get_object_content
    data = mlff.read_cp2k_md_frames(content(MD_FILES[0]), content(MD_FILES[1]),
                                    content(MD_FILES[2]) if MD_FILES[2] in names else None)
    start = calc.inputs.structure.get_ase()
    if data['symbols'] != start.get_chemical_symbols():
        raise ValueError(f'the MD frames hold atoms {data["symbols"]} but the input structure of '
                         f'{calc.process_label}<{calc.pk}> {start.get_chemical_symbols()}')
    frames = []
    for index in range(0, len(data['steps']), stride):
        atoms = start.copy()
        atoms.set_positions(data['positions'][index])
        energy, forces = mlff.cp2k_label(data['energies'][index] / mlff.HARTREE_EV, 'a.u.', data['forces'][index],
                                         len(atoms))
        frames.append((atoms, energy, forces, calc, int(data['steps'][index])))
    return frames


@calcfunction
def grow_dataset(parameters: orm.Dict, dataset: orm.FolderData | None = None, **labels) -> dict:
    """Add CP2K ENERGY_FORCE labels to a deepmd/npy dataset (dpdata), holding every n-th frame out for validation.

    :param parameters: ``{'type_map': [...], 'validation_every': n}`` (``n = 0``: no validation frames).
    :param dataset: the previous dataset (absent for the first call).
    :param labels: per frame ``structure_<i>`` (the labelled StructureData), ``output_parameters_<i>`` (CP2K energy
        in Hartree) and ``retrieved_<i>`` (the CP2K CalcJob's retrieved folder, whose output holds the
        forces table: ``ATOMIC FORCES in [a.u.]`` up to CP2K 2024, ``FORCES| Atomic forces [hartree/bohr]`` from
        2025.1). Units are checked and converted to eV and eV/Å. And/or ``md_retrieved_<i>``:
        the retrieved folder of a CP2K MD CalcJob, every ``md_stride``-th frame of whose ``aiida-pos-1.xyz`` /
        ``aiida-frc-1.xyz`` (energies cross-checked with ``aiida-1.ener``) is added.
    :returns: ``dataset`` FolderData: ``training/<system>/`` and ``validation/<system>/`` deepmd/npy systems;
        attribute ``frame_sources`` maps each system to the uuids of the labelling CalcJobs, frame by frame, and
        ``frame_md_steps`` to the MD step of each frame (``None`` for single-point labels).
    """
    settings = parameters.get_dict()
    type_map = list(settings['type_map'])
    # (atoms, energy in eV, forces in eV/Å, labelling CalcJob, MD step or None) for every new frame, in order
    frames = []
    for key in sorted(key.split('_', 1)[1] for key in labels if key.startswith('structure_')):
        atoms = labels[f'structure_{key}'].get_ase()
        output = labels[f'output_parameters_{key}'].get_dict()
        retrieved = labels[f'retrieved_{key}']
        text = retrieved.base.repository.get_object_content(retrieved.creator.base.attributes.get(
            'output_filename', 'aiida.out'))
        energy, forces = mlff.cp2k_label(output['energy'], output.get('energy_units', 'a.u.'),
                                         mlff.read_cp2k_atomic_forces(text), len(atoms))
        frames.append((atoms, energy, forces, retrieved.creator, None))
    for key in sorted(key for key in labels if key.startswith('md_retrieved_')):
        frames.extend(_md_frames(labels[key], int(settings.get('md_stride', 1))))
    sources = dict(dataset.base.attributes.get('frame_sources', {})) if dataset is not None else {}
    steps = dict(dataset.base.attributes.get('frame_md_steps', {})) if dataset is not None else {}
    n_existing = sum(len(v) for v in sources.values())
    held_out = mlff.assign_validation(n_existing, len(frames), int(settings.get('validation_every', 0)))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        systems = _load_systems(dataset, workdir)
        for (atoms, energy, forces, calc, step), validation in zip(frames, held_out):
            frame = mlff.labelled_system(atoms, energy, forces, type_map)
            counts = frame.get_atom_numbs()
            name = f"{VALIDATION_DIR if validation else TRAINING_DIR}/" + ''.join(
                f'{el}{n}' for el, n in zip(type_map, counts) if n)
            if name in systems:
                systems[name].append(frame)
            else:
                systems[name] = frame
            # frames from before this attribute existed have no MD step recorded: pad with None
            steps.setdefault(name, [None] * len(sources.get(name, [])))
            sources.setdefault(name, []).append(calc.uuid)
            steps[name].append(step)
        result = orm.FolderData()
        for name, system in systems.items():
            target = workdir / 'new' / name
            system.to('deepmd/npy', str(target), set_size=max(len(system), 1))
            result.base.repository.put_object_from_tree(str(target), name)
    result.base.attributes.set('frame_sources', sources)
    result.base.attributes.set('frame_md_steps', steps)
    result.base.attributes.set('type_map', type_map)
    result.base.attributes.set('units', {'energy': 'eV', 'force': 'eV/Å', 'length': 'Å'})
    return {'dataset': result}


def is_converged(selection: dict, validation: dict, convergence: dict) -> bool:
    """Whether an iteration met a stopping criterion.

    Converged when the accurate fraction of the MD frames reaches ``accurate_fraction`` (default 0.95), or when the
    held-out energy MAE is below ``energy_mae_per_atom`` (eV/atom, default 0.001, Sowa et al.) and, if given, the force
    MAE below ``force_mae`` (eV/Å).
    """
    accurate = selection.get('accurate', 0.0) >= float(convergence.get('accurate_fraction', 0.95))
    energy_ok = validation.get('energy_mae_per_atom', np.inf) < float(convergence.get('energy_mae_per_atom', 1e-3))
    force_ok = 'force_mae' not in convergence or validation.get('force_mae', np.inf) < float(convergence['force_mae'])
    return bool(accurate or (energy_ok and force_ok))


@calcfunction
def collect_iterations(convergence: orm.Dict, **statistics) -> orm.Dict:
    """Per-iteration table from the ``select_candidates`` statistics and validation errors.

    :param statistics: ``selection_iter_<n>`` (select_candidates statistics) and ``validation_iter_<n>`` (the
        ``output_parameters`` of model 1's training) Dicts.
    :returns: ``iterations`` rows (accurate/candidate/failed fractions, validation MAEs in eV/atom and eV/Å,
        ``converged``) and ``converged`` (of the last iteration).
    """
    table = {}
    for key, node in sorted(statistics.items()):
        kind, iteration = key.rsplit('_iter_', 1)
        table.setdefault(int(iteration), {})[kind] = node.get_dict()
    rows = []
    for iteration in sorted(table):
        selection = table[iteration].get('selection', {})
        validation = table[iteration].get('validation', {})
        rows.append({'iteration': iteration, **{k: selection.get(k) for k in ('accurate', 'candidate', 'failed',
                                                                                'n_frames', 'n_selected')},
                     'energy_mae_per_atom': validation.get('energy_mae_per_atom'),
                     'force_mae': validation.get('force_mae'), 'force_rmse': validation.get('force_rmse'),
                     'converged': is_converged(selection, validation, convergence.get_dict())})
    return orm.Dict({'iterations': rows, 'converged': bool(rows and rows[-1]['converged']),
                     'units': {'energy_mae_per_atom': 'eV/atom', 'force': 'eV/Å'}})


@calcfunction
def plot_parity(parity: orm.ArrayData) -> orm.SinglefileData:
    """PNG parity plot of MLFF vs DFT energies (eV/atom) and force components (eV/Å) on held-out frames."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    e_dft, e_ml = parity.get_array('energy_per_atom_dft'), parity.get_array('energy_per_atom_mlff')
    f_dft, f_ml = parity.get_array('forces_dft').ravel(), parity.get_array('forces_mlff').ravel()
    figure, axes = plt.subplots(1, 2, figsize=(8, 4))
    for axis, (ref, pred, label) in zip(axes, ((e_dft, e_ml, 'energy (eV/atom)'), (f_dft, f_ml, 'force (eV/Å)'))):
        metrics = mlff.parity_metrics(pred, ref)
        axis.scatter(ref, pred, s=8)
        low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        axis.plot([low, high], [low, high], 'k--', lw=0.8)
        axis.set_xlabel(f'DFT {label}')
        axis.set_ylabel(f'MLFF {label}')
        axis.set_title(f"MAE {metrics['mae']:.3g}, RMSE {metrics['rmse']:.3g}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    plt.close(figure)
    buffer.seek(0)
    return orm.SinglefileData(buffer, filename='parity.png')


# -- the work chain ---------------------------------------------------------------------------------------------------
def validate_settings(inputs, _):
    selection = inputs['selection'].get_dict()
    missing = {'trust_lo', 'trust_hi', 'max_candidates'} - set(selection)
    if missing:
        return f'selection lacks {sorted(missing)}'
    if not 0 <= float(selection['trust_lo']) < float(selection['trust_hi']):
        return (f"selection trust levels must satisfy 0 <= trust_lo < trust_hi (eV/Å), got {selection['trust_lo']}, "
                f"{selection['trust_hi']}")
    convergence = inputs['convergence'].get_dict()
    if set(convergence) - CONVERGENCE_KEYS:
        return f'unknown convergence key(s) {sorted(set(convergence) - CONVERGENCE_KEYS)}; allowed {CONVERGENCE_KEYS}'
    if not 0 < float(convergence.get('accurate_fraction', 0.95)) <= 1:
        return f"convergence.accurate_fraction must be in (0, 1], got {convergence['accurate_fraction']}"
    if int(convergence.get('max_iterations', 1)) < 1:
        return f"convergence.max_iterations must be >= 1, got {convergence['max_iterations']}"
    if not 1 <= inputs['num_models'].value <= 8:
        return f"num_models must be in [1, 8], got {inputs['num_models'].value}"
    exploration = inputs['exploration'].get_dict()
    temperatures = exploration.get('temperatures_K', [])
    if not temperatures:
        return 'exploration.temperatures_K must list at least one temperature (K)'
    try:
        for temperature in temperatures:
            md_parameters({**exploration.get('md', {}), 'temperature_K': temperature})
    except ValueError as exception:
        return f'exploration: {exception}'
    training = inputs['training'].get_dict() if 'training' in inputs else {}
    if set(training) - TRAINING_KEYS:
        return f'unknown training key(s) {sorted(set(training) - TRAINING_KEYS)}; allowed {sorted(TRAINING_KEYS)}'
    if not isinstance(training.get('numb_steps', 1000), int) or training.get('numb_steps', 1000) < 1:
        return f"training.numb_steps must be a positive integer, got {training['numb_steps']!r}"
    fraction = training.get('warm_start_steps', 1.0)
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        return f'training.warm_start_steps (fraction of numb_steps for warm starts) must be in (0, 1], got {fraction!r}'
    if not isinstance(training.get('warm_start', False), bool):
        return f"training.warm_start must be true or false, got {training['warm_start']!r}"
    initial = inputs['initial'].get_dict()
    method = initial.get('method', 'rattle')
    if method not in INITIAL_KEYS:
        return f'initial.method must be one of {sorted(INITIAL_KEYS)}, got {method!r}'
    if method == 'cp2k_md':
        try:
            initial_md_settings(initial)
        except ValueError as exception:
            return str(exception)
    elif set(initial) - INITIAL_KEYS['rattle']:
        return (f"unknown initial key(s) {sorted(set(initial) - INITIAL_KEYS['rattle'])} for method rattle; "
                f"allowed {sorted(INITIAL_KEYS['rattle'])}")
    elif int(initial.get('n_frames', 0)) < 2:
        return f"initial.n_frames must be >= 2 (training + validation frames), got {initial.get('n_frames')}"
    return None


def training_schedule(training: dict, iteration: int) -> tuple[dict, bool]:
    """DeePMD parameters of one iteration's training and whether it warm-starts from the previous iteration.

    Iteration 1 trains from scratch for ``numb_steps``. With ``warm_start`` (default true), later iterations start
    each ensemble member from the same member of the previous iteration and train for ``warm_start_steps`` ×
    ``numb_steps`` steps (at least 1) with ``warm_start_parameters`` merged over ``parameters`` (DP-GEN2's init-model
    defaults: ``start_lr`` 1e-4, ``start_pref_e`` 0.1, ``start_pref_f`` 100).
    """
    steps = int(training.get('numb_steps', 1000))
    warm = bool(training.get('warm_start', False)) and iteration > 1
    parameters = copy.deepcopy(training.get('parameters', {}))
    if warm:
        steps = max(1, round(steps * float(training.get('warm_start_steps', 1.0))))
        parameters = recursive_merge(parameters, copy.deepcopy(training.get('warm_start_parameters', {})))
    return recursive_merge(parameters, {'training': {'numb_steps': steps}}), warm


class MlffActiveLearningWorkChain(ProtocolMixin, WorkChain):
    """Train a DeePMD ensemble for a QD by active learning with CP2K labels (Sowa et al.'s iterative scheme)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_qd_inputs(spec)
        spec.input('box_vacuum', valid_type=orm.Float, required=False,
                   help='Centre the QD in a cubic box with this much vacuum (Å) first; every label uses this box.')
        spec.expose_inputs(QdCp2kBaseWorkChain, namespace='label', exclude=('cp2k.structure',),
                           namespace_options={'help': 'CP2K ENERGY_FORCE labelling (parameters from the protocol).'})
        spec.input('dp_code', valid_type=orm.AbstractCode, help='Python with deepmd-kit: training (train/freeze/test).')
        spec.input('md_code', valid_type=orm.AbstractCode, help='Python with ase + deepmd-kit: the MLFF MD script.')
        spec.input('type_map', valid_type=orm.List, required=False, help='Element order; default: sorted elements.')
        spec.input('num_models', valid_type=orm.Int, default=lambda: orm.Int(4), help='Ensemble size (seeds 1..n).')
        spec.input('validation_every', valid_type=orm.Int, default=lambda: orm.Int(5),
                   help='Hold out every n-th labelled frame for validation and the parity plot.')
        spec.input('initial', valid_type=orm.Dict,
                   help='Initial frames: `method` `rattle` (default; `n_frames`, `rattle_stdev` Å, `seed`) or '
                        '`cp2k_md` (`steps`, `timestep_fs`, `temperature_K`, `thermostat_tau_fs`, `seed`, `stride`: '
                        'a short CP2K NVT MD whose frames are the initial labels).')
        spec.input('training', valid_type=orm.Dict,
                   help='`numb_steps`, `parameters` (DeePMD input merged over the DeepmdTrainCalculation defaults), '
                        '`warm_start` (bool), `warm_start_steps` (fraction of numb_steps), `warm_start_parameters`.')
        spec.input('exploration', valid_type=orm.Dict,
                   help='`temperatures_K` (list, K) and `md` (MlffMdCalculation parameters but the temperature).')
        spec.input('selection', valid_type=orm.Dict, help='`trust_lo`, `trust_hi` (eV/Å), `max_candidates`, `stride`.')
        spec.input('convergence', valid_type=orm.Dict,
                   help='`accurate_fraction` (default 0.95), `energy_mae_per_atom` (eV/atom, default 0.001), '
                        'optional `force_mae` (eV/Å), `max_iterations` (default 5).')
        spec.input('label_wfn_restart', valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help='Start the SCF of the labels of MD frames from the wavefunction of the initial data (the last '
                        'frame of the initial CP2K MD, or the first initial label) instead of the atomic guess.')
        spec.input('train_options', valid_type=dict, non_db=True, required=False, help='CalcJob options of training.')
        spec.input('md_options', valid_type=dict, non_db=True, required=False, help='CalcJob options of the MD.')
        spec.inputs.validator = validate_settings
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            if_(cls.starts_from_md)(
                cls.run_initial_md,
                cls.inspect_initial_md,
            ).else_(
                cls.make_initial_frames,
                cls.run_labels,
                cls.inspect_labels,
            ),
            while_(cls.should_iterate)(
                cls.run_training,
                cls.inspect_training,
                cls.run_exploration,
                cls.inspect_exploration,
                if_(cls.should_label)(
                    cls.run_labels,
                    cls.inspect_labels,
                ),
            ),
            cls.results,
        )
        spec.output_namespace('models', valid_type=orm.SinglefileData, dynamic=True,
                              help='The final ensemble (frozen .pth models).')
        spec.output('dataset', valid_type=orm.FolderData, help='All labelled frames (deepmd/npy), with frame sources.')
        spec.output('iterations', valid_type=orm.Dict,
                    help='Per iteration: accurate/candidate/failed fractions, validation errors, `converged`.')
        spec.output('parity_plot', valid_type=orm.SinglefileData, required=False,
                    help='MLFF vs DFT energies and forces on the held-out frames (PNG).')
        spec.exit_code(410, 'ERROR_LABELING_FAILED', message='CP2K labelling failed for {count} frame(s): {message}')
        spec.exit_code(420, 'ERROR_TRAINING_FAILED', message='DeePMD training failed: {message}')
        spec.exit_code(430, 'ERROR_EXPLORATION_FAILED', message='MLFF MD failed: {message}')

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / 'mlff.yaml'

    @classmethod
    def get_builder_from_protocol(cls, cp2k_code: orm.AbstractCode, dp_code: orm.AbstractCode,
                                  md_code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None = None, overrides: dict | None = None, charge: int = 0,
                                  multiplicity: int = 1, options: dict | None = None):
        """Builder for ``structure`` with the ``fast`` (CI) / ``moderate`` / ``precise`` protocol.

        The CP2K labels use ``QdRelaxWorkChain``'s protocol of the same name, turned into ENERGY_FORCE.

        :param overrides: nested dict with this work chain's input layout, merged last.
        :param options: CalcJob options merged into ``label.cp2k.metadata.options``.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        relax, extras = cp2k_protocol_inputs(QdRelaxWorkChain, 'base', structure, protocol, None, options)
        base = relax['base']
        builder = cls.get_builder()
        builder.structure = structure
        builder.charge = orm.Int(charge)
        builder.multiplicity = orm.Int(multiplicity)
        if 'box_vacuum' in extras:
            builder.box_vacuum = orm.Float(extras['box_vacuum'])
        builder.label.max_iterations = orm.Int(base['max_iterations'])
        builder.label.cp2k.code = cp2k_code
        builder.label.cp2k.parameters = orm.Dict(label_parameters(base['cp2k']['parameters']))
        builder.label.cp2k.metadata = base['cp2k']['metadata']
        set_scf_monitor(builder.label.cp2k, base.get('scf_monitor'))
        builder.dp_code = dp_code
        builder.md_code = md_code
        builder.num_models = orm.Int(inputs['num_models'])
        builder.label_wfn_restart = orm.Bool(inputs.get('label_wfn_restart', False))
        builder.validation_every = orm.Int(inputs['validation_every'])
        if inputs['initial'].get('method') == 'cp2k_md':  # drop the protocol's rattle settings unless overridden
            given = (overrides or {}).get('initial', {})
            inputs['initial'] = {k: v for k, v in inputs['initial'].items()
                                 if k in given or k in INITIAL_KEYS['cp2k_md']}
        for key in ('initial', 'training', 'exploration', 'selection', 'convergence'):
            builder[key] = orm.Dict(inputs[key])
        return builder

    # -- steps ---------------------------------------------------------------------------------------------------
    def setup(self):
        self.ctx.structure = self.inputs.structure
        elements = sorted({site.kind_name for site in self.inputs.structure.sites})
        elements = sorted({self.inputs.structure.get_kind(name).symbol for name in elements})
        self.ctx.type_map = orm.List(self.inputs.type_map.get_list() if 'type_map' in self.inputs else elements)
        self.ctx.iteration = 0
        self.ctx.dataset = None
        self.ctx.converged = False
        self.ctx.statistics = {}
        self.ctx.models = {}
        self.ctx.to_label = {}
        self.ctx.grow_parameters = orm.Dict({'type_map': self.ctx.type_map.get_list(),
                                             'validation_every': self.inputs.validation_every.value})

    def should_box(self):
        return 'box_vacuum' in self.inputs

    def put_in_box(self):
        self.ctx.structure = center_in_box(self.inputs.structure, self.inputs.box_vacuum)

    def make_initial_frames(self):
        self.ctx.to_label = rattle_structure(self.ctx.structure, self.inputs.initial)
        self.report(f'initial data: {len(self.ctx.to_label)} rattled frames of the QD to label with CP2K')

    def starts_from_md(self):
        return self.inputs.initial.get('method', 'rattle') == 'cp2k_md'

    def run_initial_md(self):
        """A short CP2K NVT MD of the (boxed) QD with the label DFT settings; its frames are the initial data."""
        settings = initial_md_settings(self.inputs.initial.get_dict())
        state = electronic_state_changes(self.inputs.charge.value, self.inputs.multiplicity.value)
        base = AttributeDict(self.exposed_inputs(QdCp2kBaseWorkChain, namespace='label'))
        inputs = copy.copy(base)
        inputs.cp2k = AttributeDict(dict(base.cp2k))
        inputs.cp2k.structure = self.ctx.structure
        inputs.cp2k.parameters = orm.Dict(recursive_merge(initial_md_parameters(base.cp2k.parameters.get_dict(),
                                                                                settings), state))
        cp2k_settings = base.cp2k.settings.get_dict() if 'settings' in base.cp2k else {}
        extra = [name for name in MD_FILES[2:] if name not in cp2k_settings.get('additional_retrieve_list', [])]
        cp2k_settings['additional_retrieve_list'] = [*cp2k_settings.get('additional_retrieve_list', []), *extra]
        inputs.cp2k.settings = orm.Dict(cp2k_settings)
        inputs.metadata = {'call_link_label': 'initial_md'}
        self.report(f"initial data: CP2K NVT MD, {settings['steps']} steps of {settings['timestep_fs']} fs at "
                    f"{settings['temperature_K']} K, frame stride {settings['stride']}")
        return ToContext(initial_md=self.submit(QdCp2kBaseWorkChain, **inputs))

    def inspect_initial_md(self):
        """The MD frames (positions, CP2K forces and energies) become the initial dataset."""
        node = self.ctx.initial_md
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LABELING_FAILED.format(
                count=1, message=f'initial MD {node.process_label}<{node.pk}> exit status {node.exit_status}')
        self.ctx.wfn_parent = getattr(node.outputs, 'remote_folder', None)
        settings = initial_md_settings(self.inputs.initial.get_dict())
        parameters = orm.Dict({**self.ctx.grow_parameters.get_dict(), 'md_stride': settings['stride']})
        self.ctx.dataset = grow_dataset(parameters, md_retrieved_000=node.outputs.retrieved)['dataset']
        n_frames = sum(len(v) for v in self.ctx.dataset.base.attributes.get('frame_sources').values())
        self.report(f'initial data: dataset<{self.ctx.dataset.pk}> holds {n_frames} frames of the CP2K MD')
        return None

    def run_labels(self):
        """Label every structure of ``ctx.to_label`` with CP2K ENERGY_FORCE (QdCp2kBaseWorkChain)."""
        state = electronic_state_changes(self.inputs.charge.value, self.inputs.multiplicity.value)
        base = AttributeDict(self.exposed_inputs(QdCp2kBaseWorkChain, namespace='label'))
        parameters = update_cp2k_parameters(base.cp2k.parameters, orm.Dict(state))
        futures = {}
        parent = self.ctx.get('wfn_parent') if self.inputs.label_wfn_restart.value else None
        if parent is not None:  # CP2K falls back to the atomic guess if the file is missing
            parameters = update_cp2k_parameters(parameters, orm.Dict({'FORCE_EVAL': {'DFT': {
                'WFN_RESTART_FILE_NAME': WFN_RESTART, 'SCF': {'SCF_GUESS': 'RESTART'}}}}))
        for key, structure in sorted(self.ctx.to_label.items()):
            inputs = copy.copy(base)
            inputs.cp2k = AttributeDict(dict(base.cp2k))
            inputs.cp2k.structure = structure
            inputs.cp2k.parameters = parameters
            if parent is not None:
                inputs.cp2k.parent_calc_folder = parent
            inputs.metadata = {'call_link_label': f'label_iter_{self.ctx.iteration}_{key}'}
            futures[f'label_{key}'] = self.submit(QdCp2kBaseWorkChain, **inputs)
        start = f', SCF from the wavefunction in RemoteData<{parent.pk}>' if parent is not None else ''
        self.report(f'iteration {self.ctx.iteration}: labelling {len(futures)} frame(s) with CP2K ENERGY_FORCE{start}')
        return ToContext(**futures)

    def inspect_labels(self):
        """Add the finished labels to the dataset; fail if any CP2K work chain failed.

        A label of an MD frame (iteration >= 1) whose largest CP2K force exceeds ``MAX_PLAUSIBLE_FORCE`` (atoms
        pushed into each other by a poor model) is left out with a report, as DP-GEN leaves out failed frames; the
        next training then uses the dataset as it was. Initial labels are never left out: there ``grow_dataset``
        refuses them, with the force in the message.
        """
        failed, labels, refused = [], {}, []
        for i, key in enumerate(sorted(self.ctx.to_label)):
            node = self.ctx[f'label_{key}']
            if not node.is_finished_ok:
                failed.append(f'{node.process_label}<{node.pk}> exit status {node.exit_status}')
                continue
            if self.ctx.iteration > 0:
                largest = self._largest_force(node.outputs.retrieved)
                if largest is not None and largest > mlff.MAX_PLAUSIBLE_FORCE:
                    refused.append(f'{node.process_label}<{node.pk}> ({largest:.3g} eV/Å)')
                    continue
            labels[f'structure_{i:03d}'] = self.ctx.to_label[key]
            labels[f'output_parameters_{i:03d}'] = node.outputs.output_parameters
            labels[f'retrieved_{i:03d}'] = node.outputs.retrieved
        if failed:
            return self.exit_codes.ERROR_LABELING_FAILED.format(count=len(failed), message='; '.join(failed))
        if self.ctx.iteration == 0:
            self.ctx.wfn_parent = getattr(self.ctx[f'label_{min(self.ctx.to_label)}'].outputs, 'remote_folder', None)
        if refused:
            self.ctx.refused_labels = self.ctx.get('refused_labels', 0) + len(refused)
            self.report(f'iteration {self.ctx.iteration}: {len(refused)} label(s) not added, largest force above '
                        f'{mlff.MAX_PLAUSIBLE_FORCE} eV/Å (unphysical MD frames): {"; ".join(refused)}')
        if not labels:
            self.report(f'iteration {self.ctx.iteration}: no label added; '
                        f'the dataset stays dataset<{self.ctx.dataset.pk}>')
            return None
        kwargs = {'dataset': self.ctx.dataset} if self.ctx.dataset is not None else {}
        self.ctx.dataset = grow_dataset(self.ctx.grow_parameters, **kwargs, **labels)['dataset']
        n_frames = sum(len(v) for v in self.ctx.dataset.base.attributes.get('frame_sources').values())
        self.report(f'iteration {self.ctx.iteration}: dataset<{self.ctx.dataset.pk}> now holds {n_frames} frames')
        return None

    @staticmethod
    def _largest_force(retrieved: orm.FolderData) -> float | None:
        """Largest atomic force (eV/Å) of a CP2K ENERGY_FORCE output, None if it has no forces block."""
        text = retrieved.base.repository.get_object_content(retrieved.creator.base.attributes.get('output_filename',
                                                                                               'aiida.out'))
        try:
            return float(np.linalg.norm(mlff.read_cp2k_atomic_forces(text), axis=1).max())
        except ValueError:
            return None  # grow_dataset raises with the reason

    def should_iterate(self):
        max_iterations = int(self.inputs.convergence.get('max_iterations', 5))
        return not self.ctx.converged and self.ctx.iteration < max_iterations

    def run_training(self):
        """Train the ensemble; from iteration 2 on (``training.warm_start``) member n starts from member n's model."""
        self.ctx.iteration += 1
        parameters, warm = training_schedule(self.inputs.training.get_dict(), self.ctx.iteration)
        parameters = orm.Dict(parameters)
        futures = {}
        for seed in range(1, self.inputs.num_models.value + 1):
            inputs = {'code': self.inputs.dp_code, 'dataset': self.ctx.dataset, 'type_map': self.ctx.type_map,
                      'parameters': parameters, 'seed': orm.Int(seed),
                      'metadata': {'call_link_label': f'train_iter_{self.ctx.iteration}_model_{seed}',
                                   'options': dict(self.inputs.get('train_options', {}))}}
            if warm:
                inputs['init_model'] = self.ctx.models[f'model_{seed}']
            futures[f'train_{seed}'] = self.submit(DeepmdTrainCalculation, **inputs)
        start = f'warm start from iteration {self.ctx.iteration - 1}' if warm else 'from scratch'
        self.report(f'iteration {self.ctx.iteration}: training {len(futures)} DeePMD models '
                    f"({parameters['training']['numb_steps']} steps each, {start})")
        return ToContext(**futures)

    def inspect_training(self):
        failed = [f'DeepmdTrainCalculation<{self.ctx[k].pk}> exit status {self.ctx[k].exit_status}'
                  for k in self.ctx if k.startswith('train_') and not self.ctx[k].is_finished_ok]
        if failed:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message='; '.join(failed))
        self.ctx.models = {f'model_{s}': self.ctx[f'train_{s}'].outputs.model
                           for s in range(1, self.inputs.num_models.value + 1)}
        first = self.ctx['train_1']
        self.ctx.validation = first.outputs.output_parameters
        self.ctx.statistics[f'validation_iter_{self.ctx.iteration}'] = first.outputs.output_parameters
        if 'validation_parity' in first.outputs:
            self.ctx.parity = first.outputs.validation_parity
        metrics = first.outputs.output_parameters.get_dict()
        if metrics.get('warm_start'):
            self.report(f"iteration {self.ctx.iteration}: warm start, model 1's first training force RMSE "
                        f"{metrics.get('initial_rmse_f_trn', float('nan')):.3g} eV/Å (final "
                        f"{metrics.get('final_rmse_f_trn', float('nan')):.3g})")
        if 'energy_mae_per_atom' in metrics:
            self.report(f"iteration {self.ctx.iteration}: validation MAE {1e3 * metrics['energy_mae_per_atom']:.3g} "
                        f"meV/atom, force MAE {metrics['force_mae']:.3g} eV/Å ({metrics['n_validation_frames']} "
                        'held-out frames, model 1)')
        return None

    def run_exploration(self):
        exploration = self.inputs.exploration.get_dict()
        futures = {}
        for i, temperature in enumerate(exploration['temperatures_K']):
            parameters = {**exploration.get('md', {}), 'temperature_K': float(temperature),
                          'seed': 1000 * self.ctx.iteration + i}
            inputs = {'code': self.inputs.md_code, 'structure': self.ctx.structure, 'models': self.ctx.models,
                      'type_map': self.ctx.type_map, 'parameters': orm.Dict(parameters),
                      'metadata': {'call_link_label': f'md_iter_{self.ctx.iteration}_{i}',
                                   'options': dict(self.inputs.get('md_options', {}))}}
            futures[f'md_{i}'] = self.submit(MlffMdCalculation, **inputs)
        self.report(f'iteration {self.ctx.iteration}: MLFF MD at {exploration["temperatures_K"]} K')
        return ToContext(**futures)

    def inspect_exploration(self):
        runs = {k: self.ctx[k] for k in self.ctx if k.startswith('md_')}
        failed = [f'MlffMdCalculation<{n.pk}> exit status {n.exit_status}' for n in runs.values() if
                  not n.is_finished_ok]
        if failed:
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(message='; '.join(failed))
        selection = {**self.inputs.selection.get_dict(), 'seed': self.ctx.iteration}
        if self.inputs.num_models.value < 2:
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(message='model deviation needs >= 2 models')
        result = select_candidates(self.ctx.structure, orm.Dict(selection),
                                   **{k: n.outputs.trajectory for k, n in sorted(runs.items())})
        stats = result['statistics']
        self.ctx.statistics[f'selection_iter_{self.ctx.iteration}'] = stats
        self.ctx.to_label = {k: v for k, v in result.items() if k.startswith('candidate_')}
        self.ctx.converged = is_converged(stats.get_dict(), self.ctx.validation.get_dict(),
                                          self.inputs.convergence.get_dict())
        self.report(f"iteration {self.ctx.iteration}: {stats['n_frames']} MD frames, accurate {stats['accurate']:.2f},"
                    f" candidate {stats['candidate']:.2f}, failed {stats['failed']:.2f}; "
                    f'{len(self.ctx.to_label)} selected' + ('; converged' if self.ctx.converged else ''))
        return None

    def should_label(self):
        """Label only when another training follows (labels after the last training would not be used)."""
        return bool(self.ctx.to_label) and self.should_iterate()

    def results(self):
        self.out('dataset', self.ctx.dataset)
        self.out('models', self.ctx.models)
        self.out('iterations', collect_iterations(self.inputs.convergence, **self.ctx.statistics))
        if 'parity' in self.ctx:
            self.out('parity_plot', plot_parity(self.ctx.parity))
        self.report(f'done after {self.ctx.iteration} iteration(s); converged: {self.ctx.converged}')
