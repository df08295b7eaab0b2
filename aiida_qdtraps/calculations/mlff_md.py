"""``MlffMdCalculation`` (``qdtraps.mlff_md``): ASE MD driven by a DeePMD model, with the ensemble's model deviation.

The code is a Python interpreter that has ase and deepmd-kit (``dp-python@localhost`` points at the project venv);
the job copies :mod:`aiida_qdtraps.calculations.mlff_md_script` into its folder and runs it. Langevin BAOAB
(Sowa et al.) or NVE, optional frozen atoms (Sowa et al.'s FF1: frozen core), frames every ``save_interval`` steps.
With ``mode: relax`` the same job runs a BFGS relaxation instead (from the structure, rattled by ``rattle_stdev`` Å
with ``seed``, until max |F| < ``fmax`` eV/Å or ``steps`` BFGS steps, at most ``maxstep`` Å per step), saving the
path: the active-learning loop explores with it the directions a minimiser follows, which an MD at 300 K does not
visit. ``driver`` picks the model that drives the MD (index in the models' name order, default the first), or
``'mean'``: the committee mean of all models' energies and forces drives it (every model is evaluated at every step,
so a step costs as many model evaluations as there are models; members trained on the same frames share their holes,
so the mean is no guarantee of a longer MD in the trained region: docs/mlff.md measured it leave earlier than its best
member); with ``stop_devi_f`` (eV/Å) the MD stops at the first saved frame whose ensemble force deviation exceeds it
(the active-learning exploration: frames past that point are neither accurate nor worth a label). With ``compress``
the models evaluated at every step are compressed in the job (``dp --pt compress``, checked against the original on
the start geometry; ``output_parameters['compressed']`` says how close): about a third less time per step.
With ``parent_trajectory`` (the trajectory of an earlier MD of the same atoms, with velocities) the MD continues it:
it starts from that trajectory's last frame, positions and velocities, and counts steps on from its step number, so
a long MD runs as a chain of jobs that each fit a wall-time limit and ``join_trajectories`` makes one trajectory of
them (``MlffMdChainWorkChain`` runs such a chain; docs/howto/run_md.md). The Langevin noise of a continuation is seeded
by ``seed`` and the start step, so no two pieces of a chain share their random numbers.
A job ends early, with exit ``ERROR_MD_INCOMPLETE`` and the frames it saved as its trajectory, when its MD reaches
``walltime_s`` (by default from ``max_wallclock_seconds``: :func:`walltime_for`) or when it is killed: it writes the
frames saved since the last checkpoint every ``checkpoint_interval`` steps, and the parser reads those chunks when there
is no ``md.npz``.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
from aiida import orm
from aiida.common import CalcInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob

from .script_job import INPUT_FILE, define_script_job, parameters_of, script_calcinfo, write_script_job

SCRIPT = pathlib.Path(__file__).with_name('mlff_md_script.py')
#: the checkpoint chunks of the script (``mlff_md_script.CHECKPOINT_PREFIX``; the script imports nothing of the package)
CHECKPOINT_PREFIX = 'checkpoint_'
DIPOLE_MODEL_FILE = 'dipole.pth'
START_FILE = 'start.npz'
THERMOSTATS = ('langevin', 'nve')
MODES = ('md', 'relax')

#: MD settings and their defaults: K, fs, steps, fs (Langevin time constant), frozen atom indices, velocity seed;
#: ``mode`` ``md`` or ``relax`` (BFGS: ``rattle_stdev`` Å of the start, ``fmax`` eV/Å, ``maxstep`` Å per step);
#: ``driver``: index of the driving model, or ``'mean'`` (the committee mean); ``stop_devi_f``: eV/Å, or None (MD
#: runs all ``steps``); ``compress``: compress the models evaluated at every step in the job (``dp --pt compress``);
#: ``checkpoint_interval``: steps between the chunks of saved frames the job writes as it goes (0: none), which the
#: parser reads when the job ended early; ``walltime_s``: seconds after which the MD stops at its next saved frame
#: (None: from the job's ``max_wallclock_seconds``, see :func:`walltime_for`).
DEFAULT_PARAMETERS = {'temperature_K': 300.0, 'timestep_fs': 1.0, 'steps': 1000, 'save_interval': 10,
                      'thermostat': 'langevin', 'thermostat_tau_fs': 100.0, 'frozen_indices': [], 'seed': 0,
                      'mode': 'md', 'rattle_stdev': 0.0, 'fmax': 0.05, 'maxstep': 0.1, 'driver': 0,
                      'stop_devi_f': None, 'compress': False, 'checkpoint_interval': 1000, 'walltime_s': None}

#: The share of a job's ``max_wallclock_seconds`` its MD may run, less :data:`WALLTIME_RESERVE_S`: the rest is for
#: the start (imports, compression) and the end (the last deviations, md.npz) of the job.
WALLTIME_SHARE = 0.9
WALLTIME_RESERVE_S = 30.0


def walltime_for(max_wallclock_seconds: int | None) -> float | None:
    """Seconds the MD of a job with this wall-time limit may run before it stops at a saved frame (None: no limit,
    or a limit too short to leave time for the start and end of the job)."""
    if not max_wallclock_seconds:
        return None
    seconds = WALLTIME_SHARE * float(max_wallclock_seconds) - WALLTIME_RESERVE_S
    return seconds if seconds > 0 else None


def md_parameters(changes: dict, n_atoms: int | None = None) -> dict:
    """``DEFAULT_PARAMETERS`` updated with ``changes``, checked.

    :raises ValueError: naming an unknown key or a value outside its range.
    """
    unknown = set(changes) - set(DEFAULT_PARAMETERS)
    if unknown:
        raise ValueError(f'unknown MD parameter(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_PARAMETERS)}')
    params = {**DEFAULT_PARAMETERS, **changes}
    if not 0 < float(params['temperature_K']) <= 5000:
        raise ValueError(f"temperature_K must be in (0, 5000] K, got {params['temperature_K']}")
    if not 0 < float(params['timestep_fs']) <= 5:
        raise ValueError(f"timestep_fs must be in (0, 5] fs, got {params['timestep_fs']}")
    if int(params['steps']) < 1 or not 1 <= int(params['save_interval']) <= int(params['steps']):
        raise ValueError(f"need steps >= 1 and 1 <= save_interval <= steps, got steps={params['steps']}, "
                         f"save_interval={params['save_interval']}")
    if params['thermostat'] not in THERMOSTATS:
        raise ValueError(f"thermostat {params['thermostat']!r} is not one of {THERMOSTATS}")
    if float(params['thermostat_tau_fs']) <= 0:
        raise ValueError(f"thermostat_tau_fs must be > 0 fs, got {params['thermostat_tau_fs']}")
    if params['mode'] not in MODES:
        raise ValueError(f"mode {params['mode']!r} is not one of {MODES}")
    if not 0 <= float(params['rattle_stdev']) <= 1:
        raise ValueError(f"rattle_stdev must be in [0, 1] Å, got {params['rattle_stdev']}")
    if not float(params['fmax']) > 0 or not float(params['maxstep']) > 0:
        raise ValueError(f"fmax and maxstep must be > 0, got fmax={params['fmax']}, maxstep={params['maxstep']}")
    driver = params['driver']
    if driver != 'mean' and (isinstance(driver, bool) or not isinstance(driver, int) or driver < 0):
        raise ValueError(f"driver must be the index (integer >= 0) of the model that drives the MD or 'mean' (the "
                         f"committee mean of all models), got {driver!r}")
    stop = params['stop_devi_f']
    if stop is not None:
        if isinstance(stop, bool) or not isinstance(stop, (int, float)) or not stop > 0:
            raise ValueError(f'stop_devi_f must be a force deviation > 0 eV/Å or None, got {stop!r}')
        if params['mode'] == 'relax':
            raise ValueError('stop_devi_f stops an MD; a relaxation (mode relax) does not take it')
    if not isinstance(params['compress'], bool):
        raise ValueError(f"compress must be true or false, got {params['compress']!r}")
    interval = params['checkpoint_interval']
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
        raise ValueError(f'checkpoint_interval must be a number of steps >= 0 (0: no checkpoints), got {interval!r}')
    walltime = params['walltime_s']
    if walltime is not None and (isinstance(walltime, bool) or not isinstance(walltime, (int, float))
                                 or not walltime > 0):
        raise ValueError(f'walltime_s must be a number of seconds > 0 or None, got {walltime!r}')
    frozen = [int(i) for i in params['frozen_indices']]
    if n_atoms is not None and any(not 0 <= i < n_atoms for i in frozen):
        raise ValueError(f'frozen_indices {frozen} must lie in [0, {n_atoms - 1}]')
    params['frozen_indices'] = frozen
    return params


def check_inputs(inputs) -> None:
    """Raise ``ValueError`` for MD parameters that do not fit the structure (:func:`md_parameters`) or no model."""
    md_parameters(parameters_of(inputs), len(inputs['structure'].sites) if 'structure' in inputs else None)
    if not inputs.get('models'):
        raise ValueError('give at least one frozen model in `models`')
    driver = parameters_of(inputs).get('driver', 0)
    if driver != 'mean' and driver >= len(inputs['models']):
        raise ValueError(f"driver {driver} names no model: {len(inputs['models'])} model(s) given, indices from 0")
    parent = inputs.get('parent_trajectory')
    if parent is not None:
        check_parent(parent, inputs.get('structure'), parameters_of(inputs))
    dipole = inputs.get('dipole_model')
    if dipole is not None:
        kind = dipole.base.attributes.get('kind', 'dipole')
        if kind != 'dipole':
            raise ValueError(f'dipole_model<{dipole.pk}> is a DeePMD {kind!r} model, not a dipole model')
        trained = dipole.base.attributes.get('type_map', None)
        if trained is not None and 'structure' in inputs:
            missing = sorted({k.symbol for k in inputs['structure'].kinds} - set(trained))
            if missing:
                raise ValueError(f'dipole_model<{dipole.pk}> was trained with type_map {list(trained)}: it knows no '
                                 f'{missing}')


def check_parent(parent: orm.TrajectoryData, structure: orm.StructureData | None, changes: dict) -> None:
    """Raise ``ValueError`` naming why ``parent`` cannot be continued: no velocities, other atoms, another time step,
    a relaxation, or an MD that stopped where its ensemble disagreed."""
    where = f'parent_trajectory<{parent.pk}>' if parent.is_stored else 'parent_trajectory'
    if 'velocities' not in parent.get_arraynames():
        raise ValueError(f'{where} has no velocities: an MD is continued from positions and velocities')
    if structure is not None:
        symbols = [structure.get_kind(site.kind_name).symbol for site in structure.sites]
        if list(parent.symbols) != symbols:
            raise ValueError(f'{where} has the atoms {"".join(parent.symbols)}, the structure {"".join(symbols)}: '
                             'a continuation keeps the atoms and their order')
    params = {**DEFAULT_PARAMETERS, **changes}
    if params['mode'] == 'relax':
        raise ValueError('a relaxation (mode relax) does not continue an MD: drop parent_trajectory')
    timestep = parent.base.attributes.get('md_timestep_fs', None)
    if timestep is not None and abs(float(timestep) - float(params['timestep_fs'])) > 1e-9:
        raise ValueError(f"{where} ran with {timestep} fs steps; continue it with the same timestep_fs, not "
                         f"{params['timestep_fs']}")
    creator = parent.creator
    if creator is not None and 'output_parameters' in creator.outputs:
        stopped = creator.outputs.output_parameters.get('stopped_at_step', None)
        if stopped is not None:
            raise ValueError(f'{where} comes from an MD that stopped at step {stopped} where its ensemble disagreed '
                             '(stop_devi_f): continuing it continues out of the trained region')


class MlffMdCalculation(CalcJob):
    """MD of a structure with a DeePMD model (ASE), returning the trajectory and the ensemble's model deviation."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_script_job(spec, 'qdtraps.mlff_md', structure_help='Start geometry (non-periodic QD).',
                          parameters_help='MD settings, see DEFAULT_PARAMETERS.', check=check_inputs)
        spec.input_namespace('models', valid_type=orm.SinglefileData, dynamic=True,
                             help='Frozen models (.pth); the first in name order (or `driver`: an index, or `mean` for '
                                  'the committee mean) drives the MD, all give the deviation.')
        spec.input('type_map', valid_type=orm.List, help='Element order of the models.')
        spec.input('dipole_model', valid_type=orm.SinglefileData, required=False,
                   help='A frozen DeePMD dipole model (.pth, `DeepmdTrainCalculation` with kind `dipole`): the global '
                        'dipole of every saved frame goes to the trajectory (`dipole`, e·Å), for the IR spectrum.')
        spec.input('parent_trajectory', valid_type=orm.TrajectoryData, required=False,
                   help='Continue this MD (same atoms, with velocities): start from its last frame and step number.')
        spec.output('trajectory', valid_type=orm.TrajectoryData,
                    help='Saved frames (Å) with arrays `energies` (eV), `forces` (eV/Å), `temperatures` (K), '
                         '`dipole` (e·Å) with a dipole model and, with >= 2 models, `max_devi_f`/`min_devi_f`/'
                         '`avg_devi_f` (eV/Å), `devi_e` (eV/atom).')
        spec.output('output_parameters', valid_type=orm.Dict,
                    help='Frame count and timings (s, ms per step); NVE runs: `nve_drift_mev_per_atom_ps`, the slope '
                         'of the conserved energy per atom.')
        spec.exit_code(300, 'ERROR_MISSING_OUTPUT', message='The MD script wrote no md.npz: see md.log.')
        spec.exit_code(310, 'ERROR_MD_DIVERGED', message='The MD trajectory holds NaN or exploded coordinates.')
        spec.exit_code(400, 'ERROR_MD_INCOMPLETE',
                       message='The MD ended before its last step ({reason}); the trajectory holds its frames to step '
                               '{step}: continue it with `parent_trajectory` (MlffMdChainWorkChain does).')

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        structure = self.inputs.structure
        params = md_parameters(self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {},
                               len(structure.sites))
        names = sorted(self.inputs.models, key=lambda k: (len(k), k))
        params.update(structure_file='structure.xyz', type_map=list(self.inputs.type_map.get_list()),
                      models=[f'model_{i}.pth' for i in range(len(names))],
                      dipole_model=DIPOLE_MODEL_FILE if 'dipole_model' in self.inputs else None,
                      continue_from=START_FILE if 'parent_trajectory' in self.inputs else None)
        if params['walltime_s'] is None:
            params['walltime_s'] = walltime_for(self.inputs.metadata.options.get('max_wallclock_seconds'))
        write_script_job(folder, SCRIPT, params)
        if 'parent_trajectory' in self.inputs:
            parent = self.inputs.parent_trajectory
            buffer = io.BytesIO()
            np.savez(buffer, positions=parent.get_positions()[-1], velocities=parent.get_array('velocities')[-1],
                     step=int(parent.get_stepids()[-1]))
            with folder.open(START_FILE, 'wb') as handle:
                handle.write(buffer.getvalue())
        buffer = io.StringIO()
        structure.get_ase().write(buffer, format='extxyz')
        with folder.open('structure.xyz', 'w') as handle:
            handle.write(buffer.getvalue())
        models = [(self.inputs.models[name].uuid, self.inputs.models[name].filename, f'model_{i}.pth')
                  for i, name in enumerate(names)]
        if 'dipole_model' in self.inputs:
            models.append((self.inputs.dipole_model.uuid, self.inputs.dipole_model.filename, DIPOLE_MODEL_FILE))
        return script_calcinfo(self.inputs.code, SCRIPT, [INPUT_FILE], 'md.log',
                               ['md.npz', 'md.json', 'md.log', INPUT_FILE, f'{CHECKPOINT_PREFIX}*.npz'],
                               local_copy_list=models)
