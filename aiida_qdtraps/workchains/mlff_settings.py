"""Settings of ``MlffActiveLearningWorkChain``: its input checks, the CP2K label and initial-MD parameters, the
training schedule and the stopping criterion. Plain dict in, dict out; the work chain (:mod:`.mlff`) and the
calcfunctions (:mod:`.mlff_functions`) use them.
"""

from __future__ import annotations

import copy

import numpy as np
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from ..archive import STRIPPED_EXTRA
from ..calculations.mlff_md import md_parameters

#: CP2K changes turning the relax protocol into a single-point energy + forces label.
LABEL_CHANGES = {'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'}, 'FORCE_EVAL': {'PRINT': {'FORCES': {'_': 'ON'}}}}
SELECTION_KEYS = {'trust_lo', 'trust_hi', 'max_candidates', 'stride', 'min_distance_scale', 'adaptive_lo',
                  'calibrate', 'balance'}
#: keys of ``selection.adaptive_lo``: dpgen2's adaptive lower trust level
#: (:func:`~aiida_qdtraps.analysis.mlff_selection.adaptive_trust_lo`)
ADAPTIVE_LO_KEYS = {'numb_candi', 'rate_candi'}
#: ``selection.calibrate``: from iteration 2 on, the trust levels calibrated on every labelled MD frame so far
#: (:func:`~aiida_qdtraps.analysis.mlff_selection.next_trust_levels`). ``target_error`` (eV/Å) has no default.
CALIBRATE_DEFAULTS = {'quantile': 0.95, 'min_points': 20, 'hi_ratio': 3.0}
CALIBRATE_KEYS = {'target_error', *CALIBRATE_DEFAULTS}
TRAINING_KEYS = {'numb_steps', 'parameters', 'warm_start', 'warm_start_steps', 'warm_start_parameters'}
EXPLORATION_KEYS = {'temperatures_K', 'md', 'relax', 'grow', 'rotate_driver', 'continue_md'}
#: ``exploration.grow``: the MD length starts at ``md.steps`` and is multiplied by ``factor`` (up to ``max_steps``)
#: after an iteration whose MDs all ran to the end with at most ``max_failed`` of their frames above trust_hi: DP-GEN's
#: schedule of growing explorations, driven by how the ensemble did instead of fixed in advance.
GROW_DEFAULTS = {'factor': 2.0, 'max_failed': 0.05, 'max_steps': 100000}
CONVERGENCE_KEYS = {'accurate_fraction', 'energy_mae_per_atom', 'force_mae', 'max_iterations', 'force_rmse_eV_A',
                    'energy_rmse_meV_atom'}


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


def validation_route(validation: dict, convergence: dict) -> tuple[bool, str] | None:
    """The held-out RMSE criterion (``force_rmse_eV_A``, ``energy_rmse_meV_atom``) when the convergence settings name
    either (:func:`~aiida_qdtraps.analysis.mlff_selection.validation_converged`; the other target keeps its default
    0.10 eV/Å or 1.0 meV/atom), else None."""
    from ..analysis.mlff_selection import validation_converged

    if not {'force_rmse_eV_A', 'energy_rmse_meV_atom'} & set(convergence):
        return None
    force = validation.get('force_rmse')
    energy = validation.get('energy_rmse_per_atom')
    if force is None or energy is None:
        return False, 'no held-out validation errors yet'
    targets = {'force_target': float(convergence.get('force_rmse_eV_A', 0.10)),
               'energy_target': float(convergence.get('energy_rmse_meV_atom', 1.0))}
    return validation_converged(float(force), 1000.0 * float(energy), **targets)


def is_converged(selection: dict, validation: dict, convergence: dict) -> bool:
    """Whether an iteration met a stopping criterion.

    Converged when the accurate fraction of the MD frames reaches ``accurate_fraction`` (default 0.95), or, with
    ``force_rmse_eV_A`` / ``energy_rmse_meV_atom`` given, when the held-out force RMSE (eV/Å) and energy RMSE
    (meV/atom) are within them (:func:`validation_route`); otherwise when the held-out energy MAE is below
    ``energy_mae_per_atom`` (eV/atom, default 0.001, Sowa et al.) and, if given, the force MAE below ``force_mae``
    (eV/Å).
    """
    accurate = selection.get('accurate', 0.0) >= float(convergence.get('accurate_fraction', 0.95))
    route = validation_route(validation, convergence)
    if route is not None:
        return bool(accurate or route[0])
    energy_ok = validation.get('energy_mae_per_atom', np.inf) < float(convergence.get('energy_mae_per_atom', 1e-3))
    force_ok = 'force_mae' not in convergence or validation.get('force_mae', np.inf) < float(convergence['force_mae'])
    return bool(accurate or (energy_ok and force_ok))


def check_selection(selection: dict) -> str | None:
    """The problem with the ``selection`` settings, or None."""
    unknown = set(selection) - SELECTION_KEYS - {'seed'}
    if unknown:
        return f'unknown selection key(s) {sorted(unknown)}; allowed {sorted(SELECTION_KEYS)}'
    missing = {'trust_lo', 'trust_hi', 'max_candidates'} - set(selection)
    if missing:
        return f'selection lacks {sorted(missing)}'
    if not 0 <= float(selection['trust_lo']) < float(selection['trust_hi']):
        return (f"selection trust levels must satisfy 0 <= trust_lo < trust_hi (eV/Å), got {selection['trust_lo']}, "
                f"{selection['trust_hi']}")
    if not isinstance(selection.get('balance', False), bool):
        return f"selection.balance must be true or false, got {selection['balance']!r}"
    scale = selection.get('min_distance_scale', 0.7)
    if scale is not None and not (isinstance(scale, (int, float)) and 0 < scale < 2):
        return f'selection.min_distance_scale must be a number in (0, 2) or null (no pre-label filter), got {scale!r}'
    adaptive = selection.get('adaptive_lo')
    calibrate = selection.get('calibrate')
    if calibrate is not None:
        problem = _check_calibrate(calibrate)
        if problem:
            return problem
        if adaptive is not None:
            return ('selection.calibrate and selection.adaptive_lo both set the lower trust level; give one of them, '
                    f'got calibrate={calibrate!r} and adaptive_lo={adaptive!r}')
    if adaptive is not None:
        if not isinstance(adaptive, dict) or set(adaptive) - ADAPTIVE_LO_KEYS:
            return f'selection.adaptive_lo must be a dict with keys from {sorted(ADAPTIVE_LO_KEYS)}, got {adaptive!r}'
        if not isinstance(adaptive.get('numb_candi', 20), int) or adaptive.get('numb_candi', 20) < 1:
            return f"selection.adaptive_lo.numb_candi must be a positive integer, got {adaptive['numb_candi']!r}"
        if not 0 <= float(adaptive.get('rate_candi', 0.01)) <= 1:
            return f"selection.adaptive_lo.rate_candi must be in [0, 1], got {adaptive['rate_candi']!r}"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_calibrate(calibrate) -> str | None:
    """The problem with ``selection.calibrate``, or None."""
    if not isinstance(calibrate, dict):
        return (f'selection.calibrate must be a dict with keys from {sorted(CALIBRATE_KEYS)} (target_error '
                f'required), got {calibrate!r}')
    unknown = set(calibrate) - CALIBRATE_KEYS
    if unknown:
        return f'unknown selection.calibrate key(s) {sorted(unknown)}; allowed {sorted(CALIBRATE_KEYS)}'
    if 'target_error' not in calibrate:
        return ('selection.calibrate needs target_error, the largest acceptable true force error of an accurate '
                'frame (eV/Å, e.g. 0.10)')
    target = calibrate['target_error']
    if not _is_number(target) or not target > 0:
        return f'selection.calibrate.target_error must be a positive force error in eV/Å, got {target!r}'
    quantile = calibrate.get('quantile', CALIBRATE_DEFAULTS['quantile'])
    if not _is_number(quantile) or not 0 < quantile <= 1:
        return f'selection.calibrate.quantile must be in (0, 1], got {quantile!r}'
    points = calibrate.get('min_points', CALIBRATE_DEFAULTS['min_points'])
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        return f'selection.calibrate.min_points must be an integer >= 1 (labelled frames), got {points!r}'
    ratio = calibrate.get('hi_ratio', CALIBRATE_DEFAULTS['hi_ratio'])
    if not _is_number(ratio) or not ratio > 1:
        return f'selection.calibrate.hi_ratio (trust_hi / trust_lo) must be > 1, got {ratio!r}'
    return None


def calibrate_settings(selection: dict) -> dict | None:
    """``selection.calibrate`` with its defaults, or None when the levels are not calibrated."""
    calibrate = selection.get('calibrate')
    if calibrate is None:
        return None
    return {**CALIBRATE_DEFAULTS, **calibrate}


def relaxations(exploration: dict, iteration: int = 1) -> list[dict]:
    """The ``MlffMdCalculation`` parameters of the exploration's model relaxations in ``iteration``: one BFGS run
    (``mode: relax``) per value of ``relax.rattle_stdev`` (Å), with the other keys of ``relax`` (``steps``,
    ``save_interval``, ``fmax``, ``maxstep``); none without a ``relax`` entry or before ``relax.from_iteration``
    (default 1).

    :raises ValueError: naming a bad value.
    """
    settings = dict(exploration.get('relax') or {})
    if not settings:
        return []
    first = settings.pop('from_iteration', 1)
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        raise ValueError(f'relax.from_iteration must be an integer >= 1, got {first!r}')
    stdevs = settings.pop('rattle_stdev', None)
    if not isinstance(stdevs, (list, tuple)) or not stdevs:
        raise ValueError(f'relax.rattle_stdev must list one rattle amplitude (Å) per relaxation, got {stdevs!r}')
    for key in ('mode', 'temperature_K', 'thermostat', 'thermostat_tau_fs', 'seed'):
        if key in settings:
            raise ValueError(f'relax.{key} is not a setting of a relaxation')
    runs = [md_parameters({**settings, 'mode': 'relax', 'rattle_stdev': float(value)}) for value in stdevs]
    return runs if iteration >= first else []


def grow_settings(exploration: dict) -> dict | None:
    """``exploration.grow`` with its defaults, checked (None: every iteration explores ``md.steps``).

    :raises ValueError: naming a bad value.
    """
    grow = exploration.get('grow')
    if grow is None:
        return None
    if not isinstance(grow, dict) or set(grow) - set(GROW_DEFAULTS):
        raise ValueError(f'grow must be a dict with keys from {sorted(GROW_DEFAULTS)}, got {grow!r}')
    settings = {**GROW_DEFAULTS, **grow}
    if not _is_number(settings['factor']) or not settings['factor'] > 1:
        raise ValueError(f"grow.factor must be > 1, got {settings['factor']!r}")
    if not _is_number(settings['max_failed']) or not 0 <= settings['max_failed'] < 1:
        raise ValueError(f"grow.max_failed (fraction of frames above trust_hi) must be in [0, 1), got "
                         f"{settings['max_failed']!r}")
    steps = md_parameters(exploration.get('md', {}))['steps']
    if isinstance(settings['max_steps'], bool) or not isinstance(settings['max_steps'], int) or \
            settings['max_steps'] < steps:
        raise ValueError(f"grow.max_steps must be an integer >= md.steps ({steps}), got {settings['max_steps']!r}")
    return settings


def next_exploration_steps(steps: int, grow: dict | None, failed: float, stopped: int) -> tuple[int, str]:
    """The MD length of the next iteration's exploration after one of ``steps`` steps in which a fraction ``failed``
    of the frames lay above trust_hi and ``stopped`` MDs ended early at ``md.stop_devi_f``; and why, for the report."""
    if grow is None:
        return steps, 'fixed length'
    if stopped:
        return steps, f'{stopped} MD(s) stopped at stop_devi_f: length kept'
    if failed > grow['max_failed']:
        return steps, f"failed fraction {failed:.2f} > grow.max_failed {grow['max_failed']}: length kept"
    grown = min(int(round(steps * grow['factor'])), grow['max_steps'])
    if grown == steps:
        return steps, f"at grow.max_steps {grow['max_steps']}"
    return grown, f"failed fraction {failed:.2f} <= grow.max_failed {grow['max_failed']}: grown x{grow['factor']}"


def exploration_driver(exploration: dict, iteration: int, index: int, num_models: int) -> int:
    """Index of the model that drives the ``index``-th MD of ``iteration``: the first, or with
    ``rotate_driver`` each member in turn across the MDs of all iterations (every member's holes get explored)."""
    if not exploration.get('rotate_driver', False):
        return 0
    per_iteration = len(exploration['temperatures_K'])
    return ((iteration - 1) * per_iteration + index) % num_models


def validate_settings(inputs, _):
    problem = check_selection(inputs['selection'].get_dict())
    if problem:
        return problem
    convergence = inputs['convergence'].get_dict()
    if set(convergence) - CONVERGENCE_KEYS:
        return f'unknown convergence key(s) {sorted(set(convergence) - CONVERGENCE_KEYS)}; allowed {CONVERGENCE_KEYS}'
    if not 0 < float(convergence.get('accurate_fraction', 0.95)) <= 1:
        return f"convergence.accurate_fraction must be in (0, 1], got {convergence['accurate_fraction']}"
    for key in ('force_rmse_eV_A', 'energy_rmse_meV_atom'):
        if key in convergence and not float(convergence[key]) > 0:
            return f'convergence.{key} must be positive, got {convergence[key]}'
    if int(convergence.get('max_iterations', 1)) < 1:
        return f"convergence.max_iterations must be >= 1, got {convergence['max_iterations']}"
    if not 1 <= inputs['num_models'].value <= 8:
        return f"num_models must be in [1, 8], got {inputs['num_models'].value}"
    exploration = inputs['exploration'].get_dict()
    if set(exploration) - EXPLORATION_KEYS:
        return (f'unknown exploration key(s) {sorted(set(exploration) - EXPLORATION_KEYS)}; allowed '
                f'{sorted(EXPLORATION_KEYS)}')
    temperatures = exploration.get('temperatures_K', [])
    if not temperatures:
        return 'exploration.temperatures_K must list at least one temperature (K)'
    for key in ('rotate_driver', 'continue_md'):
        if not isinstance(exploration.get(key, False), bool):
            return f'exploration.{key} must be true or false, got {exploration[key]!r}'
    if 'driver' in exploration.get('md', {}):
        return 'exploration.md.driver is set by the work chain (first model, or each in turn with rotate_driver)'
    try:
        for temperature in temperatures:
            md_parameters({**exploration.get('md', {}), 'temperature_K': temperature})
        relaxations(exploration)
        grow_settings(exploration)
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
    return check_previous(inputs)


def check_previous(inputs) -> str | None:
    """The problem with ``previous_dataset`` / ``previous_models`` (a run continued onto another QD), or None.

    The dataset must be a ``grow_dataset`` output (``type_map`` and ``frame_sources`` attributes) whose type map holds
    every element of the structure (a warm-started model cannot take a new element) and equals ``type_map`` when
    that is given; the models, which need the dataset, must be ``model_1`` … ``model_<num_models>`` trained with that
    type map (as recorded by the training's parser).
    """
    dataset, models = inputs.get('previous_dataset'), dict(inputs.get('previous_models', {}) or {})
    if dataset is None:
        return 'previous_models needs previous_dataset (the frames those models were trained on)' if models else None
    type_map = dataset.base.attributes.get('type_map', None)
    if type_map is None or dataset.base.attributes.get('frame_sources', None) is None:
        return (f'previous_dataset<{dataset.pk}> is not the dataset output of an MlffActiveLearningWorkChain '
                '(no type_map / frame_sources attributes)')
    missing = [element for element in sorted(inputs['structure'].get_symbols_set()) if element not in type_map]
    if missing:
        return (f'the structure has element(s) {missing} that previous_dataset<{dataset.pk}> (type_map {type_map}) '
                'lacks: a model cannot learn a new element by continuing; start a run without previous_dataset')
    if 'type_map' in inputs and list(inputs['type_map'].get_list()) != list(type_map):
        return (f"type_map {inputs['type_map'].get_list()} differs from previous_dataset<{dataset.pk}>'s {type_map}: "
                'leave type_map out (the dataset sets it)')
    if models:
        expected = [f'model_{n}' for n in range(1, inputs['num_models'].value + 1)]
        if sorted(models) != sorted(expected):
            return f'previous_models must be {expected} (num_models {inputs["num_models"].value}), got {sorted(models)}'
        for name, model in sorted(models.items()):
            if model.base.extras.get(STRIPPED_EXTRA, None):
                return (f'previous_models.{name}<{model.pk}> lost its weights when its archive was made '
                        f'({STRIPPED_EXTRA}): give the models as new SinglefileData of the full files, or '
                        'previous_dataset alone (iteration 1 then trains from scratch)')
            recorded = model.base.attributes.get('type_map', None)
            if recorded is not None and list(recorded) != list(type_map):
                return (f'previous_models.{name}<{model.pk}> was trained with type_map {list(recorded)}, '
                        f'previous_dataset<{dataset.pk}> has {type_map}')
    return None


def training_schedule(training: dict, iteration: int, previous_models: bool = False) -> tuple[dict, bool]:
    """DeePMD parameters of one iteration's training and whether it warm-starts from the previous iteration.

    Iteration 1 trains from scratch for ``numb_steps``, or, with ``previous_models`` (a run continued from an earlier
    run's ensemble), warm-starts from them. With ``warm_start`` (default true), later iterations start
    each ensemble member from the same member of the previous iteration and train for ``warm_start_steps`` ×
    ``numb_steps`` steps (at least 1) with ``warm_start_parameters`` merged over ``parameters`` (DP-GEN2's init-model
    defaults: ``start_lr`` 1e-4, ``start_pref_e`` 0.1, ``start_pref_f`` 100).
    """
    steps = int(training.get('numb_steps', 1000))
    warm = (bool(training.get('warm_start', False)) and iteration > 1) or (iteration == 1 and previous_models)
    parameters = copy.deepcopy(training.get('parameters', {}))
    if warm:
        steps = max(1, round(steps * float(training.get('warm_start_steps', 1.0))))
        parameters = recursive_merge(parameters, copy.deepcopy(training.get('warm_start_parameters', {})))
    return recursive_merge(parameters, {'training': {'numb_steps': steps}}), warm


def best_member(force_rmse: dict) -> str | None:
    """The ensemble member (``model_<n>``) with the lowest held-out force RMSE of its training, or None when no
    member has one. Ties go to the lower member number."""
    known = {name: float(value) for name, value in force_rmse.items()
             if value is not None and np.isfinite(float(value))}
    if not known:
        return None
    return min(sorted(known, key=lambda name: int(name.rsplit('_', 1)[1])), key=known.get)
