"""Quantum ESPRESSO branch of ``QdRelaxWorkChain`` (``engine: qe``) and its GTH-PBE UPF pseudopotential family.

- :func:`~aiida_qdtraps.pseudo_family.ensure_upf_family`: the aiida-pseudo family ``qdtraps-gth-pbe-upf`` of
  norm-conserving UPF files tabulated from CP2K's ``GTH_POTENTIALS`` (:mod:`aiida_qdtraps.pseudos`), the very
  potentials and valence charges of the CP2K path; made offline at set-up time (:mod:`aiida_qdtraps.pseudo_family`).
- :func:`qe_protocol_inputs`: the ``fast``/``moderate``/``precise`` protocols of ``qe_relax.yaml``.
- :class:`QeRelaxStage`: the steps ``QdRelaxWorkChain`` runs for ``engine: qe`` -- ``PwBaseWorkChain``
  (``calculation='relax'``, ``assume_isolated`` 'mt' if charged else 'none', Gamma point, ``tot_charge``,
  ``nspin``/``tot_magnetization``)
  and, if ``qe_pp`` inputs are given, pp.x (``plot_num=0``) writing the valence density as a Gaussian cube in e/bohr³
  (the unit of CP2K's ``ELECTRON_DENSITY`` cube) exposed as the ``density_cube`` ``SinglefileData``, and, if
  ``qe_projwfc`` inputs are given, projwfc.x on the relaxed QD: Löwdin charges on the UPF pseudo-atomic orbitals, the
  HOMO/LUMO and a PDOS figure per element (:func:`analyse_projwfc`).

The calcfunctions (``analyse_projwfc``, ``extract_density_cube``, ``compare_relaxed_qds``) are in
:mod:`.qe_functions` and importable from here as well.
"""

from __future__ import annotations

import copy
import pathlib

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext
from aiida.plugins import CalculationFactory
from aiida_quantumespresso.workflows.protocols.utils import (
    ProtocolMixin,
    recursive_merge,
)
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from ..protocols import PROTOCOL_DIR
from ..pseudo_family import (  # noqa: F401  (re-exported: the family this engine uses)
    PSEUDO_FAMILY_LABEL,
    PseudoPotentialFamily,
    UpfData,
    ensure_upf_family,
    gth_potential_names,
    upf_family,
)
from .common import failure_message
from .qe_functions import (  # noqa: F401  (re-exported: their public import path)
    DENSITY_CUBE_FILENAME,
    PP_FILEOUT,
    analyse_projwfc,
    compare_relaxed_qds,
    extract_density_cube,
    format_comparison,
)

PpCalculation = CalculationFactory('quantumespresso.pp')
ProjwfcCalculation = CalculationFactory('quantumespresso.projwfc')


class QeRelaxProtocol(ProtocolMixin):
    """Reads ``qe_relax.yaml`` with aiida-quantumespresso's protocol machinery."""

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / 'qe_relax.yaml'


def qe_protocol_inputs(structure: orm.StructureData, protocol: str | None = None,
                       overrides: dict | None = None) -> dict:
    """Merged protocol inputs with ``ecutwfc``/``ecutrho`` chosen for the structure's elements.

    ``overrides`` uses the layout of ``qe_relax.yaml`` (``qe.pw.parameters...``, ``pp...``, ``box_vacuum``).

    :raises ValueError: for elements without a measured cutoff in the protocol.
    """
    inputs = QeRelaxProtocol.get_protocol_inputs(protocol, overrides)
    elements = sorted(set(structure.get_kind_names()))
    table = inputs.pop('ecutwfc')
    missing = [el for el in elements if el not in table]
    if missing:
        raise ValueError(f'no measured QE cutoff for element(s) {missing} in protocol {protocol!r}; '
                         f'have {sorted(table)}')
    ecutwfc = max(float(table[el]) for el in elements)
    system = inputs['qe']['pw']['parameters']['SYSTEM']
    system.setdefault('ecutwfc', ecutwfc)
    system.setdefault('ecutrho', inputs['dual'] * system['ecutwfc'])
    return inputs


def isolation_for_charge(charge: int) -> str:
    """pw.x ``assume_isolated`` for a QD of net ``charge``: ``'mt'`` (Martyna-Tuckerman) if charged, else ``'none'``.

    MT is exact only in a box about twice the extent of the density; in the protocols' boxes (3.5-8 Å of vacuum) it
    puts eV/Å errors on the forces of outer atoms (measured: Cl of InCl3 with 2.5 Å vacuum, -0.107 Ry/bohr with MT
    vs -0.016 with plain periodic images and -0.016 with MT in a 16 Å box; docs/qe.md). A neutral QD's periodic images
    interact only through multipoles, so plain periodic boundaries give better forces in the same box; a charged QD
    needs MT (and a large enough box).
    """
    return 'mt' if charge else 'none'


def qe_electronic_state(charge: int, multiplicity: int) -> dict:
    """pw.x ``SYSTEM`` settings for net charge (e) and spin multiplicity 2S+1."""
    system = {'tot_charge': float(charge)}
    if multiplicity > 1:
        system.update({'nspin': 2, 'tot_magnetization': float(multiplicity - 1)})
    return {'SYSTEM': system}


def check_qe_electronic_state(structure: orm.StructureData, pseudos: dict, charge: int,
                              multiplicity: int) -> tuple[str | None, str]:
    """``(None, '')`` if every kind has a pseudopotential and charge/multiplicity fit, else ``(problem, message)``."""
    missing = [kind for kind in sorted(set(structure.get_kind_names())) if kind not in pseudos]
    if missing:
        return 'kinds', f'no pseudopotential for kind(s) {missing}'
    valence = {kind: pseudos[kind].z_valence for kind in pseudos}
    n_electrons = round(sum(valence[site.kind_name] for site in structure.sites)) - charge
    if multiplicity < 1:
        return 'multiplicity', f'multiplicity must be >= 1, got {multiplicity}'
    if n_electrons < multiplicity - 1 or (n_electrons - (multiplicity - 1)) % 2:
        return 'multiplicity', (f'{n_electrons} valence electrons (charge {charge}) cannot have multiplicity '
                                f'{multiplicity}: unpaired electrons and electron count must have the same parity')
    return None, ''


def define_qe_inputs(spec) -> None:
    """Namespaces ``qe`` (``PwBaseWorkChain``) and ``qe_pp`` (``PpCalculation``), both optional."""
    spec.expose_inputs(PwBaseWorkChain, namespace='qe', exclude=('pw.structure', 'pw.parent_folder'),
                       namespace_options={'required': False, 'populate_defaults': False,
                                          'help': 'Inputs of PwBaseWorkChain for `engine: qe`.'})
    spec.expose_inputs(PpCalculation, namespace='qe_pp', exclude=('parent_folder',),
                       namespace_options={'required': False, 'populate_defaults': False,
                                          'help': 'If given with `engine: qe`: pp.x valence density cube.'})
    spec.expose_inputs(ProjwfcCalculation, namespace='qe_projwfc', exclude=('parent_folder',),
                       namespace_options={'required': False, 'populate_defaults': False,
                                          'help': 'If given with `engine: qe`: projwfc.x on the relaxed QD (Löwdin '
                                                  'charges, HOMO/LUMO, PDOS figure).'})
    spec.output('density_cube', valid_type=orm.SinglefileData, required=False,
                help='Valence density of the relaxed QD (Gaussian cube, e/bohr³) from pp.x (`engine: qe`).')
    spec.output('lowdin_charges', valid_type=orm.ArrayData, required=False,
                help='projwfc.x Löwdin analysis of the relaxed QD: arrays `populations` and `charges` (e per atom, '
                     'charge = UPF valence − population); attribute `spilling`.')
    spec.output('orbital_summary', valid_type=orm.Dict, required=False,
                help='HOMO/LUMO (eV, from the projwfc.x eigenvalues), gap, spilling, Löwdin charge per element.')
    spec.output('pdos_plot', valid_type=orm.SinglefileData, required=False,
                help='PNG: PDOS per element of the relaxed QD (projwfc.x projections, Gaussian σ = 0.1 eV).')
    spec.exit_code(411, 'ERROR_QE_RELAX_FAILED', message='The pw.x relaxation failed: {message}')
    spec.exit_code(412, 'ERROR_QE_DENSITY_FAILED', message='The pp.x density calculation failed: {message}')
    spec.exit_code(413, 'ERROR_QE_PROJWFC_FAILED', message='The projwfc.x projection failed: {message}')


class QeRelaxStage:
    """Steps of ``QdRelaxWorkChain`` for ``engine: qe`` (mixed into the work chain)."""

    @classmethod
    def _qe_builder_from_protocol(cls, code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None, overrides: dict | None, charge: int, multiplicity: int,
                                  options: dict | None, pp_code: orm.AbstractCode | None,
                                  projwfc_code: orm.AbstractCode | None = None):
        """Builder for the QE branch (see ``QdRelaxWorkChain.get_builder_from_protocol``)."""
        inputs = qe_protocol_inputs(structure, protocol, overrides)
        explicit = (overrides or {}).get('qe', {}).get('pw', {}).get('parameters', {}).get('SYSTEM', {})
        if 'assume_isolated' not in explicit:
            inputs['qe']['pw']['parameters']['SYSTEM']['assume_isolated'] = isolation_for_charge(charge)
        family = upf_family(inputs['pseudo_family'])
        builder = cls.get_builder()
        builder.engine = orm.Str('qe')
        builder.structure = structure
        builder.charge = orm.Int(charge)
        builder.multiplicity = orm.Int(multiplicity)
        builder.box_vacuum = orm.Float(inputs['box_vacuum'])
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        stage = inputs['qe']
        metadata = copy.deepcopy(stage['pw']['metadata'])
        if options:
            metadata['options'] = recursive_merge(metadata['options'], options)
        builder.qe.max_iterations = orm.Int(stage['max_iterations'])
        builder.qe.pw.code = code
        builder.qe.pw.pseudos = family.get_pseudos(structure=structure)
        builder.qe.pw.parameters = orm.Dict(stage['pw']['parameters'])
        builder.qe.pw.settings = orm.Dict(stage['pw']['settings'])
        builder.qe.pw.metadata = metadata
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh([1, 1, 1])
        builder.qe.kpoints = kpoints
        if pp_code is not None:
            pp = inputs['pp']
            builder.qe_pp.code = pp_code
            builder.qe_pp.parameters = orm.Dict(pp['parameters'])
            builder.qe_pp.metadata = recursive_merge(pp['metadata'], {'options': options} if options else {})
        if projwfc_code is not None:
            projwfc = inputs['projwfc']
            builder.qe_projwfc.code = projwfc_code
            builder.qe_projwfc.parameters = orm.Dict(projwfc['parameters'])
            builder.qe_projwfc.metadata = recursive_merge(projwfc['metadata'],
                                                          {'options': options} if options else {})
        return builder

    def is_qe(self) -> bool:
        return self.inputs.engine.value == 'qe'

    def validate_qe_inputs(self):
        """Refuse a QD without a box, elements without a UPF and impossible spin states."""
        if abs(self.ctx.structure.get_cell_volume()) < 1e-6:
            return self.exit_codes.ERROR_NO_BOX
        problem, message = check_qe_electronic_state(self.ctx.structure, self.inputs.qe.pw.pseudos,
                                                     self.inputs.charge.value, self.inputs.multiplicity.value)
        if problem == 'kinds':
            return self.exit_codes.ERROR_MISSING_KIND.format(message=message)
        if problem == 'multiplicity':
            return self.exit_codes.ERROR_INCONSISTENT_CHARGE_MULTIPLICITY.format(message=message)
        return None

    def run_qe_relax(self):
        """Submit ``PwBaseWorkChain`` (``calculation='relax'``) on the boxed QD with charge and spin applied."""
        inputs = AttributeDict(self.exposed_inputs(PwBaseWorkChain, namespace='qe'))
        inputs.pw.structure = self.ctx.structure
        parameters = recursive_merge(inputs.pw.parameters.get_dict(),
                                     qe_electronic_state(self.inputs.charge.value, self.inputs.multiplicity.value))
        parameters.setdefault('CONTROL', {}).setdefault('calculation', 'relax')
        inputs.pw.parameters = orm.Dict(parameters)
        if 'kpoints' not in inputs and 'kpoints_distance' not in inputs:
            kpoints = orm.KpointsData()
            kpoints.set_kpoints_mesh([1, 1, 1])
            inputs.kpoints = kpoints
        inputs.metadata = {'call_link_label': 'relax'}
        node = self.submit(PwBaseWorkChain, **inputs)
        self.report(f'launched PwBaseWorkChain<{node.pk}> (pw.x PBE relax, {len(self.ctx.structure.sites)} atoms, '
                    f'charge {self.inputs.charge.value}, multiplicity {self.inputs.multiplicity.value})')
        return ToContext(workchain=node)

    def inspect_qe_relax(self):
        workchain = self.ctx.workchain
        if not workchain.is_finished_ok:
            return self.exit_codes.ERROR_QE_RELAX_FAILED.format(message=failure_message(workchain))
        if 'output_structure' not in workchain.outputs:
            return self.exit_codes.ERROR_NO_RELAXED_STRUCTURE
        return None

    def should_run_density(self) -> bool:
        return 'qe_pp' in self.inputs and 'code' in self.inputs.qe_pp

    def run_qe_density(self):
        """pp.x on the relaxed run's folder: ``plot_num=0`` (valence density), 3D Gaussian cube."""
        inputs = AttributeDict(self.exposed_inputs(PpCalculation, namespace='qe_pp'))
        inputs.parent_folder = self.ctx.workchain.outputs.remote_folder
        parameters = recursive_merge({'INPUTPP': {'plot_num': 0}, 'PLOT': {'iflag': 3}}, inputs.parameters.get_dict())
        inputs.parameters = orm.Dict(parameters)
        options = dict(inputs.metadata.get('options', {}))
        options['keep_data_files'] = True
        inputs.metadata = {**inputs.metadata, 'options': options, 'call_link_label': 'density'}
        node = self.submit(PpCalculation, **inputs)
        self.report(f'launched PpCalculation<{node.pk}> (pp.x valence density cube)')
        return ToContext(density=node)

    def inspect_qe_density(self):
        calc = self.ctx.density
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_QE_DENSITY_FAILED.format(message=failure_message(calc))
        if PP_FILEOUT not in calc.outputs.retrieved.base.repository.list_object_names():
            return self.exit_codes.ERROR_QE_DENSITY_FAILED.format(message=f'no {PP_FILEOUT} retrieved')
        self.ctx.density_cube = extract_density_cube(calc.outputs.retrieved)
        return None

    def should_run_projwfc(self) -> bool:
        return 'qe_projwfc' in self.inputs and 'code' in self.inputs.qe_projwfc

    def run_qe_projwfc(self):
        """projwfc.x on the relaxed run's folder: projections on the UPF pseudo-atomic orbitals."""
        inputs = AttributeDict(self.exposed_inputs(ProjwfcCalculation, namespace='qe_projwfc'))
        inputs.parent_folder = self.ctx.workchain.outputs.remote_folder
        inputs.metadata = {**inputs.metadata, 'call_link_label': 'projwfc'}
        node = self.submit(ProjwfcCalculation, **inputs)
        self.report(f'launched ProjwfcCalculation<{node.pk}> (projwfc.x Löwdin charges and PDOS)')
        return ToContext(projwfc=node)

    def inspect_qe_projwfc(self):
        calc = self.ctx.projwfc
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_QE_PROJWFC_FAILED.format(message=failure_message(calc))
        relax = self.ctx.workchain.outputs
        extra = {'projections': calc.outputs.projections} if 'projections' in calc.outputs else {}
        try:
            self.ctx.projwfc_results = analyse_projwfc(calc.outputs.retrieved, relax.output_structure,
                                                       relax.output_parameters, **extra,
                                                       **self.inputs.qe.pw.pseudos)
        except ValueError as exception:
            return self.exit_codes.ERROR_QE_PROJWFC_FAILED.format(message=str(exception))
        summary = self.ctx.projwfc_results['orbital_summary'].get_dict()
        charges = ', '.join(f'{el} {q:+.2f}' for el, q in summary['lowdin_charge_by_element'].items())
        gap = f", HOMO {summary['homo']:.3f} / LUMO {summary['lumo']:.3f} eV" if 'homo' in summary else ''
        self.report(f"projwfc.x: Löwdin charges (mean per element) {charges}; spilling {summary['spilling']}{gap}")
        return None

    def out_relaxation(self, outputs):
        """Output what both engines' relax child returns (CP2K and pw.x use the same output names); returns them."""
        self.out('relaxed_structure', outputs.output_structure)
        self.out('output_parameters', outputs.output_parameters)
        self.out('remote_folder', outputs.remote_folder)
        if 'output_trajectory' in outputs:
            self.out('output_trajectory', outputs.output_trajectory)
        return outputs

    def qe_results(self):
        outputs = self.out_relaxation(self.ctx.workchain.outputs)
        if 'density_cube' in self.ctx:
            self.out('density_cube', self.ctx.density_cube)
        for name, node in self.ctx.get('projwfc_results', {}).items():
            self.out(name, node)
        energy = outputs.output_parameters.get('energy')
        self.report(f'relaxed (pw.x): E(PBE) = {energy} eV')


def qe_scf_builder(code: orm.AbstractCode, structure: orm.StructureData, ecutwfc: float, dual: float = 4.0,
                   conv_thr: float = 1.0e-8, family_label: str = PSEUDO_FAMILY_LABEL, charge: int = 0,
                   multiplicity: int = 1):
    """``PwBaseWorkChain`` builder of a pw.x SCF with forces on an already boxed ``structure``.

    The settings of the relax branch (isolation by charge, Gamma point, smearing, local-TF) at cutoff ``ecutwfc`` (Ry):
    used for cutoff convergence of forces on a QD (residual forces at a higher cutoff on a geometry relaxed at a lower
    one are the force error of the lower cutoff).
    """
    family = upf_family(family_label)
    pw = QeRelaxProtocol.get_protocol_inputs()['qe']['pw']  # SYSTEM / ELECTRONS / settings of the relax protocols
    parameters = recursive_merge(
        {'CONTROL': {'calculation': 'scf', 'tprnfor': True}, 'SYSTEM': pw['parameters']['SYSTEM'],
         'ELECTRONS': pw['parameters']['ELECTRONS']},
        {'SYSTEM': {'ecutwfc': float(ecutwfc), 'ecutrho': float(dual * ecutwfc),
                    'assume_isolated': isolation_for_charge(charge)},
         'ELECTRONS': {'conv_thr': conv_thr}})
    parameters = recursive_merge(parameters, qe_electronic_state(charge, multiplicity))
    builder = PwBaseWorkChain.get_builder()
    builder.pw.code = code
    builder.pw.structure = structure
    builder.pw.pseudos = family.get_pseudos(structure=structure)
    builder.pw.parameters = orm.Dict(parameters)
    builder.pw.settings = orm.Dict(pw['settings'])
    builder.pw.metadata.options = recursive_merge(pw['metadata']['options'], {'max_wallclock_seconds': 7200})
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([1, 1, 1])
    builder.kpoints = kpoints
    builder.max_iterations = orm.Int(2)
    return builder
