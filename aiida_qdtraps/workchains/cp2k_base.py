"""aiida-cp2k's ``Cp2kBaseWorkChain`` with the error handlers QD runs need.

Handlers (first matching one wins, highest priority first):

- ``report_grid_quality`` (600, every calculation, never restarts): puts CP2K's real-space grid diagnostics in
  ``verdi process report`` when they are poor (electrons lost on the grid, density on the faces of the non-periodic
  cell; ``docs/pipeline.md`` says what they mean for the ``fast`` protocol).
- ``handle_scf_not_converged`` (500): more robust SCF settings, restarting from the last wavefunction and
  (for GEO_OPT) the last geometry. OT: CG minimiser with FULL_ALL, then diagonalisation + density-matrix mixing;
  diagonalisation with Broyden mixing: CP2K's molecular default instead (density-matrix mixing, ALPHA 0.4, then
  Pulay DIIS of the KS matrix) from a fresh atomic guess, or from the run's wavefunction when it stalled near
  convergence (last residual < 1e-3); a diverged diagonalisation (last residual > 1): density-matrix mixing at
  ALPHA 0.1 from the atomic guess; otherwise: halve the mixing ALPHA and double MAX_SCF; both with 300 K smearing.
  Gives up after three attempts.
- ``handle_out_of_walltime`` (460): continue from the last geometry/wavefunction (an MD from its restart file:
  positions, velocities, thermostat, step counter); with nothing to continue from, ask for 50 % more wall time.
- ``handle_geometry_not_converged`` (450): continue the optimisation from the last geometry.
- ``handle_pdos_input_layout`` (410): CP2K 2026 aborted on the ``PRINT/PDOS`` section of earlier versions: run
  again with it moved to ``PRINT/DOS/PDOS``.
- ``handle_eigensolver_crash`` (405): CP2K stopped by a signal inside ELPA (the backtrace in its output):
  run again with ``PREFERRED_DIAG_LIBRARY SCALAPACK``.
- ``restart_incomplete_calculation`` (401): a run killed before CP2K finished (truncated output): continue from its
  last state as after a wall-time stop; with no progress, run it again.

Anything else ends the work chain with the ``BaseRestartWorkChain`` exit codes (``ERROR_UNHANDLED_FAILURE``
or ``ERROR_MAXIMUM_ITERATIONS_EXCEEDED``). CP2K is asked to stop cleanly before the scheduler kills it:
``GLOBAL/WALLTIME`` is set to 90 % of ``max_wallclock_seconds`` unless given.
"""

from __future__ import annotations

import copy
import pathlib

import yaml
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessHandlerReport, process_handler
from aiida_cp2k.workchains import Cp2kBaseWorkChain
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from ..monitors import default_cp2k_monitors
from ..parsers.cp2k_progress import SCF_STEP, crashed_in_library, lbfgs_stopped_above_criterion, read_abort_message
from ..protocols import PROTOCOL_DIR, cp2k_logical, is_xtb, kind_sections, kinds_by_element, qs_method, strip_for_xtb
from .cp2k_parameters import move_pdos_into_dos, pdos_in_dos_section, update_cp2k_parameters
from .parent_folder import MD_RESTART_FILE, WFN_FILE, forget_dead_folder, parent_folder_problem

Cp2kCalculation = Cp2kBaseWorkChain._process_class
WFN_RESTART = './parent_calc/aiida-RESTART.wfn'
MAX_SCF_ATTEMPTS = 3
#: Electronic temperature (K) of the Fermi-Dirac smearing that the SCF handler switches on for diagonalisation.
SMEAR_KELVIN = 300


#: ``grid_electron_error`` (electrons) above which ``report_grid_quality`` calls the grid too coarse (In4PF9, 13 Å box:
#: 1-2e-3 at 200 Ry whatever the box, REL_CUTOFF or position; 3-6e-5 at 300 Ry; 1e-7 at 400 Ry)
GRID_ELECTRON_ERROR = 1.0e-4

#: below this last SCF residual a failed run counts as stalled near convergence, and its wavefunction is reused
STALLED_RESIDUAL = 1.0e-3
#: above this last SCF residual a diagonalisation run counts as diverged, and is retried with ALPHA DIVERGED_ALPHA
#: and at least DIVERGED_MAX_SCF steps
DIVERGED_RESIDUAL = 1.0
DIVERGED_ALPHA = 0.1
DIVERGED_MAX_SCF = 150
#: the ``&SMEAR`` section the SCF handler switches on, and the empty states (``ADDED_MOS``) it gives CP2K's smearing
SMEARING = {'_': True, 'METHOD': 'FERMI_DIRAC', 'ELECTRONIC_TEMPERATURE': SMEAR_KELVIN}
SMEAR_ADDED_MOS = 10
#: an MD run that printed this completed a step and wrote its restart file (``&MOTION &PRINT &RESTART EACH MD 1``)
MD_STEP_DONE = 'MD| Step number'
#: continue an MD run from its parent's restart file with everything it holds (positions, velocities, thermostat and
#: its random numbers, step and time counters)
MD_EXT_RESTART = {'RESTART_FILE_NAME': './parent_calc/aiida-1.restart', 'RESTART_DEFAULT': True}


#: The protocol file of :meth:`QdCp2kBaseWorkChain.get_builder_from_protocol` when none is named: the PBE GEO_OPT.
DEFAULT_PROTOCOL_FILE = 'relax'
#: Keys of a protocol, beside its CP2K namespace, that set the ``&KIND`` sections: the orbital basis set and whether
#: the kinds get their ADMM auxiliary basis.
KIND_KEYS = ('basis_set', 'admm')
DEFAULT_BASIS_SET = 'DZVP-MOLOPT-SR-GTH'


def protocol_path(protocol_file: str | pathlib.Path) -> pathlib.Path:
    """The YAML file of a protocol name (``'relax'``: the package's ``protocols/relax.yaml``) or a path as it is."""
    path = pathlib.Path(protocol_file) if isinstance(protocol_file, pathlib.Path) else \
        PROTOCOL_DIR / f'{protocol_file}.yaml'
    if not path.is_file():
        raise ValueError(f'no protocol file {protocol_file!r} ({path}); the CP2K ones are '
                         f"{sorted(p.stem for p in PROTOCOL_DIR.glob('*.yaml') if _cp2k_namespace_of(p))}")
    return path


def _cp2k_namespace_of(path: pathlib.Path) -> str | None:
    """The key of ``default_inputs`` of a protocol file that holds the CP2K inputs (``base``, ``scf``), if any."""
    defaults = (yaml.safe_load(path.read_text()) or {}).get('default_inputs', {})
    found = [key for key, value in defaults.items() if isinstance(value, dict) and 'cp2k' in value]
    return found[0] if len(found) == 1 else None


def cp2k_protocol_inputs(protocol_file: str | pathlib.Path = DEFAULT_PROTOCOL_FILE, protocol: str | None = None,
                         overrides: dict | None = None) -> dict:
    """The inputs of one CP2K run under ``protocol`` of a stage protocol file, in ``QdCp2kBaseWorkChain``'s layout.

    A stage protocol file (``relax.yaml``, ``hybrid_scf.yaml``) holds the CP2K inputs in one namespace (``base``,
    ``scf``: ``max_iterations``, ``scf_monitor``, ``cp2k``) and the keys of :data:`KIND_KEYS` at its top; the result is
    that namespace with those keys added, ``overrides`` (the same layout) merged last.

    :raises ValueError: for a file without exactly one CP2K namespace, or a protocol it does not define (naming it).
    """
    path = protocol_path(protocol_file)
    data = yaml.safe_load(path.read_text())
    namespace = _cp2k_namespace_of(path)
    if namespace is None:
        raise ValueError(f'protocol file {path.name} has no CP2K namespace (one key of default_inputs with `cp2k`)')
    protocol = protocol or data['default_protocol']
    if protocol not in data['protocols']:
        raise ValueError(f'`{protocol}` is not a valid protocol of {path.name}; choose one of '
                         f"{list(data['protocols'])}")
    stage = recursive_merge(data['default_inputs'], data['protocols'][protocol])
    inputs = recursive_merge(stage[namespace], {key: stage[key] for key in KIND_KEYS if key in stage})
    return recursive_merge(inputs, overrides) if overrides else inputs


def set_scf_monitor(cp2k_namespace, settings) -> None:
    """Attach the ``qdtraps.cp2k_scf`` CalcJob monitor to a ``cp2k`` builder namespace with the protocol's
    ``scf_monitor`` settings (a dict of :data:`aiida_qdtraps.monitors.CP2K_SCF_DEFAULTS` keys and ``poll_interval``);
    ``None`` or ``False`` attaches none."""
    if settings is None or settings is False:
        return
    if not isinstance(settings, dict):
        raise ValueError(f'scf_monitor must be a dict of monitor settings or false, got {settings!r}')
    cp2k_namespace.monitors = default_cp2k_monitors(**settings)


def _output_text(calc) -> str:
    """The retrieved CP2K main output of ``calc``."""
    return calc.outputs.retrieved.base.repository.get_object_content(calc.base.attributes.get('output_filename'))


def _last_scf_residual(calc) -> float | None:
    """The convergence column of the last SCF step line of a CP2K output (None when there is none)."""
    try:
        output = _output_text(calc)
    except Exception:  # noqa: BLE001 (no retrieved output: treated as not stalled)
        return None
    steps = SCF_STEP.findall(output)
    return float(steps[-1][1]) if steps else None


def _section_on(section) -> bool:
    """Whether a CP2K section that can be switched off (``&SMEAR``, ``&OT``; aiida-cp2k dict form) is active: a present
    section is, unless its section parameter ``_`` is a CP2K false ('F', '.FALSE.', 'NO', 'OFF', ...)."""
    if isinstance(section, dict):
        return cp2k_logical(section.get('_', True))
    return section is not None and cp2k_logical(section)


class QdCp2kBaseWorkChain(Cp2kBaseWorkChain):
    """Run a CP2K calculation with restarts for SCF, geometry and wall-time failures."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.outputs.dynamic = True
        spec.exit_code(410, 'ERROR_SCF_NOT_CONVERGED_AFTER_RETRIES',
                       message='The SCF did not converge after {attempts} attempts with more robust settings.')

    @classmethod
    def get_builder_from_protocol(cls, code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None = None, overrides: dict | None = None,
                                  options: dict | None = None,
                                  protocol_file: str | pathlib.Path = DEFAULT_PROTOCOL_FILE):
        """Builder of one CP2K run of ``structure`` with ``protocol`` of a stage protocol file: the one place where the
        CP2K inputs of every stage are filled (the stage builders call it, as aiida-quantumespresso's relax calls
        ``PwBaseWorkChain.get_builder_from_protocol``).

        The ``&KIND`` sections are made for the structure's elements (the protocol's ``basis_set``, the ADMM auxiliary
        basis with ``admm``, ``HARD_EXP_RADIUS`` under GAPW); a ``&KIND`` given in ``overrides`` replaces the one of its
        element. Under ``&QS METHOD xTB`` (the ``xtb`` protocol) there are none, and the basis, grid and XC keys the
        file's defaults hold are dropped (:func:`~aiida_qdtraps.protocols.strip_for_xtb`). Charge and multiplicity are
        not set here: the stage work chains apply them when they submit.

        :param protocol_file: ``'relax'`` (PBE GEO_OPT, ``relax.yaml``), ``'hybrid_scf'`` (PBE0 single point,
            ``hybrid_scf.yaml``) or the path of a YAML file of that layout.
        :param overrides: the layout of :func:`cp2k_protocol_inputs`: ``max_iterations``, ``scf_monitor``,
            ``cp2k.parameters`` / ``cp2k.settings`` / ``cp2k.metadata``, ``basis_set``, ``admm``; merged last.
        :param options: CalcJob options merged into ``cp2k.metadata.options`` (e.g. resources, wall time).
        :raises ValueError: for an unknown protocol or protocol file, an element without CP2K settings, bad
            ``scf_monitor`` settings (naming the value).
        """
        inputs = cp2k_protocol_inputs(protocol_file, protocol, overrides)
        cp2k = inputs['cp2k']
        parameters = copy.deepcopy(cp2k['parameters'])
        if is_xtb(parameters):  # GFN1-xTB: no basis, grid or &KIND
            strip_for_xtb(parameters)
        else:
            elements = sorted(set(structure.get_kind_names()))
            kinds = kind_sections(elements, inputs.get('basis_set', DEFAULT_BASIS_SET), inputs.get('admm', False),
                                  gapw=qs_method(parameters) == 'GAPW')
            given = kinds_by_element(parameters)
            parameters['FORCE_EVAL'].setdefault('SUBSYS', {})['KIND'] = [given.get(k['_'], k) for k in kinds]
        metadata = cp2k['metadata']
        if options:
            metadata['options'] = recursive_merge(metadata['options'], options)
        builder = cls.get_builder()
        builder.max_iterations = orm.Int(inputs['max_iterations'])
        builder.cp2k.code = code
        builder.cp2k.structure = structure
        builder.cp2k.parameters = orm.Dict(parameters)
        builder.cp2k.metadata = metadata
        if 'settings' in cp2k:
            builder.cp2k.settings = orm.Dict(cp2k['settings'])
        set_scf_monitor(builder.cp2k, inputs.get('scf_monitor'))
        return builder

    def setup(self):
        super().setup()
        self.ctx.scf_attempts = 0
        params = self.ctx.inputs.parameters.get_dict()
        walltime = self.ctx.inputs.metadata.get('options', {}).get('max_wallclock_seconds')
        if walltime and 'WALLTIME' not in params.get('GLOBAL', {}):
            self.ctx.inputs.parameters = update_cp2k_parameters(
                self.ctx.inputs.parameters, orm.Dict({'GLOBAL': {'WALLTIME': int(0.9 * walltime)}}))

    def results(self):
        """Expose the outputs of the last calculation, including those our parsers add (``mo_energies``, ...)."""
        result = super().results()
        if result is not None:
            return result
        node = self.ctx.children[self.ctx.iteration - 1]
        for triple in node.base.links.get_outgoing(link_type=LinkType.CREATE).all():
            if triple.link_label not in self.outputs and '__' not in triple.link_label:
                self.out(triple.link_label, triple.node)
        return None

    def _update_parameters(self, changes: dict) -> None:
        self.ctx.inputs.parameters = update_cp2k_parameters(self.ctx.inputs.parameters, orm.Dict(changes))

    def _restart_from(self, calc) -> None:
        """Continue from ``calc``'s wavefunction (the geometry is taken over by ``overwrite_input_structure``).

        An MD continues from ``calc``'s restart file (positions, velocities, thermostat, step counter: CP2K then runs
        the remaining steps of ``STEPS``); an MD that completed no step starts again as it did (same parent folder).
        """
        md = self._run_type() == 'MD'
        if md and MD_STEP_DONE not in _output_text(calc):
            return
        if not self._folder_usable(calc, MD_RESTART_FILE if md else WFN_FILE):
            return
        if md:
            self._update_parameters({'EXT_RESTART': dict(MD_EXT_RESTART)})
        self.ctx.inputs.parent_calc_folder = calc.outputs.remote_folder
        self._update_parameters({'FORCE_EVAL': {'DFT': {'WFN_RESTART_FILE_NAME': WFN_RESTART,
                                                        'SCF': {'SCF_GUESS': 'RESTART'}}}})

    def _folder_usable(self, calc, required: str) -> bool:
        """Whether ``calc``'s remote folder still holds ``required`` (a cached calculation's folder may have been
        cleaned since: docs/reliability.md). A dead one is reported and ``calc``, with every calculation of its hash
        sharing that folder, is marked invalid for caching, so that the retry (which then keeps its current start:
        an MD the inputs it had, an SCF its current guess) is computed afresh rather than cloned again."""
        remote = calc.outputs.remote_folder
        try:
            problem = parent_folder_problem(remote, [required])
        except Exception as exception:  # noqa: BLE001 (any transport failure: restart from it as before)
            self.report(f'could not check the folder of {calc.process_label}<{calc.pk}> ({exception}); restarting '
                        'from it')
            return True
        if problem is None:
            return True
        marked = forget_dead_folder(remote)
        self.report(f'{calc.process_label}<{calc.pk}>: {problem}, so the retry cannot restart from it; '
                    f'{len(marked)} calculation(s) with that folder marked invalid for caching')
        return False

    def _run_type(self) -> str:
        return str(self.ctx.inputs.parameters.get_dict().get('GLOBAL', {}).get('RUN_TYPE', 'ENERGY_FORCE')).upper()

    @staticmethod
    def _has_wavefunction(calc) -> bool:
        output = _output_text(calc)
        return 'Total energy:' in output or 'Writing RESTART' in output or 'SCF WAVEFUNCTION OPTIMIZATION' in output

    @process_handler(priority=600)
    def report_grid_quality(self, calc):
        """Report poor real-space grid diagnostics of any calculation; changes nothing.

        Measured on In4PF9 with GPW (``benchmarks/grid_noise.py``, docs/pipeline.md): at 200 Ry ~2e-3 electrons are
        lost on the grid and a 0.08 Å rigid shift moves the energy by 0.12 Ha and forces by 0.13 Ha/bohr; at 300 Ry
        6e-5 electrons and 0.3 mHa / 0.01 Ha/bohr (GAPW prints no such count). CP2K's cell-face warning comes and
        goes with REL_CUTOFF and the box.
        """
        if 'output_parameters' not in calc.outputs:
            return None
        params = calc.outputs.output_parameters
        edges = params.get('wavelet_edge_warnings') or 0
        error = params.get('grid_electron_error')
        coarse = error is not None and abs(error) > GRID_ELECTRON_ERROR
        if coarse:
            self.report(f'{calc.process_label}<{calc.pk}>: {error:+.1e} electrons lost on the real-space grid: the '
                        f'CUTOFF is too low for these pseudopotentials, energies and forces carry grid noise '
                        '(docs/pipeline.md)'
                        f'{f"; {edges} CP2K warnings of density on the cell faces" if edges else ""}.')
        elif edges:
            self.report(f'{calc.process_label}<{calc.pk}>: {edges} CP2K warnings of density on the faces of the '
                        f'non-periodic cell (wavelet Poisson): more vacuum or a higher REL_CUTOFF (docs/pipeline.md).')
        return None

    @process_handler(priority=590)
    def report_unconverged_scf_cycles(self, calc):
        """Report a finished calculation that had unconverged SCF cycles on its way (a GEO_OPT whose last step and
        final re-evaluation converged, which the parser accepts); changes nothing."""
        if not calc.is_finished_ok or 'output_parameters' not in calc.outputs:
            return None
        count = calc.outputs.output_parameters.get('scf_not_converged_count') or 0
        if count:
            self.report(f'{calc.process_label}<{calc.pk}>: {count} SCF cycle(s) on the way did not converge and CP2K '
                        'carried on; the last step and the final re-evaluation converged, so the result stands.')
        return None

    @process_handler(priority=500, exit_codes=[Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED])
    def handle_scf_not_converged(self, calc):
        """Make the SCF more robust and restart from the last wavefunction."""
        self.ctx.scf_attempts += 1
        if self.ctx.scf_attempts > MAX_SCF_ATTEMPTS:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_SCF_NOT_CONVERGED_AFTER_RETRIES.format(
                attempts=MAX_SCF_ATTEMPTS))
        scf = self.ctx.inputs.parameters.get_dict().get('FORCE_EVAL', {}).get('DFT', {}).get('SCF', {})
        ot = scf.get('OT')
        uses_ot = isinstance(ot, dict) and _section_on(ot)
        if uses_ot and ot.get('MINIMIZER', 'DIIS') != 'CG':
            changes = {'OT': {'MINIMIZER': 'CG', 'PRECONDITIONER': 'FULL_ALL'},
                       'MAX_SCF': max(50, scf.get('MAX_SCF', 50))}
            action = 'OT with the CG minimiser and FULL_ALL preconditioner'
        elif uses_ot:
            # density-matrix mixing + DIIS, not Broyden: Broyden diverged on GAPW inputs (In4PF9, docs/protocols.md)
            changes = {'OT': {'_': False}, 'OUTER_SCF': {'_': False}, 'MAX_SCF': 300,
                       'DIAGONALIZATION': {'ALGORITHM': 'STANDARD'},
                       'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.2}}
            action = 'diagonalisation with density-matrix mixing (ALPHA 0.2) + DIIS'
        elif str(scf.get('MIXING', {}).get('METHOD', 'DIRECT_P_MIXING')).upper() == 'BROYDEN_MIXING':
            # Broyden charge mixing oscillates on some gapped QDs where density-matrix mixing + DIIS converges
            # (F6In6P3³⁺ PBE0 fast, 1.2 eV gap: 150 Broyden steps at residual 0.1-0.3, energy swinging 7 Ha; P-mixing
            # + DIIS: 31 steps to the OT energy, docs/classifier.md). An oscillating run's wavefunction is no better
            # than the atomic guess, so that case starts afresh; a run whose last SCF step was close to convergence
            # (residual < STALLED_RESIDUAL) continues from its wavefunction. A GEO_OPT continues from its last geometry
            # either way. (The recorded 'stalled' F6In6P3³⁺ GEO_OPT of docs/classifier.md was in fact a finished relax
            # whose first cycle had not converged; the parser now accepts such runs, docs/pipeline.md.)
            residual = _last_scf_residual(calc)
            stalled = residual is not None and residual < STALLED_RESIDUAL and self._has_wavefunction(calc)
            changes = {'MAX_SCF': max(int(scf.get('MAX_SCF', 50)), 150),
                       'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.4}}
            if not stalled:
                changes['SCF_GUESS'] = 'ATOMIC'
            self._update_parameters({'FORCE_EVAL': {'DFT': {'SCF': changes}}})
            self._no_initial_p_screening()
            if stalled:
                self._restart_from(calc)
            start = f'its wavefunction (last residual {residual:.1e})' if stalled else 'the atomic guess'
            self.report(f'{calc.process_label}<{calc.pk}> SCF not converged: retrying with density-matrix mixing '
                        f'(ALPHA 0.4) + DIIS from {start}.')
            return ProcessHandlerReport(True)
        else:
            alpha = float(scf.get('MIXING', {}).get('ALPHA', 0.4))
            residual = _last_scf_residual(calc)
            diverged = residual is not None and residual > DIVERGED_RESIDUAL and alpha > DIVERGED_ALPHA
            if diverged:
                # Linear density-matrix mixing at ALPHA 0.4 diverges on 32-38-atom QDs from the atomic guess (residual
                # 1.5 -> 10-40 within 10 steps: Ga10P4F18, Ga16P13Cl9, Cd16Se13Cl6, Cd13Se4Cl18). The unrelaxed
                # Ga10P4F18 has a 0.15 eV Kohn-Sham gap: at ALPHA 0.1 its residual falls steadily, but without
                # smearing stays at 1e-5 - 1e-4 once the energy has converged; with 300 K smearing it converges in 40
                # steps (docs/protocols.md). A diverged density is no start: back to the atomic guess.
                changes = {'MAX_SCF': max(int(scf.get('MAX_SCF', 50)), DIVERGED_MAX_SCF), 'SCF_GUESS': 'ATOMIC',
                           'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': DIVERGED_ALPHA}}
                action = (f'density-matrix mixing ALPHA {DIVERGED_ALPHA} and MAX_SCF {changes["MAX_SCF"]} from the '
                          f'atomic guess (it diverged: last residual {residual:.1e})')
            else:
                changes = {'MAX_SCF': min(2 * int(scf.get('MAX_SCF', 50)), 600),
                           'MIXING': {'ALPHA': max(round(alpha / 2, 4), 0.02), 'NBROYDEN': 12}}
                action = f"mixing ALPHA {changes['MIXING']['ALPHA']} and MAX_SCF {changes['MAX_SCF']}"
            if not _section_on(scf.get('SMEAR')):
                # Occupations flipping between near-degenerate frontier states (small-gap QDs with under-coordinated
                # surface atoms) can stall diagonalisation; a 300 K Fermi-Dirac smearing is the standard remedy and
                # leaves gapped occupations integer to exp(-gap/2kT) with the Fermi level mid-gap (6e-5 for a 0.5 eV
                # gap, 2e-8 for 0.9 eV). It converged the FXP-vacancy cages (docs/classifier.md) after density-matrix
                # mixing + DIIS had flipped between two states; it did not rescue the InF2-vacancy QD of
                # docs/traps.md, whose gap is close to zero.
                changes['SMEAR'] = dict(SMEARING)
                changes['ADDED_MOS'] = max(int(scf.get('ADDED_MOS', 0)), SMEAR_ADDED_MOS)
                action += f', Fermi-Dirac smearing at {SMEAR_KELVIN} K'
        self._update_parameters({'FORCE_EVAL': {'DFT': {'SCF': changes}}})
        self._no_initial_p_screening()
        if self._has_wavefunction(calc) and changes.get('SCF_GUESS') != 'ATOMIC':
            self._restart_from(calc)
        self.report(f'{calc.process_label}<{calc.pk}> SCF not converged: retrying with {action}.')
        return ProcessHandlerReport(True)

    def _no_initial_p_screening(self) -> None:
        """Switch ``&HF &SCREENING SCREEN_ON_INITIAL_P`` off for an SCF retry: its start (the atomic guess or an
        unconverged wavefunction) is no density to screen the exact exchange on; dropped integrals would be missing
        from the converged result."""
        hf = self.ctx.inputs.parameters.get_dict().get('FORCE_EVAL', {}).get('DFT', {}).get('XC', {}).get('HF', {})
        screening = hf.get('SCREENING', {}) if isinstance(hf, dict) else {}
        if cp2k_logical(screening.get('SCREEN_ON_INITIAL_P', False)):
            off = {'HF': {'SCREENING': {'SCREEN_ON_INITIAL_P': False}}}
            self._update_parameters({'FORCE_EVAL': {'DFT': {'XC': off}}})

    @process_handler(priority=460, exit_codes=[Cp2kCalculation.exit_codes.ERROR_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, calc):
        """Continue from where the calculation stopped; with no progress, ask for more wall time."""
        if 'output_structure' in calc.outputs or self._has_wavefunction(calc):
            self._restart_from(calc)
            self.report(f'{calc.process_label}<{calc.pk}> ran out of wall time: continuing from its last state.')
        else:
            options = dict(self.ctx.inputs.metadata.get('options', {}))
            options['max_wallclock_seconds'] = int(1.5 * options.get('max_wallclock_seconds', 3600))
            self.ctx.inputs.metadata['options'] = options
            self._update_parameters({'GLOBAL': {'WALLTIME': int(0.9 * options['max_wallclock_seconds'])}})
            self.report(f'{calc.process_label}<{calc.pk}> ran out of wall time with nothing to restart from: '
                        f"max_wallclock_seconds raised to {options['max_wallclock_seconds']}.")
        return ProcessHandlerReport(True)

    @process_handler(priority=450, exit_codes=[
        Cp2kCalculation.exit_codes.ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED,
        Cp2kCalculation.exit_codes.ERROR_GEOMETRY_CONVERGENCE_NOT_REACHED,
    ])
    def handle_geometry_not_converged(self, calc):
        """Continue the geometry optimisation from the last geometry; with BFGS when CP2K's LBFGS had ended it on its
        own criteria above the input's MAX_FORCE (it would stop there again)."""
        if 'output_structure' not in calc.outputs:
            self.report(f'{calc.process_label}<{calc.pk}> stopped before writing a geometry: cannot continue.')
            return ProcessHandlerReport(True, self.exit_codes.NO_RESTART_DATA)
        self._restart_from(calc)
        try:
            stopped = lbfgs_stopped_above_criterion(_output_text(calc))
        except (AttributeError, FileNotFoundError, OSError, KeyError):
            stopped = None
        if stopped is not None:
            self._update_parameters({'MOTION': {'GEO_OPT': {'OPTIMIZER': 'BFGS'}}})
            self.report(f'{calc.process_label}<{calc.pk}>: LBFGS stopped on its own criteria at a largest gradient of '
                        f'{stopped[0]:.2e} Ha/bohr (limit {stopped[1]:.2e}): continuing from its last geometry with '
                        'BFGS.')
            return ProcessHandlerReport(True)
        self.report(f'{calc.process_label}<{calc.pk}> geometry not converged: continuing from its last geometry.')
        return ProcessHandlerReport(True)

    @process_handler(priority=410, exit_codes=[Cp2kCalculation.exit_codes.ERROR_OUTPUT_CONTAINS_ABORT])
    def handle_pdos_input_layout(self, calc):
        """CP2K 2026.2 reads the projected DOS from ``PRINT/DOS/PDOS`` and aborts on the ``PRINT/PDOS`` section of
        earlier versions ("unknown subsection PDOS of section PRINT") before it computes anything: move the section
        (``move_pdos_into_dos``) and run again with the same inputs otherwise."""
        try:
            message = read_abort_message(_output_text(calc))
        except (AttributeError, FileNotFoundError, OSError, KeyError):
            return None
        if not message or 'unknown subsection PDOS of section PRINT' not in message:
            return None
        if pdos_in_dos_section(self.ctx.inputs.parameters.get_dict()) is None:
            return None
        self.ctx.inputs.parameters = move_pdos_into_dos(self.ctx.inputs.parameters)
        self.report(f'{calc.process_label}<{calc.pk}>: CP2K aborted with "{message}" (CP2K 2026.2 moved it): '
                    'running again with the projected DOS in PRINT/DOS/PDOS.')
        return ProcessHandlerReport(True)

    @process_handler(priority=405, exit_codes=[Cp2kCalculation.exit_codes.ERROR_OUTPUT_INCOMPLETE])
    def handle_eigensolver_crash(self, calc):
        """CP2K stopped by a signal inside ELPA, its default eigensolver when built with it: run again with ScaLAPACK
        (``GLOBAL/PREFERRED_DIAG_LIBRARY``), from scratch. Debian's CP2K 2026.2 package stops so (SIGFPE in
        ``elpa_invert_trm``) before its first SCF step. The backtrace is read from the main output (aiida-cp2k sends
        CP2K's standard error there) and the scheduler's standard error."""
        texts = []
        for name in (calc.base.attributes.get('output_filename', 'aiida.out'), '_scheduler-stderr.txt'):
            try:
                texts.append(calc.outputs.retrieved.base.repository.get_object_content(name))
            except (AttributeError, FileNotFoundError, OSError):
                continue
        stderr = '\n'.join(texts)
        signal = crashed_in_library(stderr, 'elpa')
        library = str(self.ctx.inputs.parameters.get_dict().get('GLOBAL', {}).get('PREFERRED_DIAG_LIBRARY', ''))
        if signal is None or library.upper() == 'SCALAPACK':
            return None
        self._update_parameters({'GLOBAL': {'PREFERRED_DIAG_LIBRARY': 'SCALAPACK'}})
        self.report(f'{calc.process_label}<{calc.pk}>: CP2K stopped by {signal} inside ELPA (its backtrace): '
                    'running again with PREFERRED_DIAG_LIBRARY SCALAPACK.')
        return ProcessHandlerReport(True)

    @process_handler(priority=401, exit_codes=[Cp2kCalculation.exit_codes.ERROR_OUTPUT_INCOMPLETE])
    def restart_incomplete_calculation(self, calc):
        """A run whose output ends before CP2K finished (killed by the scheduler, a node failure, a CPU-time limit):
        continue from where it got to as after a wall-time stop (:meth:`_restart_from`: an MD from its restart file,
        anything else from its wavefunction and last geometry); a run killed before its first SCF step runs again as
        it was. ``max_iterations`` bounds the retries.

        Replaces aiida-cp2k's handler of the same name, which adds ``RESTART_FILE_NAME`` beside the
        ``WFN_RESTART_FILE_NAME`` that every continued run here already has (CP2K then aborts: "Keyword
        WFN_RESTART_FILE_NAME in section DFT should not repeat") and ``IGNORE_CONVERGENCE_FAILURE``, which CP2K
        2023.1 does not know."""
        md = self._run_type() == 'MD'
        progressed = MD_STEP_DONE in _output_text(calc) if md else self._has_wavefunction(calc)
        if progressed:
            self._restart_from(calc)
            self.report(f'{calc.process_label}<{calc.pk}> stopped before CP2K finished (incomplete output): '
                        'continuing from its last state.')
        else:
            self.report(f'{calc.process_label}<{calc.pk}> stopped before CP2K finished, with nothing to continue '
                        'from: running it again.')
        return ProcessHandlerReport(True)
