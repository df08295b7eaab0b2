"""``QdMdWorkChain``: CP2K Born–Oppenheimer MD of a QD, heated up with a thermostat and continued in NVE.

The DFT settings come from the relax protocol of the same name (``relax.yaml``), the dynamics from ``md.yaml``. The
run is a chain of CP2K MD runs (``QdCp2kBaseWorkChain``, so the SCF, wall-time and monitor handlers of the relax
apply): ``heatup_1`` … ``heatup_n`` are CSVR (or Nosé–Hoover) segments whose target rises in equal steps from
``temperature / n`` to ``temperature``; ``nve`` continues at constant energy. Each run starts from the restart file of
the one before (positions, velocities, step counter, wavefunction), so no step is computed twice, and a run that
hits its wall time is continued the same way by the handlers. The frames of every run are joined by step number into
one ``TrajectoryData`` in the layout every trajectory analysis reads (docs/dynamics.md); the NVE drift of the
conserved energy is reported and stored (the ``cp2k_md_trajectory`` calcfunction of :mod:`.md_functions`).
"""

from __future__ import annotations

import copy

from aiida import orm
from aiida.engine import if_, while_

from .cp2k_relax import QdCp2kRelaxWorkChain
from .electronic_state import valence_electrons
from .md_functions import MO_FILE, MOMENTS_FILE, PROJECT, VELOCITY_UNIT, cp2k_md_trajectory
from .parent_folder import MD_RESTART_FILE, forget_dead_folder, parent_folder_problem
from .stage import QdCp2kStageWorkChain, qd_builder

#: keys of the ``md`` input and their types
MD_KEYS = {'temperature': float, 'timestep_fs': float, 'heatup_fs': float, 'heatup_segments': int,
           'thermostat': str, 'thermostat_tau_fs': float, 'nve_fs': float, 'stride': int, 'dipole': bool,
           'orbital_energies': bool, 'seed': int}
THERMOSTATS = ('CSVR', 'NOSE')
#: files a CP2K MD run of this work chain writes (the pos file is retrieved by aiida-cp2k by default)
MD_FILES = (f'{PROJECT}-pos-1.xyz', f'{PROJECT}-vel-1.xyz', f'{PROJECT}-1.ener', MOMENTS_FILE, MO_FILE)
#: MOs printed on each side of the gap with ``orbital_energies``
MO_MARGIN = 4
RESTART_FILE = f'./parent_calc/{PROJECT}-1.restart'


def md_settings(settings: dict) -> dict:
    """The ``md`` settings checked; raises ValueError naming the first bad key or value."""
    unknown = sorted(set(settings) - set(MD_KEYS))
    if unknown:
        raise ValueError(f'unknown md key(s) {unknown}; allowed {sorted(MD_KEYS)}')
    missing = sorted(set(MD_KEYS) - set(settings))
    if missing:
        raise ValueError(f'md settings miss {missing} (use get_builder_from_protocol for the defaults)')
    checked = {}
    for key, kind in MD_KEYS.items():
        value = settings[key]
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f'md.{key} must be {kind.__name__}, got {value!r}')
        checked[key] = value
    if not 0 < checked['temperature'] <= 5000:
        raise ValueError(f"md.temperature must be in (0, 5000] K, got {checked['temperature']}")
    if not 0 < checked['timestep_fs'] <= 5:
        raise ValueError(f"md.timestep_fs must be in (0, 5] fs, got {checked['timestep_fs']}")
    for key in ('heatup_fs', 'nve_fs'):
        if checked[key] < 0:
            raise ValueError(f'md.{key} must be >= 0 fs, got {checked[key]}')
    if checked['heatup_fs'] + checked['nve_fs'] <= 0:
        raise ValueError('md.heatup_fs + md.nve_fs must be > 0: nothing to run')
    if checked['heatup_segments'] < 1:
        raise ValueError(f"md.heatup_segments must be >= 1, got {checked['heatup_segments']}")
    if checked['thermostat'].upper() not in THERMOSTATS:
        raise ValueError(f"md.thermostat {checked['thermostat']!r} is not available; choose one of {THERMOSTATS}")
    checked['thermostat'] = checked['thermostat'].upper()
    if checked['thermostat_tau_fs'] <= 0:
        raise ValueError(f"md.thermostat_tau_fs must be > 0 fs, got {checked['thermostat_tau_fs']}")
    if checked['seed'] < 1:
        raise ValueError(f"md.seed must be >= 1 (CP2K refuses seed 0), got {checked['seed']}")
    if checked['stride'] < 1:
        raise ValueError(f"md.stride must be >= 1, got {checked['stride']}")
    heat_steps = round(checked['heatup_fs'] / checked['timestep_fs'])
    if checked['heatup_fs'] and heat_steps < checked['heatup_segments']:
        raise ValueError(f"md.heatup_fs {checked['heatup_fs']} is {heat_steps} steps of {checked['timestep_fs']} fs: "
                         f"fewer than md.heatup_segments {checked['heatup_segments']}")
    return checked


def md_stages(settings: dict) -> list[dict]:
    """The CP2K runs of an MD: ``[{'name', 'ensemble', 'temperature', 'last_step', 'steps'}, ...]`` (``last_step``
    counts from step 0 of the first run, ``steps`` is the number of steps of the run)."""
    dt = settings['timestep_fs']
    stages = []
    heat_steps = round(settings['heatup_fs'] / dt)
    if heat_steps:
        n = settings['heatup_segments']
        for k in range(1, n + 1):
            stages.append({'name': f'heatup_{k}', 'ensemble': 'NVT', 'temperature': settings['temperature'] * k / n,
                           'last_step': round(heat_steps * k / n)})
    nve_steps = round(settings['nve_fs'] / dt)
    if nve_steps:
        stages.append({'name': 'nve', 'ensemble': 'NVE', 'temperature': settings['temperature'],
                       'last_step': heat_steps + nve_steps})
    for before, stage in zip([{'last_step': 0}, *stages], stages):
        stage['steps'] = stage['last_step'] - before['last_step']
    return stages


def mo_window(parameters: dict, symbols: list[str], charge: int, multiplicity: int) -> tuple[int, int] | None:
    """The MO index range (1-based, inclusive) that ``orbital_energies`` prints: :data:`MO_MARGIN` orbitals on each
    side of the gap of the closed-shell QD. None where no gap can be printed: open shell (UKS blocks are not read),
    or OT (no virtual orbitals)."""
    dft = parameters.get('FORCE_EVAL', {}).get('DFT', {})
    if multiplicity != 1 or dft.get('UKS') or dft.get('LSD') or 'OT' in dft.get('SCF', {}):
        return None
    n_electrons = valence_electrons(symbols, parameters) - charge
    if n_electrons < 2 or n_electrons % 2:
        return None
    homo = n_electrons // 2
    return max(1, homo - MO_MARGIN + 1), homo + MO_MARGIN


def md_stage_parameters(parameters: dict, settings: dict, stage: dict, first: bool,
                        wavefunction: bool = False, window: tuple[int, int] | None = None) -> dict:
    """CP2K parameters of one MD run: ``parameters`` (the DFT of a relax protocol) with ``RUN_TYPE MD``, the
    ``&MOTION &MD`` of ``stage``, frames printed every ``stride`` steps and, unless ``first``, a restart from the
    previous run (positions, velocities and counters; not the thermostat, whose target changes).

    :param wavefunction: the first run starts its first SCF from the wavefunction in its ``parent_calc_folder``
        (e.g. the relax's of the same structure) instead of the atomic guess; later runs always do.
    :param window: the MO range (:func:`mo_window`) whose energies and occupations are printed with every frame when
        ``settings['orbital_energies']``; the diagonalisation then keeps at least the virtual orbitals of the range
        (``ADDED_MOS``; -1, all, stays).
    """
    params = copy.deepcopy(parameters)
    params['GLOBAL'] = {**params.get('GLOBAL', {}), 'RUN_TYPE': 'MD', 'SEED': settings['seed']}
    each = {'MD': settings['stride']}
    # STEPS is the number of steps of this run (CP2K counts it from the restarted step counter); MAX_STEPS caps the
    # counter of all runs together for a run continued after its wall time. CP2K 2023.1 stops a capped run at step
    # MAX_STEPS - 1 only after evaluating the forces of the next step, so STEPS, not the cap, ends a run normally.
    md = {'ENSEMBLE': stage['ensemble'], 'STEPS': stage['steps'], 'MAX_STEPS': stage['last_step'] + 1,
          'TIMESTEP': settings['timestep_fs'],
          'TEMPERATURE': stage['temperature'], 'ANGVEL_ZERO': True, 'PRINT': {'ENERGY': {'EACH': each}}}
    if stage['ensemble'] == 'NVT':
        tau = settings['thermostat_tau_fs']
        thermostat = {'TYPE': settings['thermostat'], 'REGION': 'GLOBAL'}
        if settings['thermostat'] == 'CSVR':
            thermostat['CSVR'] = {'TIMECON': tau}
        else:
            thermostat['NOSE'] = {'LENGTH': 3, 'TIMECON': tau}
        md['THERMOSTAT'] = thermostat
    params['MOTION'] = {'MD': md, 'PRINT': {
        'TRAJECTORY': {'FORMAT': 'XYZ', 'EACH': each},
        'VELOCITIES': {'FORMAT': 'XYZ', 'UNIT': VELOCITY_UNIT, 'EACH': each},
        'RESTART': {'BACKUP_COPIES': 0, 'EACH': {'MD': 1}},
    }}
    dft = params.setdefault('FORCE_EVAL', {}).setdefault('DFT', {})
    if settings['dipole']:
        dft.setdefault('PRINT', {})['MOMENTS'] = {'PERIODIC': False, 'FILENAME': f'={MOMENTS_FILE}', 'EACH': each}
    if settings['orbital_energies'] and window is not None:
        # QS_SCF 0: one block per frame after its SCF, not one per SCF iteration
        dft.setdefault('PRINT', {})['MO'] = {'ENERGIES': True, 'OCCUPATION_NUMBERS': True,
                                             'MO_INDEX_RANGE': f'{window[0]} {window[1]}',
                                             'FILENAME': f'={MO_FILE}', 'EACH': {**each, 'QS_SCF': 0}}
        scf = dft.setdefault('SCF', {})
        added = int(scf.get('ADDED_MOS', 0))
        if added != -1:
            scf['ADDED_MOS'] = max(added, MO_MARGIN)
    params.pop('EXT_RESTART', None)
    if not first:
        params['EXT_RESTART'] = {'RESTART_FILE_NAME': RESTART_FILE, 'RESTART_DEFAULT': False, 'RESTART_POS': True,
                                 'RESTART_VEL': True, 'RESTART_COUNTERS': True}
    if not first or wavefunction:
        dft['WFN_RESTART_FILE_NAME'] = './parent_calc/aiida-RESTART.wfn'
        dft.setdefault('SCF', {})['SCF_GUESS'] = 'RESTART'
    return params


class QdMdWorkChain(QdCp2kStageWorkChain):
    """CP2K MD of a QD: thermostatted heat-up in segments, then NVE; one trajectory with the NVE drift."""

    protocol_file = 'md.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        cls.expose_cp2k(spec)
        spec.inputs.validator = cls._validate_wavefunction
        spec.input('md', valid_type=orm.Dict, validator=cls._validate_md,
                   help='Dynamics settings (keys of md.yaml): temperature (K), timestep_fs, heatup_fs, '
                        'heatup_segments, thermostat (CSVR|NOSE), thermostat_tau_fs, nve_fs, stride, dipole, '
                        'orbital_energies, seed.')
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            cls.validate_inputs,
            cls.plan_stages,
            while_(cls.has_stage)(cls.run_stage, cls.inspect_stage),
            cls.results,
        )
        spec.output('trajectory', valid_type=orm.TrajectoryData,
                    help='All stored frames of all runs (layout in docs/dynamics.md).')
        spec.output('md_summary', valid_type=orm.Dict, help='Frames, length, NVE mean temperature and drift.')
        spec.output('remote_folder', valid_type=orm.RemoteData, help='Folder of the last CP2K run (its restart file).')
        spec.exit_code(411, 'ERROR_MD_RUN_FAILED', message='The CP2K MD run `{stage}` failed: {message}')
        spec.exit_code(412, 'ERROR_NO_TRAJECTORY', message='The MD runs wrote no readable frame: {message}')

    @staticmethod
    def _validate_wavefunction(inputs, _):
        """A ``base.cp2k.parent_calc_folder`` must come from a CP2K run of the same atoms (elements in the same order):
        CP2K cannot start an SCF from the wavefunction of another QD."""
        folder = inputs.get('base', {}).get('cp2k', {}).get('parent_calc_folder')
        structure = inputs.get('structure')
        creator = getattr(folder, 'creator', None)
        if folder is None or structure is None or creator is None or 'structure' not in creator.inputs:
            return None
        source = creator.inputs.structure
        ours, theirs = structure.get_ase().get_chemical_symbols(), source.get_ase().get_chemical_symbols()
        if ours != theirs:
            return (f'base.cp2k.parent_calc_folder (RemoteData<{folder.pk}>) holds the wavefunction of '
                    f'{source.get_formula()} ({len(theirs)} atoms, from {creator.process_label}<{creator.pk}>), not of '
                    f'the structure {structure.get_formula()} ({len(ours)} atoms): give the folder of a CP2K run of '
                    f'the same atoms in the same order')
        return None

    @staticmethod
    def _validate_md(value, _):
        try:
            md_settings(value.get_dict())
        except ValueError as exception:
            return str(exception)
        return None

    @classmethod
    def get_builder_from_protocol(cls, code: orm.Code, structure: orm.StructureData, protocol: str | None = None,
                                  overrides: dict | None = None, charge: int = 0, multiplicity: int = 1,
                                  options: dict | None = None):
        """Builder with the dynamics of ``md.yaml`` and the DFT settings of the relax protocol of the same name.

        :param overrides: ``{'md': {...}, 'base': {...}}``: ``md`` keys replace the protocol's dynamics, ``base`` is
            merged into the relax protocol's CP2K namespace (e.g. ``{'base': {'cp2k': {'parameters': ...}}}``).
        :param options: CalcJob options merged into ``base.cp2k.metadata.options`` (e.g. resources, wall time).
        """
        overrides = dict(overrides or {})
        relax_overrides = {'base': overrides.pop('base')} if 'base' in overrides else None
        inputs = cls.get_protocol_inputs(protocol, overrides)
        base, relax = QdCp2kRelaxWorkChain.cp2k_builder_from_protocol(code, structure, protocol, relax_overrides,
                                                                      options)
        parameters = base.cp2k.parameters.get_dict()
        parameters.pop('MOTION', None)
        parameters['GLOBAL'] = {**parameters.get('GLOBAL', {}), 'RUN_TYPE': 'MD'}
        base.cp2k.parameters = orm.Dict(parameters)
        settings = base.cp2k.settings.get_dict() if 'settings' in base.cp2k else {}
        retrieve = list(settings.get('additional_retrieve_list', []))
        settings['additional_retrieve_list'] = retrieve + [name for name in MD_FILES if name not in retrieve]
        base.cp2k.settings = orm.Dict(settings)
        builder = qd_builder(cls, structure, charge, multiplicity, relax.get('box_vacuum'))
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        builder.md = orm.Dict(md_settings(inputs['md']))
        builder.base = base._inputs(prune=True)
        return builder

    def plan_stages(self):
        self.ctx.settings = md_settings(self.inputs.md.get_dict())
        self.ctx.stages = md_stages(self.ctx.settings)
        self.ctx.done = []
        heat = [s for s in self.ctx.stages if s['ensemble'] == 'NVT']
        self.report(f"MD plan: {len(heat)} heat-up segment(s) to {self.ctx.settings['temperature']} K "
                    f"({self.ctx.settings['thermostat']}), then {self.ctx.settings['nve_fs']} fs NVE, "
                    f"time step {self.ctx.settings['timestep_fs']} fs, {self.ctx.stages[-1]['last_step']} steps")

    def has_stage(self):
        return len(self.ctx.done) < len(self.ctx.stages)

    def previous_stage_usable(self) -> bool:
        """Whether the last finished run's folder still holds its restart file. A run taken from the cache may point
        to the folder of a run that was cleaned since (docs/reliability.md): CP2K cannot continue an MD without the
        positions, velocities and thermostat state of that file, so the run is marked invalid for caching (with every
        run of its hash sharing the folder) and computed again."""
        remote = self.ctx.done[-1].outputs.remote_folder
        try:
            problem = parent_folder_problem(remote, [MD_RESTART_FILE])
        except Exception as exception:  # noqa: BLE001 (any transport failure: continue from it as planned)
            self.report(f'could not check the folder of the last MD run ({exception}); continuing from it')
            return True
        if problem is None:
            return True
        marked = forget_dead_folder(remote)
        name = self.ctx.stages[len(self.ctx.done) - 1]['name']
        self.report(f'MD run `{name}`: {problem}; {len(marked)} calculation(s) with that folder marked invalid for '
                    f'caching, running `{name}` again')
        return False

    def run_stage(self):
        while self.ctx.done and not self.previous_stage_usable():
            self.ctx.done.pop()
            self.ctx.reruns = self.ctx.get('reruns', 0) + 1
            if self.ctx.reruns > len(self.ctx.stages):
                return self.exit_codes.ERROR_MD_RUN_FAILED.format(
                    stage=self.ctx.stages[len(self.ctx.done)]['name'],
                    message=f'{self.ctx.reruns - 1} runs were taken from the cache with a cleaned folder')
        stage = self.ctx.stages[len(self.ctx.done)]
        first = not self.ctx.done
        base = self.inputs.base.cp2k.parameters.get_dict()
        given = first and 'parent_calc_folder' in self.inputs.base.cp2k
        if given:
            self.report(f"MD run `{stage['name']}` starts its first SCF from the wavefunction in "
                        f"{self.inputs.base.cp2k.parent_calc_folder.__class__.__name__}"
                        f"<{self.inputs.base.cp2k.parent_calc_folder.pk}>")
        window = None
        if self.ctx.settings['orbital_energies']:
            window = mo_window(base, self.ctx.structure.get_ase().get_chemical_symbols(), self.inputs.charge.value,
                               self.inputs.multiplicity.value)
            if window is None and first:
                self.report('orbital_energies: no HOMO/LUMO per frame for an open-shell or OT run (its virtual '
                            'orbitals or spin blocks are not printed)')
        parameters = orm.Dict(md_stage_parameters(base, self.ctx.settings, stage, first, wavefunction=given,
                                                  window=window))
        extra = {'parameters': parameters}
        if not first:
            extra['parent_calc_folder'] = self.ctx.done[-1].outputs.remote_folder
        description = f"CP2K MD {stage['name']}: {stage['ensemble']} at {stage['temperature']:g} K to step " \
                      f"{stage['last_step']}"
        return self.submit_cp2k(stage['name'], description, **extra)

    def inspect_stage(self):
        stage = self.ctx.stages[len(self.ctx.done)]
        message = self.failed_child_message()
        if message:
            return self.exit_codes.ERROR_MD_RUN_FAILED.format(stage=stage['name'], message=message)
        self.ctx.done.append(self.ctx.workchain)
        return None

    def results(self):
        calcs = []
        for workchain in self.ctx.done:
            calcs.extend(sorted((n for n in workchain.called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime))
        runs = {f'run_{i:03d}': calc.outputs.retrieved for i, calc in enumerate(calcs) if 'retrieved' in calc.outputs}
        nve = [s for s in self.ctx.stages if s['ensemble'] == 'NVE']
        heat_steps = self.ctx.stages[-2]['last_step'] if nve and len(self.ctx.stages) > 1 else 0
        settings = orm.Dict({'md_timestep_fs': self.ctx.settings['timestep_fs'], 'velocity_unit': VELOCITY_UNIT,
                             'nve_first_step': heat_steps if nve else None})
        try:
            result = cp2k_md_trajectory(settings, **runs)
        except ValueError as exception:
            return self.exit_codes.ERROR_NO_TRAJECTORY.format(message=str(exception))
        summary = result['md_summary']
        self.out('trajectory', result['trajectory'])
        self.out('md_summary', summary)
        self.out('remote_folder', self.ctx.done[-1].outputs.remote_folder)
        text = f"MD done: {summary['frames']} frames, {summary['time_fs']:.1f} fs in {summary['runs']} CP2K run(s)"
        if summary.get('nve_drift_mev_per_atom_ps') is not None:
            text += (f"; NVE: mean temperature {summary['nve_mean_temperature_k']:.1f} K, drift of the conserved "
                     f"energy {summary['nve_drift_mev_per_atom_ps']:+.3f} meV/atom/ps")
        self.report(text)
        return None
