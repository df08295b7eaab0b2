"""``QdRelaxWorkChain``: PBE geometry optimisation of a non-periodic QD with the engine of the given code.

A thin dispatcher, one work chain per engine (as aiida-common-workflows' ``CommonRelaxWorkChain`` implementations):

- ``engine: cp2k``: :class:`~aiida_qdtraps.workchains.cp2k_relax.QdCp2kRelaxWorkChain` (``qdtraps.relax.cp2k``,
  protocols ``relax.yaml``);
- ``engine: qe``: :class:`~aiida_qdtraps.workchains.qe_relax.QdQeRelaxWorkChain` (``qdtraps.relax.qe``, protocols
  ``qe_relax.yaml``).

The inputs of both engines are exposed at the top level (``base`` and ``mlff_*`` for CP2K; ``qe``, ``qe_pp`` and
``qe_projwfc`` for QE; ``structure``, ``charge``, ``multiplicity``, ``box_vacuum`` and ``clean_workdir`` shared),
and the child's outputs are exposed as this work chain's. A failed child ends the dispatcher with the child's exit
status and a message that names the engine and the child. The relaxed structure is the node the engine's relax
CalcJob created, so :mod:`aiida_qdtraps.provenance` walks from it to that CalcJob and the built QD as before.
"""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.engine import ExitCode, ToContext, WorkChain
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from .cp2k_relax import QdCp2kRelaxWorkChain, validate_prerelaxes
from .qe_relax import QdQeRelaxWorkChain

#: Engine name -> (its relax work chain, the input namespace only it has, its name in messages).
ENGINES = {
    'cp2k': (QdCp2kRelaxWorkChain, 'base', 'CP2K'),
    'qe': (QdQeRelaxWorkChain, 'qe', 'QE'),
}
#: The code plugin that selects each engine in ``get_builder_from_protocol`` (any other plugin: CP2K).
ENGINE_OF_PLUGIN = {'quantumespresso.pw': 'qe'}
#: Inputs that belong to one engine only (beyond its namespace): engine -> input names.
ENGINE_ONLY_INPUTS = {'cp2k': ('base', 'prerelax', 'mlff_model', 'mlff_ensemble', 'mlff_prerelax'),
                      'qe': ('qe', 'qe_pp', 'qe_projwfc')}


def validate_engine(value, _):
    if value is not None and value.value not in ENGINES:
        return f'engine {value.value!r} is not available; choose one of {tuple(ENGINES)}'
    return None


def validate_engine_inputs(inputs, _):
    """The namespace of the chosen engine must be given (``base`` for cp2k, ``qe`` for qe), the other engine's not."""
    engine = inputs['engine'].value if 'engine' in inputs else 'cp2k'
    if engine not in ENGINES:
        return None  # reported by validate_engine
    namespace = ENGINES[engine][1]
    if namespace not in inputs:
        return f'engine {engine!r} needs the `{namespace}` inputs (use get_builder_from_protocol)'
    foreign = [name for other, names in ENGINE_ONLY_INPUTS.items() if other != engine for name in names
               if inputs.get(name)]
    if foreign:
        return f'input(s) {foreign} are not used by engine {engine!r}'
    return validate_prerelaxes(inputs, _)


class QdRelaxWorkChain(ProtocolMixin, WorkChain):
    """Relax a QD with PBE in a non-periodic box: CP2K GEO_OPT (default) or pw.x relax, run by the engine's own work
    chain (``QdCp2kRelaxWorkChain`` or ``QdQeRelaxWorkChain``) as a child."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        for engine, (process_class, namespace, _) in ENGINES.items():
            spec.expose_inputs(process_class, exclude=('metadata',))
            spec.inputs[namespace].required = False
            spec.inputs[namespace].populate_defaults = False
            spec.expose_outputs(process_class)
        spec.input('engine', valid_type=orm.Str, default=lambda: orm.Str('cp2k'), validator=validate_engine,
                   help='Electronic-structure engine: `cp2k` (inputs in `base`, QdCp2kRelaxWorkChain) or `qe` '
                        '(inputs in `qe`, `qe_pp`, `qe_projwfc`, QdQeRelaxWorkChain).')
        spec.inputs.validator = validate_engine_inputs
        spec.outline(cls.run_engine, cls.inspect_engine)
        for process_class, _, _ in ENGINES.values():  # a failed child's exit status is this work chain's
            for label, exit_code in process_class.spec().exit_codes.items():
                if label not in spec.exit_codes and exit_code.status >= 200:
                    spec.exit_code(exit_code.status, label, message=exit_code.message)
        spec.exit_code(400, 'ERROR_ENGINE_RELAX_FAILED', message='{message}')

    @classmethod
    def engine_of_code(cls, code: orm.AbstractCode) -> str:
        """``'qe'`` for a ``quantumespresso.pw`` code, else ``'cp2k'``."""
        return ENGINE_OF_PLUGIN.get(code.default_calc_job_plugin, 'cp2k')

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """The protocols of the default engine, CP2K (``relax.yaml``); QE's are ``QdQeRelaxWorkChain``'s."""
        return QdCp2kRelaxWorkChain.get_protocol_filepath()

    @classmethod
    def get_builder_from_protocol(cls, code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None = None, overrides: dict | None = None, charge: int = 0,
                                  multiplicity: int = 1, options: dict | None = None, prerelax: str | None = None,
                                  **qe_codes: orm.AbstractCode | None):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol: the engine's own builder
        (``QdCp2kRelaxWorkChain.get_builder_from_protocol`` or ``QdQeRelaxWorkChain.get_builder_from_protocol``)
        with ``engine`` set.

        The engine follows ``code``: a ``quantumespresso.pw`` code selects ``engine: qe`` (protocols of
        ``qe_relax.yaml``), anything else CP2K (``relax.yaml``).

        :param overrides: nested dict with the input layout of the engine's protocol file, merged last.
        :param options: CalcJob options merged into ``base.cp2k.metadata.options`` (e.g. resources), or into the pw.x,
            pp.x and projwfc.x options for QE.
        :param prerelax: CP2K only: a protocol (typically ``xtb``) whose GEO_OPT runs before this one
            (``QdCp2kRelaxWorkChain.get_builder_from_protocol``).
        :param qe_codes: QE only, passed on to ``QdQeRelaxWorkChain.get_builder_from_protocol``: ``pp_code`` (a
            ``quantumespresso.pp`` code; the valence density cube is made too) and ``projwfc_code`` (a
            ``quantumespresso.projwfc`` code; projwfc.x runs on the relaxed QD: Löwdin charges, HOMO/LUMO, PDOS).
        :raises ValueError: for ``pp_code`` or ``projwfc_code`` with a CP2K code, ``prerelax`` with a QE code, or any
            other keyword.
        """
        engine = cls.engine_of_code(code)
        process_class = ENGINES[engine][0]
        unknown = sorted(set(qe_codes) - {'pp_code', 'projwfc_code'})
        if unknown:
            raise ValueError(f'unknown keyword(s) {unknown}; this builder takes pp_code and projwfc_code besides the '
                             'arguments of the engine builders')
        if engine == 'qe':
            if prerelax is not None:
                raise ValueError(f'prerelax {prerelax!r} is a CP2K pre-relaxation; the QE engine has none (got a '
                                 f'{code.default_calc_job_plugin!r} code, {code.full_label})')
            child = process_class.get_builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity,
                                                            options, **qe_codes)
        else:
            given = sorted(name for name, value in qe_codes.items() if value)
            if given:
                raise ValueError(f'{given} need a quantumespresso.pw code; got a {code.default_calc_job_plugin!r} '
                                 f'code ({code.full_label})')
            child = process_class.get_builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity,
                                                            options, prerelax)
        inputs = child._inputs(prune=True)
        inputs.pop('metadata', None)
        builder = cls.get_builder()
        builder._update(inputs)
        builder.engine = orm.Str(engine)
        return builder

    def run_engine(self):
        """Run the engine's relax work chain on this work chain's inputs."""
        engine = self.inputs.engine.value
        process_class, _, name = ENGINES[engine]
        inputs = self.exposed_inputs(process_class)
        inputs['metadata'] = {'call_link_label': f'{engine}_relax'}
        node = self.submit(process_class, **inputs)
        self.report(f'launched {process_class.__name__}<{node.pk}> ({name} relax)')
        return ToContext(engine_relax=node)

    def inspect_engine(self):
        """Expose the child's outputs; on failure end with its exit status and a message naming the engine."""
        node = self.ctx.engine_relax
        engine = self.inputs.engine.value
        process_class, _, name = ENGINES[engine]
        if not node.is_finished_ok:
            reason = node.exit_message or (f'exit status {node.exit_status}' if node.is_finished
                                           else node.process_state.value)
            message = f'the {name} relax ({node.process_label}<{node.pk}>) failed: {reason}'
            codes = [code for code in self.exit_codes.values() if code.status == node.exit_status]
            if node.exit_status and codes and codes[0].status != 400:
                return ExitCode(node.exit_status, message, codes[0].invalidates_cache)
            return self.exit_codes.ERROR_ENGINE_RELAX_FAILED.format(message=message)
        self.out_many(self.exposed_outputs(node, process_class))
        return None
