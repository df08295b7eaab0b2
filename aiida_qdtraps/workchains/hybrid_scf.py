"""``HybridScfWorkChain``: CP2K PBE0 single point keeping the MOs around the gap, density cube and PDOS."""

from __future__ import annotations

import pathlib

import numpy as np
from aiida import orm
from aiida.engine import if_

from .. import provenance
from ..analysis.mo_counts import scaled_mo_counts
from ..builder.roles import infer_roles
from ..parsers.cp2k_hybrid import MOLDEN_FILE
from ..protocols import ADMM_SECTION, PROTOCOL_DIR
from .common import QdCp2kStageWorkChain
from .cp2k_base import WFN_RESTART, QdCp2kBaseWorkChain
from .functions import extract_mo_window, recursive_merge
from .parent_folder import WFN_FILE, parent_folder_problem


def validate_mo_window(value, _):
    if value is None:
        return None
    window = value.get_dict()
    for key in ('occupied', 'virtual'):
        if not isinstance(window.get(key), int) or window[key] < 1:
            return f'mo_window.{key} must be a positive integer, got {window.get(key)!r}'
    return None


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
    """PBE0 electronic structure of a (relaxed) QD with the data the trap analysis needs."""

    _namespace = 'scf'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('mo_window', valid_type=orm.Dict, default=lambda: orm.Dict({'occupied': 20, 'virtual': 20}),
                   validator=validate_mo_window,
                   help='Number of highest occupied and lowest virtual MOs whose coefficients are kept.')
        spec.input('parent_calc_folder', valid_type=orm.RemoteData, required=False,
                   help='Folder of a previous CP2K run on the same geometry; its wavefunction is the initial guess.')
        spec.expose_inputs(QdCp2kBaseWorkChain, namespace='scf', exclude=('cp2k.structure',))
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
                    help='Net atomic charges (e) of the population analyses CP2K printed: mulliken, lowdin, hirshfeld.')
        spec.output('structure', valid_type=orm.StructureData, help='The structure the SCF was run on.')
        spec.output('remote_folder', valid_type=orm.RemoteData)
        spec.exit_code(204, 'ERROR_TOO_FEW_ADDED_MOS',
                       message='ADDED_MOS = {added} is smaller than the requested virtual window {virtual}.')
        spec.exit_code(401, 'ERROR_SCF_FAILED', message='The CP2K hybrid SCF failed: {message}')
        spec.exit_code(402, 'ERROR_MO_WINDOW', message='Could not extract the MO window: {message}')

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / 'hybrid_scf.yaml'

    @classmethod
    def get_builder_from_protocol(cls, code: orm.Code, structure: orm.StructureData, protocol: str | None = None,
                                  overrides: dict | None = None, charge: int = 0, multiplicity: int = 1,
                                  options: dict | None = None):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol (ADMM from moderate on).

        The MO window and ``ADDED_MOS`` grow with the QD's core (:func:`.scaled_mo_counts`, the protocol's numbers as
        minimum); a window or an ``ADDED_MOS`` given in ``overrides`` is taken as it is.
        """
        builder, inputs, extras = cls._builder_from_protocol(code, structure, protocol, overrides, charge,
                                                             multiplicity, options)
        window, added = scaled_mo_inputs(structure, cls.get_protocol_inputs(protocol), overrides or {})
        builder.mo_window = orm.Dict(window)
        if added is not None:
            builder.scf.cp2k.parameters = orm.Dict(recursive_merge(builder.scf.cp2k.parameters.get_dict(), {
                'FORCE_EVAL': {'DFT': {'SCF': {'ADDED_MOS': added}}}}))
        if extras.get('admm'):
            builder.scf.cp2k.parameters = orm.Dict(recursive_merge(builder.scf.cp2k.parameters.get_dict(), {
                'FORCE_EVAL': {'DFT': {'AUXILIARY_DENSITY_MATRIX_METHOD': dict(ADMM_SECTION)}}}))
        return builder

    def validate_inputs(self):
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
            self.report(f'parent_calc_folder {problem}: the PBE0 starts from the atomic guess instead of its '
                        'wavefunction')
        return problem is None

    def run_scf(self):
        if 'parent_calc_folder' not in self.inputs or not self.parent_usable():
            return self.submit_cp2k('hybrid_scf', 'CP2K PBE0 single point')
        # From a converged wavefunction the exact exchange is also screened on the initial density matrix: on In4PF9
        # (fast) the PBE0 from the relax's wavefunction took 85 s instead of 156 s, energy within 0.6 µHa, gap within
        # 0.01 meV (benchmarks/hybrid_restart.py, docs/protocols.md). The SCF handler switches it off when it goes
        # back to the atomic guess.
        restart = {'FORCE_EVAL': {'DFT': {'WFN_RESTART_FILE_NAME': WFN_RESTART, 'SCF': {'SCF_GUESS': 'RESTART'},
                                          'XC': {'HF': {'SCREENING': {'SCREEN_ON_INITIAL_P': True}}}}}}
        return self.submit_cp2k('hybrid_scf', 'CP2K PBE0 single point from the parent wavefunction', restart,
                                parent_calc_folder=self.inputs.parent_calc_folder)

    def inspect_scf(self):
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
        params = outputs.output_parameters
        self.report(f"PBE0: HOMO {params['homo_ev']:.3f} eV, LUMO {params['lumo_ev']:.3f} eV, "
                    f"gap {params['gap_ev']:.3f} eV")
