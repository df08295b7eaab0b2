"""Pieces shared by the QD work chains: the QD stage of every engine, and the CP2K charge/multiplicity checks and
protocol builders."""

from __future__ import annotations

import copy

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from ..monitors import default_cp2k_monitors
from ..protocols import kind_sections, qs_method, valence_from_potential
from .cp2k_base import QdCp2kBaseWorkChain
from .functions import center_in_box, recursive_merge, update_cp2k_parameters


def failure_message(node: orm.ProcessNode) -> str:
    """``'<process label><pk> exit status <n>: <message>'`` for a called process that did not finish ok."""
    return f'{node.process_label}<{node.pk}> exit status {node.exit_status}: {node.exit_message}'


def kinds_by_element(parameters: dict) -> dict[str, dict]:
    """``&KIND`` sections of a CP2K parameter dict, keyed by element (section parameter)."""
    kinds = parameters.get('FORCE_EVAL', {}).get('SUBSYS', {}).get('KIND', [])
    kinds = [kinds] if isinstance(kinds, dict) else kinds
    return {str(kind.get('_')): kind for kind in kinds}


def spin_state_problem(n_electrons: int, charge: int, multiplicity: int) -> tuple[str | None, str]:
    """``('multiplicity', message)`` if ``n_electrons`` (after removing ``charge``) cannot have ``multiplicity``,
    else ``(None, '')``: the engines' shared check of the spin state."""
    if multiplicity < 1:
        return 'multiplicity', f'multiplicity must be >= 1, got {multiplicity}'
    if n_electrons < multiplicity - 1 or (n_electrons - (multiplicity - 1)) % 2:
        return 'multiplicity', (f'{n_electrons} valence electrons (charge {charge}) cannot have multiplicity '
                                f'{multiplicity}: unpaired electrons and electron count must have the same parity')
    return None, ''


def check_electronic_state(structure: orm.StructureData, parameters: dict, charge: int,
                           multiplicity: int) -> tuple[str | None, str]:
    """Check that every element has a KIND with a potential and that charge and multiplicity fit.

    :returns: ``(None, '')`` if consistent, otherwise ``('kinds' | 'multiplicity', message)``.
    """
    kinds = kinds_by_element(parameters)
    elements = sorted(set(structure.get_kind_names()))
    missing = [el for el in elements if el not in kinds or 'POTENTIAL' not in kinds[el] or 'BASIS_SET' not in kinds[el]]
    if missing:
        return 'kinds', f'no &KIND with BASIS_SET and POTENTIAL for element(s) {missing}'
    symbols = structure.get_ase().get_chemical_symbols()
    n_electrons = sum(valence_from_potential(kinds[s]['POTENTIAL']) for s in symbols) - charge
    return spin_state_problem(n_electrons, charge, multiplicity)


def electronic_state_changes(charge: int, multiplicity: int) -> dict:
    """CP2K parameter changes setting charge, multiplicity and (if open shell) UKS."""
    dft = {'CHARGE': int(charge), 'MULTIPLICITY': int(multiplicity)}
    if multiplicity > 1:
        dft['UKS'] = True
    return {'FORCE_EVAL': {'DFT': dft}}


def cp2k_protocol_inputs(cls, namespace: str, structure, protocol, overrides, options) -> tuple[dict, dict]:
    """Merge the protocol of ``cls`` and fill the CP2K namespace (kinds for the structure's elements, options).

    :returns: ``(inputs, protocol_extras)`` where extras are the protocol keys consumed by the builder
        (``basis_set``, ``admm``, ``box_vacuum``).
    """
    inputs = cls.get_protocol_inputs(protocol, overrides)
    extras = {key: inputs.pop(key) for key in ('basis_set', 'admm', 'box_vacuum') if key in inputs}
    cp2k = inputs[namespace]['cp2k']
    parameters = copy.deepcopy(cp2k['parameters'])
    elements = sorted(set(structure.get_kind_names()))
    kinds = kind_sections(elements, extras.get('basis_set', 'DZVP-MOLOPT-SR-GTH'), extras.get('admm', False),
                          gapw=qs_method(parameters) == 'GAPW')
    user_kinds = kinds_by_element(parameters)
    parameters['FORCE_EVAL'].setdefault('SUBSYS', {})['KIND'] = [user_kinds.get(k['_'], k) for k in kinds]
    cp2k['parameters'] = parameters
    if options:
        cp2k['metadata']['options'] = recursive_merge(cp2k['metadata']['options'], options)
    return inputs, extras


def set_scf_monitor(cp2k_namespace, settings) -> None:
    """Attach the ``qdtraps.cp2k_scf`` CalcJob monitor to a ``cp2k`` builder namespace with the protocol's
    ``scf_monitor`` settings (a dict of :data:`aiida_qdtraps.monitors.CP2K_SCF_DEFAULTS` keys and ``poll_interval``);
    ``None`` or ``False`` attaches none."""
    if settings is None or settings is False:
        return
    if not isinstance(settings, dict):
        raise ValueError(f'scf_monitor must be a dict of monitor settings or false, got {settings!r}')
    cp2k_namespace.monitors = default_cp2k_monitors(**settings)


def define_qd_inputs(spec) -> None:
    """The inputs every QD work chain takes: the structure, its net charge and its spin multiplicity."""
    spec.input('structure', valid_type=orm.StructureData, help='The QD.')
    spec.input('charge', valid_type=orm.Int, default=lambda: orm.Int(0), help='Net charge of the QD (e).')
    spec.input('multiplicity', valid_type=orm.Int, default=lambda: orm.Int(1), help='Spin multiplicity 2S+1.')


def define_relax_outputs(spec) -> None:
    """The outputs of a relaxation, the same for every engine (the engine's relax child returns them)."""
    spec.output('relaxed_structure', valid_type=orm.StructureData, help='The relaxed QD.')
    spec.output('output_parameters', valid_type=orm.Dict, help='Parsed output of the last CP2K/pw.x calculation.')
    spec.output('remote_folder', valid_type=orm.RemoteData, help='Folder of the last calculation (wavefunction).')
    spec.output('output_trajectory', valid_type=orm.TrajectoryData, required=False)


class QdStageWorkChain(ProtocolMixin, WorkChain):
    """Shared part of every engine's QD stage: QD inputs, boxing, clean-up, and the exit codes of bad input."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_qd_inputs(spec)
        spec.input('box_vacuum', valid_type=orm.Float, required=False,
                   help='If given, centre the QD in a cubic box with this much vacuum (Å) on every side first.')
        spec.input('clean_workdir', valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help='Clean the remote folders of all called calculations when done.')
        spec.exit_code(201, 'ERROR_MISSING_KIND', message='Missing basis or pseudopotential: {message}.')
        spec.exit_code(202, 'ERROR_INCONSISTENT_CHARGE_MULTIPLICITY', message='{message}.')
        spec.exit_code(203, 'ERROR_NO_BOX', message='The structure has no cell; give `box_vacuum` or a boxed QD.')

    def setup(self):
        self.ctx.structure = self.inputs.structure

    def should_box(self):
        return 'box_vacuum' in self.inputs

    def put_in_box(self):
        self.ctx.structure = center_in_box(self.inputs.structure, self.inputs.box_vacuum)

    def out_relaxation(self, outputs):
        """Output what the engine's relax child returned (CP2K and pw.x use the same output names); returns them."""
        self.out('relaxed_structure', outputs.output_structure)
        self.out('output_parameters', outputs.output_parameters)
        self.out('remote_folder', outputs.remote_folder)
        if 'output_trajectory' in outputs:
            self.out('output_trajectory', outputs.output_trajectory)
        return outputs

    def on_terminated(self):
        super().on_terminated()
        if not self.inputs.clean_workdir.value:
            return
        for called in self.node.called_descendants:
            if isinstance(called, orm.CalcJobNode) and 'remote_folder' in called.outputs:
                try:
                    called.outputs.remote_folder._clean()
                except OSError:
                    pass


class QdCp2kStageWorkChain(QdStageWorkChain):
    """Shared part of the CP2K stages: input checks against the CP2K kinds, protocol builder, CP2K submission.

    Subclasses set ``_namespace`` (where ``QdCp2kBaseWorkChain``'s inputs are exposed) and add their steps.
    """

    _namespace: str = 'base'

    @classmethod
    def _builder_from_protocol(cls, code, structure, protocol, overrides, charge, multiplicity, options):
        """Builder with the shared inputs filled; returns ``(builder, inputs, extras)`` for the subclass."""
        inputs, extras = cp2k_protocol_inputs(cls, cls._namespace, structure, protocol, overrides, options)
        builder = cls.get_builder()
        builder.structure = structure
        builder.charge = orm.Int(charge)
        builder.multiplicity = orm.Int(multiplicity)
        if 'box_vacuum' in extras:
            builder.box_vacuum = orm.Float(extras['box_vacuum'])
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        stage, namespace = inputs[cls._namespace], builder[cls._namespace]
        namespace.max_iterations = orm.Int(stage['max_iterations'])
        namespace.cp2k.code = code
        namespace.cp2k.parameters = orm.Dict(stage['cp2k']['parameters'])
        namespace.cp2k.metadata = stage['cp2k']['metadata']
        if 'settings' in stage['cp2k']:
            namespace.cp2k.settings = orm.Dict(stage['cp2k']['settings'])
        set_scf_monitor(namespace.cp2k, stage.get('scf_monitor'))
        return builder, inputs, extras

    def validate_inputs(self):
        """Refuse a QD without a box, elements without basis/potential and impossible spin states."""
        if abs(self.ctx.structure.get_cell_volume()) < 1e-6:
            return self.exit_codes.ERROR_NO_BOX
        parameters = self.inputs[self._namespace].cp2k.parameters.get_dict()
        problem, message = check_electronic_state(self.ctx.structure, parameters, self.inputs.charge.value,
                                                  self.inputs.multiplicity.value)
        if problem == 'kinds':
            return self.exit_codes.ERROR_MISSING_KIND.format(message=message)
        if problem == 'multiplicity':
            return self.exit_codes.ERROR_INCONSISTENT_CHARGE_MULTIPLICITY.format(message=message)
        return None

    def submit_cp2k(self, label: str, description: str, changes: dict | None = None, **extra_inputs):
        """Submit ``QdCp2kBaseWorkChain`` on ``ctx.structure`` with charge/multiplicity (+ ``changes``) applied."""
        inputs = AttributeDict(self.exposed_inputs(QdCp2kBaseWorkChain, namespace=self._namespace))
        inputs.cp2k.structure = self.ctx.structure
        inputs.cp2k.update(extra_inputs)
        state = electronic_state_changes(self.inputs.charge.value, self.inputs.multiplicity.value)
        inputs.cp2k.parameters = update_cp2k_parameters(inputs.cp2k.parameters,
                                                        orm.Dict(recursive_merge(state, changes or {})))
        inputs.metadata = {'call_link_label': label}
        node = self.submit(QdCp2kBaseWorkChain, **inputs)
        self.report(f'launched QdCp2kBaseWorkChain<{node.pk}> ({description}, {len(self.ctx.structure.sites)} atoms, '
                    f'charge {self.inputs.charge.value}, multiplicity {self.inputs.multiplicity.value})')
        return ToContext(workchain=node)

    def failed_child_message(self) -> str | None:
        """``None`` if the CP2K work chain finished ok, else a message naming it and its exit status."""
        workchain = self.ctx.workchain
        if workchain.is_finished_ok:
            return None
        return failure_message(workchain)
