"""``QdTrapsPipelineWorkChain``: the main pipeline, relax → hybrid SCF → trap labels (+ Bader charge flow)."""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_

from ..analysis.mo_counts import MAX_VIRTUAL_ATTEMPTS, more_virtuals
from .charge_flow import BaderChargeFlowWorkChain
from .cp2k_parameters import update_cp2k_parameters
from .hybrid_scf import HybridScfWorkChain, engine_of, pyscf_scf_parameters
from .relax import QdRelaxWorkChain
from .stage import define_qd_inputs, failure_message, qd_builder
from .traps import TrapLabelingWorkChain


def validate_pipeline_inputs(inputs, _):
    """A hybrid SCF with PySCF writes no density cube, so it cannot feed the Bader charge flow; its parameters are
    checked against the QD, its charge and multiplicity before anything is stored."""
    hybrid = inputs.get('hybrid_scf') or {}
    if engine_of(hybrid) != 'pyscf':
        return None
    if (inputs.get('charge_flow') or {}).get('bader', {}).get('code') is not None:
        return ("hybrid_scf.engine 'pyscf' writes no density cube: the Bader charge flow (charge_flow.bader.code) "
                "needs hybrid_scf.engine 'cp2k'")
    parameters = (hybrid.get('pyscf') or {}).get('parameters')
    structure = inputs.get('structure')
    window = hybrid['mo_window'].get_dict() if 'mo_window' in hybrid else {'occupied': 1, 'virtual': 1}
    try:
        pyscf_scf_parameters(parameters.get_dict() if parameters is not None else {},
                             structure.get_ase().get_chemical_symbols() if structure is not None else None,
                             inputs['charge'].value if 'charge' in inputs else 0,
                             inputs['multiplicity'].value if 'multiplicity' in inputs else 1, window)
    except (ValueError, KeyError, TypeError) as exception:
        return f'hybrid_scf.pyscf: {exception}'
    return None


class QdTrapsPipelineWorkChain(WorkChain):
    """Relax a QD with PBE, compute its PBE0 electronic structure on the relaxed geometry, label its traps and,
    when a Bader code is given (``charge_flow.bader.code``), compute Bader charges and the charge flow of the PBE0
    density.

    When the MO window holds no band-like conduction state, the PBE0 is run again from its own converged wavefunction
    with twice the virtual MOs (``ADDED_MOS`` grown by as much) and the traps labelled again, at most
    ``MAX_VIRTUAL_ATTEMPTS`` times (docs/traps.md).

    With ``hybrid_scf.engine`` ``pyscf`` the hybrid stage is a molecular PySCF single point (PBE0/def2-SVP) on the
    relaxed structure; it starts from its own guess, a larger window is a new PySCF run with that window, and the
    Bader charge flow is refused before anything runs (PySCF writes no density cube).
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_qd_inputs(spec)
        spec.expose_inputs(QdRelaxWorkChain, namespace='relax', exclude=('structure', 'charge', 'multiplicity'))
        spec.expose_inputs(HybridScfWorkChain, namespace='hybrid_scf',
                           exclude=('structure', 'charge', 'multiplicity', 'parent_calc_folder', 'box_vacuum'))
        spec.expose_inputs(TrapLabelingWorkChain, namespace='labeling', exclude=('structure', 'mo_window', 'protocol'))
        spec.expose_inputs(BaderChargeFlowWorkChain, namespace='charge_flow',
                           exclude=('structure', 'density_cube', 'parameters', 'charge', 'mo_window'),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'Bader charge flow of the PBE0 density; skipped without it.'})
        spec.input('protocol', valid_type=orm.Str, required=False,
                   help='Name of the protocol the inputs were built from; recorded on the trap records for queries.')
        spec.inputs.validator = validate_pipeline_inputs
        spec.outline(cls.run_relax, cls.inspect_relax, cls.run_hybrid_scf, cls.inspect_hybrid_scf,
                     while_(cls.should_label)(
                         cls.run_labeling, cls.inspect_labeling,
                         if_(cls.should_add_virtuals)(cls.run_more_virtuals, cls.inspect_hybrid_scf),
                     ),
                     if_(cls.should_run_charge_flow)(cls.run_charge_flow, cls.inspect_charge_flow), cls.results)
        spec.expose_outputs(QdRelaxWorkChain, namespace='relax')
        spec.expose_outputs(HybridScfWorkChain, namespace='hybrid_scf')
        spec.expose_outputs(TrapLabelingWorkChain, namespace='labels')
        spec.expose_outputs(BaderChargeFlowWorkChain, namespace='charge_flow',
                            namespace_options={'required': False})
        spec.exit_code(401, 'ERROR_RELAX_FAILED', message='The relaxation failed: {message}')
        spec.exit_code(402, 'ERROR_HYBRID_SCF_FAILED', message='The hybrid SCF failed: {message}')
        spec.exit_code(403, 'ERROR_LABELING_FAILED', message='The trap labeling failed: {message}')
        spec.exit_code(404, 'ERROR_CHARGE_FLOW_FAILED', message='The Bader charge flow failed: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code: orm.Code, structure: orm.StructureData, protocol: str | None = None,
                                  overrides: dict | None = None, charge: int = 0, multiplicity: int = 1,
                                  options: dict | None = None, bader_code: orm.AbstractCode | None = None,
                                  hybrid_engine: str = 'cp2k', pyscf_code: orm.AbstractCode | None = None,
                                  functional: str = 'pbe0', prerelax: str | None = None):
        """Builder with the same protocol for every stage; ``overrides`` has keys ``relax`` and ``hybrid_scf``.

        :param prerelax: a protocol (typically ``xtb``) whose GEO_OPT runs before the relax
            (``QdRelaxWorkChain.get_builder_from_protocol``); CP2K relax only.

        :param functional: of the CP2K hybrid stage (``HybridScfWorkChain.get_builder_from_protocol``): ``pbe0``, the
            default and the level of trap labels for results, or ``pbe`` for a quick look at the GGA level.

        :param bader_code: a ``baderkit`` (or Henkelman ``bader``) code; with it the pipeline ends with
            ``BaderChargeFlowWorkChain`` on the PBE0 density (CP2K hybrid engine only).
        :param hybrid_engine: ``cp2k`` (``code``) or ``pyscf`` (``pyscf_code``, PBE0/def2-SVP) for the hybrid stage;
            the relax always runs with ``code``. With ``pyscf`` the recorded protocol is ``pyscf-<protocol>``.
        :raises ValueError: for ``bader_code`` with ``hybrid_engine='pyscf'`` (no density cube), and as
            :meth:`HybridScfWorkChain.get_builder_from_protocol`.
        """
        if functional not in ('pbe0', 'pbe'):
            raise ValueError(f"functional {functional!r} does not label traps: the pipeline's hybrid stage runs 'pbe0' "
                             "(the default) or 'pbe'")
        if hybrid_engine == 'pyscf' and bader_code is not None:
            raise ValueError("hybrid_engine 'pyscf' writes no density cube: the Bader charge flow (bader_code) needs "
                             "hybrid_engine 'cp2k'")
        overrides = overrides or {}
        relax = QdRelaxWorkChain.get_builder_from_protocol(code, structure, protocol, overrides.get('relax'),
                                                           charge, multiplicity, options, prerelax=prerelax)
        hybrid = HybridScfWorkChain.get_builder_from_protocol(code, structure, protocol, overrides.get('hybrid_scf'),
                                                              charge, multiplicity, options, engine=hybrid_engine,
                                                              pyscf_code=pyscf_code, functional=functional)
        builder = qd_builder(cls, structure, charge, multiplicity)
        for key in ('structure', 'charge', 'multiplicity'):
            relax.pop(key, None)
            hybrid.pop(key, None)
        hybrid.pop('box_vacuum', None)  # the relaxed structure is already boxed
        protocol = protocol or HybridScfWorkChain.get_default_protocol()
        builder.protocol = orm.Str(protocol if hybrid_engine == 'cp2k' else f'pyscf-{protocol}')
        builder.relax = relax._inputs(prune=True)
        builder.hybrid_scf = hybrid._inputs(prune=True)
        if bader_code is not None:
            builder.charge_flow.bader.code = bader_code
        return builder

    @property
    def hybrid_engine(self) -> str:
        return engine_of(self.inputs.hybrid_scf)

    def _common(self) -> dict:
        return {'charge': self.inputs.charge, 'multiplicity': self.inputs.multiplicity}

    def run_relax(self):
        inputs = AttributeDict(self.exposed_inputs(QdRelaxWorkChain, namespace='relax'))
        inputs.update(self._common(), structure=self.inputs.structure, metadata={'call_link_label': 'relax'})
        node = self.submit(QdRelaxWorkChain, **inputs)
        self.report(f'launched QdRelaxWorkChain<{node.pk}>')
        return ToContext(relax=node)

    def inspect_relax(self):
        node = self.ctx.relax
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_RELAX_FAILED.format(message=failure_message(node))
        self.out_many(self.exposed_outputs(node, QdRelaxWorkChain, namespace='relax'))
        return None

    def run_hybrid_scf(self):
        self.ctx.labeled = False
        self.ctx.add_virtuals = False
        self.ctx.virtual_attempts = 0
        self.ctx.mo_window = self.inputs.hybrid_scf.mo_window.get_dict()
        inputs = AttributeDict(self.exposed_inputs(HybridScfWorkChain, namespace='hybrid_scf'))
        inputs.update(self._common(), structure=self.ctx.relax.outputs.relaxed_structure,
                      metadata={'call_link_label': 'hybrid_scf'})
        if self.hybrid_engine == 'cp2k':
            self.ctx.scf_parameters = self.inputs.hybrid_scf.scf.cp2k.parameters
            inputs.parent_calc_folder = self.ctx.relax.outputs.remote_folder
        node = self.submit(HybridScfWorkChain, **inputs)
        self.report(f'launched HybridScfWorkChain<{node.pk}> on the relaxed structure')
        return ToContext(hybrid_scf=node)

    def inspect_hybrid_scf(self):
        node = self.ctx.hybrid_scf
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_HYBRID_SCF_FAILED.format(message=failure_message(node))
        return None

    def run_labeling(self):
        inputs = AttributeDict(self.exposed_inputs(TrapLabelingWorkChain, namespace='labeling'))
        inputs.update(structure=self.ctx.hybrid_scf.outputs.structure, mo_window=self.ctx.hybrid_scf.outputs.mo_window,
                      metadata={'call_link_label': 'labeling'})
        if 'protocol' in self.inputs:
            inputs['protocol'] = self.inputs.protocol
        node = self.submit(TrapLabelingWorkChain, **inputs)
        self.report(f'launched TrapLabelingWorkChain<{node.pk}> on the PBE0 MO window')
        return ToContext(labeling=node)

    def should_label(self):
        return not self.ctx.labeled

    def inspect_labeling(self):
        node = self.ctx.labeling
        if node.is_finished_ok:
            self.ctx.labeled = True
            return None
        no_conduction_edge = node.exit_status == TrapLabelingWorkChain.exit_codes.ERROR_NO_CONDUCTION_EDGE.status
        if not no_conduction_edge:
            return self.exit_codes.ERROR_LABELING_FAILED.format(message=failure_message(node))
        if self.ctx.virtual_attempts >= MAX_VIRTUAL_ATTEMPTS:
            return self.exit_codes.ERROR_LABELING_FAILED.format(
                message=f'{failure_message(node)} (after {self.ctx.virtual_attempts} PBE0 runs with more virtual MOs)')
        params = self.ctx.hybrid_scf.outputs.output_parameters
        available = None
        if params.get('n_ao') is not None and params.get('homo_index') is not None:
            available = int(params['n_ao']) - int(params['homo_index']) - 1
        added = int(self.ctx.mo_window['virtual'])  # PySCF: every MO of the basis is computed
        if self.hybrid_engine == 'cp2k':
            scf = self.ctx.scf_parameters.get_dict().get('FORCE_EVAL', {}).get('DFT', {}).get('SCF', {})
            added = int(scf.get('ADDED_MOS', self.ctx.mo_window['virtual']))
        request = more_virtuals(int(self.ctx.mo_window['virtual']), added, available)
        if request is None:
            return self.exit_codes.ERROR_LABELING_FAILED.format(
                message=f'{failure_message(node)} (the window already holds all {available} virtual MOs of the basis)')
        self.ctx.add_virtuals = request
        if self.hybrid_engine == 'cp2k':
            self.report(f"no band-like conduction state among {self.ctx.mo_window['virtual']} virtual MOs: running "
                        f"the PBE0 again from its wavefunction with {request['virtual']} (ADDED_MOS "
                        f"{request['added_mos']})")
        else:
            self.report(f"no band-like conduction state among {self.ctx.mo_window['virtual']} virtual MOs: running "
                        f"the PySCF single point again with {request['virtual']}")
        return None

    def should_add_virtuals(self):
        return bool(self.ctx.add_virtuals)

    def run_more_virtuals(self):
        """The PBE0 again on the same structure, from its own converged wavefunction (``SCF_GUESS RESTART``), with
        the larger window and ``ADDED_MOS`` of ``inspect_labeling`` (PySCF: a new run with the larger window)."""
        request, self.ctx.add_virtuals = self.ctx.add_virtuals, False
        self.ctx.virtual_attempts += 1
        previous = self.ctx.hybrid_scf
        if self.hybrid_engine == 'pyscf':
            self.ctx.mo_window = {**self.ctx.mo_window, 'virtual': request['virtual']}
            inputs = AttributeDict(self.exposed_inputs(HybridScfWorkChain, namespace='hybrid_scf'))
            inputs.update(self._common(), structure=previous.outputs.structure, mo_window=orm.Dict(self.ctx.mo_window),
                          metadata={'call_link_label': f'hybrid_scf_more_virtuals_{self.ctx.virtual_attempts}'})
            node = self.submit(HybridScfWorkChain, **inputs)
            self.report(f'launched HybridScfWorkChain<{node.pk}> (PySCF) with {request["virtual"]} virtual MOs')
            return ToContext(hybrid_scf=node)
        self.ctx.scf_parameters = update_cp2k_parameters(
            self.ctx.scf_parameters, orm.Dict({'FORCE_EVAL': {'DFT': {'SCF': {'ADDED_MOS': request['added_mos']}}}}))
        self.ctx.mo_window = {**self.ctx.mo_window, 'virtual': request['virtual']}
        inputs = AttributeDict(self.exposed_inputs(HybridScfWorkChain, namespace='hybrid_scf'))
        inputs.scf = AttributeDict(inputs.scf)
        inputs.scf.cp2k = AttributeDict(inputs.scf.cp2k)
        inputs.scf.cp2k.parameters = self.ctx.scf_parameters
        inputs.update(self._common(), structure=previous.outputs.structure, mo_window=orm.Dict(self.ctx.mo_window),
                      parent_calc_folder=previous.outputs.remote_folder,
                      metadata={'call_link_label': f'hybrid_scf_more_virtuals_{self.ctx.virtual_attempts}'})
        node = self.submit(HybridScfWorkChain, **inputs)
        self.report(f'launched HybridScfWorkChain<{node.pk}> from the wavefunction of HybridScfWorkChain'
                    f'<{previous.pk}>')
        return ToContext(hybrid_scf=node)

    def should_run_charge_flow(self):
        return 'charge_flow' in self.inputs and 'code' in self.inputs.charge_flow.get('bader', {})

    def run_charge_flow(self):
        hybrid = self.ctx.hybrid_scf
        if 'density_cube' not in hybrid.outputs:
            return self.exit_codes.ERROR_CHARGE_FLOW_FAILED.format(message='the hybrid SCF wrote no density cube')
        inputs = AttributeDict(self.exposed_inputs(BaderChargeFlowWorkChain, namespace='charge_flow'))
        inputs.update(structure=hybrid.outputs.structure, density_cube=hybrid.outputs.density_cube,
                      parameters=self.inputs.hybrid_scf.scf.cp2k.parameters, charge=self.inputs.charge,
                      mo_window=hybrid.outputs.mo_window, metadata={'call_link_label': 'charge_flow'})
        node = self.submit(BaderChargeFlowWorkChain, **inputs)
        self.report(f'launched BaderChargeFlowWorkChain<{node.pk}> on the PBE0 density')
        return ToContext(charge_flow=node)

    def inspect_charge_flow(self):
        node = self.ctx.charge_flow
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_CHARGE_FLOW_FAILED.format(message=failure_message(node))
        self.out_many(self.exposed_outputs(node, BaderChargeFlowWorkChain, namespace='charge_flow'))
        return None

    def results(self):
        self.out_many(self.exposed_outputs(self.ctx.hybrid_scf, HybridScfWorkChain, namespace='hybrid_scf'))
        self.out_many(self.exposed_outputs(self.ctx.labeling, TrapLabelingWorkChain, namespace='labels'))
        params = self.ctx.hybrid_scf.outputs.output_parameters
        counts = self.ctx.labeling.outputs.summary['trap_counts']
        self.report(f"pipeline done: PBE0 gap {params['gap_ev']:.3f} eV, traps {counts or 'none'}")
