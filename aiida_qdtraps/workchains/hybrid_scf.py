"""``HybridScfWorkChain``: PBE0 single point keeping the MOs around the gap, with CP2K (also the density cube and
PDOS) or with PySCF (PBE0/def2-SVP, the level of theory of Alexander et al.; no density cube, no PDOS)."""

from __future__ import annotations

import copy

import numpy as np
import yaml
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, if_
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from .. import provenance
from ..analysis.mo_counts import scaled_mo_counts
from ..builder.roles import infer_roles
from ..calculations.pyscf import DEFAULT_PARAMETERS, PyscfCalculation, pyscf_parameters
from ..parsers.cp2k_hybrid import MOLDEN_FILE
from ..protocols import ADMM_SECTION, PROTOCOL_DIR, functional_name, strip_for_xtb
from .cp2k_base import WFN_RESTART, cp2k_protocol_inputs
from .mo_window import extract_mo_window
from .parent_folder import WFN_FILE, parent_folder_problem
from .stage import QdCp2kStageWorkChain, failure_message, qd_builder


def validate_mo_window(value, _):
    if value is None:
        return None
    window = value.get_dict()
    for key in ('occupied', 'virtual'):
        if not isinstance(window.get(key), int) or window[key] < 1:
            return f'mo_window.{key} must be a positive integer, got {window.get(key)!r}'
    return None


#: The engines of the hybrid SCF: CP2K (``scf`` inputs, the default) and PySCF (``pyscf`` inputs).
ENGINES = ('cp2k', 'pyscf')
#: functionals of the CP2K hybrid stage: the protocol's PBE0, plain PBE for quick looks, GFN1-xTB for gap series of
#: screening dynamics (the ``xtb`` MD protocol)
FUNCTIONALS = ('pbe0', 'pbe', 'xtb')


def xtb_single_point(parameters: dict) -> dict:
    """Hybrid-stage CP2K parameters turned into a GFN1-xTB single point: the xTB method, Poisson and SCF settings of
    the ``xtb`` relax protocol (one place for them), the stage's prints (MOs, MOLDEN, PDOS, moments, ...) and
    ``ADDED_MOS`` kept, its basis, grid, XC and ``&KIND`` dropped."""
    xtb_dft = cp2k_protocol_inputs('relax', 'xtb')['cp2k']['parameters']['FORCE_EVAL']['DFT']
    scf = {key: value for key, value in xtb_dft['SCF'].items() if key != 'ADDED_MOS'}
    dft = copy.deepcopy(parameters['FORCE_EVAL']['DFT'])
    dft = recursive_merge(dft, {'QS': xtb_dft['QS'], 'POISSON': xtb_dft['POISSON'], 'SCF': scf})
    dft['QS'] = {key: value for key, value in dft['QS'].items() if key != 'EXTRAPOLATION'}
    result = copy.deepcopy(parameters)
    result['FORCE_EVAL']['DFT'] = dft
    return strip_for_xtb(result)


#: Protocols of the PySCF engine (same names as the CP2K ones).
PYSCF_PROTOCOL_FILE = PROTOCOL_DIR / 'hybrid_scf_pyscf.yaml'
#: PySCF parameters the work chain sets from its own inputs (``charge``, ``multiplicity``, ``mo_window``).
PYSCF_OWN_KEYS = ('charge', 'multiplicity', 'mo_window')


def validate_engine(value, _):
    if value is not None and value.value not in ENGINES:
        return f'engine {value.value!r} is not available; choose one of {ENGINES}'
    return None


def engine_of(inputs) -> str:
    """The engine of a ``HybridScfWorkChain`` input mapping: ``cp2k`` unless ``engine`` says otherwise."""
    engine = inputs.get('engine')
    return 'cp2k' if engine is None else engine.value


def pyscf_scf_parameters(parameters: dict, symbols, charge: int, multiplicity: int, mo_window: dict) -> dict:
    """The ``parameters`` of the PySCF job: those given, with the work chain's charge, multiplicity and MO window,
    checked by :func:`~aiida_qdtraps.calculations.pyscf.pyscf_parameters` against the structure's ``symbols`` (None:
    without the element checks).

    :raises ValueError: for a parameter the job refuses (the value named), or one of :data:`PYSCF_OWN_KEYS` given in
        ``parameters`` (they come from the work chain's inputs).
    """
    own = sorted(set(parameters) & set(PYSCF_OWN_KEYS))
    if own:
        raise ValueError(f'pyscf.parameters must not set {own}: the work chain sets charge, multiplicity and the MO '
                         'window from its own inputs')
    changes = {**parameters, 'charge': int(charge), 'multiplicity': int(multiplicity),
               'mo_window': {key: int(mo_window[key]) for key in ('occupied', 'virtual')}}
    pyscf_parameters(changes, symbols)
    return changes


def _engine_inputs_given(inputs, engine: str) -> bool:
    """Whether the inputs of ``engine`` hold a code or parameters (a namespace that is present only because a builder
    or the defaults touched it holds neither)."""
    namespace = (inputs.get('scf') or {}).get('cp2k') if engine == 'cp2k' else inputs.get('pyscf')
    namespace = namespace or {}
    return namespace.get('code') is not None or namespace.get('parameters') is not None


def validate_hybrid_inputs(inputs, _):
    """The inputs of the chosen engine are there, the other engine's are not, and a PySCF job's parameters are sound
    for the structure, charge and multiplicity (before anything is stored)."""
    engine = engine_of(inputs)
    if engine not in ENGINES:
        return None  # named by the port validator of `engine`
    other = 'pyscf' if engine == 'cp2k' else 'cp2k'
    if _engine_inputs_given(inputs, other):
        return (f'engine {engine!r} takes the `{"scf" if engine == "cp2k" else "pyscf"}` inputs, not '
                f'`{"pyscf" if engine == "cp2k" else "scf"}`')
    if engine == 'cp2k':
        if not _engine_inputs_given(inputs, 'cp2k'):
            return "engine 'cp2k' needs the `scf` inputs (QdCp2kBaseWorkChain: CP2K code and parameters)"
        return None
    if (inputs.get('pyscf') or {}).get('code') is None:
        return "engine 'pyscf' needs the `pyscf` inputs with a `code` (a Python with pyscf)"
    if 'parent_calc_folder' in inputs:
        return ("engine 'pyscf' starts from its own guess: `parent_calc_folder` (a CP2K wavefunction) cannot be "
                'used')
    parameters = inputs['pyscf'].get('parameters')
    structure = inputs.get('structure')
    symbols = structure.get_ase().get_chemical_symbols() if structure is not None else None
    window = inputs['mo_window'].get_dict() if 'mo_window' in inputs else {'occupied': 1, 'virtual': 1}
    charge, multiplicity = inputs.get('charge'), inputs.get('multiplicity')
    try:
        pyscf_scf_parameters(parameters.get_dict() if parameters is not None else {}, symbols,
                             charge.value if charge is not None else 0,
                             multiplicity.value if multiplicity is not None else 1, window)
    except (ValueError, KeyError, TypeError) as exception:
        return f'pyscf: {exception}'
    return None


def pyscf_protocol_inputs(protocol: str | None = None, overrides: dict | None = None) -> dict:
    """The inputs of the PySCF engine's ``protocol`` (its default when None), with ``overrides`` merged in."""
    data = yaml.safe_load(PYSCF_PROTOCOL_FILE.read_text())
    protocol = protocol or data['default_protocol']
    if protocol not in data['protocols']:
        raise ValueError(f'`{protocol}` is not a protocol of the pyscf engine; available: {sorted(data["protocols"])}')
    inputs = recursive_merge(data['default_inputs'], data['protocols'][protocol])
    inputs.pop('description', None)
    return recursive_merge(inputs, overrides) if overrides else inputs


def scaled_pyscf_window(structure: orm.StructureData, protocol_window: dict, overrides: dict) -> dict:
    """The PySCF MO window scaled to ``structure``'s core like the CP2K one (:func:`.scaled_mo_counts`; PySCF has
    every MO of the basis, so there is no ``ADDED_MOS``); a window key given in ``overrides`` is kept."""
    symbols = structure.get_ase().get_chemical_symbols()
    roles = provenance.roles(structure)
    roles = np.asarray(roles) if roles is not None else infer_roles(symbols)
    virtual = int(protocol_window['virtual'])
    counts = scaled_mo_counts(int(np.sum(roles != 'ligand')), int(protocol_window['occupied']), virtual, virtual)
    given = overrides.get('mo_window', {})
    return {key: given.get(key, counts[key]) for key in ('occupied', 'virtual')}


def _scf_section(parameters: dict) -> dict:
    return parameters.get('FORCE_EVAL', {}).get('DFT', {}).get('SCF', {})


def scaled_mo_inputs(structure: orm.StructureData, protocol_inputs: dict, overrides: dict) -> tuple[dict, int | None]:
    """The MO window and ``ADDED_MOS`` of a protocol (its ``protocol_inputs`` before overrides) scaled to
    ``structure``'s core (the builder's role tags, through the provenance, else the element tables). A window key given
    in ``overrides`` is kept; ``ADDED_MOS`` is None where ``overrides`` set it, else it covers the window plus the
    protocol's margin."""
    symbols = structure.get_ase().get_chemical_symbols()
    roles = provenance.roles(structure)
    roles = np.asarray(roles) if roles is not None else infer_roles(symbols)
    protocol_window = protocol_inputs['mo_window']
    protocol_added = int(_scf_section(protocol_inputs['scf']['cp2k']['parameters']).get(
        'ADDED_MOS', protocol_window['virtual']))
    counts = scaled_mo_counts(int(np.sum(roles != 'ligand')), int(protocol_window['occupied']),
                              int(protocol_window['virtual']), protocol_added)
    given_window = overrides.get('mo_window', {})
    window = {key: given_window.get(key, counts[key]) for key in ('occupied', 'virtual')}
    if _scf_section(overrides.get('scf', {}).get('cp2k', {}).get('parameters', {})).get('ADDED_MOS') is not None:
        return window, None
    margin = max(protocol_added - int(protocol_window['virtual']), 0)
    return window, max(counts['added_mos'], window['virtual'] + margin)


class HybridScfWorkChain(QdCp2kStageWorkChain):
    """PBE0 electronic structure of a (relaxed) QD with the data the trap analysis needs.

    ``engine`` chooses the code: ``cp2k`` (the default; inputs in ``scf``) or ``pyscf`` (inputs in ``pyscf``: the
    ``qdtraps.pyscf`` CalcJob, a molecular calculation without a cell, by default PBE0/def2-SVP). Both give the same
    ``output_parameters`` keys the pipeline reads (``homo_ev``, ``lumo_ev``, ``gap_ev``), ``mo_energies``, the
    ``mo_window`` that ``label_traps`` reads and the ``structure``; only CP2K writes ``density_cube`` and ``pdos``.
    """

    protocol_file = 'hybrid_scf.yaml'

    _namespace = 'scf'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('mo_window', valid_type=orm.Dict, default=lambda: orm.Dict({'occupied': 20, 'virtual': 20}),
                   validator=validate_mo_window,
                   help='Number of highest occupied and lowest virtual MOs whose coefficients are kept.')
        spec.input('parent_calc_folder', valid_type=orm.RemoteData, required=False,
                   help='Folder of a previous CP2K run on the same geometry; its wavefunction is the initial guess.')
        spec.input('engine', valid_type=orm.Str, required=False, validator=validate_engine,
                   help="`cp2k` (the `scf` inputs; the default when not given) or `pyscf` (the `pyscf` inputs).")
        cls.expose_cp2k(spec, required=False, populate_defaults=False, help='The CP2K SCF (engine `cp2k`).')
        spec.expose_inputs(PyscfCalculation, namespace='pyscf', exclude=('structure',),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'The PySCF job (engine `pyscf`); charge, multiplicity and the '
                                                      'MO window come from the work chain inputs.'})
        spec.inputs.validator = validate_hybrid_inputs
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            cls.validate_inputs,
            cls.run_scf,
            cls.inspect_scf,
            cls.results,
        )
        spec.output('output_parameters', valid_type=orm.Dict,
                    help='Parsed output incl. homo_ev, lumo_ev, gap_ev (from the MO energies), walltime_s.')
        spec.output('mo_energies', valid_type=orm.ArrayData, help='Energies (eV) and occupations of all MOs.')
        spec.output('mo_window', valid_type=orm.ArrayData,
                    help='MO coefficients around the gap, AO overlap and AO→atom map.')
        spec.output('pdos', valid_type=orm.ArrayData, required=False, help='PDOS per kind.')
        spec.output('density_cube', valid_type=orm.SinglefileData, required=False, help='Valence electron density.')
        spec.output('atomic_charges', valid_type=orm.ArrayData, required=False,
                    help='Net atomic charges (e) of the population analyses: mulliken, lowdin (and hirshfeld when '
                         'CP2K printed it).')
        spec.output('structure', valid_type=orm.StructureData, help='The structure the SCF was run on.')
        spec.output('remote_folder', valid_type=orm.RemoteData)
        spec.exit_code(204, 'ERROR_TOO_FEW_ADDED_MOS',
                       message='ADDED_MOS = {added} is smaller than the requested virtual window {virtual}.')
        spec.exit_code(401, 'ERROR_SCF_FAILED', message='The hybrid SCF failed: {message}')
        spec.exit_code(402, 'ERROR_MO_WINDOW', message='Could not extract the MO window: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code: orm.Code | None, structure: orm.StructureData, protocol: str | None = None,
                                  overrides: dict | None = None, charge: int = 0, multiplicity: int = 1,
                                  options: dict | None = None, engine: str = 'cp2k',
                                  pyscf_code: orm.AbstractCode | None = None, functional: str = 'pbe0'):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol of ``engine``.

        ``functional='pbe'`` (CP2K only) runs the protocol's single point with plain PBE instead of PBE0 (no exact
        exchange, no ADMM): band edges and trap centres at the GGA level, minutes instead of the PBE0's tens of minutes
        for a 35-atom QD; the demo uses it. PBE gaps are too small and its states more delocalised: labels for
        results come from PBE0, the default. The functional is in the CP2K parameters (``XC``), so in the provenance.
        ``functional='xtb'`` runs GFN1-xTB (:func:`xtb_single_point`): for gap series along screening dynamics
        (``MdGapsWorkChain`` on an ``xtb`` MD), not for trap labels.

        ``cp2k`` (``code``; ADMM from moderate on): the MO window and ``ADDED_MOS`` grow with the QD's core
        (:func:`.scaled_mo_counts`, the protocol's numbers as minimum); a window or an ``ADDED_MOS`` given in
        ``overrides`` is taken as it is.

        ``pyscf`` (``pyscf_code``, a Python with pyscf; ``code`` is not used): PBE0/def2-SVP with density fitting
        (``hybrid_scf_pyscf.yaml``), the MO window scaled the same way; ``overrides`` as ``{'pyscf': {'parameters':
        ...}, 'mo_window': ...}``. Charge, multiplicity and window are checked against the structure here.

        :raises ValueError: for an unknown engine, ``pyscf`` without ``pyscf_code``, or PySCF parameters the job
            refuses (the value named).
        """
        if engine not in ENGINES:
            raise ValueError(f'engine {engine!r} is not available; choose one of {ENGINES}')
        if functional not in FUNCTIONALS:
            raise ValueError(f'functional {functional!r} is not available; choose one of {FUNCTIONALS}')
        if engine == 'pyscf':
            if functional != 'pbe0':
                raise ValueError(f"functional {functional!r} needs engine 'cp2k' (the pyscf protocols set their own "
                                 "xc: overrides={'pyscf': {'parameters': {'xc': ...}}})")
            return cls._pyscf_builder(pyscf_code, structure, protocol, overrides, charge, multiplicity, options)
        builder, inputs = cls._builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity,
                                                     options)
        window, added = scaled_mo_inputs(structure, cls.get_protocol_inputs(protocol), overrides or {})
        builder.mo_window = orm.Dict(window)
        if added is not None:
            builder.scf.cp2k.parameters = orm.Dict(recursive_merge(builder.scf.cp2k.parameters.get_dict(), {
                'FORCE_EVAL': {'DFT': {'SCF': {'ADDED_MOS': added}}}}))
        if inputs.get('admm') and functional == 'pbe0':
            builder.scf.cp2k.parameters = orm.Dict(recursive_merge(builder.scf.cp2k.parameters.get_dict(), {
                'FORCE_EVAL': {'DFT': {'AUXILIARY_DENSITY_MATRIX_METHOD': dict(ADMM_SECTION)}}}))
        if functional == 'pbe':
            parameters = builder.scf.cp2k.parameters.get_dict()
            parameters['FORCE_EVAL']['DFT']['XC'] = {'XC_FUNCTIONAL': {'PBE': {}}}
            parameters['FORCE_EVAL']['DFT'].pop('AUXILIARY_DENSITY_MATRIX_METHOD', None)
            builder.scf.cp2k.parameters = orm.Dict(parameters)
        if functional == 'xtb':
            builder.scf.cp2k.parameters = orm.Dict(xtb_single_point(builder.scf.cp2k.parameters.get_dict()))
        return builder

    @classmethod
    def _pyscf_builder(cls, pyscf_code, structure, protocol, overrides, charge, multiplicity, options):
        if pyscf_code is None:
            raise ValueError("engine 'pyscf' needs `pyscf_code` (a Python with pyscf, e.g. dp-python@localhost)")
        overrides = overrides or {}
        inputs = pyscf_protocol_inputs(protocol, overrides)
        window = scaled_pyscf_window(structure, pyscf_protocol_inputs(protocol)['mo_window'], overrides)
        parameters = pyscf_scf_parameters(inputs['pyscf']['parameters'], structure.get_ase().get_chemical_symbols(),
                                          charge, multiplicity, window)
        metadata = inputs['pyscf'].get('metadata', {})
        if options:
            metadata = recursive_merge(metadata, {'options': options})
        builder = qd_builder(cls, structure, charge, multiplicity, inputs.get('box_vacuum'))
        builder.engine = orm.Str('pyscf')
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        builder.mo_window = orm.Dict(window)
        builder.pyscf.code = pyscf_code
        builder.pyscf.parameters = orm.Dict({k: v for k, v in parameters.items() if k not in PYSCF_OWN_KEYS})
        builder.pyscf.metadata = metadata
        return builder

    @property
    def engine(self) -> str:
        return engine_of(self.inputs)

    def validate_inputs(self):
        if self.engine == 'pyscf':
            return None  # a molecular calculation: no cell needed; its parameters were checked by the spec validator
        exit_code = super().validate_inputs()
        if exit_code is not None:
            return exit_code
        parameters = self.inputs.scf.cp2k.parameters.get_dict()
        added = parameters.get('FORCE_EVAL', {}).get('DFT', {}).get('SCF', {}).get('ADDED_MOS', 0)
        virtual = self.inputs.mo_window['virtual']
        if int(added) < virtual:
            return self.exit_codes.ERROR_TOO_FEW_ADDED_MOS.format(added=added, virtual=virtual)
        return None

    def parent_usable(self) -> bool:
        """Whether ``parent_calc_folder`` still holds the wavefunction to restart from.

        A cached relax can hand out the folder of a run that was cleaned since (docs/reliability.md); CP2K would then
        start from the atomic guess behind a provenance that says it restarted. Such a parent is dropped with a report
        line, and the SCF starts from the protocol's guess, as without a parent: the wavefunction is only the initial
        guess, the converged PBE0 does not depend on it, and re-running the relax to regenerate it would cost far more
        than the SCF steps it saves. A computer that cannot be reached keeps the parent (the upload then fails or
        retries as for any CalcJob).
        """
        parent = self.inputs.parent_calc_folder
        try:
            problem = parent_folder_problem(parent, [WFN_FILE])
        except Exception as exception:  # noqa: BLE001 (any transport failure: keep the parent, say why)
            self.report(f'could not check parent_calc_folder RemoteData<{parent.pk}> ({exception}); restarting from '
                        'it as given')
            return True
        if problem is not None:
            level = functional_name(self.inputs[self._namespace].cp2k.parameters.get_dict())
            self.report(f'parent_calc_folder {problem}: the {level} starts from the atomic guess instead of its '
                        'wavefunction')
        return problem is None

    def run_scf(self):
        if self.engine == 'pyscf':
            return self.run_pyscf()
        level = functional_name(self.inputs[self._namespace].cp2k.parameters.get_dict())
        if 'parent_calc_folder' not in self.inputs or not self.parent_usable():
            return self.submit_cp2k('hybrid_scf', f'CP2K {level} single point')
        # From a converged wavefunction the exact exchange is also screened on the initial density matrix: on In4PF9
        # (fast) the PBE0 from the relax's wavefunction took 85 s instead of 156 s, energy within 0.6 µHa, gap within
        # 0.01 meV (benchmarks/hybrid_restart.py, docs/protocols.md). The SCF handler switches it off when it goes
        # back to the atomic guess.
        restart = {'FORCE_EVAL': {'DFT': {'WFN_RESTART_FILE_NAME': WFN_RESTART, 'SCF': {'SCF_GUESS': 'RESTART'}}}}
        if level == 'PBE0':
            restart['FORCE_EVAL']['DFT']['XC'] = {'HF': {'SCREENING': {'SCREEN_ON_INITIAL_P': True}}}
        return self.submit_cp2k('hybrid_scf', f'CP2K {level} single point from the parent wavefunction', restart,
                                parent_calc_folder=self.inputs.parent_calc_folder)

    def run_pyscf(self):
        """The PySCF job on ``ctx.structure`` with the work chain's charge, multiplicity and MO window."""
        inputs = AttributeDict(self.exposed_inputs(PyscfCalculation, namespace='pyscf'))
        given = inputs.parameters.get_dict() if 'parameters' in inputs else {}
        inputs.parameters = orm.Dict(pyscf_scf_parameters(given, None, self.inputs.charge.value,
                                                          self.inputs.multiplicity.value,
                                                          self.inputs.mo_window.get_dict()))
        inputs.structure = self.ctx.structure
        inputs.metadata = AttributeDict({**inputs.get('metadata', {}), 'call_link_label': 'hybrid_scf'})
        node = self.submit(PyscfCalculation, **inputs)
        params = {**DEFAULT_PARAMETERS, **inputs.parameters.get_dict()}
        self.report(f"launched PyscfCalculation<{node.pk}> ({params['xc']}/{params['basis']} single point"
                    f', {len(self.ctx.structure.sites)} atoms, charge {self.inputs.charge.value}, '
                    f'multiplicity {self.inputs.multiplicity.value})')
        return ToContext(workchain=node)

    def inspect_scf(self):
        if self.engine == 'pyscf':
            node = self.ctx.workchain
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_SCF_FAILED.format(message=failure_message(node))
            self.ctx.mo_window = node.outputs.mo_window
            return None
        message = self.failed_child_message()
        if message:
            return self.exit_codes.ERROR_SCF_FAILED.format(message=message)
        workchain = self.ctx.workchain
        window = orm.Dict(recursive_merge(self.inputs.mo_window.get_dict(), {'molden_file': MOLDEN_FILE}))
        try:
            self.ctx.mo_window = extract_mo_window(workchain.outputs.retrieved, window)['mo_window']
        except ValueError as exc:
            return self.exit_codes.ERROR_MO_WINDOW.format(message=str(exc))
        return None

    def results(self):
        outputs = self.ctx.workchain.outputs
        self.out('output_parameters', outputs.output_parameters)
        self.out('mo_energies', outputs.mo_energies)
        self.out('mo_window', self.ctx.mo_window)
        self.out('structure', self.ctx.structure)
        self.out('remote_folder', outputs.remote_folder)
        for label in ('pdos', 'density_cube', 'atomic_charges'):
            if label in outputs:
                self.out(label, outputs[label])
        if self.engine == 'pyscf':
            self.out('atomic_charges', outputs.charges)
        params = outputs.output_parameters
        level = functional_name(self.inputs[self._namespace].cp2k.parameters.get_dict()) if self.engine == 'cp2k' \
            else f"PySCF {params.get('xc')}/{params.get('basis')}"
        self.report(f"{level}: HOMO {params['homo_ev']:.3f} eV, LUMO {params['lumo_ev']:.3f} eV, "
                    f"gap {params['gap_ev']:.3f} eV")
