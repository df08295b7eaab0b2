"""The QD stage work chains build on: ``QdStageWorkChain`` (every engine: QD inputs, boxing, clean-up, the exit codes of
bad input) and ``QdCp2kStageWorkChain`` (the CP2K stages: input checks, protocol builder, CP2K submission), with the
input and output ports they share."""

from __future__ import annotations

import pathlib
from typing import ClassVar

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin, recursive_merge

from ..protocols import PROTOCOL_DIR
from .build import center_in_box
from .cp2k_base import KIND_KEYS, QdCp2kBaseWorkChain
from .cp2k_parameters import update_cp2k_parameters
from .electronic_state import check_electronic_state, electronic_state_changes


def failure_message(node: orm.ProcessNode) -> str:
    """``'<process label><pk> exit status <n>: <message>'`` for a called process that did not finish ok."""
    return f'{node.process_label}<{node.pk}> exit status {node.exit_status}: {node.exit_message}'


def define_qd_inputs(spec, box_help: str | None = None) -> None:
    """The inputs every QD work chain takes: the structure, its net charge and its spin multiplicity; with
    ``box_help``, also the optional ``box_vacuum`` (Å) of work chains that can centre the QD in a cubic box."""
    spec.input('structure', valid_type=orm.StructureData, help='The QD.')
    spec.input('charge', valid_type=orm.Int, default=lambda: orm.Int(0), help='Net charge of the QD (e).')
    spec.input('multiplicity', valid_type=orm.Int, default=lambda: orm.Int(1), help='Spin multiplicity 2S+1.')
    if box_help:
        spec.input('box_vacuum', valid_type=orm.Float, required=False, help=box_help)


def qd_builder(process_class, structure: orm.StructureData, charge: int, multiplicity: int,
               box_vacuum: float | None = None):
    """A builder of ``process_class`` with the inputs of :func:`define_qd_inputs` set, and ``box_vacuum`` if given."""
    builder = process_class.get_builder()
    builder.structure = structure
    builder.charge = orm.Int(charge)
    builder.multiplicity = orm.Int(multiplicity)
    if box_vacuum is not None:
        builder.box_vacuum = orm.Float(box_vacuum)
    return builder


def define_relax_outputs(spec) -> None:
    """The outputs of a relaxation, the same for every engine (the engine's relax child returns them)."""
    spec.output('relaxed_structure', valid_type=orm.StructureData, help='The relaxed QD.')
    spec.output('output_parameters', valid_type=orm.Dict, help='Parsed output of the last CP2K/pw.x calculation.')
    spec.output('remote_folder', valid_type=orm.RemoteData, help='Folder of the last calculation (wavefunction).')
    spec.output('output_trajectory', valid_type=orm.TrajectoryData, required=False)


def cp2k_overrides(overrides: dict | None, namespace: str) -> dict:
    """The part of a stage's ``overrides`` that ``QdCp2kBaseWorkChain.get_builder_from_protocol`` takes: the stage's
    CP2K namespace and the protocol keys that set the ``&KIND`` sections (``basis_set``, ``admm``)."""
    overrides = overrides or {}
    return {**overrides.get(namespace, {}), **{key: overrides[key] for key in KIND_KEYS if key in overrides}}


class QdProtocolMixin(ProtocolMixin):
    """aiida-quantumespresso's protocol machinery reading ``aiida_qdtraps/protocols/<protocol_file>``."""

    #: The YAML file of the class's protocols in ``aiida_qdtraps/protocols``.
    protocol_file: ClassVar[str]

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / cls.protocol_file


class QdStageWorkChain(QdProtocolMixin, WorkChain):
    """Shared part of every engine's QD stage: QD inputs, boxing, clean-up, and the exit codes of bad input."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_qd_inputs(spec, box_help='If given, centre the QD in a cubic box with this much vacuum (Å) on every '
                                        'side first.')
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
    def expose_cp2k(cls, spec, **namespace_options) -> None:
        """Expose ``QdCp2kBaseWorkChain``'s inputs in ``cls._namespace``, without the structure (the stage submits its
        own, boxed one); ``namespace_options`` as for ``expose_inputs`` (``help``, ``required``, ...)."""
        spec.expose_inputs(QdCp2kBaseWorkChain, namespace=cls._namespace, exclude=('cp2k.structure',),
                           namespace_options=namespace_options or None)

    @classmethod
    def cp2k_builder_from_protocol(cls, code: orm.AbstractCode, structure: orm.StructureData,
                                   protocol: str | None = None, overrides: dict | None = None,
                                   options: dict | None = None):
        """``(cp2k, inputs)``: the CP2K inputs of this stage (``QdCp2kBaseWorkChain.get_builder_from_protocol`` on this
        stage's protocol file, without the structure: the stage sets its boxed one when it submits) and this stage's
        protocol inputs (``box_vacuum``, ...); also for work chains that run CP2K with a stage's settings (the MD and
        the MLFF labels with the relax's).

        :param overrides: this stage's protocol layout (its CP2K namespace, ``basis_set``, ``admm``, ...).
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        cp2k = QdCp2kBaseWorkChain.get_builder_from_protocol(code, structure, protocol,
                                                             cp2k_overrides(overrides, cls._namespace), options,
                                                             protocol_file=cls.get_protocol_filepath())
        cp2k.cp2k.pop('structure')
        return cp2k, inputs

    @classmethod
    def _builder_from_protocol(cls, code, structure, protocol, overrides, charge, multiplicity, options):
        """Builder with the shared inputs and the CP2K namespace filled; returns ``(builder, inputs)`` (the stage
        protocol's inputs) for the subclass."""
        cp2k, inputs = cls.cp2k_builder_from_protocol(code, structure, protocol, overrides, options)
        builder = qd_builder(cls, structure, charge, multiplicity, inputs.get('box_vacuum'))
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        builder[cls._namespace] = cp2k._inputs(prune=True)
        return builder, inputs

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

    def submit_cp2k(self, label: str, description: str, changes: dict | None = None, namespace: str | None = None,
                    context: str = 'workchain', **extra_inputs):
        """Submit ``QdCp2kBaseWorkChain`` on ``ctx.structure`` with charge/multiplicity (+ ``changes``) applied: the
        inputs of ``namespace`` (default: the stage's), the node in ``ctx.<context>``."""
        inputs = AttributeDict(self.exposed_inputs(QdCp2kBaseWorkChain, namespace=namespace or self._namespace))
        inputs.cp2k.structure = self.ctx.structure
        inputs.cp2k.update(extra_inputs)
        state = electronic_state_changes(self.inputs.charge.value, self.inputs.multiplicity.value)
        inputs.cp2k.parameters = update_cp2k_parameters(inputs.cp2k.parameters,
                                                        orm.Dict(recursive_merge(state, changes or {})))
        inputs.metadata = {'call_link_label': label}
        node = self.submit(QdCp2kBaseWorkChain, **inputs)
        self.report(f'launched QdCp2kBaseWorkChain<{node.pk}> ({description}, {len(self.ctx.structure.sites)} atoms, '
                    f'charge {self.inputs.charge.value}, multiplicity {self.inputs.multiplicity.value})')
        return ToContext(**{context: node})

    def failed_child_message(self) -> str | None:
        """``None`` if the CP2K work chain finished ok, else a message naming it and its exit status."""
        workchain = self.ctx.workchain
        if workchain.is_finished_ok:
            return None
        return failure_message(workchain)
