"""``QdQeRelaxWorkChain``: the Quantum ESPRESSO engine of ``QdRelaxWorkChain`` -- pw.x relax, pp.x density, projwfc.x.

- ``PwBaseWorkChain`` (``calculation='relax'``, ``assume_isolated`` 'mt' if charged else 'none', Gamma point,
  ``tot_charge``, ``nspin``/``tot_magnetization``) on the boxed QD with the GTH-PBE UPF family
  (:func:`~aiida_qdtraps.pseudo_family.ensure_upf_family`);
- if ``qe_pp`` inputs are given, pp.x (``plot_num=0``) writing the valence density as a Gaussian cube in e/bohr³ (the
  unit of CP2K's ``ELECTRON_DENSITY`` cube), exposed as the ``density_cube`` ``SinglefileData``;
- if ``qe_projwfc`` inputs are given, projwfc.x on the relaxed QD: Löwdin charges on the UPF pseudo-atomic orbitals,
  the HOMO/LUMO and a PDOS figure per element (:func:`~aiida_qdtraps.workchains.qe_functions.analyse_projwfc`).

Protocols: ``qe_relax.yaml`` (:func:`~aiida_qdtraps.workchains.qe.qe_protocol_inputs`).
"""

from __future__ import annotations

import copy

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, if_
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from ..pseudo_family import upf_family
from .qe import (
    PpCalculation,
    ProjwfcCalculation,
    check_qe_electronic_state,
    isolation_for_charge,
    qe_electronic_state,
    qe_protocol_inputs,
)
from .qe_functions import PP_FILEOUT, analyse_projwfc, extract_density_cube
from .stage import QdStageWorkChain, define_relax_outputs, failure_message, qd_builder

#: The outputs of the optional pp.x and projwfc.x steps after the relaxation: type and content.
ANALYSIS_OUTPUTS = {
    'density_cube': (orm.SinglefileData, 'Valence density of the relaxed QD (Gaussian cube, e/bohr³) from pp.x.'),
    'lowdin_charges': (orm.ArrayData, 'projwfc.x Löwdin analysis of the relaxed QD: arrays `populations` and '
                                      '`charges` (e per atom, charge = UPF valence − population); attribute '
                                      '`spilling`.'),
    'orbital_summary': (orm.Dict, 'HOMO/LUMO (eV, from the projwfc.x eigenvalues), gap, spilling, Löwdin charge per '
                                  'element.'),
    'pdos_plot': (orm.SinglefileData, 'PNG: PDOS per element of the relaxed QD (projwfc.x projections, Gaussian '
                                      'σ = 0.1 eV).'),
}


class QdQeRelaxWorkChain(QdStageWorkChain):
    """Relax a QD with pw.x PBE (``PwBaseWorkChain``, ``calculation='relax'``) in a box; optionally the pp.x valence
    density cube and the projwfc.x Löwdin charges and PDOS of the relaxed QD."""

    protocol_file = 'qe_relax.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(PwBaseWorkChain, namespace='qe', exclude=('pw.structure', 'pw.parent_folder'),
                           namespace_options={'help': 'Inputs of PwBaseWorkChain (pw.x relax).'})
        spec.expose_inputs(PpCalculation, namespace='qe_pp', exclude=('parent_folder',),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'If given: pp.x valence density cube.'})
        spec.expose_inputs(ProjwfcCalculation, namespace='qe_projwfc', exclude=('parent_folder',),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'If given: projwfc.x on the relaxed QD (Löwdin charges, '
                                                      'HOMO/LUMO, PDOS figure).'})
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            cls.validate_inputs,
            cls.run_relax,
            cls.inspect_relax,
            if_(cls.should_run_density)(cls.run_density, cls.inspect_density),
            if_(cls.should_run_projwfc)(cls.run_projwfc, cls.inspect_projwfc),
            cls.results,
        )
        define_relax_outputs(spec)
        for name, (valid_type, help_text) in ANALYSIS_OUTPUTS.items():
            spec.output(name, valid_type=valid_type, required=False, help=help_text)
        spec.exit_code(402, 'ERROR_NO_RELAXED_STRUCTURE', message='The pw.x run finished without a structure.')
        spec.exit_code(411, 'ERROR_QE_RELAX_FAILED', message='The pw.x relaxation failed: {message}')
        spec.exit_code(412, 'ERROR_QE_DENSITY_FAILED', message='The pp.x density calculation failed: {message}')
        spec.exit_code(413, 'ERROR_QE_PROJWFC_FAILED', message='The projwfc.x projection failed: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None = None, overrides: dict | None = None, charge: int = 0,
                                  multiplicity: int = 1, options: dict | None = None,
                                  pp_code: orm.AbstractCode | None = None,
                                  projwfc_code: orm.AbstractCode | None = None):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol of ``qe_relax.yaml``.

        :param code: a ``quantumespresso.pw`` code.
        :param overrides: nested dict with the layout of ``qe_relax.yaml`` (``qe.pw.parameters...``, ``pp...``,
            ``box_vacuum``, ``pseudo_family``), merged last.
        :param options: CalcJob options merged into the pw.x, pp.x and projwfc.x options.
        :param pp_code: a ``quantumespresso.pp`` code; if given, the valence density cube is made too.
        :param projwfc_code: a ``quantumespresso.projwfc`` code; if given, projwfc.x runs on the relaxed QD (Löwdin
            charges, HOMO/LUMO, PDOS figure).
        :raises ValueError: for elements without a measured cutoff or a family that is not installed.
        """
        inputs = qe_protocol_inputs(structure, protocol, overrides)
        explicit = (overrides or {}).get('qe', {}).get('pw', {}).get('parameters', {}).get('SYSTEM', {})
        if 'assume_isolated' not in explicit:
            inputs['qe']['pw']['parameters']['SYSTEM']['assume_isolated'] = isolation_for_charge(charge)
        family = upf_family(inputs['pseudo_family'])
        builder = qd_builder(cls, structure, charge, multiplicity, inputs['box_vacuum'])
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

    def validate_inputs(self):
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

    def run_relax(self):
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

    def inspect_relax(self):
        workchain = self.ctx.workchain
        if not workchain.is_finished_ok:
            return self.exit_codes.ERROR_QE_RELAX_FAILED.format(message=failure_message(workchain))
        if 'output_structure' not in workchain.outputs:
            return self.exit_codes.ERROR_NO_RELAXED_STRUCTURE
        return None

    def should_run_density(self) -> bool:
        return 'qe_pp' in self.inputs and 'code' in self.inputs.qe_pp

    def run_density(self):
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

    def inspect_density(self):
        calc = self.ctx.density
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_QE_DENSITY_FAILED.format(message=failure_message(calc))
        if PP_FILEOUT not in calc.outputs.retrieved.base.repository.list_object_names():
            return self.exit_codes.ERROR_QE_DENSITY_FAILED.format(message=f'no {PP_FILEOUT} retrieved')
        self.ctx.density_cube = extract_density_cube(calc.outputs.retrieved)
        return None

    def should_run_projwfc(self) -> bool:
        return 'qe_projwfc' in self.inputs and 'code' in self.inputs.qe_projwfc

    def run_projwfc(self):
        """projwfc.x on the relaxed run's folder: projections on the UPF pseudo-atomic orbitals."""
        inputs = AttributeDict(self.exposed_inputs(ProjwfcCalculation, namespace='qe_projwfc'))
        inputs.parent_folder = self.ctx.workchain.outputs.remote_folder
        inputs.metadata = {**inputs.metadata, 'call_link_label': 'projwfc'}
        node = self.submit(ProjwfcCalculation, **inputs)
        self.report(f'launched ProjwfcCalculation<{node.pk}> (projwfc.x Löwdin charges and PDOS)')
        return ToContext(projwfc=node)

    def inspect_projwfc(self):
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

    def results(self):
        outputs = self.out_relaxation(self.ctx.workchain.outputs)
        if 'density_cube' in self.ctx:
            self.out('density_cube', self.ctx.density_cube)
        for name, node in self.ctx.get('projwfc_results', {}).items():
            self.out(name, node)
        self.report(f"relaxed (pw.x): E(PBE) = {outputs.output_parameters.get('energy')} eV")
